"""``tessera proxy --metrics``: scraped over HTTP and parsed with prometheus-client's parser,
the counters match the connections made — full handshakes, each resumption kind (session id,
ticket, TLS 1.3 PSK), a fallback with its reason — and the text log says the same per
connection. ``--workers 2`` exports one endpoint for both workers (multiprocess mode)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import Peer, openssl_s_client, wait_for_output
from proxy_helpers import (
    client_context,
    https,
    port_of,
    proxy,
    value,
    wait_for_metric,
    wait_until_idle,
)
from resumption_helpers import outcomes

from conftest import Pki, free_port
from tessera import FallbackReason

pytestmark = pytest.mark.interop

H = "tessera_handshakes_total"


@pytest.fixture
def metered(pki: Pki, logs: Path, http_backend: Peer, metrics_port: int) -> Iterator[Peer]:
    with proxy(pki, logs, port_of(http_backend), "--metrics", f"127.0.0.1:{metrics_port}",
               name="proxy-metrics") as p:  # fmt: skip
        yield p
        assert "Traceback" not in p.output()


def s_client(port: int, pki: Pki, *args: str) -> str:
    out = openssl_s_client(port, "-CAfile", str(pki.ca_file), *args)
    found = outcomes(out)
    assert len(found) == 1, out
    return found[0]


def test_counters_match_the_connections(
    metered: Peer, pki: Pki, logs: Path, http_backend: Peer, metrics_port: int, tmp_path: Path
) -> None:
    port = port_of(metered)
    sid, t12, t13 = (str(tmp_path / n) for n in ("sid.pem", "t12.pem", "t13.pem"))
    # TLS 1.2 session id: full, then resumed by id
    assert s_client(port, pki, "-tls1_2", "-no_ticket", "-sess_out", sid) == "New"
    assert s_client(port, pki, "-tls1_2", "-no_ticket", "-sess_in", sid) == "Reused"
    # TLS 1.2 ticket: full, then resumed by ticket
    assert s_client(port, pki, "-tls1_2", "-sess_out", t12) == "New"
    assert s_client(port, pki, "-tls1_2", "-sess_in", t12) == "Reused"
    # TLS 1.3: full (CPython ssl reads the tickets), then resumed by PSK
    ctx = client_context(pki, "1.3")
    first = https(port, ctx, "GET", "/bytes/100000")
    assert https(port, ctx, "GET", "/", session=first.session).session_reused
    # a fallback: a ticket sealed by another proxy (other keys) is a full handshake, counted
    with proxy(pki, logs, port_of(http_backend), name="proxy-other") as other:
        assert s_client(port_of(other), pki, "-tls1_2", "-sess_out", t13) == "New"
    assert s_client(port, pki, "-tls1_2", "-sess_in", t13) == "New"

    wait_for_metric(metrics_port, H, 3, version="TLSv1.2", kind="full")
    samples = wait_until_idle(metrics_port)
    assert value(samples, H, version="TLSv1.2", kind="full") == 3
    assert value(samples, H, version="TLSv1.2", kind="session_id") == 1
    assert value(samples, H, version="TLSv1.2", kind="ticket") == 1
    assert value(samples, H, version="TLSv1.3", kind="full") == 1
    assert value(samples, H, version="TLSv1.3", kind="psk") == 1
    unknown = FallbackReason.TICKET_UNKNOWN_KEY.value
    assert value(samples, "tessera_resumption_fallbacks_total", reason=unknown) == 1
    for reason in FallbackReason:  # every reason, from zero
        assert ("tessera_resumption_fallbacks_total", (("reason", reason.value),)) in samples
    ops = "tessera_store_operations_total"
    assert value(samples, ops, op="put", result="ok") >= 1  # the session id cached
    assert value(samples, ops, op="get", result="hit") == 1  # and found again
    assert value(samples, "tessera_handshake_duration_seconds_count", kind="full") == 4
    assert value(samples, "tessera_tickets_issued_total", version="TLSv1.2") >= 2
    assert value(samples, "tessera_ticket_keys", state="encrypting") == 1
    assert value(samples, "tessera_store_up") == 1
    assert value(samples, "tessera_bytes_total", direction="out") > 100000
    assert value(samples, "tessera_bytes_total", direction="in") > 0
    assert value(samples, "tessera_connections_active") == 0

    log = wait_for_output(metered, f'resumed=no reason="{unknown}"')  # (the last connection's)
    assert len(re.findall(r" TLSv1\.2 \S+ resumed=(?:session_id|ticket)", log)) == 2, log
    assert len(re.findall(r" TLSv1\.3 \S+ (?:alpn=\S+ )?resumed=psk", log)) == 1, log


def test_active_connections_and_handshake_failures(metered: Peer, pki: Pki,
                                                    metrics_port: int) -> None:  # fmt: skip
    import socket
    import ssl

    port = port_of(metered)
    ctx = client_context(pki, "1.3")
    held = [ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)),
                            server_hostname="localhost") for _ in range(3)]  # fmt: skip
    try:
        assert value(wait_for_metric(metrics_port, "tessera_connections_active", 3),
                     "tessera_connections_active") == 3  # fmt: skip
    finally:
        for s in held:
            s.close()
    # a client that trusts another CA ends the handshake with a fatal alert (bad_certificate
    # or unknown_ca): counted by alert
    wrong = ssl.create_default_context()
    with pytest.raises(ssl.SSLError), socket.create_connection(("127.0.0.1", port)) as raw:
        wrong.wrap_socket(raw, server_hostname="localhost")
    wait_for_metric(metrics_port, "tessera_handshake_failures_total", 1, alert="unknown_ca",
                    sent="received")  # fmt: skip


def test_workers_share_one_endpoint(pki: Pki, logs: Path, http_backend: Peer) -> None:
    metrics_port = free_port()
    with proxy(pki, logs, port_of(http_backend), "--workers", "2", "--metrics",
               f"127.0.0.1:{metrics_port}", "--key-refresh", "0.2",
               name="proxy-workers") as p:  # fmt: skip
        port = port_of(p)
        ctx = client_context(pki, "1.2")
        first = https(port, ctx, "GET", "/")
        n = 20
        reused = sum(https(port, ctx, "GET", "/", session=first.session).session_reused
                     for _ in range(n))  # fmt: skip
        assert reused == n  # tickets: the supervisor's keys, on either worker
        wait_for_metric(metrics_port, H, n, version="TLSv1.2", kind="ticket")
        samples = wait_until_idle(metrics_port)
        assert value(samples, H, version="TLSv1.2", kind="ticket") == n
        assert value(samples, H, version="TLSv1.2", kind="full") == 1
        assert value(samples, "tessera_ticket_keys", state="encrypting") == 1
        assert value(samples, "tessera_connections_active") == 0
        out = wait_for_output(p, "(multiprocess)")  # (the supervisor's banner: its workers
        assert "2 workers on one port" in out, out  # may serve before it is all printed)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_metrics(pki: Pki, logs: Path, workers: str) -> None:
    """``tessera serve --metrics`` too, with and without ``--workers`` (multiprocess)."""
    from peers import TESSERA

    port, metrics_port = free_port(), free_port()
    argv = [*TESSERA, "serve", "--port", str(port), "--cert", str(pki.ecdsa_cert), "--key",
            str(pki.ecdsa_key), "--workers", workers, "--metrics", f"127.0.0.1:{metrics_port}",
            "--key-refresh", "0.2"]  # fmt: skip
    with Peer(argv, port=port, log_dir=logs, name="serve-metrics") as serve:
        out = openssl_s_client(port, "-tls1_2", "-reconnect", "-CAfile", str(pki.ca_file))
        assert outcomes(out) == ["New"] + ["Reused"] * 5, out
        wait_for_metric(metrics_port, H, 5, version="TLSv1.2", kind="ticket")
        samples = wait_until_idle(metrics_port)
        assert value(samples, H, version="TLSv1.2", kind="ticket") == 5
        assert value(samples, "tessera_connections_active") == 0
        assert value(samples, "tessera_ticket_keys", state="encrypting") == 1
        assert "Traceback" not in serve.output()

"""``tessera proxy`` in front of real backends (the standard library's ``http.server`` and a
Node.js HTTP server), with curl, ``openssl s_client`` and CPython ``ssl`` as clients, TLS 1.2
and 1.3: bodies of several MiB go through intact both ways; the log has one line per
connection."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import HTTP_GET, Peer, openssl_s_client
from proxy_helpers import client_context, curl, https, pattern, port_of, proxy, sha
from resumption_helpers import outcomes

from conftest import Pki
from waiting import wait_until

pytestmark = pytest.mark.interop

SIZE = 4 * 1024 * 1024 + 12345  # several MiB, not a round number


@pytest.fixture(scope="module")
def py_proxy(pki: Pki, logs: Path, http_backend: Peer) -> Iterator[Peer]:
    with proxy(pki, logs, port_of(http_backend), "--log-format", "json", "--alpn",
               "http/1.1", name="proxy-py") as p:  # fmt: skip
        yield p
        assert "Traceback" not in p.output()


@pytest.fixture(scope="module")
def node_proxy(pki: Pki, logs: Path, node_http_backend: Peer) -> Iterator[Peer]:
    with proxy(pki, logs, port_of(node_http_backend), name="proxy-node") as p:
        yield p
        assert "Traceback" not in p.output()


@pytest.mark.parametrize("version", ["--tlsv1.2 --tls-max 1.2", "--tlsv1.3"])
def test_curl_both_ways(py_proxy: Peer, pki: Pki, tmp_path: Path, version: str) -> None:
    port = port_of(py_proxy)
    url = f"https://localhost:{port}"
    # download: several MiB from the backend
    out = tmp_path / "down"
    curl(port, pki, *version.split(), "-o", str(out), f"{url}/bytes/{SIZE}")
    assert sha(out.read_bytes()) == sha(pattern(SIZE))
    # upload: several MiB to the backend, which answers with their length and digest
    body = tmp_path / "up"
    body.write_bytes(os.urandom(SIZE))
    answer = curl(port, pki, *version.split(), "--data-binary", f"@{body}", f"{url}/sha256")
    assert answer.split() == [str(SIZE), sha(body.read_bytes())]
    # both at once: the backend echoes what it gets
    echoed = tmp_path / "echoed"
    curl(port, pki, *version.split(), "--data-binary", f"@{body}", "-o", str(echoed),
         f"{url}/echo")  # fmt: skip
    assert sha(echoed.read_bytes()) == sha(body.read_bytes())


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_python_ssl_echo_and_resumption(py_proxy: Peer, pki: Pki, version: str) -> None:
    ctx = client_context(pki, version)
    body = os.urandom(SIZE)
    first = https(port_of(py_proxy), ctx, "POST", "/echo", body)
    assert sha(first.body) == sha(body)
    assert first.version == f"TLSv{version}"
    again = https(port_of(py_proxy), ctx, "GET", "/", session=first.session)
    assert again.session_reused and again.body == b"hello\n"


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_node_backend(node_proxy: Peer, pki: Pki, version: str) -> None:
    ctx = client_context(pki, version)
    body = os.urandom(SIZE)
    assert sha(https(port_of(node_proxy), ctx, "POST", "/echo", body).body) == sha(body)
    down = https(port_of(node_proxy), ctx, "GET", f"/bytes/{SIZE}").body
    assert sha(down) == sha(pattern(SIZE))


def test_openssl_s_client_reconnect(py_proxy: Peer, pki: Pki) -> None:
    port = port_of(py_proxy)
    ca = ("-CAfile", str(pki.ca_file))
    for extra in ((), ("-no_ticket",)):
        out = openssl_s_client(port, "-tls1_2", "-reconnect", *ca, *extra)
        assert outcomes(out) == ["New"] + ["Reused"] * 5, out
    out = openssl_s_client(port, "-tls1_3", "-ign_eof", *ca, "-alpn", "http/1.1",
                           input=HTTP_GET)  # fmt: skip
    assert "ALPN protocol: http/1.1" in out, out
    assert "HTTP/1.1 200" in out and "hello" in out, out


def test_one_json_log_line_per_connection(py_proxy: Peer, pki: Pki) -> None:
    before = _records(py_proxy)
    ctx = client_context(pki, "1.2")
    first = https(port_of(py_proxy), ctx, "GET", "/bytes/1000")
    second = https(port_of(py_proxy), ctx, "GET", "/bytes/1000", session=first.session)
    assert second.session_reused
    records = _wait_records(py_proxy, len(before) + 2)[len(before) :]
    assert [r["resumed"] for r in records] == ["no", "ticket"]
    for r in records:
        assert r["version"] == "TLSv1.2" and r["sni"] == "localhost"
        assert r["cipher"].startswith("TLS_ECDHE_ECDSA_WITH_AES")
        assert r["bytes_out"] > 1000 and r["bytes_in"] > 30
        assert r["peer"].startswith("127.0.0.1:") and r["handshake_ms"] > 0
        assert r["duration_s"] > 0 and r["time"].endswith("Z")


def _records(peer: Peer) -> list[dict[str, object]]:
    out = []
    for line in peer.output().splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if "version" in rec:  # (port probes end before a handshake)
                out.append(rec)
    return out


def _wait_records(peer: Peer, n: int) -> list[dict[str, object]]:
    """The proxy's JSON records once there are ``n`` (or all there are after the wait: the
    caller's assertion says what is missing)."""
    with contextlib.suppress(AssertionError):
        wait_until(lambda: len(_records(peer)) >= n, f"{n} records")
    return _records(peer)

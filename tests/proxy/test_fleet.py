"""A fleet behind a real load balancer: two ``tessera proxy`` instances sharing one Redis, behind
HAProxy in TCP mode (round robin), so consecutive connections of a client land on different
proxies. ``openssl s_client -reconnect`` through HAProxy: 1 New + 5 Reused, for TLS 1.2 session
ids and tickets; TLS 1.3 ``-sess_out``/``-sess_in`` chains resume on both proxies."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from audit_helpers import haproxy
from peers import HTTP_GET, Peer, openssl_s_client
from proxy_helpers import port_of, proxy, value, wait_for_metric
from redis_server import RedisServer
from resumption_helpers import outcomes

from conftest import Pki, free_port
from tessera.fleet.secret import FleetSecret
from waiting import wait_until

pytestmark = pytest.mark.interop


@dataclass
class Fleet:
    lb: Peer
    nodes: list[Peer]
    metrics: list[int]


@pytest.fixture(scope="module")
def fleet(pki: Pki, logs: Path, http_backend: Peer) -> Iterator[Fleet]:
    secret = logs / "fleet.secret"
    FleetSecret.generate().write(secret)
    with RedisServer() as redis:
        metrics = [free_port(), free_port()]
        args = ["--redis", redis.url, "--fleet-secret", str(secret), "--redis-namespace", "px",
                "--key-refresh", "0.25"]  # fmt: skip
        with (
            proxy(pki, logs, port_of(http_backend), *args, "--metrics",
                  f"127.0.0.1:{metrics[0]}", name="fleet-a") as a,
            proxy(pki, logs, port_of(http_backend), *args, "--metrics",
                  f"127.0.0.1:{metrics[1]}", name="fleet-b") as b,
        ):  # fmt: skip
            for m in metrics:  # publish-before-use: tickets once the first key encrypts
                wait_for_metric(m, "tessera_ticket_keys", 1, state="encrypting")
            with haproxy(logs, [port_of(a), port_of(b)]) as lb:
                yield Fleet(lb, [a, b], metrics)
            for node in (a, b):
                assert "Traceback" not in node.output()


def resumed_lines(node: Peer, kind: str) -> int:
    return len(re.findall(rf" resumed={kind} ", node.output()))


def gained_lines(fleet: Fleet, kind: str, before: list[int], n: int) -> list[int]:
    """The ``resumed=KIND`` lines each proxy wrote since ``before``, once there are ``n`` in
    all: a proxy writes a connection's line once that connection has ended, which may be a
    moment after the client is gone."""

    def gained() -> list[int]:
        return [resumed_lines(p, kind) - b for p, b in zip(fleet.nodes, before, strict=True)]

    wait_until(lambda: sum(gained()) >= n, f"{n} resumed={kind} lines",
               details=lambda: str(gained()))  # fmt: skip
    return gained()


@pytest.mark.parametrize(("extra", "kind"), [(("-no_ticket",), "session_id"), ((), "ticket")])
def test_tls12_reconnect_through_haproxy(fleet: Fleet, pki: Pki, extra: tuple[str, ...],
                                         kind: str) -> None:  # fmt: skip
    before = [resumed_lines(n, kind) for n in fleet.nodes]
    out = openssl_s_client(port_of(fleet.lb), "-tls1_2", "-reconnect", "-CAfile",
                           str(pki.ca_file), *extra)  # fmt: skip
    assert outcomes(out) == ["New"] + ["Reused"] * 5, out
    gained = gained_lines(fleet, kind, before, 5)
    assert sum(gained) == 5 and all(g >= 2 for g in gained), gained  # both proxies resumed


def test_tls13_chain_resumes_on_both(fleet: Fleet, pki: Pki, tmp_path: Path) -> None:
    before = [resumed_lines(n, "psk") for n in fleet.nodes]
    ca = ("-CAfile", str(pki.ca_file))
    session = tmp_path / "s0.pem"
    out = openssl_s_client(port_of(fleet.lb), "-tls1_3", "-ign_eof", *ca, "-sess_out",
                           str(session), input=HTTP_GET)  # fmt: skip
    assert outcomes(out) == ["New"] and "hello" in out, out
    for i in range(1, 5):
        nxt = tmp_path / f"s{i}.pem"
        out = openssl_s_client(port_of(fleet.lb), "-tls1_3", "-ign_eof", *ca, "-sess_in",
                               str(session), "-sess_out", str(nxt), input=HTTP_GET)  # fmt: skip
        assert outcomes(out) == ["Reused"] and "hello" in out, out
        session = nxt
    gained = gained_lines(fleet, "psk", before, 4)
    assert gained[0] >= 1 and gained[1] >= 1 and sum(gained) == 4, gained
    for m in fleet.metrics:  # the sessions came from Redis, and Redis is healthy
        wait_for_metric(m, "tessera_handshakes_total", 1, version="TLSv1.3", kind="psk")


def test_store_operations_go_to_redis(fleet: Fleet) -> None:
    """(After the tests above.) A session id put by one proxy is found by both."""
    from proxy_helpers import scrape

    ops = "tessera_store_operations_total"
    both = [scrape(m) for m in fleet.metrics]
    assert sum(value(s, ops, op="put", result="ok") for s in both) >= 1
    for samples in both:
        assert value(samples, ops, op="get", result="hit") >= 2
        assert value(samples, "tessera_store_up") == 1
        assert value(samples, "tessera_store_operation_duration_seconds_count", op="get") >= 2


def test_workers_with_redis(pki: Pki, logs: Path, http_backend: Peer) -> None:
    """``--workers 2 --redis``: each worker's asyncio Redis client is its own (made by the loop
    that uses it after the fork); session ids and tickets resume on either worker."""
    from proxy_helpers import client_context, https, scrape

    secret = logs / "workers.secret"
    FleetSecret.generate().write(secret)
    metrics = free_port()
    with (
        RedisServer() as redis,
        proxy(pki, logs, port_of(http_backend), "--workers", "2", "--redis", redis.url,
              "--fleet-secret", str(secret), "--key-refresh", "0.2", "--metrics",
              f"127.0.0.1:{metrics}", name="fleet-workers") as p,
    ):  # fmt: skip
        wait_for_metric(metrics, "tessera_ticket_keys", 1, state="encrypting")
        for version in ("1.2", "1.3"):
            ctx = client_context(pki, version)
            if version == "1.2":
                ctx.options |= ssl.OP_NO_TICKET  # session ids: Redis GET
            first = https(port_of(p), ctx, "GET", "/")
            for _ in range(8):
                again = https(port_of(p), ctx, "GET", "/", session=first.session)
                assert again.session_reused, version
        samples = scrape(metrics)
        assert value(samples, "tessera_handshakes_total", version="TLSv1.2",
                     kind="session_id") == 8  # fmt: skip
        assert value(samples, "tessera_handshakes_total", version="TLSv1.3", kind="psk") == 8
        assert value(samples, "tessera_store_up") == 1
        assert "Traceback" not in p.output()

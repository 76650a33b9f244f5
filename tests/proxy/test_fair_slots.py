"""Fair slots, scaled down (``bench/engine.py --parts fairness`` runs 10,000 idle connections and
a 1,500-connection hog): ``tessera serve`` and ``tessera proxy`` with 40 slots and 10 per
client, on uvloop and on asyncio's own loop, while 80 idle connections from 40 loopback
addresses (half of them never send a byte, half stop after a TLS handshake) and a 30-connection
hog from 127.0.0.2 hold on. A well-behaved client on 127.0.0.1 makes 20 connections one after
another: each is served, quickly; the hog is refused beyond its cap; the idle ones are cut to
make room; the metrics count both; afterwards the server holds no more descriptors than
before."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import TESSERA, Peer
from proxy_helpers import client_context, port_of, proxy, scrape, value

from conftest import Pki, free_port
from waiting import wait_until

pytestmark = pytest.mark.interop

SLOTS, PER_CLIENT = 40, 10
IDLE, HOG, TRIES = 80, 30, 20
MAX_SECONDS = 2.0  # per well-behaved connection on a loaded box (target on a quiet one: < 1 s)
ENGINE = ["--max-connections", str(SLOTS), "--max-connections-per-client", str(PER_CLIENT)]


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _open_idle(port: int, source: str, handshake: bool, pki: Pki) -> socket.socket | None:
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
        if handshake:
            return client_context(pki, "1.3").wrap_socket(raw, server_hostname="localhost")
        return raw
    except OSError:
        return None  # refused or cut already: fine, it is the attacker's loss


def _served(port: int, pki: Pki) -> float:
    """One well-behaved connection from 127.0.0.1: handshake, ping, answer; its seconds."""
    t0 = time.monotonic()
    raw = socket.create_connection(("127.0.0.1", port), timeout=10,
                                   source_address=("127.0.0.1", 0))  # fmt: skip
    with client_context(pki, "1.3").wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"P00000000000000\n")
        assert tls.recv(64), "no answer"
    return time.monotonic() - t0


@contextlib.contextmanager
def crowd(port: int, pki: Pki) -> Iterator[list[socket.socket]]:
    held = []
    try:
        for i in range(IDLE):
            s = _open_idle(port, f"127.0.1.{1 + i % 40}", i % 2 == 0, pki)
            if s is not None:
                held.append(s)
        for _ in range(HOG):
            s = _open_idle(port, "127.0.0.2", False, pki)
            if s is not None:
                held.append(s)
        yield held
    finally:
        for s in held:
            s.close()


def _server(kind: str, loop: str, pki: Pki, logs: Path, echo_port: int, metrics: int) -> Peer:
    extra = [*ENGINE, "--loop", loop, "--metrics", f"127.0.0.1:{metrics}", "-q"]
    if kind == "proxy":
        return proxy(pki, logs, echo_port, *extra, name=f"fair-proxy-{loop}")
    port = free_port()
    argv = [*TESSERA, "serve", "-p", str(port), "--cert", str(pki.ecdsa_cert), "--key",
            str(pki.ecdsa_key), *extra]  # fmt: skip
    return Peer(argv, port=port, log_dir=logs, name=f"fair-serve-{loop}")


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("kind", ["serve", "proxy"])
def test_a_well_behaved_client_is_served_despite_idlers_and_a_hog(
    kind: str, loop: str, pki: Pki, logs: Path, echo_backend: Peer
) -> None:
    metrics = free_port()
    with _server(kind, loop, pki, logs, port_of(echo_backend), metrics) as server:
        port = port_of(server)
        pid = server.proc.pid
        _served(port, pki)  # warm up
        before = descriptors(pid)
        with crowd(port, pki):
            times = [_served(port, pki) for _ in range(TRIES)]
            samples = scrape(metrics)
        assert max(times) < MAX_SECONDS, sorted(times)
        assert value(samples, "tessera_connections_cut_total", reason="per-client limit") >= (
            HOG - PER_CLIENT
        ), samples
        shed = sum(value(samples, "tessera_connections_cut_total", reason=r)
                   for r in ("shed: handshaking", "shed: idle"))  # fmt: skip
        assert shed >= TRIES, samples
        wait_until(lambda: descriptors(pid) <= before, f"the proxy back to {before} descriptors",
                   details=lambda: f"{descriptors(pid)} open\n{server.output()}")  # fmt: skip
        assert "Traceback" not in server.output()

"""The delay ``tessera proxy`` adds to a request on loopback, on asyncio's own event loop (no
uvloop): with Nagle's algorithm left on, the second small write of an answer (HTTP headers,
then the body; a TLS 1.3 ticket, then the data) waits for the delayed ACK of the first, ~40 ms
on Linux. With TCP_NODELAY on every socket the proxy accepts or opens it adds well under a
millisecond; the bound here (15 ms over the backend alone, at the median) is loose for a loaded
box, yet well under the Nagle delay, so a socket without TCP_NODELAY fails it. The figure
itself (p50 <= 1 ms) is measured by ``bench/engine.py``."""

from __future__ import annotations

import socket
import ssl
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import Peer
from proxy_helpers import client_context, port_of, proxy

from conftest import Pki

pytestmark = pytest.mark.interop

CONNECTIONS = 15
MAX_ADDED_MS = 15.0
# On a fresh connection: the answer's head, then its body 5 ms later (two small writes from
# the proxy, and in TLS 1.3 its tickets before them).
REQUEST = b"GET /split HTTP/1.1\r\nHost: localhost\r\n\r\n"


def _answer(sock: socket.socket | ssl.SSLSocket) -> bytes:
    data = b""
    while not data.endswith(b"hello\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"the connection ended after {data!r}")
        data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data
    return data


def _latency_ms(port: int, ctx: ssl.SSLContext | None) -> float:
    """Request -> whole answer on a new connection (after its handshake)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock = raw if ctx is None else ctx.wrap_socket(raw, server_hostname="localhost")
    with sock:
        t0 = time.perf_counter()
        sock.sendall(REQUEST)
        _answer(sock)
        return (time.perf_counter() - t0) * 1000


@pytest.fixture(scope="module")
def asyncio_proxy(pki: Pki, logs: Path, http_backend: Peer) -> Iterator[Peer]:
    with proxy(pki, logs, port_of(http_backend), "--loop", "asyncio", "-q",
               name="proxy-asyncio") as p:  # fmt: skip
        yield p


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_added_latency_without_uvloop(
    asyncio_proxy: Peer, http_backend: Peer, pki: Pki, version: str
) -> None:
    ctx = client_context(pki, version)
    direct = [_latency_ms(port_of(http_backend), None) for _ in range(CONNECTIONS)]
    through = [_latency_ms(port_of(asyncio_proxy), ctx) for _ in range(CONNECTIONS)]
    median, alone = statistics.median(through), statistics.median(direct)
    assert median - alone < MAX_ADDED_MS, (
        f"TLS {version}: request -> answer through the proxy {median:.1f} ms at the median "
        f"(backend alone {alone:.2f} ms; "
        f"all: {[round(x, 1) for x in sorted(through)]})"
    )

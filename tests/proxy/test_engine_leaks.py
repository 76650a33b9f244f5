"""After an attack the serving engine holds nothing: the fair-slots attack of
``test_fair_slots`` (idle connections from 40 addresses, a hog from one, a well-behaved client)
run twice against one engine in this process, serving echo (as ``tessera serve``) and relaying
to a real TCP backend (as ``tessera proxy``). Afterwards no connection object of any layer is
alive (counted with the garbage collector), and the process's memory after the second attack
is not above the first's plus a small margin: bounded, not growing per attack."""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from peers import Peer
from proxy_helpers import port_of
from test_fair_slots import IDLE, PER_CLIENT, SLOTS, TRIES, _served, crowd

import waiting
from conftest import Pki
from tessera import ServerConfig, ServerConnection
from tessera.cli.www import Echo, Site
from tessera.io.aio import TLSProtocol, TLSTransport
from tessera.io.engine import Engine, EngineConnection, EngineSettings
from tessera.proxy.relay import Relay
from tessera.proxy.server import ProxySettings, proxy_server
from tessera.session.resumption.awaited import AsyncMemoryStore

pytestmark = pytest.mark.interop

SETTINGS = EngineSettings(max_connections=SLOTS, max_per_client=PER_CLIENT, loop="auto")
PER_CONNECTION = (EngineConnection, TLSProtocol, TLSTransport, ServerConnection, Echo, Relay)
RSS_MARGIN = 8 << 20  # bytes the second attack may leave above the first (allocator slack)


def rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def live() -> dict[str, int]:
    """Connection objects of every layer still alive (after a full collection)."""
    gc.collect()
    counts: dict[str, int] = {}
    for obj in gc.get_objects():
        if isinstance(obj, PER_CONNECTION):
            counts[type(obj).__name__] = counts.get(type(obj).__name__, 0) + 1
    return counts


def wait_until(condition: Callable[[], bool], timeout: float, what: Callable[[], object]) -> None:
    waiting.wait_until(condition, "not settled", timeout, lambda: str(what()))


@contextlib.contextmanager
def running(engine: Engine) -> Iterator[Engine]:
    thread = threading.Thread(target=engine.serve_forever, daemon=True)
    thread.start()
    try:
        yield engine
    finally:
        engine.shutdown()
        thread.join(30)


def _serve_engine(pki: Pki, echo_port: int) -> Engine:
    config = ServerConfig(certificates=(pki.ecdsa,))
    site = Site(config=lambda: config, log=None, say=lambda line: None)
    return Engine(("127.0.0.1", 0), config, SETTINGS, lambda: Echo(site))


def _proxy_engine(pki: Pki, echo_port: int) -> Engine:
    config = ServerConfig(certificates=(pki.ecdsa,), async_session_store=AsyncMemoryStore())
    return proxy_server(("127.0.0.1", 0), config, SETTINGS,
                        ProxySettings(("127.0.0.1", echo_port)))  # fmt: skip


@pytest.mark.parametrize("make", [_serve_engine, _proxy_engine], ids=["serve", "proxy"])
def test_two_attacks_leave_no_connection_and_no_growth(
    make: Callable[[Pki, int], Engine], pki: Pki, echo_backend: Peer
) -> None:
    with running(make(pki, port_of(echo_backend))) as engine:
        port = engine.address[1]
        _served(port, pki)  # warm up: every module and cache in place
        after: list[int] = []
        for _ in range(2):
            with crowd(port, pki) as held:
                assert len(held) >= IDLE // 2
                for _ in range(TRIES):
                    _served(port, pki)
                during = live()
                assert during.get("EngineConnection", 0) > 0, during  # the census sees them
            wait_until(lambda: not engine.connections, 30,
                       lambda: f"{len(engine.connections)} connection(s) still open")  # fmt: skip
            wait_until(lambda: not live(), 15, lambda: f"alive after the attack: {live()}")
            after.append(rss())
        assert engine.stats.refused_per_client > 0 and engine.stats.accepted > 2 * TRIES
        assert after[1] <= after[0] + RSS_MARGIN, [a >> 20 for a in after]

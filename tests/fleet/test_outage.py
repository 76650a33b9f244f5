"""A store outage costs nothing: two nodes share a Redis that is killed (port closed), restarted
empty, then paused (SIGSTOP) and resumed, while CPython clients resume TLS 1.2 session ids on a
random node. Every connection completes; lookups that cannot be answered are full handshakes
("session store unavailable"), the breaker stops asking for a while (counted), and resumption is
back within 10 s of Redis returning."""

from __future__ import annotations

import random
import re
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from fleet_helpers import client_context, fleet_node, python_get
from peers import Peer
from redis_server import RedisServer
from resumption_helpers import parse_status_page

from conftest import Pki, free_port

pytestmark = pytest.mark.interop

CLIENTS = 3
PHASE = 3.0  # seconds of each phase: steady, outage
HEAL_LIMIT = 10.0


class Load:
    """Clients resuming session ids on random nodes; records (time, resumed) per connection."""

    def __init__(self, ports: list[int], pki: Pki) -> None:
        self.ports = ports
        self.pki = pki
        self.results: list[tuple[float, bool]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,)) for i in range(CLIENTS)]

    def _client(self, seed: int) -> None:
        rng = random.Random(seed)
        ctx = client_context(self.pki.ca_file, "tls12-id")
        session = None
        deadline = time.monotonic() + 120  # bounded whatever happens
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                reused, session, _ = python_get(rng.choice(self.ports), ctx, session)
            except OSError as e:
                self.errors.append(str(e))
                continue
            self.results.append((time.monotonic(), reused))
            time.sleep(rng.uniform(0.01, 0.05))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def first_resumed_after(self, t: float, limit: float) -> float:
        """Seconds from ``t`` to the first resumed connection that started after it."""
        deadline = time.monotonic() + limit + 1
        while time.monotonic() < deadline:
            later = [at for at, reused in list(self.results) if reused and at > t]
            if later:
                return min(later) - t
            time.sleep(0.1)
        return float("inf")

    def resumed_between(self, start: float, end: float) -> tuple[int, int]:
        inside = [reused for at, reused in self.results if start <= at < end]
        return sum(inside), len(inside)


def test_outage_kill_restart_pause(pki: Pki, redis_server: RedisServer, secret_file: Path,
                                   tmp_path: Path) -> None:  # fmt: skip
    nodes: list[Peer] = []
    try:
        for i in range(2):
            nodes.append(fleet_node(pki, tmp_path, redis_server.url, secret_file, "-q",
                                    name=f"node{i}"))  # fmt: skip
        ports = [n.port or 0 for n in nodes]
        with Load(ports, pki) as load:
            time.sleep(PHASE)
            steady = load.resumed_between(0, time.monotonic())
            assert steady[0] >= steady[1] - CLIENTS - 1 and steady[1] > 20, steady

            redis_server.kill()  # the port is closed
            killed = time.monotonic()
            time.sleep(PHASE)
            down = load.resumed_between(killed + 0.5, time.monotonic())
            redis_server.start()  # back, empty
            back = time.monotonic()
            healed_kill = load.first_resumed_after(back, HEAL_LIMIT)

            redis_server.pause()  # connections hang: every operation times out
            paused = time.monotonic()
            time.sleep(PHASE)
            stalled = load.resumed_between(paused + 0.5, time.monotonic())
            redis_server.resume()
            resumed = time.monotonic()
            healed_pause = load.first_resumed_after(resumed, HEAL_LIMIT)
            time.sleep(1.0)

        pages = [parse_status_page(python_get(p, client_context(pki.ca_file, "tls13"))[2])
                 for p in ports]  # fmt: skip
        unavailable = sum(p.reason("session store unavailable") for p in pages)
        skipped = sum(int(_skipped(p.text)) for p in pages)
        failures = sum(p.stats["handshake_failures"] for p in pages)
        print(
            f"outage: {len(load.results)} connections, {len(load.errors)} errors, steady "
            f"{steady}, killed {down}, paused {stalled}, healed after kill {healed_kill:.2f} s, "
            f"after pause {healed_pause:.2f} s, unavailable {unavailable}, skipped {skipped}"
        )
        assert not load.errors, load.errors[:5]
        assert failures == 0
        assert down[1] > 10 and down[0] == 0, down  # ids cannot resume without the store
        assert stalled[1] > 10 and stalled[0] == 0, stalled
        assert healed_kill < HEAL_LIMIT and healed_pause < HEAL_LIMIT
        assert unavailable > 0 and skipped > 0
    finally:
        for n in nodes:
            n.stop()


def _skipped(text: str) -> int:
    m = re.search(r"session store: .*?(\d+) skipped", text)
    assert m, text
    return int(m.group(1))


def metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert m, text
    return float(m.group(1))


def test_node_started_while_redis_is_down(pki: Pki, redis_server: RedisServer, secret_file: Path,
                                          tmp_path: Path) -> None:  # fmt: skip
    """No Redis at start: the banner, the --www page and the metrics all say so (never
    "healthy"); full handshakes, no tickets (no key can be shared yet), never a failed
    connection; once Redis is up the node mints/loads keys, resumes, and says healthy."""
    redis_server.kill()
    mport = free_port()
    with fleet_node(pki, tmp_path, redis_server.url, secret_file, "-q", "--metrics",
                    f"127.0.0.1:{mport}") as node:  # fmt: skip
        banner = node.output()
        assert "session store unavailable since start" in banner, banner
        assert "ticket keys from Redis (unavailable: ConnectionError" in banner, banner
        assert "healthy" not in banner, banner
        text = metrics_text(mport)
        assert metric(text, "tessera_store_up") == 0.0, text
        assert 'tessera_ticket_key_source_up{source="Redis",state="unavailable"} 0.0' in text
        ctx = client_context(pki.ca_file, "tls12-ticket")
        reused, session, page = python_get(node.port or 0, ctx)
        assert not reused and "unavailable" in page and "healthy" not in page, page
        assert session is not None and not session.has_ticket  # no key: no ticket issued
        redis_server.start()
        deadline = time.monotonic() + HEAL_LIMIT
        while True:
            reused, session, page = python_get(node.port or 0, ctx, session)
            if reused:
                break
            assert time.monotonic() < deadline, page
            time.sleep(0.2)
        assert "ticket keys from Redis (healthy)" in page, page
        text = metrics_text(mport)
        assert metric(text, "tessera_store_up") == 1.0, text
        assert 'tessera_ticket_key_source_up{source="Redis",state="healthy"} 1.0' in text

"""A store outage costs nothing: two nodes share a Redis that is killed (port closed), restarted
empty, then paused (SIGSTOP) and resumed, while CPython clients resume TLS 1.2 session ids on a
random node. Every connection completes; lookups that cannot be answered are full handshakes
("session store unavailable"), the breaker stops asking for a while (counted), and resumption is
back within 10 s of Redis returning."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pytest
from fleet_helpers import client_context, client_load, fleet_node, python_get, wait_output
from load import Load
from peers import Peer
from redis_server import RedisServer
from resumption_helpers import parse_status_page

from conftest import Pki, free_port

pytestmark = pytest.mark.interop

MODES = ("tls12-id",) * 3
HEAL_LIMIT = 10.0
PHASE = 15  # connections that make a phase (steady, outage)


def resumed_between(load: Load, start: float, end: float = float("inf")) -> tuple[int, int]:
    inside = load.since(start, end)
    return sum(c.resumed for c in inside), len(inside)


def first_resumed_after(load: Load, t: float) -> float:
    """Seconds from ``t`` to the first resumed connection that started after it."""
    if not load.wait(lambda: any(c.resumed for c in load.since(t)), HEAL_LIMIT + 1):
        return float("inf")
    return min(c.at for c in load.since(t) if c.resumed) - t


def test_outage_kill_restart_pause(pki: Pki, redis_server: RedisServer, secret_file: Path,
                                   tmp_path: Path) -> None:  # fmt: skip
    nodes: list[Peer] = []
    try:
        for i in range(2):
            nodes.append(fleet_node(pki, tmp_path, redis_server.url, secret_file, "-q",
                                    name=f"node{i}"))  # fmt: skip
        ports = [n.port or 0 for n in nodes]
        with client_load(ports, pki.ca_file, MODES, limit=120) as load:
            assert load.wait(lambda: len(load.results) > 20 + PHASE, 60), load.errors[:3]
            steady = resumed_between(load, 0)
            assert steady[0] >= steady[1] - len(MODES) - 1, steady

            redis_server.kill()  # the port is closed
            killed = time.monotonic()
            load.wait(lambda: len(load.since(killed + 0.5)) >= PHASE, 60)
            down = resumed_between(load, killed + 0.5)
            redis_server.start()  # back, empty
            back = time.monotonic()
            healed_kill = first_resumed_after(load, back)

            redis_server.pause()  # connections hang: every operation times out
            paused = time.monotonic()
            load.wait(lambda: len(load.since(paused + 0.5)) >= PHASE, 60)
            stalled = resumed_between(load, paused + 0.5)
            redis_server.resume()
            resumed = time.monotonic()
            healed_pause = first_resumed_after(load, resumed)

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
        assert down[1] >= PHASE and down[0] == 0, down  # ids cannot resume without the store
        assert stalled[1] >= PHASE and stalled[0] == 0, stalled
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
        banner = wait_output(node, "ticket keys from Redis (")
        assert "session store unavailable since start" in banner, banner
        assert "ticket keys from Redis (unavailable: Redis 127.0.0.1:" in banner, banner
        assert ": connection refused)" in banner, banner
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

"""``tessera serve --workers 2``: connections land on both workers and resume across them —
tickets and TLS 1.3 PSKs without Redis (the supervisor owns the keys), session ids too with
Redis; a killed worker is restarted; SIGTERM stops everything."""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from fleet_helpers import client_context, fleet_node, python_get
from peers import Peer, wait_for_output
from redis_server import RedisServer
from resumption_helpers import parse_status_page

from conftest import Pki
from waiting import wait_until

pytestmark = pytest.mark.interop

CONNECTIONS = 40


def worker_pid(page: str) -> tuple[str, int]:
    m = re.search(r"worker: (\d+) of 2 \(pid (\d+)\)", page)
    assert m, page
    return m.group(1), int(m.group(2))


def resume_across_workers(peer: Peer, pki: Pki, version: str) -> Counter[str]:
    """Connections with one client session; counts per (worker, resumed)."""
    ctx = client_context(pki.ca_file, version)
    session = None
    seen: Counter[str] = Counter()
    for i in range(CONNECTIONS):
        reused, session, page = python_get(peer.port or 0, ctx, session)
        worker, _ = worker_pid(page)
        seen[f"worker{worker}"] += 1
        if i:
            seen["resumed" if reused else "full"] += 1
            if reused and ("by session_id" if version == "tls12-id" else "yes, by") in page:
                seen[f"resumed-on-{worker}"] += 1
    return seen


@pytest.mark.parametrize("version", ["tls12-ticket", "tls13"])
def test_tickets_resume_across_workers_without_redis(pki: Pki, tmp_path: Path,
                                                     version: str) -> None:  # fmt: skip
    with fleet_node(pki, tmp_path, None, None, "--workers", "2", "-q") as node:
        seen = resume_across_workers(node, pki, version)
        assert seen["full"] == 0, seen
        assert seen["resumed-on-1"] > 0 and seen["resumed-on-2"] > 0, seen
        assert "session ids and single-use tickets are per worker" in node.output()
        assert "ticket keys from the supervisor" in node.output()


def test_session_ids_resume_across_workers_with_redis(pki: Pki, redis_server: RedisServer,
                                                      secret_file: Path, tmp_path: Path) -> None:  # fmt: skip
    with fleet_node(pki, tmp_path, redis_server.url, secret_file, "--workers", "2", "-q") as node:
        seen = resume_across_workers(node, pki, "tls12-id")
        assert seen["full"] == 0, seen
        assert seen["resumed-on-1"] > 0 and seen["resumed-on-2"] > 0, seen
        assert "per worker" not in node.output()


def test_dead_worker_restarted_and_sigterm_stops_all(pki: Pki, tmp_path: Path) -> None:
    node = fleet_node(pki, tmp_path, None, None, "--workers", "2", "-q")
    with node:
        ctx = client_context(pki.ca_file, "tls13")
        pids = {}
        deadline = time.monotonic() + 20
        while len(pids) < 2 and time.monotonic() < deadline:
            worker, pid = worker_pid(python_get(node.port or 0, ctx)[2])
            pids[worker] = pid
        assert len(pids) == 2
        os.kill(pids["1"], signal.SIGKILL)
        wait_for_output(node, "restarting it")
        assert "worker 1" in node.output() and "killed by signal 9" in node.output()
        new = {}
        deadline = time.monotonic() + 20
        while len(new) < 2 and time.monotonic() < deadline:
            worker, pid = worker_pid(python_get(node.port or 0, ctx)[2])
            new[worker] = pid
        assert new["2"] == pids["2"] and new["1"] != pids["1"]
        node.proc.send_signal(signal.SIGTERM)
        assert node.proc.wait(10) == 0
        for pid in new.values():
            wait_until(lambda pid=pid: not _alive(pid), f"worker {pid} outlived its supervisor")


def _alive(pid: int) -> bool:
    """A running process (not one that ended and waits, a zombie, for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_supervisor_rotates_keys_for_all_workers(pki: Pki, tmp_path: Path) -> None:
    """Keys rotating every 2 s (decrypt 4 s more), made by the supervisor and sent down the
    pipes before they encrypt: clients resuming on either worker never meet an unknown key."""
    args = ("--workers", "2", "--ticket-rotation", "2", "--ticket-keep", "2", "-q")
    with fleet_node(pki, tmp_path, None, None, *args) as node:
        seen: Counter[str] = Counter()
        keys = set()
        last: dict[str, str] = {}  # worker -> its latest page (its counters are cumulative)
        deadline = time.monotonic() + 7
        for version in ("tls12-ticket", "tls13"):
            ctx = client_context(pki.ca_file, version)
            session = None
            while time.monotonic() < deadline:
                reused, session, page = python_get(node.port or 0, ctx, session)
                seen["resumed" if reused else "full"] += 1
                last[worker_pid(page)[0]] = page
                keys |= set(re.findall(r"([0-9a-f]{32})  age \S+ s  encrypting", page))
                time.sleep(0.05)
            deadline = time.monotonic() + 7
        assert sorted(last) == ["1", "2"]
        assert len(keys) >= 4, keys  # rotated while the clients ran
        reasons: Counter[str] = Counter()
        for text in last.values():
            reasons.update(parse_status_page(text).reasons)
        assert set(reasons) <= {"ticket expired"}, reasons  # never "ticket key name unknown"
        assert seen["full"] == 2 + reasons["ticket expired"], (seen, reasons)
        assert seen["resumed"] > 20, seen

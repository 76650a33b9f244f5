"""A master failover under load costs full handshakes, never a failed connection, and
resumption is back within 10 s: three nodes on a Redis Cluster (the master holding a client's
session is killed; its replica takes over) and on Sentinel (the master is killed; the sentinels
promote the replica), while CPython clients resume TLS 1.2 ids and tickets and TLS 1.3 tickets
on random nodes."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from fleet_helpers import client_context, client_load, fleet_node, python_get
from load import Load
from peers import Peer
from redis_server import RedisCluster, RedisSentinel
from resumption_helpers import parse_status_page

from conftest import Pki, require_program

pytestmark = pytest.mark.interop

MODES = ("tls12-id", "tls12-id", "tls12-ticket", "tls13")
HEAL_LIMIT = 10.0
STREAK = 30  # resumed connections in a row that mean "healed"


@pytest.mark.parametrize("kind", ["cluster", "sentinel"])
def test_master_failover_under_load(kind: str, pki: Pki, secret_file: Path,
                                    tmp_path: Path) -> None:  # fmt: skip
    require_program("redis-sentinel")
    with RedisCluster() if kind == "cluster" else RedisSentinel() as redis:
        nodes: list[Peer] = []
        try:
            for i in range(3):
                nodes.append(fleet_node(pki, tmp_path, redis.url, secret_file, "-q",
                                        name=f"node{i}"))  # fmt: skip
            ports = [n.port or 0 for n in nodes]
            with client_load(ports, pki.ca_file, MODES) as load:
                assert load.wait(lambda: sum(c.resumed for c in load.results) >= 40, 60), (
                    load.results[-5:],
                    load.errors[:3],
                )
                if isinstance(redis, RedisCluster):  # the master holding client 0's session
                    sid = load.sessions[0].id
                    victim = redis.master_of(b"tessera:default:sid:" + sid.hex().encode())
                else:
                    victim = redis.master()
                killed = time.monotonic()
                victim.kill()
                healed = load.healed_after(killed, STREAK, 40)
                settled = time.monotonic()
                load.wait(lambda: len(load.since(settled)) >= 20, 20)
            report(kind, load, killed, healed, nodes, pki)
        finally:
            for n in nodes:
                n.stop()


def report(kind: str, load: Load, killed: float, healed: float, nodes: list[Peer],
           pki: Pki) -> None:  # fmt: skip
    pages = [parse_status_page(python_get(n.port or 0, client_context(pki.ca_file, "tls13"))[2])
             for n in nodes]  # fmt: skip
    reasons: Counter[str] = Counter()
    for page in pages:
        reasons.update(page.reasons)
    failures = sum(p.stats["handshake_failures"] for p in pages)
    after = load.since(killed)
    no_ticket = [c for c in load.results if c.mode != "tls12-id" and not c.ticket]
    print(
        f"failover ({kind}): {len(load.results)} connections ({len(after)} after the kill), "
        f"{len(load.errors)} failed, {len(load.misses(killed))} not resumed after the kill, "
        f"healed after {healed:.2f} s, {len(no_ticket)} handshakes without a ticket, "
        f"fallbacks {dict(reasons)}"
    )
    assert not load.errors, load.errors[:5]
    assert failures == 0
    assert healed < HEAL_LIMIT, healed
    assert reasons["ticket key name unknown"] == 0, reasons
    assert set(reasons) <= {"session store unavailable", "unknown session id"}, reasons
    assert all(c.resumed for c in load.results[-STREAK:])

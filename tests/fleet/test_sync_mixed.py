"""The mixed fleet, scaled down (``bench/keys_sync.py`` runs it longer and prints the counts):
two nginx and two HAProxy TLS terminators, each fed by its own ``tessera keys sync``, behind a
round-robin HAProxy; ``tessera keys rotate`` three times while clients keep reconnecting with
their previous session (TLS 1.2 tickets and TLS 1.3). Among servers of the same kind every
reconnection that lands on another server resumes (at least 99.9%), no connection fails, and
``tessera check --backends`` confirms the cross-node resumption after the last rotation."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from audit_helpers import check_json
from redis_server import RedisServer
from sync_fleet import Tally, Traffic, mixed_fleet, rotate, wait_encrypting, wait_until

from conftest import Pki

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

KINDS = ("nginx", "haproxy")
VERSIONS = ("tls12", "tls13")
ROTATIONS = 3
TARGET = 0.999


def test_mixed_fleet_rotated_three_times_under_resuming_clients(
    tmp_path: Path, pki: Pki, redis_server: RedisServer, secret_file: Path
) -> None:
    with mixed_fleet(tmp_path, pki.ecdsa_cert, pki.ecdsa_key, redis_server.url,
                     secret_file) as fleet:  # fmt: skip
        traffic = {(k, v): Traffic(fleet.ports[k], v, clients=2) for k in KINDS for v in VERSIONS}
        totals: dict[tuple[str, str], Tally] = {}
        try:
            for t in traffic.values():
                t.start()

            def flowing(at_least: int) -> bool:
                return all(sum(x.connections for x in t.tallies) >= at_least
                           for t in traffic.values())  # fmt: skip

            done = 0
            for _ in range(ROTATIONS):
                done += 20
                wait_until(functools.partial(flowing, done), "clients are not connecting",
                           logs=fleet.peers())  # fmt: skip
                new = rotate(fleet.redis_url, fleet.secret, lead=2.0)
                wait_encrypting(fleet.servers, new, fleet.agents)
                done = min(sum(x.connections for x in t.tallies) for t in traffic.values())
            wait_until(functools.partial(flowing, done + 20), "clients stopped",
                       logs=fleet.peers())  # fmt: skip
        finally:
            totals = {key: t.stop() for key, t in traffic.items()}
        for kind in KINDS:
            ports = [s.label for s in fleet.of(kind)]
            rc, doc = check_json("--backends", ",".join(ports), "--sni", "localhost",
                                 "--attempts", "2", "--mechanisms", "ticket,psk",
                                 "--expect", "ticket,psk")  # fmt: skip
            assert rc == 0, doc
            cross = [c for c in doc["matrix"] if c["from"] != c["to"]]
            assert cross and all(c["resumed"] for c in cross), (kind, cross)
        agent_logs = [a.output() for a in fleet.agents]

    report = []
    for kind in KINDS:
        kind_total = Tally()
        for version in VERSIONS:
            kind_total.add(totals[kind, version])
        report.append(f"{kind}: {kind_total.connections} connections, {kind_total.failed} "
                      f"failed, cross-node {kind_total.cross_resumed}/{kind_total.cross}")  # fmt: skip
        assert kind_total.failed == 0, (kind, kind_total.errors[:5])
        assert kind_total.cross >= 20, report
        assert kind_total.cross_ratio >= TARGET, report
    print("\n".join(report))
    for log in agent_logs:
        assert log.count("keys now: encrypting") >= ROTATIONS + 1, log
        assert " ERROR " not in log and "Traceback" not in log, log

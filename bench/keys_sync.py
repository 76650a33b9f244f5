"""The mixed fleet fed by ``tessera keys sync``, rotated under a steady stream of resuming
clients — the full run of ``tests/fleet/test_sync_mixed.py`` — against the same fleet without
shared keys (the anchor), in the same run.

    python bench/keys_sync.py                 # about 2 minutes
    python bench/keys_sync.py --quick         # a smoke test
    python bench/keys_sync.py --rotations 5 --interval 20 --clients 4

Needs ``nginx``, ``haproxy`` and ``redis-server`` (installed by ``.ci/run`` for the tests).

The fleet: two nginx (three ``ssl_session_ticket_key`` files each, reloaded by their agent's
``--exec 'nginx -s reload'``) and two HAProxy TLS terminators (``tls-ticket-keys`` and the
runtime API, never reloaded), each with its own agent (``--key-refresh 0.5``: a key encrypts on
its servers one second after publication), one Redis, behind one round-robin HAProxy in TCP mode
with a frontend per kind. ``--clients`` CPython ``ssl`` clients per kind and TLS version (TLS
1.2 tickets, TLS 1.3) reconnect through the balancer with the session of their previous
connection, as browsers do (a pause of ``--gap`` seconds between connections), while
``tessera keys rotate --lead 2`` runs ``--rotations`` times, ``--interval`` seconds apart; the
run ends ``--interval`` seconds after the last rotation.

Printed per kind and version: connections, failed connections, reconnections that landed on
another server than the previous connection ("cross-node") and how many of them resumed. The
target: at least 99.9% cross-node among servers of the same kind (tickets of one kind do not
open on the other: nginx and HAProxy give sessions different contexts) and 0 failed. The anchor
runs the same fleet and clients with random keys of each server's own, and no rotation.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import BENCH_DIR, environment, table, test_certificates

sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "fleet"))
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))  # its conftest: the tests' free ports
from redis_server import RedisServer
from sync_fleet import Tally, Traffic, mixed_fleet, rotate, wait_encrypting

from tessera.fleet.secret import FleetSecret

KINDS = ("nginx", "haproxy")
VERSIONS = ("tls12", "tls13")
TARGET = 0.999


def drive(d: Path, cert: Path, key: Path, a: argparse.Namespace, synced: bool) -> tuple[
        dict[tuple[str, str], Tally], int]:  # fmt: skip
    """Run the fleet with traffic; the tallies and the rotations made."""
    secret = d / "fleet.secret"
    FleetSecret.generate().write(secret)
    rotations = 0
    with RedisServer() as redis, mixed_fleet(d, cert, key, redis.url, secret,
                                             synced=synced) as fleet:  # fmt: skip
        traffic = {(k, v): Traffic(fleet.ports[k], v, a.clients, a.gap)
                   for k in KINDS for v in VERSIONS}  # fmt: skip
        try:
            for t in traffic.values():
                t.start()
            for _ in range(a.rotations if synced else 0):
                time.sleep(a.interval)
                new = rotate(fleet.redis_url, fleet.secret, lead=2.0)
                wait_encrypting(fleet.servers, new, fleet.agents)
                rotations += 1
                print(f"  rotation {rotations}: every server encrypts with {new.hex()}",
                      flush=True)  # fmt: skip
            time.sleep(a.interval)
        finally:
            tallies = {key: t.stop() for key, t in traffic.items()}
    return tallies, rotations


def rows(label: str, tallies: dict[tuple[str, str], Tally]) -> list[list[object]]:
    out: list[list[object]] = []
    for kind in KINDS:
        total = Tally()
        for version in VERSIONS:
            t = tallies[kind, version]
            total.add(t)
            out.append([label, kind, version, t.connections, t.failed, t.cross, t.cross_resumed,
                        f"{100 * t.cross_ratio:.2f}%"])  # fmt: skip
        out.append([label, kind, "both", total.connections, total.failed, total.cross,
                    total.cross_resumed, f"{100 * total.cross_ratio:.2f}%"])  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rotations", type=int, default=3)
    p.add_argument("--interval", type=float, default=12.0, help="seconds between rotations")
    p.add_argument("--clients", type=int, default=3, help="per kind and TLS version")
    p.add_argument("--gap", type=float, default=0.02, help="seconds between a client's connections")
    p.add_argument("--parts", default="synced,anchor")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.rotations, a.interval, a.clients = 1, 3.0, 1
    print(environment())
    results: list[list[object]] = []
    failures = []
    with test_certificates(("ecdsa",)) as certs, tempfile.TemporaryDirectory() as tmp:
        cert, key = certs["ecdsa"].cert, certs["ecdsa"].key
        for part in a.parts.split(","):
            synced = part == "synced"
            d = Path(tmp) / part
            d.mkdir()
            print(f"{part}: 2 nginx + 2 HAProxy behind a round-robin HAProxy, "
                  f"{a.clients} client(s) per kind and version", flush=True)  # fmt: skip
            tallies, rotations = drive(d, cert, key, a, synced)
            print(f"  {rotations} rotation(s)")
            results += rows(f"{part} ({rotations} rotations)", tallies)
            if synced:
                for kind in KINDS:
                    total = Tally()
                    for version in VERSIONS:
                        total.add(tallies[kind, version])
                    if total.failed or total.cross_ratio < TARGET:
                        failures.append(f"{kind}: {total.failed} failed, "
                                        f"{100 * total.cross_ratio:.2f}% cross-node")  # fmt: skip
                        failures += total.errors[:3]
    print()
    print(table(["fleet", "kind", "version", "connections", "failed", "cross-node",
                 "resumed", "ratio"], results))  # fmt: skip
    for f in failures:
        print("WARNING:", f)


if __name__ == "__main__":
    main()

"""Rotation under load: four nodes sharing Redis rotate their ticket key every 3 s while CPython
clients resume on a random node. Not one handshake goes without a ticket for want of an
encrypting key, not one ticket meets a node that lacks its key, and the fleet minted exactly one
key per slot of the grid (each key starts encrypting exactly when the previous one stops, and
was published before). ``python bench/fleet.py --parts rotation`` runs the same for minutes."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from pathlib import Path

import pytest
from fleet_helpers import KEY_REFRESH, client_context, client_load, fleet_node, python_get
from peers import Peer
from redis_server import RedisServer
from resumption_helpers import parse_status_page

from conftest import Pki
from tessera.fleet.keyring import FleetKeyring
from tessera.fleet.keys import FleetKey, KeyPolicy
from tessera.fleet.redis_keys import RedisKeySource
from tessera.fleet.redis_url import sync_client
from tessera.fleet.secret import FleetSecret

pytestmark = pytest.mark.interop

NODES = 4
ROTATION = 3.0
DURATION = 20.0  # about six rotations
MODES = ("tls12-ticket", "tls13", "tls12-ticket", "tls13")


def test_rotation_under_load(pki: Pki, redis_server: RedisServer, secret_file: Path,
                             fleet_secret: FleetSecret, tmp_path: Path) -> None:  # fmt: skip
    args = ("--ticket-rotation", str(ROTATION), "--ticket-keep", "2", "-q")
    nodes: list[Peer] = []
    try:
        for i in range(NODES):
            nodes.append(fleet_node(pki, tmp_path, redis_server.url, secret_file, *args,
                                    name=f"node{i}"))  # fmt: skip
        ports = [n.port or 0 for n in nodes]
        reader = RedisKeySource(sync_client(redis_server.url, 1.0), fleet_secret, "default",
                                FleetKeyring(KeyPolicy()))  # fmt: skip
        seen: dict[bytes, FleetKey] = {}
        with client_load(ports, pki.ca_file, MODES, pause=(0.0, 0.1), limit=DURATION) as load:
            stop = time.monotonic() + DURATION
            while time.monotonic() < stop:
                seen.update((k.name, k) for k in reader.read().keys)
                time.sleep(0.5)
        pages = [python_get(p, client_context(pki.ca_file, "tls13"))[2] for p in ports]
        reasons: Counter[str] = Counter()
        for page in pages:
            reasons.update(parse_status_page(page).reasons)
        results = load.results
        no_ticket = [c for c in results if not c.ticket]
        full = [c for c in results if not c.resumed]
        print(f"rotation: {len(results)} connections, {len(load.errors)} failed, "
              f"{len(full)} full, {len(no_ticket)} without a ticket, {len(seen)} keys, "
              f"fallbacks {dict(reasons)}")  # fmt: skip
        assert not load.errors, load.errors[:5]
        assert len(results) > 100
        assert no_ticket == [], no_ticket[:5]  # a key always encrypts: every handshake a ticket
        assert reasons["ticket key name unknown"] == 0, reasons
        # A session never outlives the key that sealed its first ticket (lifetimes are not
        # stretched), so with 9 s keys a long-lived client session may expire; nothing else.
        assert set(reasons) <= {"ticket expired"}, reasons
        # Each client's first connection, the tickets the servers found expired, and the ones a
        # client itself left out (OpenSSL drops a ticket whose lifetime is over) are full.
        offered_not = [c for c in full if c.offered and not c.stale]
        assert len(offered_not) <= reasons["ticket expired"], (offered_not, reasons)
        stale = sum(c.stale for c in results)
        assert len(full) <= len(MODES) + reasons["ticket expired"] + stale, (full, reasons)
        assert sum(parse_status_page(p).stats["handshake_failures"] for p in pages) == 0
        keys = sorted(seen.values(), key=lambda k: k.encrypts_from)
        assert len(keys) >= DURATION / ROTATION, [k.name.hex() for k in keys]
        for prev, nxt in itertools.pairwise(keys):  # one key per slot, each following the last
            assert nxt.encrypts_from == prev.encrypts_until
            assert nxt.created <= nxt.encrypts_from - 2 * KEY_REFRESH  # published before use
    finally:
        for n in nodes:
            n.stop()

"""Rotation under load: four nodes sharing Redis rotate their ticket key every 3 s while CPython
clients resume on a random node; not one ticket meets a node that lacks its key, and the fleet
minted exactly one key per rotation (each key starts encrypting when the previous one stops)."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from fleet_helpers import client_context, fleet_node, python_get, wait_for_tickets
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
DURATION = 20.0  # about six rotations; every connection after a client's first must resume
CLIENTS = ("tls12-ticket", "tls13", "tls12-ticket", "tls13")


def test_rotation_under_load(pki: Pki, redis_server: RedisServer, secret_file: Path,
                             fleet_secret: FleetSecret, tmp_path: Path) -> None:  # fmt: skip
    args = ("--ticket-rotation", str(ROTATION), "--ticket-keep", "2", "-q")
    nodes: list[Peer] = []
    try:
        for i in range(NODES):
            nodes.append(fleet_node(pki, tmp_path, redis_server.url, secret_file, *args,
                                    name=f"node{i}"))  # fmt: skip
        for n in nodes:
            wait_for_tickets(n, pki)
        ports = [n.port or 0 for n in nodes]
        counts: Counter[str] = Counter()
        errors: list[str] = []
        stop = time.monotonic() + DURATION

        def client(version: str, seed: int) -> None:
            rng = random.Random(seed)
            ctx = client_context(pki.ca_file, version)
            session = None
            while time.monotonic() < stop:
                if session is not None and session.time + session.timeout <= time.time() + 1:
                    # The ticket's lifetime (capped by its key's) is over or about to be: the
                    # client itself may leave it out (OpenSSL checks in whole seconds).
                    counts["client may drop"] += 1
                elif session is not None and not session.has_ticket:
                    counts["client may drop"] += 1  # the last connection brought no ticket
                try:
                    reused, session, _ = python_get(rng.choice(ports), ctx, session)
                except OSError as e:
                    errors.append(f"{version}: {e}")
                    continue
                counts["connections"] += 1
                counts["resumed" if reused else "full"] += 1
                time.sleep(rng.uniform(0.0, 0.1))

        threads = [threading.Thread(target=client, args=(v, i)) for i, v in enumerate(CLIENTS)]
        for t in threads:
            t.start()
        reader = RedisKeySource(sync_client(redis_server.url, 1.0), fleet_secret, "default",
                                FleetKeyring(KeyPolicy()))  # fmt: skip
        seen: dict[bytes, FleetKey] = {}
        while any(t.is_alive() for t in threads):
            for k in reader.read().keys:
                seen[k.name] = k
            time.sleep(0.5)
        for t in threads:
            t.join(5)

        pages = [python_get(p, client_context(pki.ca_file, "tls13"))[2] for p in ports]
        reasons: Counter[str] = Counter()
        for page in pages:
            reasons.update(parse_status_page(page).reasons)
        print(f"rotation: {dict(counts)}, {len(seen)} keys minted, fallbacks {dict(reasons)}")
        assert not errors, errors[:5]
        assert reasons["ticket key name unknown"] == 0, reasons
        # A session never outlives the key that sealed its first ticket (lifetimes are not
        # stretched), so with 9 s keys a long-lived client session may expire; nothing else.
        assert set(reasons) <= {"ticket expired"}, reasons
        # Each client's first connection and the tickets the servers found expired are full
        # handshakes; so are tickets a client dropped itself once their lifetime was over (or a
        # connection that brought no ticket to offer).
        expected = len(CLIENTS) + reasons["ticket expired"]
        assert expected <= counts["full"] <= expected + counts["client may drop"], (counts, reasons)
        assert counts["connections"] > 100, counts
        assert sum(parse_status_page(p).stats["handshake_failures"] for p in pages) == 0
        keys = sorted(seen.values(), key=lambda k: k.encrypts_from)
        assert len(keys) >= DURATION / ROTATION, [k.name.hex() for k in keys]
        for prev, nxt in itertools.pairwise(keys):  # one key per rotation, each following the last
            assert nxt.encrypts_from == pytest.approx(prev.encrypts_until)
            assert nxt.created <= nxt.encrypts_from - 2 * 0.25  # published before use
    finally:
        for n in nodes:
            n.stop()

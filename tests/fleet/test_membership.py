"""A fleet that starts at once, checks its own membership and survives a Redis that answers
nonsense: a brand-new fleet resumes across nodes within its first second; a node with another
fleet secret stops at start (and publishes nothing) while the fleet keeps resuming 100%; a node
whose Redis answered ``+OK`` to everything resumes fleet tickets once a real Redis answers on the
same port, without a restart."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis
from fleet_helpers import (
    client_context,
    client_load,
    fleet_node,
    page_from,
    python_get,
    wait_output,
)
from peers import TESSERA, Peer, run
from redis_server import FakeRedis, RedisServer

from conftest import Pki
from tessera.fleet.keyring import FleetKeyring
from tessera.fleet.keys import KeyPolicy
from tessera.fleet.redis_keys import RedisKeySource
from tessera.fleet.redis_url import sync_client
from tessera.fleet.secret import FleetSecret
from waiting import wait_until

pytestmark = pytest.mark.interop


def test_a_fresh_fleet_resumes_across_nodes_at_once(pki: Pki, redis_server: RedisServer,
                                                    secret_file: Path, tmp_path: Path) -> None:  # fmt: skip
    """Two nodes started together on an empty Redis: the first key encrypts the moment it is
    minted (and only one node mints it), so a session made on A resumes on B as soon as both
    listen — TLS 1.3 and TLS 1.2 tickets, TLS 1.2 session ids."""
    started: dict[str, Peer] = {}

    def start(name: str) -> None:
        started[name] = fleet_node(pki, tmp_path, redis_server.url, secret_file, "-q", name=name)

    threads = [threading.Thread(target=start, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert sorted(started) == ["a", "b"]
        a, b = started["a"].port or 0, started["b"].port or 0
        for mode in ("tls13", "tls12-ticket", "tls12-id"):
            ctx = client_context(pki.ca_file, mode)
            reused, session, page = python_get(a, ctx)
            assert not reused and session is not None, page
            assert (mode == "tls12-id") != session.has_ticket, (mode, page)
            reused, _, page = python_get(b, ctx, session)
            assert reused, (mode, page)
        raw = redis.Redis.from_url(redis_server.url)
        assert raw.hlen(b"tessera:default:ticketkeys") == 1  # exactly one first key
        source = RedisKeySource(sync_client(redis_server.url, 2.0), FleetSecret.load(secret_file),
                                "default", FleetKeyring(KeyPolicy()))  # fmt: skip
        (key,) = source.read().keys
        assert key.encrypts_from == key.created  # no lead: it encrypted the moment it was minted
    finally:
        for p in started.values():
            p.stop()


def test_a_node_with_another_secret_refuses_to_join(pki: Pki, redis_server: RedisServer,
                                                    secret_file: Path, tmp_path: Path) -> None:  # fmt: skip
    nodes = [fleet_node(pki, tmp_path, redis_server.url, secret_file, "-q", name=f"n{i}")
             for i in range(3)]  # fmt: skip
    try:
        raw = redis.Redis.from_url(redis_server.url)
        keys_before = raw.hgetall(b"tessera:default:ticketkeys")
        other = tmp_path / "other.secret"
        FleetSecret.generate().write(other)
        r = run([*TESSERA, "serve", "--port", "0", "--redis", redis_server.url,
                 "--fleet-secret", str(other)], timeout=60, env={"COLUMNS": "200"})  # fmt: skip
        out = r.stdout.decode(errors="replace")
        assert r.returncode != 0, out
        assert "Traceback" not in out, out
        assert "another fleet secret" in out and str(other) in out, out
        assert raw.hgetall(b"tessera:default:ticketkeys") == keys_before  # published nothing
        ports = [n.port or 0 for n in nodes]
        modes = ("tls12-id", "tls12-ticket", "tls13")
        with client_load(ports, pki.ca_file, modes, pause=(0.0, 0.02)) as load:
            assert load.wait(lambda: len(load.results) >= 90, 60), load.errors[:3]
        offered = [c for c in load.results if c.offered]
        assert not load.errors and offered and all(c.resumed for c in offered), load.misses(0)
    finally:
        for n in nodes:
            n.stop()


def test_nonsense_redis_then_a_real_one(pki: Pki, secret_file: Path, tmp_path: Path) -> None:
    """A node whose Redis answers ``+OK`` to everything starts (saying so), serves full
    handshakes, and — once a real Redis answers on the same port — holds the fleet's keys: its
    tickets resume on another node and the other node's on it, with no restart."""
    fake = FakeRedis()
    url = f"redis://127.0.0.1:{fake.port}"
    try:
        a = fleet_node(pki, tmp_path, url, secret_file, "-q", name="a")
    except BaseException:
        fake.stop()
        raise
    try:
        banner = wait_output(a, "ticket keys from Redis (")
        assert "ticket keys from Redis (unavailable" in banner and "healthy" not in banner, banner
        ctx = client_context(pki.ca_file, "tls13")
        reused, session, page = python_get(a.port or 0, ctx)
        assert not reused and "Fleet:" in page and "healthy" not in page, page
        assert fake.replies > 0
        fake.stop()
        with RedisServer(port=fake.port), \
             fleet_node(pki, tmp_path, url, secret_file, "-q", name="b") as b:  # fmt: skip
            wait_until(lambda: "encrypting" in page_from(a, pki).text,
                       "a never encrypts with the fleet's key", details=a.output)  # fmt: skip
            page = page_from(a, pki)
            assert "ticket keys from Redis (healthy)" in page.text, page.text
            for first, second in ((a, b), (b, a)):
                reused, session, _ = python_get(first.port or 0, ctx)
                assert session is not None and session.has_ticket
                reused, _, out = python_get(second.port or 0, ctx, session)
                assert reused, out
        assert a.proc.poll() is None and "Traceback" not in a.output(), a.output()
    finally:
        a.stop()
        fake.stop()

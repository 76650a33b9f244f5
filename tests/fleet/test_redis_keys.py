"""Fleet ticket keys in a real Redis: exactly one key per rotation under contention, refresh on
a pub/sub notice, records sealed, a Redis that lost its data repaired, an outage survived."""

from __future__ import annotations

import itertools
import logging
import threading
import time

import pytest
import redis
from redis_server import FakeRedis, RedisServer

from tessera.fleet.keyring import FleetKeyring, SourceState
from tessera.fleet.keys import KeyPolicy
from tessera.fleet.redis_keys import ForeignFleet, KeyRefresher, RedisKeySource
from tessera.fleet.redis_url import sync_client
from tessera.fleet.secret import FleetSecret
from waiting import wait_until


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def node(server: RedisServer, secret: FleetSecret, policy: KeyPolicy,
         clock: Clock | None = None) -> RedisKeySource:  # fmt: skip
    clock = clock or Clock()
    kr = FleetKeyring(policy, clock=clock)
    return RedisKeySource(sync_client(server.url, 1.0), secret, "keys", kr, clock=clock)


def test_exactly_one_key_per_rotation_under_contention(redis_server: RedisServer,
                                                       fleet_secret: FleetSecret) -> None:  # fmt: skip
    policy = KeyPolicy(rotation=60, decrypt_for=60, refresh=1)
    clock = Clock()
    nodes = [node(redis_server, fleet_secret, policy, clock) for _ in range(8)]
    for round_ in range(3):
        barrier = threading.Barrier(len(nodes))

        def refresh(n: RedisKeySource, b: threading.Barrier = barrier) -> None:
            b.wait()
            n.refresh()

        threads = [threading.Thread(target=refresh, args=(n,)) for n in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        for n in nodes:  # everyone converges on the same keys
            n.refresh()
        assert sum(n.mints for n in nodes) == round_ + 1
        names = {tuple(k.name for k in n.keyring.snapshot.keys) for n in nodes}
        assert len(names) == 1
        clock.now += policy.rotation  # the next rotation is due
    starts = [k.encrypts_from for k in nodes[0].keyring.snapshot.keys]
    assert starts == sorted(starts) and all(b - a == 60 for a, b in itertools.pairwise(starts))


def test_records_sealed_and_repaired_after_data_loss(redis_server: RedisServer,
                                                     fleet_secret: FleetSecret) -> None:  # fmt: skip
    policy = KeyPolicy(rotation=60, decrypt_for=60, refresh=1)
    a = node(redis_server, fleet_secret, policy)
    a.refresh()
    (key,) = a.keyring.snapshot.keys
    raw = redis.Redis.from_url(redis_server.url)
    dump = b"".join(raw.hvals(a.hash_key))
    assert key.key.hmac_key not in dump and key.key.aes_key not in dump
    redis_server.restart()  # empty now
    a.client.reset()
    a.refresh()  # puts back what it holds instead of minting a new key
    b = node(redis_server, fleet_secret, policy)
    b.refresh()
    assert [k.name for k in b.keyring.snapshot.keys] == [key.name]
    assert a.mints == 1 and b.mints == 0
    stranger = node(redis_server, FleetSecret.generate(), policy)
    assert stranger.read().keys == () and stranger.rejected == 1
    before = raw.hgetall(a.hash_key)
    with pytest.raises(ForeignFleet, match="another fleet secret"):
        stranger.refresh()
    assert raw.hgetall(a.hash_key) == before and stranger.mints == 0  # published nothing


def test_pubsub_notice_refreshes_other_nodes_at_once(redis_server: RedisServer,
                                                     fleet_secret: FleetSecret) -> None:  # fmt: skip
    policy = KeyPolicy(rotation=600, decrypt_for=600, refresh=30)  # the timer alone: 30 s
    a, b = node(redis_server, fleet_secret, policy), node(redis_server, fleet_secret, policy)
    a.refresh()
    refresher = KeyRefresher(b)
    refresher.start()
    try:
        raw = redis.Redis.from_url(redis_server.url)
        wait_until(lambda: raw.pubsub_numsub(b.channel)[0][1], "b never subscribed")
        (new,) = a.rotate(force=True)
        # well before the 30 s timer, however loaded the box
        wait_until(lambda: new.name in b.keyring.snapshot.by_name,
                   "no refresh on the pub/sub notice", timeout=15)  # fmt: skip
    finally:
        refresher.stop()


def test_outage_keeps_keys_until_they_expire(redis_server: RedisServer,
                                             fleet_secret: FleetSecret) -> None:  # fmt: skip
    policy = KeyPolicy(rotation=60, decrypt_for=60, refresh=1)
    clock = Clock()
    a = node(redis_server, fleet_secret, policy, clock)
    a.refresh()
    enc = a.keyring.encryption_key()  # a new fleet's first key encrypts at once
    assert enc is not None
    redis_server.kill()
    refresher = KeyRefresher(a)
    assert not refresher.refresh_once()  # Redis down: counted, keys kept
    assert a.keyring.source_error and a.keyring.encryption_key() is enc
    clock.now += policy.rotation  # the key stopped encrypting: no tickets, not stretched
    assert a.keyring.encryption_key() is None
    assert a.keyring.decryption_key(enc.name) is not None  # still opens old tickets
    clock.now += policy.decrypt_for
    assert a.keyring.decryption_key(enc.name) is None  # erased on schedule


def test_refresher_survives_nonsense_and_recovers(caplog: pytest.LogCaptureFixture,
                                                  fleet_secret: FleetSecret) -> None:  # fmt: skip
    """A server answering ``+OK`` to everything: every refresh fails (counted, logged once per
    kind, retried); the thread lives on, and once a real Redis answers on the same port the
    node mints its first key and encrypts — without a restart."""
    caplog.set_level(logging.WARNING, logger="tessera.fleet")
    policy = KeyPolicy(rotation=60, decrypt_for=60, refresh=0.5)
    with FakeRedis() as fake:
        kr = FleetKeyring(policy)
        src = RedisKeySource(sync_client(f"redis://127.0.0.1:{fake.port}", 0.5), fleet_secret,
                             "fake", kr)  # fmt: skip
        refresher = KeyRefresher(src)
        refresher.start_check()  # a node starts whatever its Redis says
        assert kr.state is SourceState.UNAVAILABLE and kr.encryption_key() is None
        refresher.start()
        try:
            wait_until(lambda: sum(refresher.failures.values()) >= 6, "refreshes did not fail",
                       details=lambda: str(refresher.failures))  # fmt: skip
            assert refresher._thread is not None and refresher._thread.is_alive()
            assert fake.replies > 0 and src.mints == 0
            fake.stop()
            with RedisServer(port=fake.port):
                wait_until(kr.encryption_key, "no key encrypts",
                           details=lambda: f"{kr.describe_source()} {refresher.failures}")  # fmt: skip
                assert kr.state is SourceState.HEALTHY and src.mints == 1
        finally:
            refresher.stop()
    failed = [r for r in caplog.records if "refresh from Redis failed" in r.getMessage()]
    kinds = {k for k in refresher.failures if not k.startswith("pub/sub")}
    assert 1 <= len(failed) <= len(kinds), [r.getMessage() for r in failed]
    assert any("refreshed from Redis again" in r.getMessage() for r in caplog.records)

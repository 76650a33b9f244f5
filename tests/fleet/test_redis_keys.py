"""Fleet ticket keys in a real Redis: exactly one key per rotation under contention, refresh on
a pub/sub notice, records sealed, a Redis that lost its data repaired, an outage survived."""

from __future__ import annotations

import itertools
import threading
import time

import redis
from redis_server import RedisServer

from tessera.fleet.keyring import FleetKeyring
from tessera.fleet.keys import KeyPolicy
from tessera.fleet.redis_keys import KeyRefresher, RedisKeySource
from tessera.fleet.secret import FleetSecret


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def node(server: RedisServer, secret: FleetSecret, policy: KeyPolicy,
         clock: Clock | None = None) -> RedisKeySource:  # fmt: skip
    clock = clock or Clock()
    kr = FleetKeyring(policy, clock=clock)
    client = redis.Redis.from_url(server.url, socket_timeout=1.0)
    return RedisKeySource(client, secret, "keys", kr, clock=clock)


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
    a.client.connection_pool.reset()
    a.refresh()  # puts back what it holds instead of minting a new key
    b = node(redis_server, fleet_secret, policy)
    b.refresh()
    assert [k.name for k in b.keyring.snapshot.keys] == [key.name]
    assert a.mints == 1 and b.mints == 0
    stranger = node(redis_server, FleetSecret.generate(), policy)
    assert stranger.read().keys == () and stranger.rejected == 1


def test_pubsub_notice_refreshes_other_nodes_at_once(redis_server: RedisServer,
                                                     fleet_secret: FleetSecret) -> None:  # fmt: skip
    policy = KeyPolicy(rotation=600, decrypt_for=600, refresh=30)  # the timer alone: 30 s
    a, b = node(redis_server, fleet_secret, policy), node(redis_server, fleet_secret, policy)
    a.refresh()
    refresher = KeyRefresher(b)
    refresher.start()
    try:
        deadline = time.monotonic() + 5
        while len(b.keyring.snapshot.keys) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # subscribed
        new = a.rotate(force=True)
        assert new is not None
        t0 = time.monotonic()
        while new.name not in b.keyring.snapshot.by_name:
            assert time.monotonic() - t0 < 3.0, "no refresh on the pub/sub notice"
            time.sleep(0.02)
    finally:
        refresher.stop()


def test_outage_keeps_keys_until_they_expire(redis_server: RedisServer,
                                             fleet_secret: FleetSecret) -> None:  # fmt: skip
    policy = KeyPolicy(rotation=60, decrypt_for=60, refresh=1)
    clock = Clock()
    a = node(redis_server, fleet_secret, policy, clock)
    a.refresh()
    clock.now += policy.lead
    enc = a.keyring.encryption_key()
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

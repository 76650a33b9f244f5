"""The Redis session store against a real redis-server: the SessionStore contract (sync and
asyncio), namespaced single keys, sealed values, URLs (ACL user, unix socket), timeouts."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from redis_server import RedisServer

from tessera.errors import StoreValueRejected
from tessera.fleet.redis_store import AsyncRedisSessionStore, RedisSessionStore
from tessera.fleet.redis_url import UnexpectedReply, redacted
from tessera.fleet.secret import FleetSecret
from tessera.session.resumption import early_data_mark_key, session_id_key, stateful_ticket_key


def test_contract(redis_server: RedisServer, fleet_secret: FleetSecret) -> None:
    store = RedisSessionStore.from_url(redis_server.url, fleet_secret, "t1")
    k = session_id_key(b"\x01" * 32)
    assert store.get(k) is None
    store.put(k, b"session bytes", 300)
    assert store.get(k) == b"session bytes"
    assert store.get(k) == b"session bytes"  # get keeps it
    assert store.take(k) == b"session bytes"
    assert store.take(k) is None  # take removed it (GETDEL)
    mark = early_data_mark_key(b"identity")
    assert store.add(mark, b"", 30) is True
    assert store.add(mark, b"", 30) is False  # SET NX: the strike register
    store.put(k, b"again", 300)
    store.delete(k)
    assert store.get(k) is None


def test_keys_namespaced_and_values_sealed(redis_server: RedisServer,
                                           fleet_secret: FleetSecret) -> None:  # fmt: skip
    store = RedisSessionStore.from_url(redis_server.url, fleet_secret, "ns1")
    sid = b"\xab" * 32
    store.put(session_id_key(sid), b"MASTER-SECRET-BYTES", 100)
    store.put(stateful_ticket_key(b"\x07" * 16), b"TICKET-STATE", 100)
    store.add(early_data_mark_key(b"id"), b"", 100)
    raw = redis.Redis.from_url(redis_server.url)
    keys = sorted(raw.keys("*"))
    assert keys[0].startswith(b"tessera:ns1:0rtt:")
    assert keys[1] == b"tessera:ns1:sid:" + sid.hex().encode()
    assert keys[2] == b"tessera:ns1:stk:" + (b"\x07" * 16).hex().encode()
    for key in keys:
        value = raw.get(key)
        assert value is not None
        assert b"MASTER-SECRET-BYTES" not in value and b"TICKET-STATE" not in value
    ttl = raw.ttl(keys[1])
    assert 90 <= ttl <= 100


def test_swapped_foreign_or_altered_values_are_rejected(redis_server: RedisServer,
                                                       fleet_secret: FleetSecret) -> None:  # fmt: skip
    """A value moved to another key, sealed under another fleet secret or altered does not
    open: StoreValueRejected (a full handshake counted as "store value rejected"), counted;
    a value that is not ours at all (a stub's "OK") is a store failure."""
    store = RedisSessionStore.from_url(redis_server.url, fleet_secret, "swap")
    a, b = session_id_key(b"a" * 32), session_id_key(b"b" * 32)
    store.put(a, b"session A", 100)
    store.put(b, b"session B", 100)
    raw = redis.Redis.from_url(redis_server.url)
    ka, kb = store.codec.key(a), store.codec.key(b)
    va, vb = raw.get(ka), raw.get(kb)
    assert va is not None and vb is not None
    raw.set(ka, vb)
    raw.set(kb, va)
    for k in (a, b):
        with pytest.raises(StoreValueRejected, match="another fleet secret or altered"):
            store.get(k)
    assert store.codec.rejected == 2
    other = RedisSessionStore.from_url(redis_server.url, FleetSecret.generate(), "swap")
    raw.set(ka, va)
    with pytest.raises(StoreValueRejected):
        other.take(a)  # another fleet secret (GETDEL: the value is gone either way)
    raw.set(ka, va[:-1] + bytes((va[-1] ^ 1,)))
    with pytest.raises(StoreValueRejected):
        store.get(a)  # altered
    raw.set(ka, va)
    assert store.get(a) == b"session A"
    raw.set(ka, b"OK")
    with pytest.raises(UnexpectedReply):
        store.get(a)


def test_acl_user_and_unix_socket_urls(redis_server: RedisServer,
                                       fleet_secret: FleetSecret) -> None:  # fmt: skip
    via_acl = RedisSessionStore.from_url(redis_server.acl_url, fleet_secret, "acl")
    via_unix = RedisSessionStore.from_url(redis_server.unix_url, fleet_secret, "acl")
    k = session_id_key(b"c" * 32)
    via_acl.put(k, b"shared", 100)
    assert via_unix.get(k) == b"shared"
    assert via_acl.client.client.acl_whoami() == "fleet"
    assert "fleet-test-password" not in repr(via_acl)
    assert redacted("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    wrong = RedisSessionStore.from_url(redis_server.url.replace("//", "//fleet:nope@"),
                                       fleet_secret, "acl")  # fmt: skip
    with pytest.raises(redis.AuthenticationError):
        wrong.get(k)


def test_operations_time_out_within_the_bound(redis_server: RedisServer,
                                              fleet_secret: FleetSecret) -> None:  # fmt: skip
    store = RedisSessionStore.from_url(redis_server.url, fleet_secret, "slow", timeout=0.05)
    k = session_id_key(b"d" * 32)
    store.put(k, b"x", 100)
    redis_server.pause()
    try:
        t0 = time.monotonic()
        with pytest.raises(redis.RedisError):
            store.get(k)
        # one 50 ms timeout, not a wait on the paused Redis (3 s: room for a loaded box)
        assert time.monotonic() - t0 < 3.0
    finally:
        redis_server.resume()
    redis_server.kill()
    t0 = time.monotonic()
    with pytest.raises(redis.RedisError):
        store.get(k)
    assert time.monotonic() - t0 < 3.0


def test_async_store_same_semantics(redis_server: RedisServer,
                                    fleet_secret: FleetSecret) -> None:  # fmt: skip
    sync = RedisSessionStore.from_url(redis_server.url, fleet_secret, "both")

    async def main() -> None:
        # (the contract, not the 50 ms budget: on a loaded box the first connection takes longer)
        store = AsyncRedisSessionStore.from_url(redis_server.url, fleet_secret, "both", 5.0)
        k = session_id_key(b"e" * 32)
        await store.put(k, b"async", 100)
        assert sync.get(k) == b"async"  # same keys, same sealing
        assert await store.get(k) == b"async"
        assert await store.take(k) == b"async"
        assert await store.take(k) is None
        mark = early_data_mark_key(b"x")
        assert await store.add(mark, b"", 10) is True
        assert await store.add(mark, b"", 10) is False
        sync.put(k, b"from sync", 100)
        assert await store.get(k) == b"from sync"
        await store.delete(k)
        assert await store.get(k) is None
        await store.close()

    asyncio.run(main())


def test_async_store_over_unix_socket_and_acl_urls(redis_server: RedisServer,
                                                   fleet_secret: FleetSecret) -> None:  # fmt: skip
    """The asyncio client on every single-server URL form: redis-py's sync URL parser names a
    sync connection class for unix:// (and rediss://), which the asyncio client must not get."""
    sync = RedisSessionStore.from_url(redis_server.url, fleet_secret, "aunix")

    async def main() -> None:
        for n, url in enumerate((redis_server.unix_url, redis_server.acl_url)):
            store = AsyncRedisSessionStore.from_url(url, fleet_secret, "aunix", 5.0)
            k = session_id_key(bytes([n]) * 32)
            await store.put(k, b"via " + url.encode()[:5], 100)
            assert sync.get(k) == b"via " + url.encode()[:5]
            assert await store.get(k) == sync.get(k)
            await store.close()

    asyncio.run(main())

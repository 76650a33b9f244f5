"""The circuit breaker: stops asking a failing store, probes, heals; counted. Unit tests with a
fixed clock, then a real Redis killed and restarted."""

from __future__ import annotations

import time

import pytest
from redis_server import RedisServer

from tessera.errors import StoreError, StoreValueRejected
from tessera.fleet.health import Breaker, BreakerState, GuardedStore
from tessera.fleet.redis_store import RedisSessionStore
from tessera.fleet.secret import FleetSecret
from tessera.session.resumption import StoreLookup, session_id_key
from tessera.session.resumption.inline import answer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """A store that fails while ``down``; counts the calls that reached it."""

    def __init__(self) -> None:
        self.down = True
        self.calls = 0

    def get(self, key: bytes) -> bytes | None:
        self.calls += 1
        if self.down:
            raise ConnectionError("refused")
        return b"v"

    put = take = add = delete = get  # type: ignore[assignment]


def test_opens_after_threshold_probes_and_heals() -> None:
    clock = Clock()
    inner = Flaky()
    store = GuardedStore(inner, Breaker(threshold=3, backoff=1.0, max_backoff=4.0, clock=clock))
    for _ in range(3):
        with pytest.raises(ConnectionError):
            store.get(b"k")
    assert store.health().state is BreakerState.BACKING_OFF
    for _ in range(10):  # not asked while backing off: fails at once, counted
        with pytest.raises(StoreError, match="not asked"):
            store.get(b"k")
    assert inner.calls == 3
    h = store.health()
    assert (h.failures, h.skipped, h.openings) == (3, 10, 1)
    clock.now += 1.0
    with pytest.raises(ConnectionError):  # the probe, still down: back-off doubles
        store.get(b"k")
    assert inner.calls == 4
    assert store.health().retry_in == pytest.approx(2.0)
    clock.now += 2.0
    inner.down = False
    assert store.get(b"k") == b"v"  # the probe succeeds: healed
    h = store.health()
    assert h.state is BreakerState.HEALTHY and h.heals == 1
    assert store.get(b"k") == b"v"


def test_backoff_capped_so_healing_is_bounded() -> None:
    clock = Clock()
    inner = Flaky()
    store = GuardedStore(inner, Breaker(threshold=1, backoff=0.5, max_backoff=4.0, clock=clock))
    for _ in range(12):  # many failed probes
        with pytest.raises((ConnectionError, StoreError)):
            store.get(b"k")
        clock.now += store.health().retry_in
    assert store.health().retry_in <= 4.0


def test_inline_adapter_turns_skips_into_unavailable() -> None:
    clock = Clock()
    store = GuardedStore(Flaky(), Breaker(threshold=1, clock=clock))
    (a,) = answer(store, [StoreLookup("get", b"sid:x")])
    (b,) = answer(store, [StoreLookup("get", b"sid:x")])
    assert isinstance(a, ConnectionError) and isinstance(b, StoreError)


def test_real_redis_killed_then_back_heals_within_seconds(redis_server: RedisServer,
                                                         fleet_secret: FleetSecret) -> None:  # fmt: skip
    store = GuardedStore(RedisSessionStore.from_url(redis_server.url, fleet_secret, "h"))
    k = session_id_key(b"h" * 32)
    store.put(k, b"v", 60)
    redis_server.kill()
    t0 = time.monotonic()
    for _ in range(50):
        assert isinstance(answer(store, [StoreLookup("get", k)])[0], Exception)
    assert time.monotonic() - t0 < 5.0  # fifty lookups during the outage cost almost nothing
    h = store.health()
    assert h.state is BreakerState.BACKING_OFF and h.skipped >= 45
    redis_server.start()
    back = time.monotonic()
    while store.health().state is not BreakerState.HEALTHY:
        assert time.monotonic() - back < 10.0, store.health()
        answer(store, [StoreLookup("get", k)])
        time.sleep(0.05)
    assert store.get(k) is None  # an empty Redis (no persistence), but answering


def test_async_guarded_store_same_breaker(redis_server: RedisServer,
                                          fleet_secret: FleetSecret) -> None:  # fmt: skip
    import asyncio

    from tessera.fleet.health import AsyncGuardedStore
    from tessera.fleet.redis_store import AsyncRedisSessionStore

    async def main() -> None:
        store = AsyncGuardedStore(
            AsyncRedisSessionStore.from_url(redis_server.url, fleet_secret, "ah", 5.0),
            Breaker(threshold=2, backoff=0.2, max_backoff=0.4),
        )
        k = session_id_key(b"a" * 32)
        await store.put(k, b"v", 60)
        assert await store.get(k) == b"v"
        redis_server.kill()
        for _ in range(2):
            with pytest.raises(Exception):  # noqa: B017 (redis-py's ConnectionError)
                await store.get(k)
        with pytest.raises(StoreError):
            await store.get(k)
        assert store.health().state is BreakerState.BACKING_OFF
        redis_server.start()
        await asyncio.sleep(0.5)  # what is tested: the back-off (at most 0.4 s) is over
        assert await store.get(k) is None  # the probe: healed (Redis came back empty)
        assert store.health().heals == 1

    asyncio.run(main())


def test_unavailable_since_start_until_an_operation_works() -> None:
    """A store the start-up probe could not reach says so (never "healthy"), acts as an open
    breaker, tells a watcher (the metrics gauge) when it goes up, and a rejected value is an
    answer, not a failure."""
    clock = Clock()
    inner = Flaky()
    breaker = Breaker(threshold=3, backoff=1.0, clock=clock)
    told: list[bool] = []
    breaker.start_failed(ConnectionError("refused"))
    breaker.on_change = told.append
    store = GuardedStore(inner, breaker)
    h = store.health()
    assert h.state is BreakerState.UNAVAILABLE and not h.up
    assert h.describe().startswith("unavailable since start") and "refused" in h.describe()
    with pytest.raises(StoreError, match="not asked"):
        store.get(b"k")
    assert inner.calls == 0 and not breaker.probe_due()
    clock.now += 1.0
    assert breaker.probe_due()
    with pytest.raises(ConnectionError):
        store.get(b"k")  # the probe fails: still unavailable since start, back-off doubled
    assert store.health().state is BreakerState.UNAVAILABLE and store.health().retry_in == 2.0
    clock.now += 2.0
    inner.down = False
    assert store.get(b"k") == b"v"
    assert store.health().state is BreakerState.HEALTHY and told == [True]

    class Rejecting(Flaky):
        def get(self, key: bytes) -> bytes | None:
            raise StoreValueRejected("sealed under another fleet secret or altered")

    guarded = GuardedStore(Rejecting(), Breaker(threshold=1, clock=clock))
    for _ in range(3):
        with pytest.raises(StoreValueRejected):
            guarded.get(b"k")
    assert guarded.health().state is BreakerState.HEALTHY and guarded.health().failures == 0

"""ClientSessionCache and SessionStats."""

from __future__ import annotations

import threading

from tessera import ClientSession, ClientSessionCache, MemoryStore, ServerSession, SessionStats
from tessera.session.stats import FallbackReason


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def session(
    version: int = 0x0303, created: float = 1000.0, lifetime: int = 100, tag: bytes = b"a"
) -> ClientSession:
    suite = 0xC02B if version == 0x0303 else 0x1301
    secret = bytes(48) if version == 0x0303 else bytes(32)
    state = ServerSession(version, suite, secret, True, created, lifetime)
    return ClientSession(state, b"", tag)


KEY = ("example.com", 443, "example.com")


def test_tls12_session_replaces_previous_and_is_reusable() -> None:
    cache = ClientSessionCache(clock=Clock())
    cache.put(KEY, session(tag=b"1"))
    cache.put(KEY, session(tag=b"2"))
    assert cache.count(KEY) == 1
    assert cache.get(KEY).ticket == b"2"
    assert cache.get(KEY).ticket == b"2"  # TLS 1.2 sessions are not single use
    assert len(cache) == 1


def test_tls13_tickets_are_single_use() -> None:
    cache = ClientSessionCache(tickets_per_server=3, clock=Clock())
    cache.put(KEY, session(tag=b"old12"))
    for t in (b"1", b"2", b"3", b"4"):
        cache.put(KEY, session(0x0304, tag=t))
    assert cache.count(KEY) == 3  # the TLS 1.2 session and the oldest ticket are gone
    assert cache.get(KEY).ticket == b"4"
    assert cache.get(KEY).ticket == b"3"
    assert cache.get(KEY, reuse=True).ticket == b"2"
    assert cache.get(KEY, reuse=True).ticket == b"2"
    assert cache.get(KEY).ticket == b"2"
    assert cache.get(KEY) is None
    assert cache.count(KEY) == 0


def test_expired_sessions_are_not_returned() -> None:
    clock = Clock()
    cache = ClientSessionCache(clock=clock)
    cache.put(KEY, session(lifetime=10))
    clock.now += 9
    assert cache.get(KEY) is not None
    clock.now += 1
    assert cache.get(KEY) is None
    assert cache.count(KEY) == 0


def test_forget_and_keys_are_separate() -> None:
    cache = ClientSessionCache(clock=Clock())
    other = ("example.com", 443, "www.example.com")
    cache.put(KEY, session())
    cache.put(other, session(tag=b"b"))
    cache.forget(KEY)
    cache.forget(("nowhere", 1, None))
    assert cache.get(KEY) is None
    assert cache.get(other).ticket == b"b"


def test_max_servers() -> None:
    cache = ClientSessionCache(max_servers=2, clock=Clock())
    keys = [(f"h{i}", 443, None) for i in range(3)]
    for k in keys:
        cache.put(k, session())
    assert cache.get(keys[0]) is None
    assert cache.get(keys[1]) is not None and cache.get(keys[2]) is not None


def test_cache_thread_smoke() -> None:
    cache = ClientSessionCache(max_servers=50, clock=Clock())

    def work(n: int) -> None:
        for i in range(300):
            k = (f"h{(n * 7 + i) % 80}", 443, None)
            cache.put(k, session(0x0304 if i % 2 else 0x0303))
            cache.get(k)
            if i % 5 == 0:
                cache.forget(k)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache._data) <= 50


# -- statistics -----------------------------------------------------------------------------------
def test_counters_and_reasons() -> None:
    stats = SessionStats()
    assert stats.snapshot() == dict.fromkeys(SessionStats.COUNTERS, 0)
    stats.incr("resumed")
    stats.incr("resumed", 2)
    stats.fallback(FallbackReason.TICKET_EXPIRED)
    stats.fallback(FallbackReason.TICKET_EXPIRED)
    stats.fallback(FallbackReason.SNI_MISMATCH)
    assert stats["resumed"] == 3 and stats.snapshot()["resumed"] == 3
    assert stats.fallback_reasons() == {"ticket expired": 2, "server name mismatch": 1}
    assert stats.reason_count(FallbackReason.TICKET_EXPIRED) == 2
    assert stats.reason_count(FallbackReason.ALPN_MISMATCH) == 0


def test_snapshot_is_a_copy() -> None:
    stats = SessionStats()
    snap = stats.snapshot()
    stats.incr("misses")
    assert snap["misses"] == 0
    reasons = stats.fallback_reasons()
    stats.fallback(FallbackReason.UNKNOWN_SESSION_ID)
    assert reasons == {}


def test_evictions_come_from_the_store() -> None:
    stats = SessionStats()
    store = MemoryStore(max_entries=1, clock=Clock())
    stats.track_store(store)
    stats.track_store(store)  # once only
    store.put(b"a", b"1", 10)
    store.put(b"b", b"2", 10)
    store.put(b"c", b"3", 10)
    assert stats.snapshot()["evictions"] == 2 == stats["evictions"]


def test_stats_thread_safety() -> None:
    stats = SessionStats()

    def work() -> None:
        for _ in range(2000):
            stats.incr("full_handshakes")
            stats.fallback(FallbackReason.TICKET_MALFORMED)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stats["full_handshakes"] == 8000
    assert stats.reason_count(FallbackReason.TICKET_MALFORMED) == 8000

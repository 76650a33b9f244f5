"""MemoryStore: LRU order, time to live, eviction counting, take(), add(), thread safety."""

from __future__ import annotations

import threading

import pytest

from tessera import MemoryStore, SessionStore
from tessera.errors import ConfigError


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_protocol() -> None:
    assert isinstance(MemoryStore(), SessionStore)


def test_put_get_delete() -> None:
    s = MemoryStore(clock=Clock())
    s.put(b"k1", b"v1", 10)
    s.put(b"k2", b"v2", 10)
    assert s.get(b"k1") == b"v1" and s.get(b"k2") == b"v2"
    s.put(b"k1", b"v1b", 10)  # replaces
    assert s.get(b"k1") == b"v1b" and len(s) == 2
    s.delete(b"k1")
    s.delete(b"absent")
    assert s.get(b"k1") is None and len(s) == 1


def test_values_are_bytes_of_any_content() -> None:
    s = MemoryStore(clock=Clock())
    key = bytes(range(255))  # the longest key
    s.put(key, b"", 10)
    assert s.get(key) == b""
    s.put(b"\x00", b"\x00" * 1000, 10)
    assert s.get(b"\x00") == b"\x00" * 1000


@pytest.mark.parametrize("key", [b"", bytes(256)])
def test_key_length_limits(key: bytes) -> None:
    s = MemoryStore()
    with pytest.raises(ValueError):
        s.put(key, b"v", 10)
    with pytest.raises(ValueError):
        s.get(key)


def test_take_is_get_and_delete() -> None:
    s = MemoryStore(clock=Clock())
    s.put(b"k", b"v", 10)
    assert s.take(b"k") == b"v"
    assert s.take(b"k") is None
    assert s.get(b"k") is None


def test_ttl_whole_seconds() -> None:
    clock = Clock(1000.0)
    s = MemoryStore(clock=clock)
    s.put(b"k", b"v", 10)
    clock.now = 1009.999
    assert s.get(b"k") == b"v"
    clock.now = 1010.0
    assert s.get(b"k") is None
    assert s.expired == 1
    assert len(s) == 0  # an expired entry found by a lookup is dropped


def test_ttl_never_returns_an_expired_entry() -> None:
    """An entry put at t with ttl is expired from t + ttl on, also for fractional times."""
    clock = Clock(1000.5)
    s = MemoryStore(clock=clock)
    s.put(b"k", b"v", 10)
    clock.now = 1010.5
    assert s.get(b"k") is None, "returned 10 s after a put with ttl=10"


def test_take_of_expired_entry() -> None:
    clock = Clock()
    s = MemoryStore(clock=clock)
    s.put(b"k", b"v", 5)
    clock.now += 5
    assert s.take(b"k") is None


def test_purge_expired() -> None:
    clock = Clock()
    s = MemoryStore(clock=clock)
    for i in range(10):
        s.put(bytes([i + 1]), b"v", 5 if i % 2 else 50)
    clock.now += 6
    assert s.purge_expired() == 5
    assert len(s) == 5 and s.expired == 5
    assert s.get(b"\x01") == b"v" and s.get(b"\x02") is None


def test_lru_eviction_order() -> None:
    s = MemoryStore(max_entries=3, clock=Clock())
    for k in (b"a", b"b", b"c"):
        s.put(k, k, 100)
    assert s.get(b"a") == b"a"  # a is now most recently used
    s.put(b"d", b"d", 100)  # evicts b, the least recently used
    assert s.evictions == 1
    assert s.get(b"b") is None
    assert [s.get(k) for k in (b"a", b"c", b"d")] == [b"a", b"c", b"d"]
    s.put(b"c", b"c2", 100)  # a put also refreshes
    s.put(b"e", b"e", 100)  # order was a, d, c: evicts a
    assert s.get(b"a") is None and s.get(b"c") == b"c2"
    assert s.evictions == 2
    assert len(s) == 3


def test_eviction_in_batches() -> None:
    s = MemoryStore(max_entries=128, clock=Clock())
    for i in range(129):
        s.put(i.to_bytes(2, "big"), b"v", 100)
    assert s.evictions == 2  # 128 // 64 at a time
    assert len(s) == 127
    assert s.get((0).to_bytes(2, "big")) is None and s.get((1).to_bytes(2, "big")) is None
    assert s.get((2).to_bytes(2, "big")) == b"v"


def test_add_only_when_absent() -> None:
    clock = Clock()
    s = MemoryStore(clock=clock)
    assert s.add(b"k", b"first", 10) is True
    assert s.add(b"k", b"second", 10) is False
    assert s.get(b"k") == b"first"
    clock.now += 10
    assert s.add(b"k", b"third", 10) is True  # the old one expired
    assert s.get(b"k") == b"third"


def test_bad_size() -> None:
    with pytest.raises(ConfigError):
        MemoryStore(max_entries=0)


def test_thread_safety_smoke() -> None:
    s = MemoryStore(max_entries=500, clock=Clock())
    taken: list[bytes] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            for i in range(400):
                key = f"{n}-{i}".encode()
                s.put(key, key, 100)
                assert s.get(key) in (key, None)  # may be evicted by others
                s.put(b"shared", key, 100)
                v = s.take(b"shared")
                if v is not None:
                    with lock:
                        taken.append(v)
        except BaseException as e:  # pragma: no cover - only on failure
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(s) <= 500
    assert len(taken) == len(set(taken))  # take() handed each value out once at most
    assert s.evictions >= 6 * 400 - 500


def _race_to_take(s: MemoryStore, n: int) -> list[bytes | None]:
    results: list[bytes | None] = []
    barrier = threading.Barrier(n)

    def grab() -> None:
        barrier.wait()
        results.append(s.take(b"ticket"))

    threads = [threading.Thread(target=grab) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_single_take_under_contention() -> None:
    """Many threads race to take one key: exactly one gets it (single-use tickets rely on it)."""
    for _ in range(20):
        s = MemoryStore(clock=Clock())
        s.put(b"ticket", b"psk", 100)
        results = _race_to_take(s, 8)
        assert len(results) == 8
        assert results.count(b"psk") == 1

"""MemoryStore's strike register (entries written with add()): kept apart from the LRU, so
ordinary puts never evict a mark within its time to live; full means add() says False."""

from __future__ import annotations

import pytest

from tessera import MemoryStore
from tessera.errors import ConfigError

from .test_store import Clock


def test_puts_never_evict_a_mark() -> None:
    s = MemoryStore(max_entries=4, clock=Clock())
    assert s.add(b"0rtt:a", b"", 100)
    for i in range(1000):
        s.put(i.to_bytes(2, "big"), b"session", 100)
    assert s.evictions > 0 and len(s) <= 4
    assert s.add(b"0rtt:a", b"", 100) is False, "a replay was accepted after puts"
    assert s.get(b"0rtt:a") == b""


def test_full_register_refuses_until_marks_expire() -> None:
    """Fail closed: when no mark can be recorded, add() reports the key as seen."""
    clock = Clock()
    s = MemoryStore(max_entries=100, clock=clock, max_marks=3)
    assert [s.add(bytes([i + 1]), b"", 10 + i) for i in range(3)] == [True] * 3
    assert s.add(b"new", b"", 10) is False
    assert s.add(b"other", b"", 10) is False
    assert s.marks_refused == 2 and s.mark_count() == 3
    clock.now += 10  # the first mark's time is over: room for one
    assert s.add(b"new", b"", 10) is True
    assert s.add(b"other", b"", 10) is False
    assert s.add(b"\x02", b"", 10) is False  # still alive: a replay
    clock.now += 20
    assert s.add(b"other", b"", 10) is True
    assert s.mark_count() == 1  # the expired ones were swept


def test_marks_are_read_and_deleted_like_entries() -> None:
    clock = Clock()
    s = MemoryStore(clock=clock)
    assert s.add(b"k", b"v", 10)
    assert s.get(b"k") == b"v" and len(s) == 0 and s.mark_count() == 1
    s.delete(b"k")
    assert s.get(b"k") is None and s.add(b"k", b"v2", 10)
    assert s.take(b"k") == b"v2" and s.take(b"k") is None
    assert s.add(b"k", b"v3", 10)
    clock.now += 10
    assert s.get(b"k") is None
    assert s.add(b"k", b"v4", 10) is True


def test_add_respects_a_live_put_entry_and_put_replaces_a_mark() -> None:
    s = MemoryStore(clock=Clock())
    s.put(b"k", b"session", 10)
    assert s.add(b"k", b"mark", 10) is False
    assert s.add(b"m", b"mark", 10)
    s.put(b"m", b"session", 10)
    assert s.get(b"m") == b"session" and s.mark_count() == 0


def test_purge_expired_covers_marks() -> None:
    clock = Clock()
    s = MemoryStore(clock=clock, max_marks=2)
    s.add(b"a", b"", 5)
    s.add(b"b", b"", 50)
    s.put(b"c", b"", 5)
    clock.now += 6
    assert s.purge_expired() == 2
    assert s.mark_count() == 1 and len(s) == 0


def test_bad_register_size() -> None:
    with pytest.raises(ConfigError, match="max_marks"):
        MemoryStore(max_marks=0)

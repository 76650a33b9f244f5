"""Session stores: where a server keeps sessions by id.

A store is a small protocol over bytes (``put``/``get``/``take``/``delete``/``add``), so the same
session bytes can live in memory, in Redis or anywhere else. ``take`` is get-and-delete in one
step: single-use TLS 1.3 tickets depend on it being reliable. ``add`` stores only when the key
is absent (SET NX): the 0-RTT anti-replay register depends on it being atomic.

:class:`MemoryStore` is the built-in one: bounded by entry count, least-recently-used entries
evicted first, every entry with a time to live. To hold many sessions per MiB it keeps each entry
as one bytes object (key, expiry and value together) in an insertion-ordered dict, instead of a
key object, a value object and linked-list nodes per entry.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from itertools import islice
from typing import Protocol, runtime_checkable

from ..errors import ConfigError


@runtime_checkable
class SessionStore(Protocol):
    def put(self, key: bytes, value: bytes, ttl: float) -> None: ...

    def get(self, key: bytes) -> bytes | None: ...

    def take(self, key: bytes) -> bytes | None: ...

    def delete(self, key: bytes) -> None: ...

    def add(self, key: bytes, value: bytes, ttl: float) -> bool: ...


class _Entry(bytes):
    """``len(key) | key | expiry (u32 seconds) | value`` that hashes and compares by key only,
    so one object is both the dict key and the stored value."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self[1 : 1 + self[0]])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Entry):
            return NotImplemented
        return self[1 : 1 + self[0]] == other[1 : 1 + other[0]]

    def __ne__(self, other: object) -> bool:
        return not self == other

    def expiry(self) -> int:
        p = 1 + self[0]
        return int.from_bytes(self[p : p + 4], "big")

    def value(self) -> bytes:
        return self[5 + self[0] :]


def _check_key(key: bytes) -> None:
    if not 1 <= len(key) <= 255:
        raise ValueError("a store key is 1..255 bytes")


def _probe(key: bytes) -> _Entry:
    _check_key(key)
    return _Entry(bytes((len(key),)) + key)


class MemoryStore:
    """An in-process LRU store with per-entry time to live.

    When full, the least recently used entries are evicted, ``max_entries // 64`` (at least one)
    at a time, which keeps eviction cheap on a plain dict. Expired entries are never returned.
    """

    def __init__(self, max_entries: int = 20_000, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ConfigError("a session store needs room for at least one entry")
        self.max_entries = max_entries
        self._clock = clock
        self._data: dict[_Entry, _Entry] = {}
        self._lock = threading.Lock()
        self._batch = max(1, max_entries // 64)
        self.evictions = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._data)

    def _entry(self, key: bytes, value: bytes, ttl: float) -> _Entry:
        _check_key(key)
        expiry = math.floor(self._clock() + ttl)  # never returned after its ttl
        return _Entry(bytes((len(key),)) + key + expiry.to_bytes(4, "big") + value)

    def _insert(self, entry: _Entry) -> None:
        """Insert as most recently used, evicting the least recently used if full (locked)."""
        data = self._data
        data.pop(entry, None)
        data[entry] = entry
        if len(data) > self.max_entries:
            victims = list(islice(data, self._batch))
            for v in victims:
                del data[v]
            self.evictions += len(victims)

    def put(self, key: bytes, value: bytes, ttl: float) -> None:
        entry = self._entry(key, value, ttl)
        with self._lock:
            self._insert(entry)

    def add(self, key: bytes, value: bytes, ttl: float) -> bool:
        entry = self._entry(key, value, ttl)
        with self._lock:
            existing = self._data.get(entry)
            if existing is not None and self._clock() < existing.expiry():
                return False
            self._insert(entry)
        return True

    def _lookup(self, key: bytes, remove: bool) -> bytes | None:
        probe = _probe(key)
        data = self._data
        with self._lock:
            entry = data.pop(probe, None)
            if entry is None:
                return None
            if self._clock() >= entry.expiry():
                self.expired += 1
                return None
            if not remove:
                data[entry] = entry  # most recently used now
        return entry.value()

    def get(self, key: bytes) -> bytes | None:
        return self._lookup(key, remove=False)

    def take(self, key: bytes) -> bytes | None:
        return self._lookup(key, remove=True)

    def delete(self, key: bytes) -> None:
        with self._lock:
            self._data.pop(_probe(key), None)

    def purge_expired(self) -> int:
        """Drop every expired entry now; returns how many."""
        now = self._clock()
        with self._lock:
            dead = [e for e in self._data if now >= e.expiry()]
            for e in dead:
                del self._data[e]
        self.expired += len(dead)
        return len(dead)

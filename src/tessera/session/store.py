"""Session stores: where a server keeps sessions by id.

A store is a small protocol over bytes (``put``/``get``/``take``/``delete``/``add``), so the same
session bytes can live in memory, in Redis or anywhere else. ``take`` is get-and-delete in one
step: single-use TLS 1.3 tickets depend on it being reliable. ``add`` stores only when the key
is absent (SET NX): the 0-RTT anti-replay register depends on it being atomic, and on a mark
staying until its time to live is over.

:class:`MemoryStore` is the built-in one: bounded by entry count, least-recently-used entries
evicted first, every entry with a time to live. To hold many sessions per MiB it keeps each entry
as one bytes object (key, expiry and value together) in an insertion-ordered dict, instead of a
key object, a value object and linked-list nodes per entry.

Entries written with ``add`` (the strike register) live apart from that LRU, in a bounded table
of their own that only time empties: no number of ``put`` calls can evict a mark before its time
to live is over, or a replayed 0-RTT ClientHello would be accepted again. When the table is full
of live marks, ``add`` returns False, so the server refuses early data (fail closed; the
handshake itself still resumes) until marks expire; ``marks_refused`` counts those refusals.
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

    def __repr__(self) -> str:  # the value is a session, secret included: never shown
        return f"_Entry(key={self[1 : 1 + self[0]].hex()}, expiry={self.expiry()})"


def _check_key(key: bytes) -> None:
    if not 1 <= len(key) <= 255:
        raise ValueError("a store key is 1..255 bytes")


def _probe(key: bytes) -> _Entry:
    _check_key(key)
    return _Entry(bytes((len(key),)) + key)


class MemoryStore:
    """An in-process LRU store with per-entry time to live, and a strike register beside it.

    When full, the least recently used entries are evicted, ``max_entries // 64`` (at least one)
    at a time, which keeps eviction cheap on a plain dict. Expired entries are never returned.
    Entries written with :meth:`add` go to the strike register instead (up to ``max_marks``,
    default ``max_entries``), which is never evicted: see the module notes.
    """

    def __init__(
        self,
        max_entries: int = 20_000,
        clock: Callable[[], float] = time.time,
        max_marks: int | None = None,
    ) -> None:
        if max_entries < 1:
            raise ConfigError("a session store needs room for at least one entry")
        self.max_entries = max_entries
        self.max_marks = max_entries if max_marks is None else max_marks
        if self.max_marks < 1:
            raise ConfigError("the strike register (max_marks) needs room for at least one mark")
        self._clock = clock
        self._data: dict[_Entry, _Entry] = {}
        self._marks: dict[_Entry, _Entry] = {}
        self._marks_full_until = 0.0  # no mark expires before then: a sweep would free nothing
        self._lock = threading.Lock()
        self._batch = max(1, max_entries // 64)
        self.evictions = 0
        self.expired = 0
        self.marks_refused = 0

    def __len__(self) -> int:
        """Entries in the LRU (sessions); marks are counted by :meth:`mark_count`."""
        return len(self._data)

    def mark_count(self) -> int:
        return len(self._marks)

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
            self._marks.pop(entry, None)
            self._insert(entry)

    def add(self, key: bytes, value: bytes, ttl: float) -> bool:
        """Record ``key`` in the strike register unless it is there (or in the LRU) and alive.
        False also when the register is full of live marks: the caller must then treat the key
        as seen (fail closed)."""
        entry = self._entry(key, value, ttl)
        with self._lock:
            now = self._clock()
            for table in (self._marks, self._data):
                existing = table.get(entry)
                if existing is not None:
                    if now < existing.expiry():
                        return False
                    del table[existing]
            if len(self._marks) >= self.max_marks and not self._sweep_marks(now):
                self.marks_refused += 1
                return False
            self._marks[entry] = entry
        return True

    def _sweep_marks(self, now: float) -> bool:
        """Drop expired marks (locked); True if that made room."""
        if now < self._marks_full_until:
            return False
        marks = self._marks
        dead = [e for e in marks if now >= e.expiry()]
        for e in dead:
            del marks[e]
        self.expired += len(dead)
        if len(marks) < self.max_marks:
            return True
        self._marks_full_until = min(e.expiry() for e in marks)
        return False

    def _lookup(self, key: bytes, remove: bool) -> bytes | None:
        probe = _probe(key)
        data = self._data
        with self._lock:
            entry = data.pop(probe, None)
            if entry is None:
                return self._lookup_mark(probe, remove)
            if self._clock() >= entry.expiry():
                self.expired += 1
                return None
            if not remove:
                data[entry] = entry  # most recently used now
        return entry.value()

    def _lookup_mark(self, probe: _Entry, remove: bool) -> bytes | None:
        """A key written with add(), read back like any other (locked)."""
        marks = self._marks
        entry = marks.pop(probe, None) if remove else marks.get(probe)
        if entry is None:
            return None
        if self._clock() >= entry.expiry():
            marks.pop(probe, None)
            self.expired += 1
            return None
        return entry.value()

    def get(self, key: bytes) -> bytes | None:
        return self._lookup(key, remove=False)

    def take(self, key: bytes) -> bytes | None:
        return self._lookup(key, remove=True)

    def delete(self, key: bytes) -> None:
        probe = _probe(key)
        with self._lock:
            self._data.pop(probe, None)
            self._marks.pop(probe, None)

    def purge_expired(self) -> int:
        """Drop every expired entry now; returns how many."""
        now = self._clock()
        with self._lock:
            dead = [e for e in self._data if now >= e.expiry()]
            for e in dead:
                del self._data[e]
            marks = len(self._marks)
            self._marks_full_until = 0.0
            self._sweep_marks(now)
            marks -= len(self._marks)
        self.expired += len(dead)
        return len(dead) + marks

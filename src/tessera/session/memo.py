"""Sessions already decoded, by the bytes they came from: an opened ticket, or a session the
store returned under an id. Deciding a resumption from the same bytes again (a client resuming
several connections with one ticket, a busy session id) then skips the unsealing and decoding.

A memo is bounded (oldest first out), never returns a session past its lifetime, and drops the
expired ones at its head whenever it is used, so no entry outlives its session for long. A memo of
tickets lives on the ticket key that opened them (:class:`~.keyring.TicketKey`) and is cleared
with it: the secrets it holds are kept no longer than the key that opened them.
"""

from __future__ import annotations

import threading

from .model import ServerSession

DEFAULT_ENTRIES = 1024


class SessionMemo:
    __slots__ = ("_entries", "_lock", "max_entries")

    def __init__(self, max_entries: int = DEFAULT_ENTRIES) -> None:
        self.max_entries = max_entries
        # bytes -> (the state bytes, the session, when it expires)
        self._entries: dict[bytes, tuple[bytes, ServerSession, float]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"SessionMemo({len(self._entries)} of {self.max_entries})"  # never the sessions

    def get(self, key: bytes, now: float) -> tuple[bytes, ServerSession] | None:
        entries = self._entries
        found = entries.get(key)
        if entries and now >= entries[next(iter(entries))][2]:
            self._drop_expired(now)
        if found is None:
            return None
        state, session, expires = found
        if now >= expires or now < session.created - 60:
            entries.pop(key, None)
            return None
        return state, session

    def _drop_expired(self, now: float) -> None:
        entries = self._entries
        with self._lock:
            while entries:
                head = next(iter(entries))
                if now < entries[head][2]:
                    break
                del entries[head]

    def put(self, key: bytes, state: bytes, session: ServerSession, now: float) -> None:
        expires = session.created + session.lifetime
        if now >= expires:
            return
        entries = self._entries
        with self._lock:
            entries[key] = (state, session, expires)
            while entries:  # the oldest first: expired, or over the bound
                head = next(iter(entries))
                if len(entries) <= self.max_entries and now < entries[head][2]:
                    break
                del entries[head]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

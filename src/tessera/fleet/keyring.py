"""The fleet keyring: a :class:`~tessera.session.keyring.TicketKeySource` over a :class:`KeySet`.

It holds an immutable snapshot and answers from it with the clock: keys start and stop
encrypting and are erased exactly on their schedule, whether or not anything refreshes the
snapshot. Whoever feeds it (Redis: :mod:`.redis_keys`; the ``--workers`` supervisor: a pipe)
calls :meth:`FleetKeyring.install`, which swaps the snapshot atomically, keeping the keys it
already holds (a source that lost its data cannot take away a key still in use), or
:meth:`FleetKeyring.source_failed`, which keeps everything and records why.

Public API (also what ``tessera keys sync`` builds on): :meth:`~FleetKeyring.install`,
:attr:`~FleetKeyring.snapshot` (a :class:`~.keys.KeySet`), the
:class:`~tessera.session.keyring.TicketKeySource` methods (``encryption_key``,
``decryption_key``, ``decrypts_until``), and for status pages :meth:`~FleetKeyring.describe`,
:meth:`~FleetKeyring.describe_source`, :meth:`~FleetKeyring.key_states` and
:meth:`~FleetKeyring.next_rotation`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import Enum

from ..session.keyring import TicketKey
from .keys import FleetKey, KeyPolicy, KeySet, KeyState


class SourceState(Enum):
    """What the keyring's source (Redis, the supervisor) did last, for status pages."""

    STARTING = "not reached yet"
    HEALTHY = "healthy"
    UNAVAILABLE = "unavailable"  # the last refresh failed; the keys held stay until they expire
    REFUSED = "refused"  # the fleet in Redis has another fleet secret: nothing taken from it


class FleetKeyring:
    def __init__(self, policy: KeyPolicy, keys: KeySet | None = None,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.policy = policy
        self._clock = clock
        self._snap = keys or KeySet()
        self._lock = threading.Lock()
        self.installs = 0
        self.source = "none"  # where the keys come from, for status pages
        self.state = SourceState.STARTING
        self.source_error = ""  # why the last refresh failed, "" when it worked
        self.last_refresh = 0.0

    def __repr__(self) -> str:
        return f"FleetKeyring({len(self._snap.keys)} keys from {self.source}, {self.state.value})"

    def source_failed(self, error: str, state: SourceState = SourceState.UNAVAILABLE) -> None:
        """The source could not be read (or refused): keep every key held, say why."""
        self.state = state
        self.source_error = error[:300]  # where Redis is, and what to change in --redis

    def describe_source(self) -> str:
        """``Redis (healthy)``, ``Redis (unavailable: ...)`` — one phrase for every page."""
        if self.state is SourceState.HEALTHY:
            return f"{self.source} (healthy)"
        why = f": {self.source_error}" if self.source_error else ""
        return f"{self.source} ({self.state.value}{why})"

    @property
    def snapshot(self) -> KeySet:
        return self._snap

    def install(self, keys: KeySet) -> KeySet:
        """Swap in ``keys`` plus any live key held now that they lack; the result."""
        with self._lock:
            now = self._clock()
            snap = keys.live(now).merged(self._snap.live(now).keys)
            self._snap = snap
            self.installs += 1
            self.last_refresh = now
            self.state = SourceState.HEALTHY
            self.source_error = ""
            return snap

    # -- TicketKeySource --------------------------------------------------------------------
    def encryption_key(self) -> TicketKey | None:
        k = self._snap.encrypting(self._clock())
        return None if k is None else k.key

    def decryption_key(self, name: bytes) -> tuple[TicketKey, bool] | None:
        snap = self._snap
        now = self._clock()
        k = snap.decrypting(name, now)
        if k is None:
            return None
        return k.key, k is snap.encrypting(now)

    def decrypts_until(self, key: TicketKey) -> float | None:
        k = self._snap.by_name.get(key.name)
        return None if k is None else k.erased_at

    # -- status ---------------------------------------------------------------------------
    def describe(self) -> list[tuple[str, str, str]]:
        """(name, age, state) for every key not yet erased — never key material."""
        now = self._clock()
        snap = self._snap
        enc = snap.encrypting(now)
        rows = []
        for k in reversed(snap.keys):
            state = k.state(now, enc)
            if state is KeyState.ERASED:
                continue
            rows.append((k.name.hex(), f"{now - k.created:.0f} s", _state_text(k, state, now)))
        return rows

    # -- metrics (tessera.observe.metrics reads these at scrape time) -------------------------
    def key_states(self) -> list[tuple[bytes, str, float, float]]:
        """(name, state, created, next change) per key not yet erased; state is
        ``pending`` (published, not yet encrypting), ``encrypting`` or ``decrypt_only``."""
        now = self._clock()
        snap = self._snap
        enc = snap.encrypting(now)
        rows = []
        for k in snap.keys:
            state = k.state(now, enc)
            if state is not KeyState.ERASED:
                label, change = _METRIC_STATES[state], k.encrypts_from
                if state is KeyState.ENCRYPTING:
                    change = k.encrypts_until
                elif state is KeyState.DECRYPT_ONLY:
                    change = k.erased_at
                rows.append((k.name, label, k.created, change))
        return rows

    def next_rotation(self) -> float | None:
        """When the encrypting key changes: the current one stops, or (none encrypting) the
        next published one starts; None when no key is scheduled."""
        now = self._clock()
        snap = self._snap
        enc = snap.encrypting(now)
        if enc is not None:
            later = [k.encrypts_from for k in snap.keys if k.encrypts_from > enc.encrypts_from]
            return min([enc.encrypts_until, *later])
        upcoming = [k.encrypts_from for k in snap.keys if k.encrypts_from > now]
        return min(upcoming) if upcoming else None


_METRIC_STATES = {
    KeyState.PUBLISHED: "pending",
    KeyState.ENCRYPTING: "encrypting",
    KeyState.DECRYPT_ONLY: "decrypt_only",
}


def _state_text(k: FleetKey, state: KeyState, now: float) -> str:
    if state is KeyState.PUBLISHED:
        return f"published, encrypts in {k.encrypts_from - now:.0f} s"
    if state is KeyState.ENCRYPTING:
        return f"encrypting, {k.encrypts_until - now:.0f} s left"
    return f"decrypt-only, erased in {k.erased_at - now:.0f} s"

"""A circuit breaker around a session store: a store outage costs nothing.

Each failed operation already costs only a full handshake (the connection turns the exception
into "session store unavailable"). After ``threshold`` failures in a row the breaker *opens*:
for a back-off period the store is not asked at all and every operation fails at once with
:class:`~tessera.errors.StoreError` (counted in ``skipped``). When the period ends one operation
is let through as a probe: success closes the breaker (healed), failure opens it again with the
back-off doubled, up to ``max_backoff``. With the defaults (0.5 s doubling to 4 s) a node is
healed at most about 4 s after Redis is back.

A node probes its store once at start (:meth:`Breaker.start_failed` when that fails): until an
operation succeeds the breaker says *unavailable since start* (and acts as an open breaker), so
no status page calls a store healthy that was never reached. A value the store answered but
that did not open (:class:`~tessera.errors.StoreValueRejected`) is an answer, not a failure.

:class:`GuardedStore` wraps a synchronous store, :class:`AsyncGuardedStore` an asyncio one; both
expose the same :class:`StoreHealth` for the banner, the ``--www`` page and metrics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, TypeVar

from ..errors import StoreError, StoreValueRejected
from .failure import describe

T = TypeVar("T")


class BreakerState(Enum):
    HEALTHY = "healthy"  # closed: every operation goes to the store
    UNAVAILABLE = "unavailable since start"  # never reached yet: acts as BACKING_OFF
    BACKING_OFF = "backing off"  # open: operations fail at once, not asked
    PROBING = "probing"  # half-open: one operation is testing the store


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """A snapshot for status pages and metrics."""

    state: BreakerState
    consecutive_failures: int
    failures: int  # operations that raised
    skipped: int  # operations answered "unavailable" without asking the store
    openings: int  # times the breaker opened
    heals: int  # times a probe succeeded after an opening
    retry_in: float  # seconds until the next probe (0 unless backing off)
    last_error: str

    @property
    def up(self) -> bool:
        return self.state is BreakerState.HEALTHY

    def describe(self) -> str:
        text = f"{self.state.value}; {self.failures} failures, {self.skipped} skipped"
        if self.state in _OPEN:
            text += f"; next probe in {self.retry_in:.1f} s"
        if self.last_error and self.state is not BreakerState.HEALTHY:
            text += f"; last error: {self.last_error}"
        return text


_OPEN = (BreakerState.BACKING_OFF, BreakerState.UNAVAILABLE)


class Breaker:
    """The breaker's state machine, thread-safe; time only through ``clock``."""

    def __init__(self, threshold: int = 3, backoff: float = 0.5, max_backoff: float = 4.0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        if threshold < 1 or backoff <= 0 or max_backoff < backoff:
            raise ValueError("threshold >= 1 and 0 < backoff <= max_backoff")
        self.threshold = threshold
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.HEALTHY
        self._consecutive = 0
        self._current_backoff = backoff
        self._retry_at = 0.0
        self.failures = 0
        self.skipped = 0
        self.openings = 0
        self.heals = 0
        self.last_error = ""
        self._never_up = False  # set by start_failed until an operation succeeds
        self.on_change: Callable[[bool], None] | None = None  # told "up" or "down" on a change
        self._told = True

    def _tell(self) -> None:
        """Tell ``on_change`` (a metrics gauge) when the store went up or down (never under
        the lock)."""
        up = self._state is BreakerState.HEALTHY
        if up != self._told:
            self._told = up
            if self.on_change is not None:
                self.on_change(up)

    def admit(self) -> None:
        """Let an operation through, or raise StoreError (counted) while backing off."""
        with self._lock:
            if self._state is BreakerState.HEALTHY:
                return
            now = self._clock()
            if self._state in _OPEN and now >= self._retry_at:
                self._state = BreakerState.PROBING  # this caller is the probe
                return
            self.skipped += 1
            wait = max(0.0, self._retry_at - now)
        raise StoreError(
            f"session store unavailable: not asked for {wait:.1f} s more after "
            f"{self.threshold} failures in a row ({self.last_error})"
        )

    def succeeded(self) -> None:
        with self._lock:
            if self._state is not BreakerState.HEALTHY:
                self.heals += 1
            self._never_up = False
            self._state = BreakerState.HEALTHY
            self._consecutive = 0
            self._current_backoff = self.backoff
        self._tell()

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self._consecutive += 1
            self.last_error = describe(error)
            probing = self._state is BreakerState.PROBING
            if probing or self._consecutive >= self.threshold:
                if probing:
                    self._current_backoff = min(self.max_backoff, self._current_backoff * 2)
                else:
                    self.openings += 1
                self._state = (
                    BreakerState.UNAVAILABLE if self._never_up else BreakerState.BACKING_OFF
                )
                self._retry_at = self._clock() + self._current_backoff
        self._tell()

    def probe_due(self) -> bool:
        """Whether the store is not healthy and its back-off is over: a probe made outside any
        handshake (the key refresher's) may test it now."""
        with self._lock:
            return self._state in _OPEN and self._clock() >= self._retry_at

    def start_failed(self, error: BaseException) -> None:
        """The probe at start failed: unavailable since start (open, first probe after the
        initial back-off)."""
        with self._lock:
            self.failures += 1
            self.last_error = describe(error)
            self._never_up = True
            self._state = BreakerState.UNAVAILABLE
            self._retry_at = self._clock() + self._current_backoff
        self._tell()

    def health(self) -> StoreHealth:
        with self._lock:
            retry_in = 0.0
            if self._state in _OPEN:
                retry_in = max(0.0, self._retry_at - self._clock())
            return StoreHealth(self._state, self._consecutive, self.failures, self.skipped,
                               self.openings, self.heals, retry_in, self.last_error)  # fmt: skip


class _Store(Protocol):
    def put(self, key: bytes, value: bytes, ttl: float) -> None: ...
    def get(self, key: bytes) -> bytes | None: ...
    def take(self, key: bytes) -> bytes | None: ...
    def add(self, key: bytes, value: bytes, ttl: float) -> bool: ...
    def delete(self, key: bytes) -> None: ...


class _AsyncStore(Protocol):
    async def put(self, key: bytes, value: bytes, ttl: float) -> None: ...
    async def get(self, key: bytes) -> bytes | None: ...
    async def take(self, key: bytes) -> bytes | None: ...
    async def add(self, key: bytes, value: bytes, ttl: float) -> bool: ...
    async def delete(self, key: bytes) -> None: ...


class GuardedStore:
    """A synchronous store behind a :class:`Breaker`."""

    def __init__(self, store: _Store, breaker: Breaker | None = None) -> None:
        self.store = store
        self.breaker = breaker or Breaker()

    def __repr__(self) -> str:
        return f"GuardedStore({self.store!r})"

    def health(self) -> StoreHealth:
        return self.breaker.health()

    def _call(self, op: Callable[[], T]) -> T:
        self.breaker.admit()
        try:
            result = op()
        except StoreValueRejected:
            self.breaker.succeeded()  # the store answered
            raise
        except Exception as e:
            self.breaker.failed(e)
            raise
        self.breaker.succeeded()
        return result

    def put(self, key: bytes, value: bytes, ttl: float) -> None:
        self._call(lambda: self.store.put(key, value, ttl))

    def get(self, key: bytes) -> bytes | None:
        result: bytes | None = self._call(lambda: self.store.get(key))
        return result

    def take(self, key: bytes) -> bytes | None:
        result: bytes | None = self._call(lambda: self.store.take(key))
        return result

    def add(self, key: bytes, value: bytes, ttl: float) -> bool:
        return bool(self._call(lambda: self.store.add(key, value, ttl)))

    def delete(self, key: bytes) -> None:
        self._call(lambda: self.store.delete(key))


class AsyncGuardedStore:
    """An asyncio store (``async`` put/get/take/add/delete) behind a :class:`Breaker`."""

    def __init__(self, store: _AsyncStore, breaker: Breaker | None = None) -> None:
        self.store = store
        self.breaker = breaker or Breaker()

    def __repr__(self) -> str:
        return f"AsyncGuardedStore({self.store!r})"

    def health(self) -> StoreHealth:
        return self.breaker.health()

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        self.breaker.admit()
        try:
            result = await op()
        except StoreValueRejected:
            self.breaker.succeeded()  # the store answered
            raise
        except Exception as e:
            self.breaker.failed(e)
            raise
        self.breaker.succeeded()
        return result

    async def put(self, key: bytes, value: bytes, ttl: float) -> None:
        await self._call(lambda: self.store.put(key, value, ttl))

    async def get(self, key: bytes) -> bytes | None:
        result: bytes | None = await self._call(lambda: self.store.get(key))
        return result

    async def take(self, key: bytes) -> bytes | None:
        result: bytes | None = await self._call(lambda: self.store.take(key))
        return result

    async def add(self, key: bytes, value: bytes, ttl: float) -> bool:
        return bool(await self._call(lambda: self.store.add(key, value, ttl)))

    async def delete(self, key: bytes) -> None:
        await self._call(lambda: self.store.delete(key))

    async def close(self) -> None:
        """Close the store's connections (redis.asyncio's pool), when it has a ``close``."""
        close = getattr(self.store, "close", None)
        if close is not None:
            await close()

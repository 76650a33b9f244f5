"""The observer guard: every fact reaches every observer, and no observer reaches the handshake.

A server reports facts (:mod:`.facts`) through one :class:`ObserverGuard` per configuration. An
observer that raises is counted (``failures``, and the ``observer_errors`` statistic), logged
once per observer, and skipped: the fact still reaches the others, and the exception never
leaves — a broken metrics exporter or log sink can neither fail a connection, nor stall a
client waiting for the server's next flight, nor let a raw exception out of ``receive_data``.
Facts are frozen values, so an observer cannot change what the handshake does either.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence

from .facts import Fact, ResumptionObserver

log = logging.getLogger("tessera.observe")


class ObserverGuard:
    __slots__ = ("_lock", "_logged", "failures", "observers", "on_failure")

    def __init__(
        self,
        observers: Sequence[ResumptionObserver],
        on_failure: Callable[[], object] | None = None,
    ) -> None:
        self.observers = tuple(observers)
        self.on_failure = on_failure  # told about each failure (the statistics count it)
        self.failures = 0
        self._logged: set[type] = set()
        self._lock = threading.Lock()

    def report(self, fact: Fact) -> None:
        for observer in self.observers:
            try:
                observer.observe(fact)
            except Exception as e:
                self._failed(observer, fact, e)

    def _failed(self, observer: ResumptionObserver, fact: Fact, error: Exception) -> None:
        with self._lock:
            self.failures += 1
            first = type(observer) not in self._logged
            self._logged.add(type(observer))
        if first:
            log.warning(
                "observer %s raised on %s (%s: %s); its failures are counted and skipped",
                type(observer).__name__, type(fact).__name__, type(error).__name__, error,
            )  # fmt: skip
        callback = self.on_failure
        if callback is not None:
            with contextlib.suppress(Exception):  # the counter itself must not break the guard
                callback()

"""Continuous mode (``--every DURATION``): audit the services again and again, each round
replacing the previous round's results (and, with ``--metrics HOST:PORT``, serving them as
Prometheus gauges: :mod:`.gauges`, which alone needs prometheus-client).

Each round audits every service (several at once, bounded); what a round found is kept per
service with the age of the ticket key it issues under, so a service that disappears from the
results disappears from the gauges with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .auditor import AuditOptions, Report, audit
from .keynames import KeyNameStatus
from .mechanisms import Step

KEY_MEMORY = 4096  # key names remembered (first-seen times), per watcher


def run_services(
    services: Sequence[AuditOptions],
    concurrency: int,
    step: Step = lambda _: None,
    stop: threading.Event | None = None,
) -> list[Report]:
    """Audit ``services``, at most ``concurrency`` at once; reports in the services' order.
    Setting ``stop`` ends each audit early with what it gathered."""
    if len(services) == 1:
        return [audit(services[0], step, stop)]
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(audit, s, step, stop) for s in services]
        return [f.result() for f in futures]


@dataclass
class _KeyClock:
    """When each key name was first seen, per target (bounded)."""

    first_seen: dict[tuple[str, bytes], float] = field(default_factory=dict)

    def age(self, target: str, names: Sequence[bytes], now: float) -> float | None:
        """The age of the oldest key among ``names`` (the keys in use now)."""
        ages = []
        for name in names:
            first = self.first_seen.setdefault((target, name), now)
            ages.append(now - first)
        while len(self.first_seen) > KEY_MEMORY:
            del self.first_seen[next(iter(self.first_seen))]
        return max(ages) if ages else None


class Watcher:
    """The rounds; :meth:`run` loops until ``stop`` is set."""

    def __init__(
        self,
        services: Sequence[AuditOptions],
        every: float,
        concurrency: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.services = tuple(services)
        self.every = every
        self.concurrency = concurrency
        self.clock = clock
        self.latest: dict[str, Report] = {}
        self.key_ages: dict[str, float] = {}
        self.last_run: float | None = None
        self.rounds = 0
        self._keys = _KeyClock()
        self._lock = threading.Lock()

    def round(self, stop: threading.Event | None = None) -> list[Report]:
        """One audit of every service; the gauges follow it (unless it was stopped midway)."""
        reports = run_services(self.services, self.concurrency, stop=stop)
        if any(r.interrupted for r in reports):
            return reports
        now = self.clock()
        with self._lock:
            for r in reports:
                self.latest[r.options.service] = r
                age = self._keys.age(r.options.service, current_keys(r), now)
                if age is None:
                    self.key_ages.pop(r.options.service, None)
                else:
                    self.key_ages[r.options.service] = age
            self.last_run = now
            self.rounds += 1
        return reports

    def run(
        self,
        stop: threading.Event,
        on_round: Callable[[list[Report]], None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Rounds every ``every`` seconds (at once when one took longer) until ``stop``."""
        start = monotonic()
        k = 0
        while not stop.is_set():
            reports = self.round(stop)
            if stop.is_set():
                return
            on_round(reports)
            k = max(k + 1, int((monotonic() - start) // self.every) + 1)
            stop.wait(max(0.0, start + k * self.every - monotonic()))

    def latest_results(self) -> tuple[dict[str, Report], dict[str, float], float | None]:
        """(the latest report per service, the key age per service, when the last round
        ended), consistent with each other."""
        with self._lock:
            return dict(self.latest), dict(self.key_ages), self.last_run


def current_keys(r: Report) -> list[bytes]:
    """The key names the service issues under now: the newest name at each address whose
    tickets show key names (the target's own when it has them)."""
    named = [a for a in r.addresses if a.key_names.status is KeyNameStatus.KEY_NAME]
    targets = [a for a in named if a.role == "target"]
    return list(dict.fromkeys(a.key_names.names[-1] for a in (targets or named)))

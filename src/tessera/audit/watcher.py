"""Continuous mode (``--every DURATION --metrics HOST:PORT``): audit the services again and again
and serve the latest results as Prometheus gauges, as blackbox_exporter does for reachability.

Each round audits every service (several at once, bounded) and replaces the previous round's
results; the gauges are computed at scrape time from the latest round, so a service or a
backend that disappears from the results disappears from the metrics with it:

- ``tessera_check_up{target}``: 1 when every address of the service could be audited;
- ``tessera_check_resumption_ratio{target,backend,mechanism}``: resumed / attempted at each
  audited address (``backend`` is the address: the target itself or one of its backends; an
  address that could not be reached reports 0);
- ``tessera_check_cross_backend_ratio{target,mechanism}``: the share of backend pairs (X, Y),
  X ≠ Y, where a session from X resumed at Y;
- ``tessera_check_ticket_key_age_seconds{target}``: how long the key the service issues under
  now has been seen (since this watcher started: a lower bound), from the key names;
- ``tessera_check_failed_checks{target}``: the checks that failed (the exit status's cause);
- ``tessera_check_last_run_timestamp_seconds``, ``tessera_check_run_duration_seconds{target}``
  and ``tessera_check_interval_seconds``: when the last round ended, how long each audit took,
  and the configured period (an alert compares them to find a stalled watcher).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .auditor import AuditOptions, Report, audit
from .keynames import KeyNameStatus
from .mechanisms import Step

PREFIX = "tessera_check_"
METRICS = {
    "up": "1 when every address of the target could be audited, else 0.",
    "resumption_ratio": "Resumptions that succeeded / attempted, per audited address "
    "(backend) and mechanism.",
    "cross_backend_ratio": "Share of backend pairs (X, Y), X != Y, where a session from X "
    "resumed at Y.",
    "ticket_key_age_seconds": "Seconds since the ticket key the target issues under now was "
    "first seen by this watcher (a lower bound).",
    "failed_checks": "Checks that failed in the last audit of the target.",
    "last_run_timestamp_seconds": "Unix time when the last round of audits ended.",
    "run_duration_seconds": "Seconds the last audit of the target took.",
    "interval_seconds": "The configured time between rounds (--every).",
}
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


class Watcher(Collector):
    """The rounds and the gauges; :meth:`run` loops until ``stop`` is set."""

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
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)

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

    # -- the Prometheus collector ---------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        with self._lock:
            latest = dict(self.latest)
            key_ages = dict(self.key_ages)
            last_run = self.last_run
        families = {name: _family(name) for name in METRICS}
        for target, r in latest.items():
            _collect_report(target, r, families)
            if target in key_ages:
                families["ticket_key_age_seconds"].add_metric([target], key_ages[target])
        if last_run is not None:
            families["last_run_timestamp_seconds"].add_metric([], last_run)
        families["interval_seconds"].add_metric([], self.every)
        yield from families.values()


def _family(name: str) -> GaugeMetricFamily:
    labels = {
        "up": ["target"],
        "resumption_ratio": ["target", "backend", "mechanism"],
        "cross_backend_ratio": ["target", "mechanism"],
        "ticket_key_age_seconds": ["target"],
        "failed_checks": ["target"],
        "run_duration_seconds": ["target"],
    }.get(name, [])
    return GaugeMetricFamily(PREFIX + name, METRICS[name], labels=labels)


def _collect_report(target: str, r: Report, families: dict[str, GaugeMetricFamily]) -> None:
    families["up"].add_metric([target], 0.0 if r.errors else 1.0)
    families["failed_checks"].add_metric([target], float(len(r.failed_checks)))
    families["run_duration_seconds"].add_metric([target], r.duration_s)
    for a in r.addresses:
        backend = a.endpoint.label
        for m in r.options.mechanisms:
            found = next((x for x in a.mechanisms if x.mechanism is m), None)
            ratio = found.resumed / found.attempts if found and found.attempts else 0.0
            families["resumption_ratio"].add_metric([target, backend, m.value], ratio)
    for m in dict.fromkeys(c.mechanism for c in r.matrix):
        pairs = [c for c in r.matrix if c.mechanism is m and c.source != c.target]
        if pairs:
            ratio = sum(c.resumed for c in pairs) / len(pairs)
            families["cross_backend_ratio"].add_metric([target, m.value], ratio)


def current_keys(r: Report) -> list[bytes]:
    """The key names the service issues under now: the newest name at each address whose
    tickets show key names (the target's own when it has them)."""
    named = [a for a in r.addresses if a.key_names.status is KeyNameStatus.KEY_NAME]
    targets = [a for a in named if a.role == "target"]
    return list(dict.fromkeys(a.key_names.names[-1] for a in (targets or named)))

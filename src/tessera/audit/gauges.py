"""The gauges of continuous mode (``--every DURATION --metrics HOST:PORT``): the latest results
of a :class:`~.watcher.Watcher` as Prometheus gauges, as blackbox_exporter does for
reachability.

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
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from ..extras import missing

try:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.metrics_core import GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ModuleNotFoundError as e:  # an extra of the distribution
    raise missing(e) from None

from .auditor import Report
from .watcher import Watcher

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


def registry_for(watcher: Watcher) -> CollectorRegistry:
    """A registry serving ``watcher``'s gauges."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(Gauges(watcher))
    return registry


def serve(watcher: Watcher, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``watcher``'s gauges at http://HOST:PORT/metrics (a thread); OSError if the
    address cannot be bound."""
    return start_http_server(port, addr=host, registry=registry_for(watcher))


class Gauges(Collector):
    """The gauges, computed at scrape time from the watcher's latest round."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def collect(self) -> Iterator[Metric]:
        latest, key_ages, last_run = self.watcher.latest_results()
        families = {name: _family(name) for name in METRICS}
        for target, r in latest.items():
            _collect_report(target, r, families)
            if target in key_ages:
                families["ticket_key_age_seconds"].add_metric([target], key_ages[target])
        if last_run is not None:
            families["last_run_timestamp_seconds"].add_metric([], last_run)
        families["interval_seconds"].add_metric([], self.watcher.every)
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

"""The fleet's own metrics, beside ``tessera.observe.metrics``: what the ticket key source really
is, and a session store gauge that starts from the truth.

    tessera_ticket_key_source_up{source, state}   1 while the keys refresh from their source
                                                  (state: healthy, unavailable, refused...)

``tessera_store_up`` is the observer's gauge; the fleet's circuit breaker sets it too, so a store
that could not be reached at start reads 0 from the beginning and 1 again as soon as the key
refresher's probe reaches it. With ``--workers`` (multiprocess metrics) each worker's
operations set it, as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..extras import missing

try:
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector
except ModuleNotFoundError as e:  # an extra of the distribution
    raise missing(e) from None

from .cli import key_source_up

if TYPE_CHECKING:
    from ..observe.exporter import MetricsExporter
    from .cli import FleetRuntime


class _KeySourceCollector(Collector):
    def __init__(self, runtime: FleetRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[GaugeMetricFamily]:
        found = key_source_up(self.runtime.keyring)
        if found is None:
            return
        source, state, up = found
        gauge = GaugeMetricFamily(
            "tessera_ticket_key_source_up",
            "1 while the fleet's ticket keys refresh from their source",
            labels=["source", "state"],
        )
        gauge.add_metric([source, state], 1.0 if up else 0.0)
        yield gauge


def register(exporter: MetricsExporter, runtime: FleetRuntime) -> None:
    """Add the fleet's metrics to ``exporter`` (made before the configuration)."""
    exporter.registry.register(_KeySourceCollector(runtime))
    if exporter.directory is None and runtime.target is not None:
        gauge = exporter.observer.store_up
        gauge.set(1 if runtime.breaker.health().up else 0)
        runtime.breaker.on_change = lambda up: gauge.set(1 if up else 0)

"""``tessera keys sync --metrics HOST:PORT``: the agent's state for Prometheus, read at scrape time.

::

    tessera_keys_sync_last_success_timestamp_seconds   the last pass that left every target,
                                                       HAProxy and command in step (0: never)
    tessera_keys_sync_source_up                        1 while the fleet's keys refresh from Redis
    tessera_keys_sync_last_refresh_timestamp_seconds   the last refresh that worked
    tessera_keys_sync_key_age_seconds{target, key, local}
                                                       the key each target encrypts with: its age
                                                       (key: the first 8 hex digits of its name;
                                                       local="1": no fleet key may encrypt)
    tessera_keys_sync_done_total{action, target}       writes, HAProxy syncs, commands that worked
    tessera_keys_sync_failures_total{action, target}   and those that failed (each retried)
    tessera_keys_sync_failing{action, target}          1 while one is failing (retry pending)
    tessera_ticket_keys{state}, tessera_ticket_key_age_seconds{key, state},
    tessera_ticket_key_rotation_seconds                the fleet's keys, as a node exports them
"""

from __future__ import annotations

from collections.abc import Iterator

from ...extras import missing

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ModuleNotFoundError as e:  # an extra of the distribution
    raise missing(e) from None

from ...observe.metrics import register_keyring
from .agent import SyncAgent


class SyncCollector(Collector):
    def __init__(self, agent: SyncAgent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        agent = self.agent
        keyring = agent.keyring
        now = agent.clock()
        yield _gauge(
            "last_success_timestamp_seconds",
            "When a pass last left every target in step (0: never)",
            agent.last_sync,
        )
        up = 1.0 if keyring.last_refresh and not keyring.source_error else 0.0
        yield _gauge("source_up", "1 while the fleet's keys are refreshed from Redis", up)
        yield _gauge("last_refresh_timestamp_seconds",
                     "When the fleet's keys were last refreshed", keyring.last_refresh)  # fmt: skip
        age = GaugeMetricFamily(
            "tessera_keys_sync_key_age_seconds",
            "Age of the key each target encrypts with (local=1: a local key, no fleet key may)",
            labels=["target", "key", "local"],
        )
        for label, (key, local) in list(agent.written.items()):
            age.add_metric(
                [label, key.name.hex()[:8], str(int(local))], max(0.0, now - key.created)
            )
        yield age
        done = CounterMetricFamily("tessera_keys_sync_done", "Actions that worked",
                                   labels=["action", "target"])  # fmt: skip
        failed = CounterMetricFamily("tessera_keys_sync_failures", "Actions that failed (retried)",
                                     labels=["action", "target"])  # fmt: skip
        failing = GaugeMetricFamily("tessera_keys_sync_failing",
                                    "1 while an action fails and waits for its retry",
                                    labels=["action", "target"])  # fmt: skip
        for a in agent.actions():
            done.add_metric([a.kind, a.label], a.done)
            failed.add_metric([a.kind, a.label], a.total_failures)
            failing.add_metric([a.kind, a.label], 1.0 if a.failures else 0.0)
        yield from (done, failed, failing)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(f"tessera_keys_sync_{name}", doc)
    g.add_metric([], value)
    return g


def registry_for(agent: SyncAgent) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(SyncCollector(agent))
    register_keyring(registry, agent.keyring, agent.clock)
    return registry


def serve_metrics(agent: SyncAgent, address: tuple[str, int]) -> tuple[str, int]:
    """Serve ``/metrics`` from a daemon thread; the bound address."""
    server, _ = prometheus_client.start_http_server(
        address[1], addr=address[0], registry=registry_for(agent)
    )
    host, port = server.server_address[:2]
    return str(host), int(port)

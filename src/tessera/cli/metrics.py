"""``--metrics HOST:PORT`` for ``tessera serve`` and ``tessera proxy``: the option and the few
calls a command makes (see :mod:`tessera.observe.exporter` for the multiprocess mode).

prometheus-client (the ``metrics`` extra) is imported only when ``--metrics`` is given."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..addresses import parse_address
from ..fleet import supervisor

if TYPE_CHECKING:
    from ..fleet.cli import FleetRuntime
    from ..observe.exporter import MetricsExporter
    from ..observe.facts import ResumptionObserver
    from ..session.resumption.awaited import AsyncSessionStore
    from ..session.store import SessionStore


def address_option(value: str, option: str) -> tuple[str, int]:
    try:
        return parse_address(value, option)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=option) from None


def exporter_for(spec: str | None, runtime: FleetRuntime) -> MetricsExporter | None:
    """The exporter for ``--metrics`` (None without it); make it before the configuration, so
    that with ``--workers`` the metrics are made in multiprocess mode."""
    if spec is None:
        return None
    address = address_option(spec, "--metrics")
    from ..fleet import metrics as fleet_metrics  # (the metrics extra: only with --metrics)
    from ..observe.exporter import MetricsExporter

    refresher = runtime.refresher
    exporter = MetricsExporter(
        address, workers=runtime.opts.workers,
        keyring=runtime.keyring,
        refresh_keys=refresher.refresh_once if refresher is not None else None,
    )  # fmt: skip
    fleet_metrics.register(exporter, runtime)
    return exporter


def observers(exporter: MetricsExporter | None) -> tuple[ResumptionObserver, ...]:
    return () if exporter is None else (exporter.observer,)


def instrumented(exporter: MetricsExporter | None, store: SessionStore) -> SessionStore:
    """``store`` counted and timed when there are metrics (a wrapper with its methods)."""
    return store if exporter is None else exporter.observer.instrument(store)


def instrumented_async(exporter: MetricsExporter | None,
                       store: AsyncSessionStore) -> AsyncSessionStore:  # fmt: skip
    """The same for an async store."""
    return store if exporter is None else exporter.observer.instrument(store)


def in_worker(exporter: MetricsExporter | None) -> None:
    """Called where a server is made: in a forked worker, drop the supervisor's endpoint."""
    if exporter is not None and supervisor.WORKER is not None:
        exporter.in_worker()

"""``--metrics HOST:PORT``: serve a :class:`~.metrics.PrometheusObserver` over HTTP, for one
process or for a ``--workers`` supervisor and its workers.

One process: prometheus-client's HTTP server (a thread) serves the observer's own registry.

Workers (prometheus-client's *multiprocess mode*): before the observer is made, the supervisor
creates a temporary directory and sets ``PROMETHEUS_MULTIPROC_DIR``; every worker then writes
its counters, histograms and gauges to files of its own there (an mmap per process), and the
supervisor alone serves ``/metrics`` with a ``MultiProcessCollector`` that adds them up. Gauges
count live processes only (``tessera_connections_active`` is the sum, ``tessera_store_up`` the
lowest); a worker that died is dropped from them at the next scrape. The directory is removed
when the supervisor stops.

Ticket key gauges are not per process: they are read at scrape time from the supervisor's
keyring, which is the fleet's keyring. Without Redis the supervisor owns the keys (it mints them
and hands them to the workers before they encrypt), so its view is exact. With Redis each worker
follows Redis on its own, and the supervisor refreshes its view from Redis at each scrape (bounded
by the Redis timeout): every process holds the same keys by the fleet's publish-before-use rule,
within one refresh interval.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from ..extras import missing

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, multiprocess, values
except ModuleNotFoundError as e:  # an extra of the distribution
    raise missing(e) from None

from ..session.keyring import TicketKeySource
from .metrics import PrometheusObserver, register_keyring

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE = re.compile(r"^gauge_live\w+?_(\d+)\.db$")


class MetricsExporter:
    """Metrics for a server of ``workers`` processes, served on ``address`` once started."""

    def __init__(
        self,
        address: tuple[str, int],
        *,
        workers: int = 1,
        keyring: TicketKeySource | None = None,
        refresh_keys: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.address = address
        self.directory: str | None = None
        if workers > 1:
            self.directory = tempfile.mkdtemp(prefix="tessera-metrics-")
            os.environ[ENV] = self.directory
            values.ValueClass = values.get_value_class()  # metrics made from now on: mmaps
        self.observer = PrometheusObserver(keyring=keyring if workers == 1 else None, clock=clock)
        if self.directory is None:
            self.registry = self.observer.registry
        else:
            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry, self.directory)
            if keyring is not None:
                register_keyring(self.registry, keyring, clock, self._before_scrape(refresh_keys))
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _before_scrape(self, refresh_keys: Callable[[], object] | None) -> Callable[[], None]:
        def before() -> None:
            self.forget_dead_workers()
            if refresh_keys is not None:
                refresh_keys()

        return before

    def start(self) -> tuple[str, int]:
        """Serve ``/metrics`` (a daemon thread); the bound address."""
        host, port = self.address
        self._server, self._thread = prometheus_client.start_http_server(
            port, addr=host, registry=self.registry
        )
        bound = self._server.server_address
        self.address = (str(bound[0]), int(bound[1]))
        return self.address

    def in_worker(self) -> None:
        """In a forked worker: let go of the supervisor's listening socket (only the supervisor
        answers scrapes)."""
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.socket.close()
            self._server = None

    def forget_dead_workers(self) -> None:
        """Drop the live gauges of processes that are gone (a worker that died and was
        replaced), as ``multiprocess.mark_process_dead`` does when told."""
        directory = self.directory
        if directory is None:
            return
        for name in os.listdir(directory):
            m = _LIVE.match(name)
            if m and not _alive(int(m.group(1))):
                multiprocess.mark_process_dead(int(m.group(1)), directory)

    def close(self) -> None:
        server = self._server
        if server is not None:
            server.shutdown()
            server.server_close()
            self._server = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            if os.environ.get(ENV) == self.directory:
                del os.environ[ENV]
                values.ValueClass = values.get_value_class()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

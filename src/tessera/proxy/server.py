"""The proxy's server: the serving engine (:mod:`tessera.io.engine`: accepting, fair slots,
timeouts, draining, signals) with a :class:`~.relay.Relay` on each client's TLS transport, and
one record per connection for the log and the metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..io.engine import Engine, EngineConnection, EngineSettings
from ..observe.logs import ConnectionRecord, peer_address
from .relay import Relay

if TYPE_CHECKING:
    from ..config import ServerConfig
    from ..observe.metrics import PrometheusObserver

log = logging.getLogger("tessera.proxy")


@dataclass(frozen=True, slots=True)
class ProxySettings:
    backend: tuple[str, int]
    proxy_protocol: bool = False  # send a PROXY v2 header to the backend first
    backend_timeout: float = 5.0  # connecting to the backend


class Backend:
    """What every relay of one proxy shares: where the backend is, and where to say it
    failed."""

    def __init__(self, settings: ProxySettings, metrics: PrometheusObserver | None) -> None:
        self.settings = settings
        self.metrics = metrics

    def failed(self, why: str) -> None:
        log.warning("%s", why)
        if self.metrics is not None:
            self.metrics.backend_failed()


def record(proto: EngineConnection, relay: Relay) -> ConnectionRecord:
    """The log record of a finished connection."""
    loop_now = proto.loop_time()
    return ConnectionRecord(
        peer=peer_address(proto.extra_info("peername")), info=proto.conn.info,
        bytes_in=relay.bytes_in, bytes_out=relay.bytes_out,
        duration=loop_now - proto.started_at, error=proto.error_text or relay.error,
        started=proto.started,
    )  # fmt: skip


def proxy_server(
    address: tuple[str, int],
    config: ServerConfig,
    engine: EngineSettings,
    proxy: ProxySettings,
    *,
    reuse_port: bool = False,
    metrics: PrometheusObserver | None = None,
    on_record: Callable[[ConnectionRecord], None] | None = None,
    reload: Callable[[], None] | None = None,
    handle_signals: bool = False,
) -> Engine:
    """An engine whose connections relay to ``proxy.backend``."""
    backend = Backend(proxy, metrics)

    def finished(proto: EngineConnection) -> None:
        relay = proto.app_protocol
        assert isinstance(relay, Relay)
        if metrics is not None:
            metrics.connection_closed(relay.bytes_in, relay.bytes_out)
        if on_record is not None and not proto.is_probe:
            on_record(record(proto, relay))

    return Engine(address, config, engine, lambda: Relay(backend), reuse_port=reuse_port,
                  metrics=metrics, on_finished=finished, reload=reload,
                  handle_signals=handle_signals)  # fmt: skip


__all__ = ["Backend", "ProxySettings", "proxy_server"]

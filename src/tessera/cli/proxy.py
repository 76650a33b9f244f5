"""``tessera proxy``: terminate TLS in front of a TCP backend, with fleet resumption, Prometheus
metrics and one log line per connection (like hitch or stunnel, on the serving engine).

click -> :class:`~.serve_config.ProxyOptions` -> :func:`~.serve_config.build_proxy_config`
-> :mod:`.runner`; what a connection does is :mod:`tessera.proxy.relay`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import click

from ..config import ServerConfig
from ..errors import ConfigError
from ..fleet.cli import FleetOptions, fleet_options
from ..io.engine import Engine
from ..observe.logs import ConnectionRecord, format_record
from ..proxy.server import ProxySettings, proxy_server
from . import runner, serving
from .command import Command, given_by_user
from .config_file import config_option
from .options import click_options, common_options, make_options
from .serve_config import ProxyOptions, build_proxy_config


@click.command(cls=Command)
@config_option("proxy")
@click_options(ProxyOptions)
@common_options
@fleet_options
def proxy(fleet: FleetOptions, **values: object) -> None:
    """Terminate TLS and relay plaintext to a TCP backend, with fleet-wide resumption.

    SIGTERM drains (no new connections; open ones finish within --drain-timeout); SIGHUP
    reloads the certificate and ticket key files without dropping connections.
    """
    logging.basicConfig(level=logging.WARNING, format="tessera proxy: %(message)s")
    opts = make_options(ProxyOptions, values, fleet=fleet)
    ctx = click.get_current_context()
    try:
        opts.check(lambda name: given_by_user(ctx, name))
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    run(opts)


def run(opts: ProxyOptions) -> None:
    """Relay until SIGINT/SIGTERM (with ``--workers``: a supervisor and its workers)."""
    prepared, config = runner.configure(
        opts, lambda loaded: build_proxy_config(opts, loaded), await_memory=True
    )
    settings = ProxySettings(opts.backend_address, opts.proxy_protocol, opts.backend_timeout)
    on_record = None if opts.quiet else record_writer(opts.log_format)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def make_engine(address: runner.Address, reuse_port: bool, say: runner.Say) -> Engine:
        exporter = prepared.exporter
        return proxy_server(address, config, opts.engine, settings, reuse_port=reuse_port,
                            metrics=exporter.observer if exporter is not None else None,
                            on_record=on_record, handle_signals=True)  # fmt: skip

    runner.name_program("tessera proxy")
    engine = runner.run(
        opts, prepared, config, opts.listen_address, make_engine,
        lambda address: banner(config, opts, prepared, settings, address), say,
    )  # fmt: skip
    runner.stopped_by_ctrl_c(engine)


def record_writer(fmt: str) -> Callable[[ConnectionRecord], None]:
    def write(record: ConnectionRecord) -> None:
        sys.stdout.write(format_record(record, fmt) + "\n")
        sys.stdout.flush()

    return write


def banner(config: ServerConfig, opts: ProxyOptions, prepared: runner.Prepared,
           settings: ProxySettings, address: runner.Address) -> list[str]:  # fmt: skip
    """What the proxy says at start: serve's banner lines, with the proxy's own first and
    last lines."""
    lines = serving.banner(config, prepared.files, "proxy", address, opts.ticket_rotation,
                           opts.ticket_keep, None)  # fmt: skip
    lines = [
        line.replace("; --save-cert FILE writes them for tessera connect --ca FILE", "")
        for line in lines
    ]
    versions = ", ".join(v.label for v in config.versions if config.suites_for(v))
    host, port = settings.backend
    pp = " (PROXY protocol v2)" if settings.proxy_protocol else ""
    lines[0] = (f"tessera proxy: {address[0]}:{address[1]} ({versions}) -> {host}:{port}{pp}; "
                f"at most {opts.max_connections} connections")  # fmt: skip
    lines[-1] = (f"signals: TERM drains (up to {opts.drain_timeout:g} s), HUP reloads "
                 "certificate and ticket key files; INT stops")  # fmt: skip
    return lines

"""``tessera serve``: a TLS server with resumption on (like ``openssl s_server``).

click -> :class:`~.serve_config.ServeOptions` -> :func:`~.serve_config.build_server_config`
-> :func:`run` on the serving engine (:mod:`tessera.io.engine`); what a connection does is in
:mod:`.www`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any

import click
from rich.console import Console

from ..config import ServerConfig
from ..errors import ConfigError, TLSError
from ..fleet.cli import FleetOptions, FleetRuntime, fleet_options
from ..io.engine import Engine, EngineConnection, EngineSettings
from ..observe.exporter import MetricsExporter
from ..session.awaited import AsyncMemoryStore
from ..session.keyring import KeyFileFormat, TicketKeyring
from ..session.store import MemoryStore
from . import metrics as metrics_cli
from . import serving
from .options import common_options, engine_options, keylog_option, read_password
from .serve_config import ServeOptions, build_server_config, click_options
from .www import Echo, Site, Www

err = Console(stderr=True, highlight=False, soft_wrap=True)  # log lines stay whole


@click.command()
@click_options(ServeOptions)
@engine_options
@common_options
@fleet_options
def serve(engine: EngineSettings, fleet: FleetOptions, **values: Any) -> None:
    """Run a TLS server with session resumption on (session cache and tickets).

    SIGHUP reloads the certificate, ticket key and client CA files for new connections;
    Ctrl-C prints the final statistics and exits with status 130.
    """
    logging.basicConfig(level=logging.WARNING, format="tessera: %(message)s")
    opts = ServeOptions(engine=engine, fleet=fleet, **values)
    ctx = click.get_current_context()
    try:
        opts.check(lambda n: ctx.get_parameter_source(n) is click.core.ParameterSource.COMMANDLINE)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    run(opts)


def _files(opts: ServeOptions) -> serving.ServeFiles:
    return serving.ServeFiles(opts.certs, opts.keys, read_password(opts.password),
                              opts.ticket_keys, KeyFileFormat(opts.ticket_key_format),
                              opts.client_ca)  # fmt: skip


def _keyring(opts: ServeOptions, files: serving.ServeFiles) -> TicketKeyring | None:
    if opts.ticket_keys:
        return serving.file_keyring(files)
    if opts.no_ticket:
        return None
    return TicketKeyring(rotation_interval=opts.ticket_rotation, keep=opts.ticket_keep)


def prepare(opts: ServeOptions, files: serving.ServeFiles
            ) -> tuple[ServerConfig, FleetRuntime, MetricsExporter | None]:  # fmt: skip
    """Load the files, make the fleet runtime and the metrics, build the configuration."""
    certificates = serving.load_certificates(files)
    serving.check_client_ca(opts.client_ca)
    runtime = FleetRuntime(opts.fleet, _keyring(opts, files), generated_keys=not opts.ticket_keys,
                           rotation=opts.ticket_rotation, keep=opts.ticket_keep)  # fmt: skip
    exporter = metrics_cli.exporter_for(opts.metrics, runtime)
    memory = None if opts.no_cache else MemoryStore(opts.cache_size)
    shared = runtime.async_session_store() if memory is not None else None
    store: Any = memory
    if shared is not None:  # Redis: awaited by the engine, never called on the loop thread
        store = metrics_cli.instrumented(exporter, shared)
    elif memory is not None and exporter is not None:  # metered memory: answered at once
        store = AsyncMemoryStore(metrics_cli.instrumented(exporter, memory))
    config = build_server_config(
        opts, certificates, keyring=runtime.keyring, store=store,
        observers=metrics_cli.observers(exporter), keylog=keylog_option(opts.keylogfile),
    )  # fmt: skip
    if store is not memory:
        config = _external(config)
    if opts.save_cert:
        serving.save_certificates(opts.save_cert, certificates)
    return config, runtime, exporter


def _external(config: ServerConfig) -> ServerConfig:
    import dataclasses

    return dataclasses.replace(config, external_session_lookup=True)


def run(opts: ServeOptions) -> None:
    """Serve until SIGINT/SIGTERM (with ``--workers``: a supervisor and its workers)."""
    files = _files(opts)
    try:
        config, runtime, exporter = prepare(opts, files)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            err.print(line, markup=False)

    servers: list[Engine] = []  # this process's engine (a worker's, after the fork)
    site = Site(config=lambda: servers[0].config if servers else config,
                log=None if opts.quiet else say, say=say,
                client_cert_paths=opts.client_cert_paths,
                handshake_timeout=opts.engine.handshake_timeout or 30.0)  # fmt: skip
    app = (lambda: Www(site)) if opts.www else (lambda: Echo(site))

    def finished(proto: EngineConnection) -> None:
        if exporter is not None:
            exporter.observer.connection_closed()
        error = proto.error
        if proto.is_probe or error is None or proto.bytes_received == 0:
            return
        if not proto.handshake_complete and not opts.quiet:
            peer = serving.peer_text(proto.extra_info("peername"))
            say(f"{serving.timestamp()} {peer}: handshake failed: {error}")

    def make_server(address: tuple[str, int], reuse_port: bool) -> Engine:
        metrics_cli.in_worker(exporter)
        made = Engine(address, config, opts.engine, app, reuse_port=reuse_port,
                      metrics=exporter.observer if exporter is not None else None,
                      on_finished=finished, handle_signals=True,
                      reload=lambda: serving.reload(made, files, say))  # fmt: skip
        servers[:] = [made]
        return made

    server = runtime.server(make_server, (opts.host, opts.port),
                            grace=opts.engine.drain_timeout + 2.0)  # fmt: skip
    if exporter is not None:
        exporter.start()
        say(f"metrics: http://{exporter.address[0]}:{exporter.address[1]}/metrics")
    banner = serving.banner(config, files, opts.mode, server.address, opts.ticket_rotation,
                            opts.ticket_keep, opts.save_cert)  # fmt: skip
    for line in banner + runtime.banner_lines():
        say(line)
    sys.stderr.flush()
    if not servers:
        _supervisor_signals(server)
    try:
        server.serve_forever()
    except TLSError as e:
        raise click.ClickException(str(e)) from None
    finally:
        if exporter is not None:
            exporter.close()
    if servers:  # (a supervisor's workers print their own)
        with lock:
            err.print(serving.final_statistics(servers[0].config.statistics))
        if servers[0].stopped_by == signal.SIGINT:
            sys.exit(130)  # as a shell reports a program ended by Ctrl-C


def _supervisor_signals(server: Any) -> None:
    """A supervisor stops its workers on SIGINT/SIGTERM and passes SIGHUP on to them."""

    def stop(signum: int, frame: object) -> None:
        server.shutdown()

    def hangup(signum: int, frame: object) -> None:
        for pid in server.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hangup)

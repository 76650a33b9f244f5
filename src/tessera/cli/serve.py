"""``tessera serve``: a TLS server with resumption on (like ``openssl s_server``).

click -> :class:`~.serve_config.ServeOptions` -> :func:`~.serve_config.build_server_config`
-> :mod:`.runner` on the serving engine (:mod:`tessera.io.engine`); what a connection does is
in :mod:`.www`.
"""

from __future__ import annotations

import logging
import threading

import click
from rich.console import Console

from ..errors import ConfigError
from ..fleet.cli import FleetOptions, fleet_options
from ..io.engine import Engine, EngineConnection
from . import runner, serving
from .command import Command, given_by_user
from .config_file import config_option
from .options import click_options, common_options, make_options
from .serve_config import ServeOptions, build_server_config
from .www import Echo, Site, Www

err = Console(stderr=True, highlight=False, soft_wrap=True)  # log lines stay whole


@click.command(cls=Command)
@config_option("serve")
@click_options(ServeOptions)
@common_options
@fleet_options
def serve(fleet: FleetOptions, **values: object) -> None:
    """Run a TLS server with session resumption on (session cache and tickets).

    SIGHUP reloads the certificate, ticket key and client CA files for new connections;
    Ctrl-C prints the final statistics and exits with status 130.
    """
    logging.basicConfig(level=logging.WARNING, format="tessera serve: %(message)s")
    opts = make_options(ServeOptions, values, fleet=fleet)
    ctx = click.get_current_context()
    try:
        opts.check(lambda name: given_by_user(ctx, name))
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    run(opts)


def run(opts: ServeOptions) -> None:
    """Serve until SIGINT/SIGTERM (with ``--workers``: a supervisor and its workers)."""
    prepared, config = runner.configure(
        opts, lambda loaded: build_server_config(opts, loaded),
        tickets=not opts.no_ticket, cache=not opts.no_cache, early_data=opts.max_early_data,
    )  # fmt: skip
    if opts.save_cert:
        serving.save_certificates(opts.save_cert, config.certificates)
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            err.print(line, markup=False)

    def make_engine(address: runner.Address, reuse_port: bool, say: runner.Say) -> Engine:
        current: list[Engine] = []
        site = Site(config=lambda: current[0].config if current else config,
                    log=None if opts.quiet else say, say=say,
                    client_cert_paths=opts.client_cert_paths,
                    handshake_timeout=opts.handshake_timeout)  # fmt: skip
        exporter = prepared.exporter
        engine = Engine(address, config, opts.engine, (lambda: Www(site)) if opts.www
                        else (lambda: Echo(site)), reuse_port=reuse_port,
                        metrics=exporter.observer if exporter is not None else None,
                        on_finished=lambda proto: finished(proto, opts, prepared, say),
                        handle_signals=True)  # fmt: skip
        current.append(engine)
        return engine

    def banner(address: runner.Address) -> list[str]:
        return serving.banner(config, prepared.files, opts.mode, address, opts.ticket_rotation,
                              opts.ticket_keep, opts.save_cert)  # fmt: skip

    engine = runner.run(opts, prepared, config, (opts.host, opts.port), make_engine, banner, say)
    if engine is not None:  # (a supervisor's workers print their own)
        with lock:
            err.print(serving.final_statistics(engine.config.statistics))
    runner.stopped_by_ctrl_c(engine)


def finished(proto: EngineConnection, opts: ServeOptions, prepared: runner.Prepared,
             say: runner.Say) -> None:  # fmt: skip
    """A connection ended: counted; a failed handshake (not a probe) gets a line."""
    if prepared.exporter is not None:
        prepared.exporter.observer.connection_closed()
    error = proto.error
    if proto.is_probe or error is None or proto.bytes_received == 0:
        return
    if not proto.handshake_complete and not opts.quiet:
        peer = serving.peer_text(proto.extra_info("peername"))
        say(f"{serving.timestamp()} {peer}: handshake failed: {error}")

"""``tessera proxy``: terminate TLS in front of a TCP backend, with fleet resumption, Prometheus
metrics and one log line per connection (like hitch or stunnel, on asyncio)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import click

from ..config import ServerConfig
from ..errors import ConfigError, TLSError
from ..fleet.cli import FleetOptions, FleetRuntime, fleet_options
from ..observe.exporter import MetricsExporter
from ..observe.logs import ConnectionRecord, format_record
from ..proxy.server import ProxyServer, ProxySettings, loop_factory
from ..session.keyring import KeyFileFormat, TicketKeyring
from ..session.resumption.awaited import AsyncMemoryStore
from ..session.store import MemoryStore
from . import serving
from .metrics import (
    address_option,
    exporter_for,
    in_worker,
    instrumented,
    observers,
)
from .options import common_options, keylog_option, pass_option, read_password, tls_options

log = logging.getLogger("tessera.proxy")


def _options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The proxy's own options (TLS, fleet and metrics options are shared with serve)."""
    seconds = click.FloatRange(min=0, min_open=True)
    options: list[Callable[..., Any]] = [
        click.option("--listen", required=True, metavar="HOST:PORT",
                     help="Address to accept TLS clients on."),
        click.option("--backend", required=True, metavar="HOST:PORT",
                     help="Plaintext TCP backend to relay each client to."),
        click.option("--cert", "certs", multiple=True, metavar="FILE",
                     help="PEM certificate chain; repeat for several (picked by SNI, then "
                          "by key type). Default: generated, self-signed."),
        click.option("--key", "keys", multiple=True, metavar="FILE",
                     help="PEM private key per --cert."),
        pass_option,
        click.option("--proxy-protocol", is_flag=True,
                     help="Send the backend a PROXY protocol v2 header first: the client's "
                          "address, SNI, ALPN, TLS version and cipher (as hitch does)."),
        click.option("--ticket-keys", multiple=True, metavar="FILE",
                     type=click.Path(exists=True, dir_okay=False),
                     help="Ticket key file; repeat it: the first encrypts, the others only "
                          "decrypt. Reloaded on SIGHUP. Default: rotating keys in memory "
                          "(with --redis or --workers: the fleet's)."),
        click.option("--ticket-key-format", default="native", show_default=True,
                     type=click.Choice([f.value for f in KeyFileFormat]),
                     help="Byte layout of --ticket-keys."),
        click.option("--ticket-rotation", default=3600.0, show_default=True, type=seconds,
                     help="Seconds between ticket key rotations (generated keys)."),
        click.option("--ticket-keep", default=2, show_default=True,
                     type=click.IntRange(min=0),
                     help="Old ticket keys kept for decryption (generated keys)."),
        click.option("--cache-size", default=20000, show_default=True,
                     type=click.IntRange(min=1),
                     help="Sessions kept in memory (without --redis)."),
        click.option("--session-timeout", default=300.0, show_default=True, type=seconds,
                     help="Seconds a session stays resumable."),
        click.option("--max-connections", default=1000, show_default=True,
                     type=click.IntRange(min=1),
                     help="Clients served at once (per worker); more wait in the accept "
                          "queue."),
        click.option("--handshake-timeout", default=10.0, show_default=True, type=seconds,
                     help="Seconds a client may take to complete the handshake."),
        click.option("--idle-timeout", default=300.0, show_default=True, type=seconds,
                     help="Seconds a connection may pass no data either way."),
        click.option("--backend-timeout", default=5.0, show_default=True, type=seconds,
                     help="Seconds to connect to the backend."),
        click.option("--drain-timeout", default=30.0, show_default=True,
                     type=click.FloatRange(min=0),
                     help="On SIGTERM: seconds open connections may take to finish."),
        click.option("--metrics", metavar="HOST:PORT",
                     help="Serve Prometheus metrics at http://HOST:PORT/metrics."),
        click.option("--log-format", default="text", show_default=True,
                     type=click.Choice(["text", "json"]),
                     help="One line per connection on stdout, as text or JSON."),
        click.option("-q", "--quiet", is_flag=True, help="No line per connection."),
        click.option("--loop", "loop_name", default="auto", show_default=True,
                     type=click.Choice(["auto", "asyncio", "uvloop"]),
                     help="Event loop: uvloop when installed (auto), or asyncio's."),
    ]  # fmt: skip
    for opt in reversed(options):
        f = opt(f)
    return f


@click.command()
@_options
@common_options
@fleet_options
def proxy(
    listen: str,
    backend: str,
    certs: tuple[str, ...],
    keys: tuple[str, ...],
    password: str | None,
    proxy_protocol: bool,
    ticket_keys: tuple[str, ...],
    ticket_key_format: str,
    ticket_rotation: float,
    ticket_keep: int,
    cache_size: int,
    session_timeout: float,
    max_connections: int,
    handshake_timeout: float,
    idle_timeout: float,
    backend_timeout: float,
    drain_timeout: float,
    metrics: str | None,
    log_format: str,
    quiet: bool,
    loop_name: str,
    tls1_2: bool,
    tls1_3: bool,
    ciphers: str | None,
    ciphersuites: str | None,
    groups: str | None,
    sigalgs: str | None,
    alpn: str | None,
    keylogfile: str | None,
    fleet: FleetOptions,
) -> None:
    """Terminate TLS and relay plaintext to a TCP backend, with fleet-wide resumption.

    SIGTERM drains (no new connections; open ones finish within --drain-timeout); SIGHUP
    reloads the certificate and ticket key files without dropping connections.
    """
    logging.basicConfig(level=logging.WARNING, format="tessera proxy: %(message)s")
    address = address_option(listen, "--listen")
    settings = ProxySettings(
        backend=address_option(backend, "--backend"), proxy_protocol=proxy_protocol,
        max_connections=max_connections, handshake_timeout=handshake_timeout,
        idle_timeout=idle_timeout, backend_timeout=backend_timeout,
        drain_timeout=drain_timeout, shutdown_timeout=min(10.0, drain_timeout or 10.0),
        loop=loop_name,
    )  # fmt: skip
    files = serving.ServeFiles(certs, keys, read_password(password), ticket_keys,
                               KeyFileFormat(ticket_key_format), None)  # fmt: skip
    ctx = click.get_current_context()
    given = click.core.ParameterSource.COMMANDLINE
    if ticket_keys and any(
        ctx.get_parameter_source(n) is given for n in ("ticket_rotation", "ticket_keep")
    ):
        raise click.UsageError("--ticket-rotation/--ticket-keep apply to generated keys, "
                               "not to --ticket-keys files")  # fmt: skip
    exporter = None
    try:
        loop_factory(loop_name)
        certificates = serving.load_certificates(files)
        keyring = (
            serving.file_keyring(files)
            if ticket_keys
            else TicketKeyring(rotation_interval=ticket_rotation, keep=ticket_keep)
        )
        runtime = FleetRuntime(fleet, keyring, generated_keys=not ticket_keys,
                               rotation=ticket_rotation, keep=ticket_keep)  # fmt: skip
        exporter = exporter_for(metrics, runtime)
        config = ServerConfig(
            certificates=certificates,
            async_session_store=_store(runtime, cache_size, exporter),
            session_timeout=session_timeout,
            ticket_keyring=runtime.keyring,
            observers=observers(exporter),
            keylog=keylog_option(keylogfile),
            **tls_options(tls1_2, tls1_3, ciphers, ciphersuites, groups, sigalgs, alpn),
        )
    except ConfigError as e:
        if exporter is not None:
            exporter.close()
        raise click.UsageError(str(e)) from None
    try:
        _run(address, config, settings, files, runtime, exporter,
             None if quiet else log_format, (ticket_rotation, ticket_keep, cache_size))  # fmt: skip
    finally:
        if exporter is not None:
            exporter.close()


def _store(runtime: FleetRuntime, cache_size: int, exporter: MetricsExporter | None) -> Any:
    """Redis behind a circuit breaker, or memory; metered when there are metrics."""
    shared = runtime.async_session_store()
    if shared is not None:
        return instrumented(exporter, shared)
    # answered inline (memory never blocks the loop)
    return AsyncMemoryStore(instrumented(exporter, MemoryStore(cache_size)))


def _record_writer(fmt: str | None) -> Callable[[ConnectionRecord], None] | None:
    if fmt is None:
        return None

    def write(record: ConnectionRecord) -> None:
        sys.stdout.write(format_record(record, fmt) + "\n")
        sys.stdout.flush()

    return write


def _run(address: tuple[str, int], config: ServerConfig, settings: ProxySettings,
         files: serving.ServeFiles, runtime: FleetRuntime, exporter: MetricsExporter | None,
         log_format: str | None, schedule: tuple[float, int, int]) -> None:  # fmt: skip
    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    servers: list[ProxyServer] = []  # this process's server (a worker's, after the fork)

    def make_server(addr: tuple[str, int], reuse_port: bool) -> ProxyServer:
        in_worker(exporter)
        current = servers[0].config if servers else config
        made = ProxyServer(
            addr, current, settings, reuse_port=reuse_port,
            metrics=exporter.observer if exporter is not None else None,
            on_record=_record_writer(log_format), handle_signals=True,
            reload=lambda: serving.reload(made, files, say),
        )  # fmt: skip
        servers[:] = [made]
        return made

    server = runtime.server(make_server, address, grace=settings.drain_timeout + 2.0)
    if exporter is not None:
        exporter.start()
    for line in banner(config, files, settings, server.address, exporter, runtime, schedule):
        say(line)
    if not servers:  # a supervisor: it stops and reloads its workers
        _supervisor_signals(server)
    try:
        server.serve_forever()
    except TLSError as e:
        raise click.ClickException(str(e)) from None
    if servers and servers[0].stopped_by == signal.SIGINT:
        sys.exit(130)


def _supervisor_signals(server: Any) -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        server.shutdown()

    def hangup(signum: int, frame: FrameType | None) -> None:
        for pid in server.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hangup)


def banner(config: ServerConfig, files: serving.ServeFiles, settings: ProxySettings,
           address: tuple[str, int], exporter: MetricsExporter | None,
           runtime: FleetRuntime, schedule: tuple[float, int, int]) -> list[str]:  # fmt: skip
    """What the proxy says at start: serve's banner lines, with the proxy's own first and
    last lines."""
    lines = serving.banner(config, files, "proxy", address, schedule[0], schedule[1], None)
    where = "Redis" if runtime.guarded is not None else f"cache of {schedule[2]}"
    lines = [
        line.replace("cache of ?", where).replace(
            "; --save-cert FILE writes them for tessera connect --ca FILE", ""
        )
        for line in lines
    ]
    versions = ", ".join(v.label for v in config.versions if config.suites_for(v))
    host, port = settings.backend
    pp = " (PROXY protocol v2)" if settings.proxy_protocol else ""
    lines[0] = (f"tessera proxy: {address[0]}:{address[1]} ({versions}) -> {host}:{port}{pp}; "
                f"at most {settings.max_connections} connections")  # fmt: skip
    lines[-1] = (f"signals: TERM drains (up to {settings.drain_timeout:g} s), HUP reloads "
                 "certificate and ticket key files; INT stops")  # fmt: skip
    if exporter is not None:
        mode = " (multiprocess)" if exporter.directory else ""
        lines.append(f"metrics: http://{exporter.address[0]}:{exporter.address[1]}/metrics{mode}")
    return lines + runtime.banner_lines()

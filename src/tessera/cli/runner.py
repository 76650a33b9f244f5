"""The runner of ``tessera serve`` and ``tessera proxy``: load what the options name, make the
fleet runtime, the metrics and the session store, then run the serving engine (or a supervisor
of worker processes running it) until a signal stops it.

What differs between the two commands — their configuration (``build_*_config``), what a
connection does, the banner — is passed in; everything here is done the same way for both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, cast

import click

from ..addresses import describe_os_error
from ..errors import ConfigError, TLSError
from ..fleet import supervisor
from ..fleet.cli import FleetRuntime
from ..io.engine import Engine, loop_factory
from ..session.keyring import TicketKeyring
from ..session.resumption.awaited import AsyncMemoryStore, AsyncSessionStore
from ..session.store import MemoryStore
from . import metrics as metrics_cli
from . import serving
from .options import keylog_option, read_password
from .serve_config import Loaded, ServerOptions, in_option_words

if TYPE_CHECKING:
    from ..config import ServerConfig
    from ..observe.exporter import MetricsExporter

Address = tuple[str, int]
Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a command loaded and made before its configuration is built."""

    files: serving.ServeFiles
    loaded: Loaded
    runtime: FleetRuntime
    exporter: MetricsExporter | None
    early_data: int = 0  # the 0-RTT limit asked for (the fleet may refuse it: banner)


def prepare(opts: ServerOptions, *, tickets: bool = True, cache: bool = True,
            await_memory: bool = False, early_data: int = 0) -> Prepared:  # fmt: skip
    """Load the certificates and ticket key files, make the keyring (generated keys unless
    ``tickets`` is False), the fleet runtime, the metrics exporter and the session store:
    Redis when the fleet has it, else memory (none without ``cache``; with workers sharing
    keys, the supervisor's 0-RTT strike register in front of it). A store the engine must
    await or answer through the async adapter (Redis, a metered or shared-register store, or
    memory when ``await_memory``) says so in ``loaded.awaited``. ``early_data``: the 0-RTT
    limit asked for; ``loaded.early_data`` says whether the fleet allows it (a strike register
    shared as widely as the ticket keys). Raises ConfigError."""
    loop_factory(opts.loop)  # --loop uvloop without uvloop: say so now
    files = dataclasses.replace(opts.files(), password=read_password(opts.password))
    certificates = serving.load_certificates(files)
    serving.check_client_ca(files.client_ca)
    keyring: TicketKeyring | None = None
    if opts.ticket_keys:
        keyring = serving.file_keyring(files)
    elif tickets:
        keyring = TicketKeyring(rotation_interval=opts.ticket_rotation, keep=opts.ticket_keep)
    runtime = FleetRuntime(opts.fleet, keyring, generated_keys=not opts.ticket_keys,
                           rotation=opts.ticket_rotation, keep=opts.ticket_keep)  # fmt: skip
    exporter = metrics_cli.exporter_for(opts.metrics, runtime)
    shared = runtime.async_session_store() if cache else None
    memory = None  # memory (and the supervisor's 0-RTT register in front of it, if any)
    if cache and shared is None:
        memory = runtime.session_store(MemoryStore(opts.cache_size))
    awaited: AsyncSessionStore | None = None
    if shared is not None:  # Redis: awaited by the engine, never called on the loop thread
        awaited = metrics_cli.instrumented_async(exporter, shared)
    elif memory is not None and (
        exporter is not None or await_memory or not isinstance(memory, MemoryStore)
    ):  # answered at once through the async adapter (the register's answer is local IPC)
        awaited = AsyncMemoryStore(metrics_cli.instrumented(exporter, memory))
    loaded = Loaded(
        certificates, runtime.keyring, memory if awaited is None else None,
        metrics_cli.observers(exporter), keylog_option(opts.keylogfile), awaited,
        early_data=bool(runtime.early_data(early_data)),
    )  # fmt: skip
    return Prepared(files, loaded, runtime, exporter, early_data)


def configure(opts: ServerOptions, build: Callable[[Loaded], ServerConfig], *,
              tickets: bool = True, cache: bool = True, await_memory: bool = False,
              early_data: int = 0) -> tuple[Prepared, ServerConfig]:  # fmt: skip
    """:func:`prepare`, then ``build`` the configuration; a ConfigError is said as a usage
    error (in the options' words)."""
    try:
        prepared = prepare(opts, tickets=tickets, cache=cache, await_memory=await_memory,
                           early_data=early_data)  # fmt: skip
    except ConfigError as e:
        raise click.UsageError(in_option_words(str(e))) from None
    try:
        return prepared, build(prepared.loaded)
    except ConfigError as e:
        if prepared.exporter is not None:
            prepared.exporter.close()
        raise click.UsageError(in_option_words(str(e))) from None


def run(
    opts: ServerOptions,
    prepared: Prepared,
    config: ServerConfig,
    address: Address,
    make_engine: Callable[[Address, bool, Say], Engine],
    banner: Callable[[Address], list[str]],
    say: Say,
) -> Engine | None:
    """Serve until SIGINT/SIGTERM: this process's engine, or with ``--workers`` a supervisor
    of worker processes each running one. Returns this process's engine (None in a
    supervisor)."""
    exporter = prepared.exporter
    servers: list[Engine] = []  # this process's engine (a worker's, after the fork)

    def make_server(addr: Address, reuse_port: bool) -> Engine:
        metrics_cli.in_worker(exporter)
        made = make_engine(addr, reuse_port, say)
        made.reload = lambda: serving.reload(made, prepared.files, say)
        servers[:] = [made]
        return made

    try:
        try:
            server = prepared.runtime.server(make_server, address, grace=opts.drain_timeout + 2.0)
        except OSError as e:  # the listening address (the port in use, not this machine's...)
            raise click.ClickException(f"{address[0]}:{address[1]}: {describe_os_error(e)}") \
                from None  # fmt: skip
        if exporter is not None:
            try:
                exporter.start()
            except OSError as e:
                host, port = exporter.address
                raise click.ClickException(f"--metrics {host}:{port}: {describe_os_error(e)}") \
                    from None  # fmt: skip
            mode = " (multiprocess)" if exporter.directory else ""
            say(f"metrics: http://{exporter.address[0]}:{exporter.address[1]}/metrics{mode}")
        for line in banner(server.address) + prepared.runtime.banner_lines(prepared.early_data):
            say(line)
        sys.stderr.flush()
        if not servers:  # a supervisor: it stops and reloads its workers
            _supervisor_signals(server)
        server.serve_forever()
    except TLSError as e:
        raise click.ClickException(str(e)) from None
    finally:
        if exporter is not None:
            exporter.close()
    return servers[0] if servers else None


def stopped_by_ctrl_c(engine: Engine | None) -> None:
    """Exit with status 130 when Ctrl-C stopped ``engine``."""
    if engine is not None and engine.stopped_by == signal.SIGINT:
        sys.exit(130)  # as a shell reports a program ended by Ctrl-C


def name_program(name: str) -> None:
    """What the supervisor calls itself in its messages (``tessera serve`` unless told)."""
    supervisor.PROGRAM = name


def _supervisor_signals(server: object) -> None:
    """A supervisor stops its workers on SIGINT/SIGTERM and passes SIGHUP on to them."""
    sup = cast(supervisor.Supervisor, server)

    def stop(signum: int, frame: FrameType | None) -> None:
        sup.shutdown()

    def hangup(signum: int, frame: FrameType | None) -> None:
        for pid in sup.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, hangup)

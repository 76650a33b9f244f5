"""The serving engine of ``tessera serve`` and ``tessera proxy``: one event loop (uvloop when
installed), one listening socket, a TLS pump per connection (:mod:`.aio`), and fair slots.

Accepting: the listening socket is read by the loop; each wake-up accepts what the kernel
queued. An ``accept()`` that fails for want of a resource (EMFILE...) is counted and retried
after a back-off (5 ms doubling to 1 s); a connection that died in the queue is skipped.

Slots (what nginx's ``limit_conn`` and HAProxy's ``maxconn`` and stick tables let operators
set up by hand):

* at most ``max_connections`` connections are served at once, and at most ``max_per_client``
  from one client address: a client over its cap is closed at once (counted), so one address
  cannot take every slot;
* when every slot is taken, the connection that has been *handshaking* longest, or else the
  one *idle* longest (no complete record either way), is cut to make room for the newcomer —
  provided it has been so for ``shed_after`` seconds; when none has (every slot is busy), new
  clients wait in the kernel's accept queue until a slot frees;
* under pressure (``pressure`` of the slots taken) the handshake and idle timeouts shorten to
  ``pressure_handshake_timeout`` and ``pressure_idle_timeout``;
* a client that closes before sending a byte (a load balancer's TCP health check) is a probe:
  counted, never logged as an error.

Everything is counted in :class:`EngineStats` (and in the Prometheus metrics when given).
Stopping (:meth:`Engine.shutdown`, SIGTERM): the listening socket closes at once, open
connections finish on their own for up to ``drain_timeout`` seconds, then the rest are cut.
SIGHUP runs ``reload`` in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import signal
import socket
import threading
import time
from asyncio import selector_events
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast

from ..connection import ServerConnection
from ..errors import ConfigError, ConnectionClosedError
from ..session.resumption.awaited import close_store
from .aio import Limits, TLSProtocol
from .listen import (
    ACCEPT_CONNECTION_ERRORS,
    ACCEPT_RESOURCE_ERRORS,
    listening_socket,
    next_backoff,
)

if TYPE_CHECKING:
    from ..config import ServerConfig

log = logging.getLogger("tessera.engine")

SWEEP_INTERVAL = 0.25  # seconds between checks of the slots (timeouts under pressure, room)


class EngineMetrics(Protocol):
    """What the engine tells a metrics sink (``tessera.observe.metrics.PrometheusObserver``)."""

    def connection_opened(self) -> None: ...
    def accept_failed(self, error: str) -> None: ...
    def connection_cut(self, reason: str) -> None: ...
    def probe(self) -> None: ...


@dataclass(frozen=True, slots=True)
class EngineSettings:
    max_connections: int = 1000
    max_per_client: int | None = 100  # connections from one client address (None: no cap)
    handshake_timeout: float | None = 10.0
    idle_timeout: float | None = 300.0
    shutdown_timeout: float = 10.0  # waiting for the client's close_notify after ours
    drain_timeout: float = 30.0
    lookup_timeout: float = 1.0  # an awaited session store
    backlog: int = 1024
    loop: str = "auto"  # auto (uvloop if installed), asyncio, uvloop
    pressure: float = 0.9  # share of the slots in use from which the timeouts shorten
    pressure_handshake_timeout: float = 2.0
    pressure_idle_timeout: float = 10.0
    shed_after: float = 0.5  # handshaking or idle this long: may be cut to make room

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ConfigError("--max-connections must be at least 1")
        if self.max_per_client is not None and self.max_per_client < 1:
            raise ConfigError("--max-connections-per-client must be at least 1")
        if not 0 < self.pressure <= 1:
            raise ConfigError("the pressure threshold is a share of the slots, in (0, 1]")


@dataclass(slots=True)
class EngineStats:
    """What happened to the connections of one engine (plain counters)."""

    accepted: int = 0
    probes: int = 0  # closed by the peer before any byte: health checks
    refused_per_client: int = 0  # over --max-connections-per-client
    shed_handshaking: int = 0  # cut to make room: handshaking longest
    shed_idle: int = 0  # cut to make room: idle longest
    timed_out_under_pressure: int = 0
    accept_errors: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def count(self, reason: str) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop to run on: uvloop when installed (``auto``) or asked for."""
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise ConfigError(
                    "--loop uvloop needs the uvloop package (pip install uvloop)"
                ) from None
        else:
            return uvloop.new_event_loop
    return asyncio.SelectorEventLoop


def raise_descriptor_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (as nginx's
    ``worker_rlimit_nofile``): a server holds one descriptor per connection. The new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
    return soft


class MakeTransport(Protocol):
    def __call__(self, sock: socket.socket, protocol: asyncio.BaseProtocol, *,
                 extra: dict[str, object]) -> object: ...  # fmt: skip


def transport_maker(loop: asyncio.AbstractEventLoop) -> MakeTransport | None:
    """How asyncio's own loop wraps a socket it accepted (``_make_socket_transport``: what its
    servers call, without the task, future and three callbacks per connection that
    ``connect_accepted_socket`` adds around it); None for other loops (uvloop), which get
    ``connect_accepted_socket``."""
    if not isinstance(loop, selector_events.BaseSelectorEventLoop):
        return None
    make = getattr(loop, "_make_socket_transport", None)
    return cast(MakeTransport, make) if callable(make) else None


class EngineConnection(TLSProtocol):
    """The pump of one accepted client, which tells the engine how it ends."""

    nodelay_by_loop = True  # (listening_socket: IPPROTO_TCP; tests/proxy/test_latency.py)

    def __init__(self, engine: Engine, host: str, limits: Limits) -> None:
        super().__init__(ServerConnection(engine.config), engine.app_factory(), None, limits)
        self.engine = engine
        self.host = host
        self.started = time.time()
        self.started_at = engine.loop_time()  # loop time
        self.cut_reason: str | None = None  # why the engine cut it, if it did

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.cut_reason is not None:  # cut before the loop made its transport
            cast(asyncio.Transport, transport).abort()
            return
        super().connection_made(transport)

    def ended(self) -> None:
        self.engine.finished(self)

    def loop_time(self) -> float:
        return self.engine.loop_time()

    @property
    def is_probe(self) -> bool:
        """Closed by the peer before it sent a byte (a TCP health check)."""
        error = self.error
        return (
            self.bytes_received == 0
            and self.cut_reason is None
            and isinstance(error, ConnectionClosedError)
        )

    @property
    def error_text(self) -> str | None:
        if self.cut_reason is not None:
            return f"cut: {self.cut_reason}"
        error = self.error
        return None if error is None else f"{type(error).__name__}: {error}"

    def cut(self, reason: str) -> None:
        """End it now to free its slot: close_notify if the handshake is over, then close."""
        self.cut_reason = reason
        self.close_now()


AppFactory = Callable[[], asyncio.BaseProtocol]


class Engine:
    """A TLS server on one event loop. Looks like a server to ``tessera.fleet.supervisor``
    (``address``, ``serve_forever``, ``shutdown``); ``config`` may be replaced at any time (new
    connections use it). ``app_factory()`` makes the application protocol of each connection
    (it gets the TLS transport once the handshake completed); ``on_finished`` hears of each
    connection that ended (``is_probe`` tells a health check)."""

    def __init__(
        self,
        address: tuple[str, int],
        config: ServerConfig,
        settings: EngineSettings,
        app_factory: AppFactory,
        *,
        reuse_port: bool = False,
        metrics: EngineMetrics | None = None,
        on_finished: Callable[[EngineConnection], None] | None = None,
        reload: Callable[[], None] | None = None,
        handle_signals: bool = False,
    ) -> None:
        self.config = config
        self.settings = settings
        self.app_factory = app_factory
        self.metrics = metrics
        self.on_finished = on_finished
        self.reload = reload
        self.handle_signals = handle_signals
        self.stats = EngineStats()
        self.sock = listening_socket(address, reuse_port, settings.backlog)
        self.sock.setblocking(False)
        host, port = self.sock.getsockname()[:2]
        self.address: tuple[str, int] = (host, port)
        self.connections: set[EngineConnection] = set()
        self.per_client: dict[str, int] = {}
        self.stopped_by: int | None = None  # the signal that stopped the server, if one did
        self.limits = Limits(
            handshake_timeout=settings.handshake_timeout, idle_timeout=settings.idle_timeout,
            shutdown_timeout=settings.shutdown_timeout, lookup_timeout=settings.lookup_timeout,
        )  # fmt: skip
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self._accepting = False
        self._backoff = 0.0
        self._sweeper: asyncio.TimerHandle | None = None
        self._pressure_limits: Limits | None = None
        self._make_transport: MakeTransport | None = None

    def loop_time(self) -> float:
        loop = self._loop
        return loop.time() if loop is not None else time.monotonic()

    # -- running -------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Run the event loop until :meth:`shutdown`, then drain."""
        raise_descriptor_limit()
        with asyncio.Runner(loop_factory=loop_factory(self.settings.loop)) as runner:
            runner.run(self.serve())

    async def serve(self) -> None:
        from ..aio import prepare_server

        loop = asyncio.get_running_loop()
        self._loop = loop
        self._make_transport = transport_maker(loop)
        self._stop = asyncio.Event()
        loop.set_exception_handler(loop_error)
        self.limits.store = await prepare_server(self.config)
        if self._stop_requested.is_set():
            self._stop.set()
        handled = self._install_signals(loop)
        self._resume_accepting()
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)
        try:
            await self._stop.wait()
        finally:
            self._pause_accepting()
            if self._sweeper is not None:
                self._sweeper.cancel()
            self.sock.close()
            await self._drain()
            failure = await close_store(self.limits.store, self.settings.drain_timeout)
            if failure is not None:
                log.warning("closing the session store: %s", failure)
            for signum in handled:
                loop.remove_signal_handler(signum)

    def shutdown(self) -> None:
        """Stop accepting and drain (safe from any thread and from a signal handler)."""
        self._stop_requested.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return []
        from ..fleet import supervisor

        handled: list[int] = [signal.SIGTERM]
        if supervisor.WORKER is None:  # a worker ignores Ctrl-C: its supervisor stops it
            handled.append(signal.SIGINT)
        for signum in handled:
            loop.add_signal_handler(signum, self._signalled, signum)
        if self.reload is not None:
            loop.add_signal_handler(signal.SIGHUP, self._hangup)
            handled.append(signal.SIGHUP)
        return handled

    def _signalled(self, signum: int) -> None:
        if self.stopped_by is None:
            self.stopped_by = signum
            if self.connections and signum == signal.SIGTERM:
                log.warning("draining: %d connection(s) open, up to %g s",
                            len(self.connections), self.settings.drain_timeout)  # fmt: skip
        self.shutdown()

    def _hangup(self) -> None:
        reload = self.reload
        if reload is not None and self._loop is not None:
            self._loop.run_in_executor(None, reload)

    # -- accepting -----------------------------------------------------------------------------
    def _resume_accepting(self) -> None:
        loop = self._loop
        if self._accepting or loop is None or self.sock.fileno() < 0 or self._stopping:
            return
        self._accepting = True
        loop.add_reader(self.sock.fileno(), self._accept_ready)

    def _pause_accepting(self) -> None:
        if self._accepting and self._loop is not None:
            self._accepting = False
            self._loop.remove_reader(self.sock.fileno())

    @property
    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _accept_ready(self) -> None:
        """Accept what the kernel queued (as many as the backlog holds, at most). With every
        slot taken, each newcomer costs the connection handshaking or idle longest its slot —
        once accept() gave one (an empty queue cuts nothing), and even when the newcomer is
        then refused for its client's cap: under a hog's churn that keeps slots turning over
        and the accept queue moving, so a well-behaved client's SYN is not dropped (measured:
        p99 68-93 ms instead of 0.7-2.3 s with 10,000 idle connections and a 1,500 hog)."""
        for _ in range(self.settings.backlog):
            victim = None
            if len(self.connections) >= self.settings.max_connections:
                victim = self._victim(self.loop_time())
                if victim is None:
                    self._pause_accepting()  # the rest wait in the accept queue for a slot
                    return
            try:
                sock, peer = self.sock.accept()
            except BlockingIOError:
                return
            except OSError as e:
                self._accept_failed(e)
                return
            if self._backoff:
                log.warning("accept() works again")
                self._backoff = 0.0
            if victim is not None:
                self._shed(victim)
            host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            if self._over_cap(host):
                self._refuse(sock, host)
                continue
            self._start(sock, host, peer)

    def _accept_failed(self, error: OSError) -> None:
        """Count a failed accept; out of a resource, wait before the next one."""
        self.stats.accept_errors += 1
        name = errno.errorcode.get(error.errno or 0, "error")
        if self.metrics is not None:
            self.metrics.accept_failed(name)
        if error.errno in ACCEPT_CONNECTION_ERRORS:
            return
        if error.errno not in ACCEPT_RESOURCE_ERRORS:
            log.warning("accept() failed: %s", error)
        elif not self._backoff:
            log.warning(
                "accept() failed (%s): backing off, still serving %d connection(s); raise the "
                "descriptor limit (ulimit -n) or lower --max-connections",
                error, len(self.connections),
            )  # fmt: skip
        self._backoff = next_backoff(self._backoff)
        self._pause_accepting()
        assert self._loop is not None
        self._loop.call_later(self._backoff, self._resume_accepting)

    def _over_cap(self, host: str) -> bool:
        cap = self.settings.max_per_client
        return cap is not None and self.per_client.get(host, 0) >= cap

    def _start(self, sock: socket.socket, host: str, peer: object) -> None:
        self.per_client[host] = self.per_client.get(host, 0) + 1
        self.stats.accepted += 1
        pressed = (
            len(self.connections) + 1 >= self.settings.pressure * self.settings.max_connections
        )
        proto = EngineConnection(self, host, self._under_pressure() if pressed else self.limits)
        self.connections.add(proto)
        if self.metrics is not None:
            self.metrics.connection_opened()
        loop = self._loop
        assert loop is not None
        if self._make_transport is not None:
            try:
                self._make_transport(sock, proto, extra={"peername": peer})
            except Exception:  # (the descriptor is watched already: the loop is confused)
                log.exception("could not start serving a connection")
                sock.close()
                self.finished(proto)
            return
        task = loop.create_task(loop.connect_accepted_socket(lambda: proto, sock))
        task.add_done_callback(lambda t: self._started(t, proto, sock))

    def _refuse(self, sock: socket.socket, host: str) -> None:
        self.stats.refused_per_client += 1
        self._count_cut("per-client limit")
        if self.stats.refused_per_client == 1 or self.stats.refused_per_client % 1000 == 0:
            log.warning("refused a connection from %s: it holds %d already "
                        "(--max-connections-per-client; %d refused so far)",
                        host, self.settings.max_per_client,
                        self.stats.refused_per_client)  # fmt: skip
        sock.close()

    def _started(self, task: asyncio.Task[object], proto: EngineConnection,
                 sock: socket.socket) -> None:  # fmt: skip
        if task.cancelled() or task.exception() is not None:
            sock.close()
            if proto in self.connections:  # connection_made never ran: no connection_lost
                self.finished(proto)

    # -- slots ---------------------------------------------------------------------------------
    def _shed(self, victim: EngineConnection) -> None:
        """Cut ``victim`` (handshaking or idle longest) to free its slot for a newcomer."""
        reason = "shed: handshaking" if not victim.handshake_complete else "shed: idle"
        if victim.handshake_complete:
            self.stats.shed_idle += 1
        else:
            self.stats.shed_handshaking += 1
        self._count_cut(reason)
        victim.cut(reason)
        self._release(victim)

    def _victim(self, now: float) -> EngineConnection | None:
        """The connection handshaking longest, else the one idle longest — if either has
        been so for ``shed_after`` seconds."""
        limit = self.settings.shed_after
        handshaking: EngineConnection | None = None
        idle: EngineConnection | None = None
        oldest_start = now - limit
        oldest_activity = now - limit
        for c in self.connections:
            if c.cut_reason is not None or c.closing:
                continue
            if not c.handshake_complete:
                if c.started_at <= oldest_start:
                    handshaking, oldest_start = c, c.started_at
            elif handshaking is None and c.last_activity <= oldest_activity:
                idle, oldest_activity = c, c.last_activity
        return handshaking or idle

    def _under_pressure(self) -> Limits:
        """The limits of connections started under pressure (shorter timeouts)."""
        if self._pressure_limits is None:
            s, base = self.settings, self.limits
            self._pressure_limits = Limits(
                handshake_timeout=_shorter(s.handshake_timeout, s.pressure_handshake_timeout),
                idle_timeout=_shorter(s.idle_timeout, s.pressure_idle_timeout),
                shutdown_timeout=min(base.shutdown_timeout, s.pressure_idle_timeout),
                store=base.store, lookup_timeout=base.lookup_timeout,
            )  # fmt: skip
        return self._pressure_limits

    def _sweep(self) -> None:
        """Under pressure: cut what overstays the shortened timeouts."""
        assert self._loop is not None
        self._sweeper = self._loop.call_later(SWEEP_INTERVAL, self._sweep)
        if not self._accepting and not self._backoff:
            self._resume_accepting()  # a connection may have been idle long enough to go now
        s = self.settings
        if len(self.connections) < s.pressure * s.max_connections:
            return
        now = self.loop_time()
        for c in list(self.connections):
            if c.cut_reason is not None or c.closing:
                continue
            if not c.handshake_complete:
                overdue = now - c.started_at > s.pressure_handshake_timeout
            else:
                overdue = now - c.last_activity > s.pressure_idle_timeout
            if overdue:
                self.stats.timed_out_under_pressure += 1
                self._count_cut("timeout under pressure")
                c.cut("timeout under pressure")
                self._release(c)

    def _count_cut(self, reason: str) -> None:
        self.stats.count(reason)
        if self.metrics is not None:
            self.metrics.connection_cut(reason)

    def _release(self, proto: EngineConnection) -> None:
        """Give back the slot (and the client's share) of a connection that ended or was cut."""
        if proto not in self.connections:
            return
        self.connections.discard(proto)
        held = self.per_client.get(proto.host, 0) - 1
        if held > 0:
            self.per_client[proto.host] = held
        else:
            self.per_client.pop(proto.host, None)
        self._resume_accepting()

    # -- the end of a connection ---------------------------------------------------------------
    def finished(self, proto: EngineConnection) -> None:
        self._release(proto)
        if proto.is_probe:
            self.stats.probes += 1
            if self.metrics is not None:
                self.metrics.probe()
        if self.on_finished is not None:
            try:
                self.on_finished(proto)
            except Exception:  # a log sink must never take the server down
                log.exception("reporting the end of a connection failed")

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.drain_timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.connections:
            log.warning("drain timeout: aborting %d connection(s)", len(self.connections))
        for proto in list(self.connections):
            proto.abort()
        for _ in range(20):  # let connection_lost run (logs, metrics)
            if not self.connections:
                break
            await asyncio.sleep(0.01)


def loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """The event loop's report of an error no task awaited. What a transport or protocol hit
    (a peer or a Redis connection closed under a pending write, say) is one log line: the
    connection is already gone and the server goes on. Anything else keeps its traceback."""
    error = context.get("exception")
    if "transport" in context or "protocol" in context:
        what = f": {type(error).__name__}: {error}" if error is not None else ""
        log.warning("event loop: %s%s", context.get("message", "error"), what)
        return
    loop.default_exception_handler(context)


def _shorter(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)

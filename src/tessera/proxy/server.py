"""The proxy's server: one listening socket, an accept loop, a relay per client.

Admission: at most ``max_connections`` clients are served at once; the accept loop waits for a
free slot before it accepts again, so excess clients wait in the kernel's accept queue (the
``backlog``) instead of being refused. An accept that fails (EMFILE: out of descriptors,
ENFILE, ENOBUFS, ENOMEM, or an aborted connection) is counted and retried after a back-off
that doubles up to one second; it never stops the server.

Stopping (:meth:`ProxyServer.shutdown`, SIGTERM): the listening socket is closed at once, open
connections finish on their own for up to ``drain_timeout`` seconds, then whatever is left is
aborted. SIGHUP calls ``reload`` in a worker thread (certificates and ticket key files: new
connections use them, open ones keep theirs).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..aio import prepare_server
from ..connection import ServerConnection
from ..errors import ConfigError
from ..io.aio import Limits, TLSProtocol
from ..io.listen import ACCEPT_RESOURCE_ERRORS, listening_socket, next_backoff
from ..observe.logs import ConnectionRecord
from .relay import Relay

if TYPE_CHECKING:
    from ..config import ServerConfig
    from ..observe.metrics import PrometheusObserver

log = logging.getLogger("tessera.proxy")

# Out of a resource: back off before accepting again (the resource may come back).


@dataclass(frozen=True, slots=True)
class ProxySettings:
    backend: tuple[str, int]
    proxy_protocol: bool = False  # send a PROXY v2 header to the backend first
    max_connections: int | None = 1000
    handshake_timeout: float | None = 10.0
    idle_timeout: float | None = 300.0
    shutdown_timeout: float = 10.0  # waiting for the client's close_notify after ours
    backend_timeout: float = 5.0  # connecting to the backend
    drain_timeout: float = 30.0
    backlog: int = 1024
    loop: str = "auto"  # auto (uvloop if installed), asyncio, uvloop


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


class ClientTLS(TLSProtocol):
    """The pump of one client connection, which reports its end to the server."""

    def __init__(self, server: ProxyServer, relay: Relay, limits: Limits) -> None:
        super().__init__(ServerConnection(server.config), relay, None, limits)
        self.server = server
        self.relay = relay
        self.started = time.time()
        self.started_mono = time.monotonic()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.server.finished(self, exc)

    @property
    def error_text(self) -> str | None:
        error = self._error
        if error is not None:
            return f"{type(error).__name__}: {error}"
        return self.relay.error


class ProxyServer:
    """Looks like a server to ``tessera.fleet.supervisor`` (``address``, ``serve_forever``,
    ``shutdown``); ``config`` may be replaced at any time (new connections use it)."""

    def __init__(
        self,
        address: tuple[str, int],
        config: ServerConfig,
        settings: ProxySettings,
        *,
        reuse_port: bool = False,
        metrics: PrometheusObserver | None = None,
        on_record: Callable[[ConnectionRecord], None] | None = None,
        reload: Callable[[], None] | None = None,
        handle_signals: bool = False,
    ) -> None:
        if settings.max_connections is not None and settings.max_connections < 1:
            raise ConfigError("max_connections must be at least 1")
        self.config = config
        self.settings = settings
        self.metrics = metrics
        self.on_record = on_record
        self.reload = reload
        self.handle_signals = handle_signals
        self.sock = listening_socket(address, reuse_port, settings.backlog)
        self.sock.setblocking(False)
        host, port = self.sock.getsockname()[:2]
        self.address: tuple[str, int] = (host, port)
        self.connections: set[ClientTLS] = set()
        self.accepted = 0
        self.accept_errors = 0
        self.stopped_by: int | None = None  # the signal that stopped the server, if one did
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = threading.Event()
        self._slots: asyncio.Semaphore | None = None
        self._limits: Limits | None = None

    # -- running -------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Run the event loop until :meth:`shutdown`, then drain."""
        with asyncio.Runner(loop_factory=loop_factory(self.settings.loop)) as runner:
            runner.run(self.serve())

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop = asyncio.Event()
        s = self.settings
        self._limits = Limits(
            handshake_timeout=s.handshake_timeout, idle_timeout=s.idle_timeout,
            shutdown_timeout=s.shutdown_timeout, store=await prepare_server(self.config),
        )  # fmt: skip
        if s.max_connections is not None:
            self._slots = asyncio.Semaphore(s.max_connections)
        if self._stop_requested.is_set():
            self._stop.set()
        handled = self._install_signals(loop)
        accept = loop.create_task(self._accept_loop())
        try:
            await self._stop.wait()
        finally:
            accept.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await accept
            self.sock.close()
            await self._drain()
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
            log.warning("draining: %d connection(s) open, up to %g s",
                        len(self.connections), self.settings.drain_timeout)  # fmt: skip
        self.shutdown()

    def _hangup(self) -> None:
        reload = self.reload
        if reload is not None and self._loop is not None:
            self._loop.run_in_executor(None, reload)

    # -- accepting -----------------------------------------------------------------------------
    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = 0.0
        while True:
            if self._slots is not None:
                await self._slots.acquire()  # at the limit: the rest wait in the accept queue
            try:
                sock, _ = await loop.sock_accept(self.sock)
            except OSError as e:
                self._release()
                backoff = self._accept_failed(e, backoff)
                await asyncio.sleep(backoff)
                continue
            backoff = 0.0
            self._start(loop, sock)

    def _accept_failed(self, error: OSError, backoff: float) -> float:
        """Count a failed accept; the seconds to wait before the next one."""
        self.accept_errors += 1
        name = errno.errorcode.get(error.errno or 0, "error")
        if self.metrics is not None:
            self.metrics.accept_failed(name)
        if error.errno in ACCEPT_RESOURCE_ERRORS:
            if backoff == 0.0:
                log.warning("accept failed (%s): backing off, still serving %d connection(s)",
                            error, len(self.connections))  # fmt: skip
            return next_backoff(backoff)
        log.info("accept failed: %s", error)
        return 0.01

    def _start(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        assert self._limits is not None
        self.accepted += 1
        relay = Relay(self)
        proto = ClientTLS(self, relay, self._limits)
        self.connections.add(proto)
        if self.metrics is not None:
            self.metrics.connection_opened()
        task = loop.create_task(loop.connect_accepted_socket(lambda: proto, sock))
        task.add_done_callback(lambda t: self._started(t, proto, sock))

    def _started(self, task: asyncio.Task[Any], proto: ClientTLS, sock: socket.socket) -> None:
        if task.cancelled() or task.exception() is not None:
            sock.close()
            if proto in self.connections:  # connection_made never ran: no connection_lost
                self.finished(proto, task.exception() if not task.cancelled() else None)

    def _release(self) -> None:
        if self._slots is not None:
            self._slots.release()

    # -- the end of a connection ---------------------------------------------------------------
    def finished(self, proto: ClientTLS, exc: BaseException | None) -> None:
        if proto not in self.connections:
            return
        self.connections.discard(proto)
        self._release()
        relay = proto.relay
        if self.metrics is not None:
            self.metrics.connection_closed(relay.bytes_in, relay.bytes_out)
        if self.on_record is not None:
            peer = proto.extra_info("peername")
            record = ConnectionRecord(
                peer=(str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None,
                info=proto.conn.info, bytes_in=relay.bytes_in, bytes_out=relay.bytes_out,
                duration=time.monotonic() - proto.started_mono, error=proto.error_text,
                started=proto.started,
            )  # fmt: skip
            try:
                self.on_record(record)
            except Exception:  # a log sink must never take the server down
                log.exception("writing a connection record failed")

    def backend_failed(self, why: str) -> None:
        log.warning("%s", why)
        if self.metrics is not None:
            self.metrics.backend_failed()

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

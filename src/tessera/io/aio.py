"""asyncio: a Protocol/transport pair driven by a sans-I/O connection.

:class:`TLSProtocol` sits on a byte transport (TCP, or anything with the transport interface) and
runs one pump, the shape of aioquic's ``asyncio/protocol.py``::

    data_received -> conn.receive_data -> events (await store lookups in a task, await store
    writes before flushing, deliver data) -> transport.write(conn.data_to_send())

It hands the application protocol a :class:`TLSTransport` once the handshake completed, as
asyncio's own ``SSLProtocol`` does, so ``StreamReader``/``StreamWriter`` (and any other
protocol) work unchanged. No protocol decision is made here.

Bounds: the handshake must finish within ``handshake_timeout``; an open connection with no
traffic either way for ``idle_timeout`` is closed (close_notify); after ``close()`` the
transport is gone within ``shutdown_timeout`` (waiting for the peer's close_notify and for the
write buffer to drain). Flow control passes through both ways: the application pausing reading
pauses the transport underneath, the transport's write buffer filling up pauses the application
(``StreamWriter.drain``). While a store lookup is pending the transport is not read at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import cast

from ..connection import ClientConnection, ServerConnection
from ..errors import ConnectionClosedError, HandshakeTimeout, LocalProtocolError, TLSError
from ..events import (
    ConnectionInfo,
    Event,
)
from ..session.resumption import LookupAnswer, StoreLookup, StoreWrite, awaited, inline
from ..session.resumption.awaited import AsyncSessionStore
from ..session.store import SessionStore
from .listen import ensure_nodelay
from .pump import EventHandler, Reauthentication, pump_events
from .sslcompat import SSLObjectView

log = logging.getLogger("tessera.aio")

DEFAULT_HANDSHAKE_TIMEOUT = 60.0  # as asyncio's ssl_handshake_timeout
DEFAULT_SHUTDOWN_TIMEOUT = 30.0  # as asyncio's ssl_shutdown_timeout
DELIVERY_SIZE = 64 * 1024  # application data handed over at once, at most (records joined)

HandshakeErrorHook = Callable[[object, BaseException], None]  # (peer address, error)
AwaitedStore = AsyncSessionStore  # (AsyncMemoryStore too: answered at once)


class Limits:
    """Per-connection timeouts and store settings, shared by every connection of a server."""

    __slots__ = (
        "handshake_timeout",
        "idle_timeout",
        "lookup_timeout",
        "on_handshake_error",
        "shutdown_timeout",
        "store",
    )

    def __init__(
        self,
        *,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        idle_timeout: float | None = None,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        store: AwaitedStore | None = None,
        lookup_timeout: float = awaited.DEFAULT_LOOKUP_TIMEOUT,
        on_handshake_error: HandshakeErrorHook | None = None,
    ) -> None:
        for name, value in (
            ("handshake_timeout", handshake_timeout),
            ("idle_timeout", idle_timeout),
            ("shutdown_timeout", shutdown_timeout),
            ("lookup_timeout", lookup_timeout),
        ):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive (or None), not {value!r}")
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.shutdown_timeout = shutdown_timeout
        self.store = store  # awaited for SessionLookupRequired / SessionStoreUpdate
        self.lookup_timeout = lookup_timeout
        self.on_handshake_error = on_handshake_error


class TLSProtocol(asyncio.Protocol, EventHandler):
    """The pump between a byte transport below and an application protocol above."""

    # The transport's socket has TCP_NODELAY already (the engine's: accepted from a listening
    # socket made with IPPROTO_TCP, which asyncio's loop and uvloop set it on).
    nodelay_by_loop = False

    def __init__(
        self,
        conn: ClientConnection | ServerConnection,
        app_protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[None] | None,
        limits: Limits,
        *,
        early_data: bytes | None = None,
        call_connection_made: bool = True,
    ) -> None:
        self.conn = conn
        self._app = app_protocol
        self._waiter = waiter
        self._limits = limits
        self._store = limits.store
        self._sync_store: SessionStore | None = awaited.immediate(limits.store)
        self._early_out = early_data or b""
        self._resend = b""  # early data to send after the handshake (refused or not allowed)
        self._call_connection_made = call_connection_made
        self._app_transport: TLSTransport | None = None  # made when first asked for
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []  # data before the application is connected (0-RTT)
        self._batch: list[bytes] | None = None  # data of the events being handled
        self._connected = False  # the application protocol has its transport
        self._paused_by_app = False
        self._paused_by_store = False
        self._reading_paused = False
        self._writing_paused = False
        self._write_gate = 0  # store writes in flight: data_to_send() waits for them
        self._close_after_flush = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None  # handshake, then idle
        self._shutdown_timer: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self._closing = False
        self._lost = False
        self._eof = False
        self._error: BaseException | None = None
        self.bytes_received = 0
        self.early_data = b""  # what a server received as 0-RTT data (replayable!)
        self.close_notify: bool | None = None  # how the peer closed: None while it has not
        # Renegotiations and post-handshake authentications that ended, newest last.
        self.handshake_notices: list[Event] = []
        self._reauth: asyncio.Future[Event] | None = None

    # -- the lower transport's callbacks ---------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._transport = cast(asyncio.Transport, transport)  # (uvloop's: no subclass)
        if not self.nodelay_by_loop:
            ensure_nodelay(transport)  # whatever the loop did or not
        self._last_activity = loop.time()
        limit = self._limits.handshake_timeout
        if limit is not None:
            self._timer = loop.call_later(limit, self._handshake_timed_out)
        conn = self.conn
        if isinstance(conn, ClientConnection):
            early = self._early_out
            try:
                if early and len(early) <= conn.early_data_limit:
                    conn.start_handshake(early)
                else:
                    self._resend = early
                    conn.start_handshake()
            except TLSError as e:
                self._fail(e)
                return
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._lost or self._error is not None:
            return
        self.bytes_received += len(data)
        try:
            self.conn.receive_data(data)
        except TLSError as e:
            self._fail(e)
            return
        self._process()

    def eof_received(self) -> bool:
        self._eof = True
        if self._error is None and not self._lost:
            try:
                self.conn.receive_data(b"")  # end of stream: a truncated handshake or a close
            except TLSError as e:
                self._fail(e)
                return True
            self._process()
            if self._closing:
                self._close_transport()
        return True  # we close the transport ourselves (after our close_notify, if any)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._cancel_timers()
        for task in self._tasks:
            task.cancel()
        error = self._error
        if error is None and not self.conn.handshake_complete:
            error = ConnectionClosedError(
                f"the connection was lost during the handshake ({self.conn.state_name})"
                + (f": {exc}" if exc else "")
            )
            self._error = error
            self._report_handshake_error(error)
        self._settle(error)
        if self._connected:
            self._connected = False
            app_exc = error if isinstance(error, Exception) else exc
            self._app.connection_lost(app_exc)
        self.ended()
        self._unlink()

    def ended(self) -> None:
        """The connection is over and the application told (for subclasses: the last moment
        the application protocol is still at hand, as ``app_protocol``)."""

    def _unlink(self) -> None:
        """Let go of the application: its protocol holds our transport, which holds us, a
        cycle that would keep the whole connection (its keys, buffers and handshake state)
        alive until the cyclic garbage collector ran. Without it, reference counting frees
        a connection the moment its last user lets go."""
        self._app = _ENDED
        self._app_transport = None
        self._waiter = None

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self._connected:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._connected:
            self._app.resume_writing()

    # -- the pump --------------------------------------------------------------------------
    def _process(self) -> None:
        """Handle every pending event (the one pump), then flush. The application data of one
        batch reaches the application at once (a relay writes it on with one system call)."""
        self._batch = []
        progressed = pump_events(self.conn, self)
        self._deliver_batch()
        if progressed:
            self._last_activity = self._now()  # progress: bytes that complete nothing are not
            if self._error is not None:
                return
        self._flush()

    @property
    def halted(self) -> bool:
        return self._error is not None

    def _flush(self) -> None:
        if self._write_gate or self._transport is None or self._lost:
            return
        records = self.conn.records_to_send()
        if len(records) == 1:
            self._transport.write(records[0])
        elif records:  # bulk: uvloop writes them with one writev, not joined first
            self._transport.writelines(records)
        if self._close_after_flush:
            self._close_transport()

    def on_application_data(self, data: bytes, early: bool) -> None:
        if early:
            self.early_data += data
        if self._closing:
            return  # we said close_notify: what the peer still sends is dropped
        if not self._connected:
            self._pending.append(data)
        elif self._batch is not None:
            self._batch.append(data)
        else:
            self._to_app(data)

    def _deliver_batch(self) -> None:
        """The batch to the application in pieces of up to 64 KiB: fewer calls (and a relay's
        writes) than one per record, and no joined buffer large enough to come from fresh
        pages of memory each time."""
        batch, self._batch = self._batch, None
        if not batch:
            return
        start = size = 0
        for i, data in enumerate(batch):
            if i > start and size + len(data) > DELIVERY_SIZE:
                self._to_app_joined(batch[start:i])
                start, size = i, 0
            size += len(data)
        self._to_app_joined(batch[start:])

    def _to_app_joined(self, group: list[bytes]) -> None:
        if not self._closing:  # (the application may have closed meanwhile)
            self._to_app(group[0] if len(group) == 1 else b"".join(group))

    def _to_app(self, data: bytes) -> None:
        app = self._app
        if isinstance(app, asyncio.BufferedProtocol):
            _feed_buffered(app, data)
        else:
            cast(asyncio.Protocol, app).data_received(data)

    def on_handshake_completed(self, info: ConnectionInfo) -> None:
        self._watch_idle()
        if self._resend:
            self.conn.send_data(self._resend)  # not accepted as 0-RTT: as ordinary data
            self._resend = b""
        self._connected = True
        if self._call_connection_made:
            self._app.connection_made(self.app_transport)
        if self._writing_paused:
            self._app.pause_writing()
        self._settle(None)
        pending, self._pending = self._pending, []
        for data in pending:
            self.on_application_data(data, False)

    def _watch_idle(self) -> None:
        """From the handshake's deadline to the idle clock. The handshake's timer stays when it
        fires before the idle limit could: it then checks for idleness (one timer for both
        instead of two per connection, most of which end before either fires)."""
        loop = self._loop
        assert loop is not None
        timer, limit = self._timer, self._limits.idle_timeout
        if limit is None:
            if timer is not None:
                timer.cancel()
                self._timer = None
            return
        now = self._last_activity = loop.time()
        if timer is None or timer.when() > now + limit:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_later(limit, self._check_idle)

    def on_peer_closed(self, close_notify: bool) -> None:
        self._deliver_batch()  # the data before the end first
        self.close_notify = close_notify
        if not close_notify:
            log.debug("the peer closed without close_notify: its data may be truncated")
        if self._closing:
            self._close_transport()
            return
        keep_open = cast(asyncio.Protocol, self._app).eof_received() if self._connected else False
        if not keep_open:
            self._start_close()

    def on_early_data_rejected(self) -> None:
        self._resend = self._early_out

    # -- asking for a client certificate on an open connection -------------------------------
    async def request_client_certificate(self, timeout: float | None = 30.0) -> ConnectionInfo:
        """Server: ask the client for a certificate (TLS 1.2: a renegotiation whose resumption
        is refused; TLS 1.3: post-handshake authentication) and wait for its answer; the new
        ``info`` (no ``peer_certificates`` when it sent none or declined: then the last of
        ``handshake_notices`` is a RenegotiationDeclined). Raises LocalProtocolError when the
        client cannot be asked, HandshakeTimeout when it does not answer in time."""
        conn = self.conn
        if not isinstance(conn, ServerConnection) or self._loop is None:
            raise LocalProtocolError("request_client_certificate() is for a server connection")
        conn.request_client_certificate()
        self._reauth = self._loop.create_future()
        self._flush()
        try:
            await asyncio.wait_for(self._reauth, timeout)
        except TimeoutError:
            raise HandshakeTimeout(
                f"no answer to the request for a client certificate within {timeout} s"
            ) from None
        finally:
            self._reauth = None
        info = conn.info
        assert info is not None
        return info

    def on_reauthenticated(self, event: Reauthentication) -> None:
        self.handshake_notices.append(event)
        waiter = self._reauth
        if waiter is not None and not waiter.done():
            waiter.set_result(event)

    # -- the store ---------------------------------------------------------------------------
    def on_lookup_required(self, operations: tuple[StoreLookup, ...]) -> None:
        assert isinstance(self.conn, ServerConnection)
        if self._sync_store is not None:
            self._provide(inline.answer(self._sync_store, operations), operations)
            return
        if self._store is None:
            self._provide(
                [ConnectionError("no async session store given")] * len(operations), operations
            )
            return
        self._paused_by_store = True
        self._update_reading()
        self._spawn(self._await_lookup(operations))

    async def _await_lookup(self, operations: tuple[StoreLookup, ...]) -> None:
        assert self._store is not None
        answers = await awaited.answer(self._store, operations, self._limits.lookup_timeout)
        if self._lost or self._error is not None:
            return
        self._paused_by_store = False
        self._provide(answers, operations)
        if self._error is None:
            self._update_reading()
            self._process()

    def _provide(self, answers: Sequence[LookupAnswer], operations: Sequence[StoreLookup]) -> None:
        conn = self.conn
        assert isinstance(conn, ServerConnection)
        try:
            conn.provide_session(answers)
        except TLSError as e:
            self._fail(e)

    def on_store_update(self, operations: tuple[StoreWrite, ...]) -> None:
        if self._sync_store is not None:
            inline.apply(self._sync_store, operations, self._store_failed)
            return
        if self._store is None:
            return
        self._write_gate += 1
        self._spawn(self._await_writes(operations))

    async def _await_writes(self, operations: tuple[StoreWrite, ...]) -> None:
        assert self._store is not None
        try:
            await awaited.apply(
                self._store, operations, self._store_failed, self._limits.lookup_timeout
            )
        finally:
            self._write_gate -= 1
        self._flush()

    def _store_failed(self, op: StoreWrite | StoreLookup, error: BaseException) -> None:
        conn = self.conn
        assert isinstance(conn, ServerConnection)
        conn.store_failed(op, error)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("tessera.aio: a store task failed: %r", exc)
            self._fail(ConnectionClosedError(f"internal error in a store task: {exc!r}"))

    # -- flow control ------------------------------------------------------------------------
    def _update_reading(self) -> None:
        want = self._paused_by_app or self._paused_by_store
        transport = self._transport
        if want == self._reading_paused or transport is None or self._lost:
            return
        self._reading_paused = want
        if want:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def pause_reading_for_app(self, paused: bool) -> None:
        self._paused_by_app = paused
        self._update_reading()

    # -- writing and closing (called by TLSTransport) ----------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._lost or self._error is not None:
            return  # as asyncio's transports: writes after close are dropped
        if not data:
            return
        if self.conn.closed:
            raise RuntimeError("Cannot call write() after write_eof()")  # as asyncio says it
        self.conn.send_data(data if isinstance(data, bytes) else bytes(data))
        self._last_activity = self._now()
        self._flush()

    def write_eof(self) -> None:
        """Send close_notify but keep reading (a TLS half-close)."""
        if self._error is None and not self._lost:
            self.conn.close()
            self._flush()

    def _start_close(self) -> None:
        """Send close_notify, then close the transport once the peer's close_notify (or end of
        stream) arrived and the write buffer drained; abort after ``shutdown_timeout``."""
        if self._closing or self._lost:
            return
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with contextlib.suppress(TLSError):
            self.conn.close()
        self._paused_by_app = False
        self._update_reading()  # read on: the peer's close_notify is what we wait for
        self._flush()
        conn = self.conn
        if conn.peer_closed or self._eof or conn.failed or not conn.handshake_complete:
            self._close_transport()
            lower = self._transport
            if lower is None or (lower.is_closing() and not lower.get_write_buffer_size()):
                return  # closed with nothing left to write: nothing to wait for
        if self._loop is not None:
            self._shutdown_timer = self._loop.call_later(self._limits.shutdown_timeout, self.abort)

    def _close_transport(self) -> None:
        if self._write_gate:
            self._close_after_flush = True
            return
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()

    def close(self) -> None:
        self._start_close()

    def close_now(self) -> None:
        """Close at once, not waiting for the peer: close_notify if the handshake is over (and
        what is buffered) goes out, then the transport closes."""
        if self._lost:
            return
        self._closing = True
        self._cancel_timers()
        if self.conn.handshake_complete and not self.conn.failed:
            with contextlib.suppress(TLSError):
                self.conn.close()
        self._write_gate = 0
        self._flush()
        self._close_transport()

    def abort(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, error: TLSError) -> None:
        """A protocol error: send the queued alert (if any), close, tell whoever waits."""
        if self._error is not None:
            return
        # Kept without its traceback: the frames it holds hold us (a cycle through the whole
        # connection); what it says is all that is reported.
        self._error = error.with_traceback(None)
        self._closing = True
        if not self.conn.handshake_complete:
            self._report_handshake_error(error)
        if self._transport is not None and not self._lost:
            with contextlib.suppress(Exception):
                data = self.conn.data_to_send()
                if data:
                    self._transport.write(data)
            self._transport.close()
        self._settle(error)

    # -- timers ------------------------------------------------------------------------------
    def _now(self) -> float:
        loop = self._loop
        return loop.time() if loop is not None else 0.0

    def _handshake_timed_out(self) -> None:
        self._timer = None
        if self._lost:
            return
        if self.conn.handshake_complete:
            self._check_idle()  # the timer kept as the first idle check (_watch_idle)
            return
        error = HandshakeTimeout(
            f"no handshake within {self._limits.handshake_timeout} s "
            f"(waiting in {self.conn.state_name})"
        )
        self._error = error
        self._report_handshake_error(error)
        self._settle(error)
        self.abort()

    def _check_idle(self) -> None:
        self._timer = None
        limit = self._limits.idle_timeout
        loop = self._loop
        if limit is None or loop is None or self._closing or self._lost:
            return
        idle = loop.time() - self._last_activity
        if idle >= limit:
            log.debug("closing a connection idle for %.1f s", idle)
            lower = self._transport
            if lower is not None and lower.get_write_buffer_size():
                self.abort()  # the peer reads nothing: a close_notify would never get through
            else:
                self._start_close()
        else:
            self._timer = loop.call_later(limit - idle, self._check_idle)

    def _cancel_timers(self) -> None:
        for timer in (self._timer, self._shutdown_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._shutdown_timer = None

    # -- reporting ---------------------------------------------------------------------------
    def _settle(self, error: BaseException | None) -> None:
        reauth = self._reauth
        if error is not None and reauth is not None and not reauth.done():
            reauth.set_exception(error)
        elif self._lost and reauth is not None and not reauth.done():
            reauth.set_exception(ConnectionClosedError("the connection was lost"))
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)

    def _report_handshake_error(self, error: BaseException) -> None:
        if self._waiter is not None or not isinstance(self.conn, ServerConnection):
            return  # a client's caller gets the error from open_connection
        hook = self._limits.on_handshake_error
        if hook is None or not self.bytes_received:
            hook = None  # (a probe, or no one to tell)
            if not log.isEnabledFor(logging.INFO):
                return  # (each health check would ask the transport for its peer)
        peer = self._extra_below("peername")
        log.info("handshake with %s failed: %s", peer, error)
        if hook is not None:
            hook(peer, error)

    def _extra_below(self, name: str, default: object = None) -> object:
        transport = self._transport
        return default if transport is None else transport.get_extra_info(name, default)

    def extra_info(self, name: str, default: object = None) -> object:
        return _extra(self, name, default)

    @property
    def app_transport(self) -> TLSTransport:
        """The plaintext transport the application protocol gets (one per connection)."""
        transport = self._app_transport
        if transport is None:
            transport = self._app_transport = TLSTransport(self)
        return transport

    @property
    def app_protocol(self) -> asyncio.BaseProtocol:
        """The application protocol (after the connection ended: a placeholder, as asyncio's
        own transports forget theirs)."""
        return self._app

    @app_protocol.setter
    def app_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._app = protocol

    @property
    def reading(self) -> bool:
        return not self._paused_by_app and not self._lost

    @property
    def closing(self) -> bool:
        return self._closing or self._lost

    @property
    def lower(self) -> asyncio.Transport | None:
        return self._transport

    @property
    def error(self) -> BaseException | None:
        """What ended the connection in error (a protocol error, a timeout), if anything."""
        return self._error

    @property
    def last_activity(self) -> float:
        """Loop time of the last progress: a complete record from the peer, or a write."""
        return self._last_activity

    @property
    def handshake_complete(self) -> bool:
        return self.conn.handshake_complete


_ENDED = asyncio.Protocol()  # the application protocol of a connection that ended


def _feed_buffered(app: asyncio.BufferedProtocol, data: bytes) -> None:
    """``data_received`` for a buffered protocol: copy into the buffers it hands out."""
    view = memoryview(data)
    while view:
        buf = memoryview(app.get_buffer(len(view))).cast("B")
        if not buf:
            raise RuntimeError("get_buffer() returned an empty buffer")
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        app.buffer_updated(n)
        view = view[n:]


def _client_resumption(conn: ClientConnection) -> str:
    info = conn.info
    if info is not None and info.resumed:
        return f"resumed by {info.resumed_by}"
    if conn.offered_session is None:
        return "full handshake; no session offered (pass session=, or a session_cache)"
    return "full handshake; the server declined the offered session (its statistics say why)"


def _extra(proto: TLSProtocol, name: str, default: object) -> object:
    """``get_extra_info`` of a TLS transport: TLS facts, then the lower transport's."""
    conn = proto.conn
    info = conn.info
    if name == "ssl_object":
        return SSLObjectView(conn)
    if name == "tessera":
        return conn
    if name in ("connection_info", "tls_info"):
        return info
    if name == "peercert":
        return SSLObjectView(conn).getpeercert() if info is not None else default
    if name == "cipher":
        return SSLObjectView(conn).cipher()
    if name == "compression":
        return None
    if name == "session":
        return conn.session if isinstance(conn, ClientConnection) else default
    if name in ("resumed", "session_reused"):
        return info is not None and info.resumed
    if name == "resumption":
        return info.resumption if info is not None else default
    if name == "resumption_reason":
        if isinstance(conn, ClientConnection):
            return _client_resumption(conn)
        decision = info.resumption if info is not None else None
        return decision.describe() if decision is not None else default
    if name == "alpn_protocol":
        return info.alpn_protocol if info is not None else default
    if name == "peer_certificates":
        return info.peer_certificates if info is not None else default
    if name == "early_data":
        return proto.early_data
    if name == "early_data_accepted":
        return info is not None and info.early_data_accepted
    if name == "close_notify":
        return proto.close_notify
    if name == "sslcontext":
        return default
    return proto._extra_below(name, default)


class TLSTransport(asyncio.Transport):
    """What the application protocol sees: a transport of plaintext over a TLS connection."""

    def __init__(self, proto: TLSProtocol) -> None:
        super().__init__()
        self._proto = proto

    def get_extra_info(self, name: str, default: object = None) -> object:
        return _extra(self._proto, name, default)

    @property
    def tls(self) -> TLSProtocol:
        """The TLS pump under this transport (renegotiation, notices, counters)."""
        return self._proto

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._proto.app_protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._proto.app_protocol

    def is_closing(self) -> bool:
        return self._proto.closing

    def close(self) -> None:
        """Send close_notify and close (bounded by the shutdown timeout)."""
        self._proto.close()

    def abort(self) -> None:
        """Close at once, without close_notify."""
        self._proto.abort()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._proto.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self._proto.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        self._proto.write_eof()

    def can_write_eof(self) -> bool:
        return True

    def is_reading(self) -> bool:
        return self._proto.reading

    def pause_reading(self) -> None:
        self._proto.pause_reading_for_app(True)

    def resume_reading(self) -> None:
        self._proto.pause_reading_for_app(False)

    def _lower(self) -> asyncio.Transport | None:
        return self._proto.lower

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        lower = self._lower()
        if lower is not None:
            lower.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        lower = self._lower()
        return 0 if lower is None else int(lower.get_write_buffer_size())

    def get_write_buffer_limits(self) -> tuple[int, int]:
        lower = self._lower()
        if lower is None:
            return (0, 0)
        high, low = lower.get_write_buffer_limits()
        return int(high), int(low)

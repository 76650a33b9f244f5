"""The sans-I/O connection: bytes in, events out, bytes to send.

::

    conn = ClientConnection(config, server_name="example.com")
    conn.start_handshake()
    sock.sendall(conn.data_to_send())
    while not conn.handshake_complete:
        conn.receive_data(sock.recv(65536))
        for event in conn.events(): ...
        sock.sendall(conn.data_to_send())

No method blocks or touches the network. When the peer breaks the protocol,
:meth:`receive_data` raises a :class:`~tessera.errors.RemoteProtocolError` whose fatal alert is
already queued in :meth:`data_to_send`: flush it and close the transport. After any error the
connection refuses further use.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Sequence

from .config import ClientConfig, ServerConfig
from .enums import AlertDescription, AlertLevel, ContentType, ProtocolVersion
from .errors import (
    AlertReceived,
    ConfigError,
    ConnectionClosedError,
    HandshakeTruncated,
    IllegalParameter,
    InternalError,
    LocalProtocolError,
    RemoteProtocolError,
    UnexpectedMessage,
)
from .events import ApplicationData, ConnectionClosed, ConnectionInfo, Event, SessionLookupRequired
from .handshake import client as client_hs
from .handshake import client13
from .handshake.context import ClientContext, HandshakeContext, ServerContext, State
from .handshake.lookup import AwaitSessionLookup
from .handshake.server import ExpectClientHello
from .messages import Alert
from .record.layer import HandshakeReassembler, RecordLayer
from .session import inline
from .session.model import ClientSession
from .session.observer import HandshakeFailed
from .session.resumption import LookupAnswer, StoreWrite, session_id_key

# Consecutive empty records or warning alerts tolerated before we call it an attack.
MAX_EMPTY_RECORDS = 32


class _Connection:
    _ctx: HandshakeContext  # type: ignore[type-arg]

    def __init__(self) -> None:
        self._records = RecordLayer()
        self._reassembler = HandshakeReassembler()
        self._events: deque[Event] = deque()
        self._state: State | None = None
        self._failed: Exception | None = None
        self._peer_closed = False
        self._local_closed = False
        self._empty_budget = MAX_EMPTY_RECORDS

    # -- reading -------------------------------------------------------------------------
    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes received from the peer; events become available from :meth:`events`."""
        if self._failed is not None:
            raise ConnectionClosedError(f"the connection failed earlier: {self._failed}")
        if not data:
            self._receive_eof()
            return
        if self._peer_closed:
            return
        if self._state is None:
            raise LocalProtocolError("call start_handshake() before feeding data to a client")
        self._records.feed(data)
        if not self._paused:
            self._guarded(self._process_records)

    def _receive_eof(self) -> None:
        """``receive_data(b"")``: the transport reached end of stream. Before the handshake
        completed that is a :class:`~tessera.errors.HandshakeTruncated` error; afterwards a
        ``ConnectionClosed`` event says so, with ``close_notify=False`` unless the peer had
        sent its close_notify first (then nothing more is reported)."""
        if self._peer_closed:
            return
        self._peer_closed = True
        if self._state is None or not self._state.handshake_done or self._paused:
            err = HandshakeTruncated(
                f"the peer closed the connection during the handshake ({self.state_name})"
            )
            self._failed = err
            raise err
        self._events.append(ConnectionClosed(close_notify=False))

    def _process_records(self) -> None:
        records = self._records
        while not self._peer_closed and not self._paused:
            rec = records.next_record()
            if rec is None:
                break
            self._handle_record(rec[0], rec[1])

    def _guarded(self, step: Callable[[], None]) -> None:
        """Run ``step``; a protocol error queues its alert and fails the connection, and
        nothing but a TLSError ever leaves."""
        try:
            step()
        except RemoteProtocolError as e:
            self._fail(e)
            raise
        except AlertReceived as e:
            self._failed = e
            self._on_fatal(e.alert, sent=False)
            raise
        except Exception as e:  # a bug or an unforeseen library error: fail closed, typed
            err = InternalError(f"{type(e).__name__}: {e}")
            self._fail(err)
            raise err from e

    @property
    def _paused(self) -> bool:
        return False

    def _handle_record(self, ctype: int, payload: bytes) -> None:
        state = self._state
        assert state is not None
        if ctype == ContentType.APPLICATION_DATA:
            if self._reassembler.pending:
                raise UnexpectedMessage("application data inside a fragmented handshake message")
            if not state.accepts_application_data:
                raise UnexpectedMessage(
                    f"application data before the handshake finished ({state!r})"
                )
            if payload:
                self._empty_budget = MAX_EMPTY_RECORDS
                early = state.early
                if early:
                    state.count(len(payload))
                self._events.append(ApplicationData(payload, early))
            else:
                self._spend_empty_budget()
            return
        if ctype == ContentType.HANDSHAKE:
            self._reassembler.add(payload)
            self._empty_budget = MAX_EMPTY_RECORDS
            self._handle_messages()
            return
        if ctype == ContentType.CHANGE_CIPHER_SPEC:
            self._handle_ccs(payload)
            return
        self._handle_alert(payload)

    def _handle_ccs(self, payload: bytes) -> None:
        state = self._state
        assert state is not None
        ctx = self._ctx
        tls13 = ctx.version == ProtocolVersion.TLS1_3 or state.ignores_ccs
        if payload != b"\x01":
            if tls13:
                raise UnexpectedMessage("a TLS 1.3 ChangeCipherSpec must be the byte 1")
            raise IllegalParameter("a ChangeCipherSpec message must be the single byte 1")
        if self._reassembler.pending:
            raise UnexpectedMessage("ChangeCipherSpec inside a fragmented handshake message")
        if tls13:
            # TLS 1.3 middlebox compatibility: dropped during the handshake, else an error.
            if not state.ignores_ccs:
                raise UnexpectedMessage("ChangeCipherSpec outside the TLS 1.3 handshake")
            self._spend_empty_budget()
            return
        self._state = state.handle_ccs(ctx)
        ctx.flush()

    def _handle_alert(self, payload: bytes) -> None:
        ctx = self._ctx
        if self._reassembler.pending:
            raise UnexpectedMessage("an alert inside a fragmented handshake message")
        alert = Alert.decode(payload)
        desc = alert.description_enum
        if alert.description == AlertDescription.close_notify:
            self._peer_closed = True
            self._events.append(ConnectionClosed())
            return
        tls13 = ctx.version == ProtocolVersion.TLS1_3
        if alert.level == AlertLevel.FATAL or (
            tls13 and desc is not AlertDescription.user_canceled
        ):
            raise AlertReceived(
                desc if desc is not None else AlertDescription.internal_error,
                f"the peer sent a fatal alert {alert.description}",
            )
        self._spend_empty_budget()

    def _handle_messages(self) -> None:
        """Run every complete handshake message through the states (stopping when paused)."""
        ctx = self._ctx
        while not self._paused:
            msg = self._reassembler.next_message()
            if msg is None:
                break
            assert self._state is not None
            self._state = self._state.handle(ctx, msg[0], msg[1], msg[2])
            ctx.flush()
            self._after_transition()
        if self._state is not None and self._state.handshake_done:
            self._records.plaintext_alerts = False

    def _after_transition(self) -> None:
        """A hook for the server: answer or announce a pending store lookup."""

    def _spend_empty_budget(self) -> None:
        self._empty_budget -= 1
        if self._empty_budget < 0:
            raise UnexpectedMessage("too many empty records or warning alerts in a row")

    def _fail(self, err: RemoteProtocolError) -> None:
        self._failed = err
        self._ctx._pending.clear()
        # If even the alert cannot be sealed, nothing more can be sent; the error is raised anyway.
        with contextlib.suppress(Exception):
            self._records.write_records(ContentType.ALERT, bytes((AlertLevel.FATAL, err.alert)))
        self._on_fatal(err.alert, sent=True)

    def _on_fatal(self, alert: AlertDescription, sent: bool) -> None:
        """A connection that ends in a fatal alert must not be resumed later."""

    # -- events --------------------------------------------------------------------------
    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def events(self) -> list[Event]:
        """All pending events, oldest first."""
        out = list(self._events)
        self._events.clear()
        return out

    # -- writing -------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        """Bytes to write to the transport (may be empty)."""
        return self._records.take_output()

    def records_to_send(self) -> list[bytes]:
        """Like :meth:`data_to_send`, as a list of records (for ``socket.sendmsg``): a large
        ``send_data`` is not copied once more into one big buffer."""
        return self._records.take_records()

    def send_data(self, data: bytes) -> None:
        """Queue application data; it is encrypted into records of at most 2^14 bytes."""
        if self._failed is not None:
            raise ConnectionClosedError(f"the connection failed earlier: {self._failed}")
        if self._local_closed:
            raise LocalProtocolError("send_data() after close()")
        if self._state is None or not self._state.handshake_done:
            raise LocalProtocolError("send_data() before the handshake completed")
        if data:
            self._records.write_records(ContentType.APPLICATION_DATA, data)

    def update_keys(self, request_peer: bool = True) -> None:
        """TLS 1.3: send KeyUpdate and switch to new write keys; with ``request_peer`` the peer
        is asked to update its keys too."""
        from .handshake.common13 import Traffic13

        state = self._state
        if not isinstance(state, Traffic13) or self._local_closed or self._failed is not None:
            raise LocalProtocolError("update_keys() needs an open TLS 1.3 connection")
        state.update_write(self._ctx, request_peer)
        self._ctx.flush()

    def close(self) -> None:
        """Queue a close_notify alert. Further send_data() calls are refused."""
        if self._local_closed or self._failed is not None:
            return
        self._local_closed = True
        self._ctx.flush()
        self._records.write_records(
            ContentType.ALERT, bytes((AlertLevel.WARNING, AlertDescription.close_notify))
        )

    # -- state ---------------------------------------------------------------------------
    @property
    def handshake_complete(self) -> bool:
        return self._ctx.info is not None

    @property
    def info(self) -> ConnectionInfo | None:
        """What the handshake negotiated, once it has completed."""
        return self._ctx.info

    @property
    def peer_closed(self) -> bool:
        return self._peer_closed

    @property
    def closed(self) -> bool:
        return self._local_closed or self._failed is not None

    @property
    def failed(self) -> bool:
        return self._failed is not None

    @property
    def state_name(self) -> str:
        return repr(self._state)


class ClientConnection(_Connection):
    """The client side. ``address`` (host, port) keys the session cache with the server name."""

    _ctx: ClientContext

    def __init__(
        self,
        config: ClientConfig,
        server_name: str | None = None,
        *,
        address: tuple[str, int] | None = None,
        session: ClientSession | None = None,
    ) -> None:
        super().__init__()
        if config.verify and config.check_hostname and not server_name:
            raise ConfigError(
                "certificate checking needs the server's name: pass server_name, or set "
                "check_hostname=False (or verify=False for tests)"
            )
        ctx = ClientContext(
            config,
            self._records,
            self._reassembler,
            self._events,
            server_name,
            address[1] if address else None,
        )
        if address is not None:
            ctx.cache_key = (address[0], address[1], server_name)
        if session is None and config.session_cache is not None and ctx.cache_key is not None:
            session = config.session_cache.get(ctx.cache_key, reuse=config.reuse_tickets)
        ctx.offered_session = session
        self._ctx = ctx

    def start_handshake(self, early_data: bytes | None = None) -> None:
        """Queue the ClientHello, and ``early_data`` as TLS 1.3 0-RTT data when resuming a
        ticket that allows it (see the EarlyDataRejected event and ``info.early_data_accepted``;
        rejected early data is not delivered and may be sent again)."""
        if self._state is not None:
            raise LocalProtocolError("the handshake has already started")
        self._state = client_hs.start(self._ctx, early_data)
        self._ctx.flush()

    @property
    def session(self) -> ClientSession | None:
        """The latest resumable session the server gave us (for saving and reuse)."""
        return self._ctx.latest_session or (
            self._ctx.offered_session if self.info is not None and self.info.resumed else None
        )

    @property
    def offered_session(self) -> ClientSession | None:
        return self._ctx.offered_session

    @property
    def early_data_limit(self) -> int:
        """How many bytes of 0-RTT data ``start_handshake(early_data=...)`` may carry: what the
        offered session's ticket allows, or 0 when no TLS 1.3 session usable here is offered."""
        return client13.early_data_allowance(self._ctx, self._ctx.offered_session)

    def _on_fatal(self, alert: AlertDescription, sent: bool) -> None:
        self._ctx.forget_session()


class ServerConnection(_Connection):
    """The server side.

    Resumption may need the session store. With a synchronous store (the default) the
    connection asks it itself, inside :meth:`receive_data`. With
    ``ServerConfig(external_session_lookup=True)`` it pauses instead and emits
    :class:`~tessera.events.SessionLookupRequired`; until :meth:`provide_session` is called
    with the answers, received bytes are only buffered (0-RTT records stay encrypted) and
    ``send_data`` is refused. Store writes then come out as
    :class:`~tessera.events.SessionStoreUpdate` events.
    """

    _ctx: ServerContext

    def __init__(self, config: ServerConfig) -> None:
        super().__init__()
        self._ctx = ServerContext(config, self._records, self._reassembler, self._events)
        self._state = ExpectClientHello()
        self._lookup: AwaitSessionLookup | None = None

    @property
    def config(self) -> ServerConfig:
        return self._ctx.config

    @property
    def _paused(self) -> bool:
        return self._lookup is not None

    @property
    def awaiting_session(self) -> bool:
        """True between a SessionLookupRequired event and :meth:`provide_session`."""
        return self._lookup is not None

    def _after_transition(self) -> None:
        ctx = self._ctx
        config = ctx.config
        while isinstance(self._state, AwaitSessionLookup):
            if config.external_session_lookup:
                self._lookup = self._state
                self._events.append(SessionLookupRequired(self._state.operations))
                return
            answers = inline.answer(config.session_store, self._state.operations)
            for op, answer in zip(self._state.operations, answers, strict=True):
                if isinstance(answer, BaseException):
                    ctx.store_failed(op, answer)
            self._state = self._state.provide(answers)
            ctx.flush()

    def provide_session(self, answers: Sequence[LookupAnswer]) -> None:
        """Answer the pending SessionLookupRequired: one answer per operation, in order (bytes
        or None for get/take, a bool for add, or the exception the store raised — a
        :class:`~tessera.errors.StoreError` for a timeout). Then the handshake goes on with the
        data received meanwhile."""
        if self._failed is not None:
            raise ConnectionClosedError(f"the connection failed earlier: {self._failed}")
        lookup = self._lookup
        if lookup is None:
            raise LocalProtocolError("provide_session() without a pending SessionLookupRequired")
        if len(answers) != len(lookup.operations):
            raise LocalProtocolError(
                f"provide_session() needs {len(lookup.operations)} answers, got {len(answers)}"
            )
        self._lookup = None

        def resume() -> None:
            self._state = lookup.provide(tuple(answers))
            self._ctx.flush()
            self._after_transition()
            self._handle_messages()
            self._process_records()

        self._guarded(resume)

    def _on_fatal(self, alert: AlertDescription, sent: bool) -> None:
        ctx = self._ctx
        ctx.observe(HandshakeFailed(alert, sent, during_handshake=ctx.info is None))
        if ctx.cached_session_id and ctx.config.session_store is not None:
            ctx.store_write(StoreWrite("delete", session_id_key(ctx.cached_session_id)))

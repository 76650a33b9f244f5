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

The connection owns the record layer, the handshake reassembler (behind the handshake I/O port)
and the event queue; each handshake has its own context, and a TLS 1.2 renegotiation starts a
new one here (the contexts' ``restart``).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic

from .config import ClientConfig, ServerConfig
from .enums import (
    AlertDescription,
    AlertLevel,
    ClientAuth,
    ContentType,
    HandshakeType,
)
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
from .events import (
    ApplicationData,
    ConnectionClosed,
    ConnectionInfo,
    Event,
    RenegotiationDeclined,
    SessionLookupRequired,
)
from .handshake import client as client_hs
from .handshake import post_auth, renegotiation
from .handshake.carry import Renegotiation, RenegotiationRequest
from .handshake.context import ClientContext, ClientState, ServerContext, ServerState, State, X
from .handshake.lookup import AwaitSessionLookup
from .handshake.negotiated import Negotiated12, Negotiated13
from .handshake.port import RecordPort
from .handshake.server import ExpectClientHello
from .handshake.server13 import ServerTraffic13
from .handshake.traffic12 import ClientTraffic12, HelloRequested, ServerTraffic12, Traffic12
from .messages import Alert, HelloRequest, decode_message
from .observe.facts import HandshakeFailed
from .record.layer import HandshakeReassembler, RecordLayer
from .session.model import ClientSession
from .session.resumption import LookupAnswer, session_id_key
from .session.resumption.operations import StoreLookup, StoreWrite

# Consecutive empty application data records tolerated before we call it an attack.
MAX_EMPTY_RECORDS = 32
# Consecutive warning alerts tolerated (OpenSSL: MAX_WARN_ALERT_COUNT, the fifth is fatal).
MAX_WARNING_ALERTS = 4
# TLS 1.3 compatibility ChangeCipherSpec records dropped per connection (RFC 8446 §D.4: one).
MAX_TLS13_CCS = 1


class _Connection(Generic[X]):
    # The handshake in progress or, once it is done, the one that describes the connection.
    _ctx: X
    # During a renegotiation: the last completed handshake (it still describes the connection)
    # and its open state (where a declined renegotiation returns).
    _settled: tuple[X, State[X]] | None

    def __init__(self) -> None:
        self._settled = None
        self._records = RecordLayer()
        self._reassembler = HandshakeReassembler()
        self._port = RecordPort(self._records, self._reassembler)
        self._events: deque[Event] = deque()
        self._state: State[X] | None = None
        self._failed: Exception | None = None
        self._peer_closed = False
        self._local_closed = False
        self._empty_budget = MAX_EMPTY_RECORDS
        self._paused = False  # the server waits for provide_session(): input is only buffered
        self._warning_budget = MAX_WARNING_ALERTS
        self._ccs13_budget = MAX_TLS13_CCS

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
        if self._state is None or not self._state.handshake_done:
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

    def _handle_record(self, ctype: int, payload: bytes) -> None:
        state = self._state
        assert state is not None
        if ctype == ContentType.APPLICATION_DATA:
            if self._reassembler.pending:
                raise UnexpectedMessage("application data inside a fragmented handshake message")
            if not state.accepts_application_data and (self._settled is None or state.after_ccs):
                # In a renegotiation data flows on, except between a ChangeCipherSpec and its
                # Finished.
                raise UnexpectedMessage(
                    f"application data before the handshake finished ({state!r})"
                )
            if payload:
                self._renew_budgets()
                early = state.early
                if early:
                    state.count(len(payload))
                self._events.append(ApplicationData(payload, early))
            else:
                self._spend_empty_budget()
            return
        if ctype == ContentType.HANDSHAKE:
            self._reassembler.add(payload)
            self._renew_budgets()
            self._handle_messages()
            return
        if ctype == ContentType.CHANGE_CIPHER_SPEC:
            self._handle_ccs(state, payload)
            return
        self._handle_alert(state, payload)

    def _handle_ccs(self, state: State[X], payload: bytes) -> None:
        tls13 = state.tls13 or state.ignores_ccs
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
            self._ccs13_budget -= 1
            if self._ccs13_budget < 0:
                raise UnexpectedMessage(
                    "a second ChangeCipherSpec in a TLS 1.3 handshake (RFC 8446 §D.4: one)"
                )
            return
        self._state = state.handle_ccs(self._ctx)
        self._port.flush()

    def _handle_alert(self, state: State[X], payload: bytes) -> None:
        if self._reassembler.pending:
            raise UnexpectedMessage("an alert inside a fragmented handshake message")
        if not payload:
            raise UnexpectedMessage("an empty alert record (RFC 8446 §5.4)")
        alert = Alert.decode(payload)
        desc = alert.description_enum
        if alert.description == AlertDescription.close_notify:
            self._peer_closed = True
            self._events.append(ConnectionClosed())
            return
        if alert.level == AlertLevel.FATAL or (
            state.tls13 and desc is not AlertDescription.user_canceled
        ):
            raise AlertReceived(
                desc if desc is not None else AlertDescription.internal_error,
                f"the peer sent a fatal alert {alert.description}",
            )
        self._warning_budget -= 1
        if self._warning_budget < 0:
            raise UnexpectedMessage(f"more than {MAX_WARNING_ALERTS} warning alerts in a row")
        if desc is AlertDescription.no_renegotiation:
            self._renegotiation_declined()

    def _renegotiation_declined(self) -> None:
        """The peer refused a renegotiation we asked for: the connection goes on as it was."""

    def _renew_budgets(self) -> None:
        """Data or a handshake message arrived: the peer is not just stalling."""
        self._empty_budget = MAX_EMPTY_RECORDS
        self._warning_budget = MAX_WARNING_ALERTS

    def _handle_messages(self) -> None:
        """Run every complete handshake message through the states (stopping when paused)."""
        reassembler = self._reassembler
        port = self._port
        state = self._state
        while not self._paused:
            msg = reassembler.next_message()
            if msg is None:
                break
            assert state is not None
            if msg[0] == HandshakeType.HELLO_REQUEST and self._ignores(state, msg[1]):
                continue
            ctx = self._ctx
            previous = state
            self._state = state = state.handle(ctx, msg[0], msg[1], msg[2])
            port.flush()
            if ctx.successor is not None:
                self._adopt(ctx, previous)
            if state.__class__ is AwaitSessionLookup:
                self._after_transition()
                state = self._state
        if state is not None and state.handshake_done:
            self._records.plaintext_alerts = False
            if self._settled is not None and self._ctx.info is not None:
                self._settled = None  # a renegotiation completed: it describes the connection

    def _adopt(self, ctx: X, previous: State[X]) -> None:
        """A transition started a renegotiation: its fresh context is the one in progress,
        and the handshake before (and its open state) describe the connection until it
        completes."""
        successor = ctx.successor
        assert successor is not None
        ctx.successor = None
        self._settled = (ctx, previous)
        self._ctx = successor

    def _ignores(self, state: State[X], body: bytes) -> bool:
        """A hook for the client: a HelloRequest while it negotiates is ignored."""
        return False

    def _after_transition(self) -> None:
        """A hook for the server: answer or announce a pending store lookup."""

    def _spend_empty_budget(self) -> None:
        self._empty_budget -= 1
        if self._empty_budget < 0:
            raise UnexpectedMessage("too many empty records in a row")

    def _fail(self, err: RemoteProtocolError) -> None:
        self._failed = err
        self._port.discard()
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
        events = self._events
        if not events:
            return []
        out = list(events)
        events.clear()
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
        if not self.handshake_complete:
            raise LocalProtocolError("send_data() before the handshake completed")
        if data:
            self._records.write_records(ContentType.APPLICATION_DATA, data)

    def update_keys(self, request_peer: bool = True) -> None:
        """TLS 1.3: send KeyUpdate and switch to new write keys; with ``request_peer`` the peer
        is asked to update its keys too."""
        state = self._state
        keys = state.keys13() if state is not None else None
        if keys is None or self._local_closed or self._failed is not None:
            raise LocalProtocolError("update_keys() needs an open TLS 1.3 connection")
        keys.update_write(self._ctx, request_peer)
        self._port.flush()

    def close(self) -> None:
        """Queue a close_notify alert. Further send_data() calls are refused."""
        if self._local_closed or self._failed is not None:
            return
        self._local_closed = True
        self._port.flush()
        self._records.write_records(
            ContentType.ALERT, bytes((AlertLevel.WARNING, AlertDescription.close_notify))
        )

    # -- state ---------------------------------------------------------------------------
    @property
    def handshake_complete(self) -> bool:
        """True once the first handshake has completed (and during a renegotiation)."""
        return self.info is not None

    @property
    def info(self) -> ConnectionInfo | None:
        """What the last completed handshake negotiated (during a renegotiation: the handshake
        before it, until RenegotiationCompleted)."""
        info = self._ctx.info
        if info is None and self._settled is not None:
            return self._settled[0].info
        return info

    @property
    def renegotiating(self) -> bool:
        """A TLS 1.2 renegotiation is under way (requested, or its handshake running)."""
        return self._settled is not None or isinstance(self._state, HelloRequested)

    def _open_negotiated(self) -> Negotiated12 | Negotiated13 | None:
        """What the connection's last completed handshake negotiated."""
        state = self._settled[1] if self._settled is not None else self._state
        if isinstance(state, Traffic12):
            return state.negotiated
        keys = state.keys13() if state is not None else None
        return keys.n if keys is not None else None

    def _check_open(self, what: str) -> None:
        if self._failed is not None:
            raise ConnectionClosedError(f"the connection failed earlier: {self._failed}")
        if self._local_closed or self._peer_closed:
            raise LocalProtocolError(f"{what} on a closed connection")
        if not self.handshake_complete:
            raise LocalProtocolError(f"{what} before the handshake completed")

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


class ClientConnection(_Connection[ClientContext]):
    """The client side. ``address`` (host, port) keys the session cache with the server name."""

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
        ctx = ClientContext(config, self._port, self._events, server_name, _restart_client)
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
        self._port.flush()

    def _restart(self, carry: Renegotiation) -> ClientState:
        """A renegotiation: a new handshake context, and its ClientHello."""
        assert self._state is not None
        new = self._ctx.next_handshake(carry)
        self._settled = (self._ctx, self._state)
        self._ctx = new
        return client_hs.start(new)

    @property
    def session(self) -> ClientSession | None:
        """The latest resumable session the server gave us (for saving and reuse)."""
        ctx = self._settled[0] if self._settled is not None else self._ctx
        return ctx.current_session() if ctx.info is not None else None

    def renegotiate(self) -> None:
        """TLS 1.2: start a new handshake on this connection (client-initiated renegotiation,
        RFC 5746), offering the current session for resumption. Application data keeps flowing;
        RenegotiationCompleted reports the new handshake, RenegotiationDeclined a server that
        refuses (most do by default)."""
        self._check_open("renegotiate()")
        state = self._state
        if self.renegotiating or not isinstance(state, ClientTraffic12):
            n = self._open_negotiated()
            why = (
                renegotiation.client_refusal(self._ctx.config, n)
                if isinstance(n, Negotiated13)
                else "a renegotiation is already under way"
            )
            raise LocalProtocolError(f"renegotiate(): {why}")
        why = renegotiation.client_refusal(self._ctx.config, state.negotiated)
        if why is not None:
            raise LocalProtocolError(f"renegotiate(): {why}")
        ctx = self._ctx
        self._state = _restart_client(ctx, state.carry("client"))
        self._adopt(ctx, state)
        self._port.flush()

    def _ignores(self, state: ClientState, body: bytes) -> bool:
        """RFC 5246 §7.4.1.1: a client that is negotiating ignores a HelloRequest (TLS 1.2)."""
        if state.handshake_done or not (self._ctx.carry is not None or state.ignores_hello_request):
            return False
        decode_message(HelloRequest, body)  # a HelloRequest with a body is still decode_error
        return True

    def _renegotiation_declined(self) -> None:
        """The server refused our ClientHello: back to the handshake before."""
        settled = self._settled
        if settled is not None and isinstance(self._state, client_hs.ExpectServerHello):
            self._ctx, self._state = settled
            self._settled = None
            self._events.append(RenegotiationDeclined())

    @property
    def handshake_started(self) -> bool:
        """True once :meth:`start_handshake` queued the ClientHello."""
        return self._state is not None

    @property
    def config(self) -> ClientConfig:
        return self._ctx.config

    @property
    def server_name(self) -> str | None:
        """The name the client sends (SNI) and checks the certificate against."""
        return self._ctx.server_name

    @property
    def offered_session(self) -> ClientSession | None:
        return self._ctx.offered_session

    @offered_session.setter
    def offered_session(self, session: ClientSession | None) -> None:
        """The session to offer; settable until :meth:`start_handshake`."""
        if self._state is not None:
            raise LocalProtocolError("a session can only be offered before the handshake starts")
        self._ctx.offered_session = session

    @property
    def early_data_limit(self) -> int:
        """How many bytes of 0-RTT data ``start_handshake(early_data=...)`` may carry: what the
        offered session's ticket allows, or 0 when no TLS 1.3 session usable here is offered."""
        return client_hs.early_data_allowance(self._ctx, self._ctx.offered_session)

    def _on_fatal(self, alert: AlertDescription, sent: bool) -> None:
        self._ctx.forget_session()


class ServerConnection(_Connection[ServerContext]):
    """The server side.

    Resumption may need the session store. With a synchronous ``session_store`` (the default)
    the connection asks it itself, inside :meth:`receive_data`. With
    ``ServerConfig(async_session_store=...)`` it pauses instead and emits
    :class:`~tessera.events.SessionLookupRequired`; until :meth:`provide_session` is called
    with the answers, received bytes are only buffered (0-RTT records stay encrypted) and
    ``send_data`` is refused. Store writes then come out as
    :class:`~tessera.events.SessionStoreUpdate` events.
    """

    def __init__(self, config: ServerConfig) -> None:
        super().__init__()
        self._ctx = ServerContext(config, self._port, self._events, _restart_server)
        self._state = ExpectClientHello()
        self._lookup: AwaitSessionLookup | None = None

    @property
    def config(self) -> ServerConfig:
        return self._ctx.config

    @property
    def awaiting_session(self) -> bool:
        """True between a SessionLookupRequired event and :meth:`provide_session`."""
        return self._lookup is not None

    def _restart(self, carry: Renegotiation, body: bytes, raw: bytes) -> ServerState:
        """A renegotiation ClientHello: a new handshake context answers it."""
        assert self._state is not None
        new = self._ctx.next_handshake(carry)
        self._settled = (self._ctx, self._state)
        self._ctx = new
        return ExpectClientHello().handle(new, HandshakeType.CLIENT_HELLO, body, raw)

    def _after_transition(self) -> None:
        """The handshake waits for an async store: pause and announce the lookup."""
        lookup = self._state
        assert isinstance(lookup, AwaitSessionLookup)
        self._lookup = lookup
        self._paused = True
        self._events.append(SessionLookupRequired(lookup.operations))

    def store_failed(self, op: StoreWrite | StoreLookup, error: BaseException) -> None:
        """Report a store operation that raised (a front end performing SessionStoreUpdate
        writes calls this; the observers count it)."""
        self._ctx.store_failed(op, error)

    def provide_session(self, answers: Sequence[LookupAnswer]) -> None:
        """Answer the pending SessionLookupRequired: one answer per operation, in order (bytes
        or None for get/take, a bool for add and put, or the exception the store raised — a
        :class:`~tessera.errors.StoreError` for a timeout; it is reported to the observers).
        Then the handshake goes on with the data received meanwhile."""
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
        self._paused = False
        self._ctx.report_failures(lookup.operations, answers)
        self._answered = (lookup, tuple(answers))
        self._guarded(self._resume)

    def _resume(self) -> None:
        lookup, answers = self._answered
        self._state = state = lookup.provide(self._ctx, answers)
        self._port.flush()
        if state.__class__ is AwaitSessionLookup:
            self._after_transition()
            return
        self._handle_messages()
        self._process_records()

    def _renegotiation_declined(self) -> None:
        """The client ignored our HelloRequest: the connection goes on as it was."""
        state = self._state
        if isinstance(state, HelloRequested):
            self._state = state.declined()
            self._events.append(RenegotiationDeclined())

    # -- renegotiation and post-handshake authentication -----------------------------------
    def request_renegotiation(
        self,
        *,
        require_client_certificate: bool = False,
        client_auth: ClientAuth | None = None,
        allow_resumption: bool = False,
    ) -> None:
        """TLS 1.2: send a HelloRequest, so that the client starts a new handshake (secure
        renegotiation only, RFC 5746). Application data keeps flowing meanwhile.

        ``client_auth`` is what the new handshake asks of the client: ``ClientAuth.OPTIONAL``
        asks for a certificate and lets the application decide what to do without one,
        ``REQUIRED`` fails the handshake without one (``require_client_certificate=True`` is
        short for it); default: the config's ``client_auth``. With ``allow_resumption=False``
        (the default) the client's attempt to resume is declined — only a full handshake can
        ask for a certificate — and counted as "resumption refused in renegotiation".
        RenegotiationCompleted reports the new handshake, RenegotiationDeclined a client that
        refuses."""
        self._check_open("request_renegotiation()")
        if client_auth is None:
            client_auth = (
                ClientAuth.REQUIRED if require_client_certificate else self.config.client_auth
            )
        n = self._open_negotiated()
        why = renegotiation.refusal_to_request(n) if n is not None else "the connection is not open"
        state = self._state
        if why is None and (self.renegotiating or not isinstance(state, ServerTraffic12)):
            why = "a renegotiation is already under way"
        if why is not None:
            raise LocalProtocolError(f"cannot renegotiate: {why}")
        assert isinstance(state, ServerTraffic12)
        self._state = state.requested(RenegotiationRequest(client_auth, allow_resumption))
        self._ctx.send_untranscribed(HelloRequest())
        self._port.flush()

    def request_client_certificate(self, *, required: bool = False) -> None:
        """Ask the client for a certificate on this open connection (a web server that needs
        one for some paths only): TLS 1.2 renegotiates (:meth:`request_renegotiation`, the
        client's resumption refused), TLS 1.3 sends a post-handshake CertificateRequest (RFC
        8446 §4.6.2; the client must have offered post_handshake_auth). With ``required=False``
        a client without a certificate completes the exchange without one and the application
        decides (say, HTTP 403); with ``required=True`` that fails the connection.

        RenegotiationCompleted (TLS 1.2) or PostHandshakeAuthCompleted (TLS 1.3) then carries
        the new ``info``. Raises LocalProtocolError, saying why, when the client cannot be asked.
        """
        client_auth = ClientAuth.REQUIRED if required else ClientAuth.OPTIONAL
        self._check_open("request_client_certificate()")
        if not isinstance(self._open_negotiated(), Negotiated13):
            self.request_renegotiation(client_auth=client_auth, allow_resumption=False)
            return
        state = self._state
        why = post_auth.refusal(state)
        if why is not None:
            raise LocalProtocolError(f"cannot ask for a client certificate: {why}")
        assert isinstance(state, ServerTraffic13)
        self._state = post_auth.request(self._ctx, state, client_auth)
        self._port.flush()

    def _on_fatal(self, alert: AlertDescription, sent: bool) -> None:
        ctx = self._ctx
        ctx.observe(HandshakeFailed(alert, sent, during_handshake=ctx.info is None))
        if ctx.cached_session_id and ctx.config.has_session_store:
            ctx.store_write(StoreWrite("delete", session_id_key(ctx.cached_session_id)))


# -- the restart, injected into each context (a function: no reference cycle through it) ----
def _restart_client(ctx: ClientContext, carry: Renegotiation) -> ClientState:
    """A renegotiation: a new handshake context, and its ClientHello."""
    return client_hs.start(ctx.next_handshake(carry))


def _restart_server(
    ctx: ServerContext, carry: Renegotiation, body: bytes, raw: bytes
) -> ServerState:
    """A renegotiation ClientHello: a new handshake context answers it."""
    new = ctx.next_handshake(carry)
    return ExpectClientHello().handle(new, HandshakeType.CLIENT_HELLO, body, raw)

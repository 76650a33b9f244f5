"""Events a connection emits: facts about what happened, in the order they happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from cryptography import x509

from .crypto.suites import CipherSuite
from .enums import ProtocolVersion
from .frozen import quick_init

if TYPE_CHECKING:
    from .session.model import ClientSession
    from .session.resumption import Mechanism, ResumptionDecision, StoreLookup, StoreWrite


@quick_init
@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """What the handshake negotiated."""

    version: ProtocolVersion
    cipher_suite: CipherSuite
    group: int | None
    server_name: str | None
    alpn_protocol: str | None
    peer_certificates: tuple[x509.Certificate, ...]
    session_id: bytes
    extended_master_secret: bool
    encrypt_then_mac: bool
    resumed: bool
    secure_renegotiation: bool
    signature_scheme: int | None
    # How it resumed (a string enum: == "session_id", "ticket" or "psk"), None for a full
    # handshake.
    resumed_by: Mechanism | None = None
    early_data_accepted: bool = False
    # Server side: how this connection resumed, or why it did not (the fallback reason).
    resumption: ResumptionDecision | None = None
    # Seconds from the first ClientHello (client: start_handshake) to completion, by the
    # config's clock.
    handshake_time: float | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    info: ConnectionInfo


@quick_init
@dataclass(frozen=True, slots=True)
class RenegotiationCompleted:
    """A TLS 1.2 renegotiation (a new handshake inside the open connection) finished; ``info``
    describes it and is now the connection's ``info``. Until then ``info`` described the
    handshake before, and application data kept flowing under its keys.

    ``initiator`` says who asked for it: "server" (a HelloRequest) or "client".
    ``session_offered``: the client offered a session to resume (``info.resumed`` says whether
    the server accepted; on the server ``info.resumption`` also says why not)."""

    info: ConnectionInfo
    initiator: Literal["server", "client"]
    session_offered: bool


@quick_init
@dataclass(frozen=True, slots=True)
class RenegotiationDeclined:
    """The peer answered our request to renegotiate with a warning no_renegotiation alert: the
    connection goes on as it was (server: the client ignored our HelloRequest's purpose;
    client: the server refused our ClientHello)."""


@quick_init
@dataclass(frozen=True, slots=True)
class PostHandshakeAuthCompleted:
    """TLS 1.3 post-handshake authentication (RFC 8446 §4.6.2) finished on our side: the client
    answered the server's CertificateRequest with its certificate (``certificate_sent``) or with
    an empty Certificate. On the server ``info.peer_certificates`` holds the new chain."""

    info: ConnectionInfo
    certificate_sent: bool


@quick_init
@dataclass(frozen=True, slots=True)
class ApplicationData:
    data: bytes
    # True for TLS 1.3 0-RTT data: it may be a replay, so act on it only if that is harmless.
    early: bool = False


@quick_init
@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer will send no more data: it sent close_notify, or (``close_notify=False``) the
    transport reached end of stream without one (``receive_data(b"")``), so the data may have
    been cut short by an attacker or a crash: trust a length the application protocol states
    (Content-Length), not the end of the stream."""

    close_notify: bool = True


@quick_init
@dataclass(frozen=True, slots=True)
class SessionTicketReceived:
    """A client learned a session it can resume later (also stored in its session cache)."""

    session: ClientSession = field(repr=False)
    # The lifetime the NewSessionTicket announced, as sent (TLS 1.2: 0 means "unspecified");
    # None for a TLS 1.2 session the server gave by session id only.
    lifetime_hint: int | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class ServerHelloReceived:
    """Client side: the server's answer to our ClientHello, kept as evidence of what it did
    with an offered session (a TLS 1.2 server resumes by echoing our session id; a TLS 1.3 one
    selects our PSK). A HelloRetryRequest is reported too, with ``hello_retry`` set."""

    version: ProtocolVersion
    cipher_suite: int
    offered_session_id: bytes  # the legacy_session_id we sent
    session_id: bytes  # the one the server answered with
    extensions: tuple[int, ...]  # the ServerHello's extension types, in order
    hello_retry: bool = False


@quick_init
@dataclass(frozen=True, slots=True)
class EarlyDataRejected:
    """The server refused our 0-RTT data; it was not delivered and may be sent again."""


@quick_init
@dataclass(frozen=True, slots=True)
class KeyUpdated:
    """TLS 1.3 traffic keys were updated (``initiator`` is "local" or "peer")."""

    initiator: str


@quick_init
@dataclass(frozen=True, slots=True)
class ResumptionDecided:
    """A server decided whether (and how) to resume the client's session, or why not."""

    decision: ResumptionDecision


@quick_init
@dataclass(frozen=True, slots=True)
class SessionLookupRequired:
    """The server connection needs these store operations answered before it can go on.

    Only with ``ServerConfig(async_session_store=...)``. Perform them in order and pass the
    answers to ``ServerConnection.provide_session`` — bytes or None for ``get``/``take``, a bool
    for ``add`` and ``put``, or the exception the store raised (that becomes a full handshake,
    or for a ``put``, no ticket). Until then the connection only buffers what it receives.
    """

    operations: tuple[StoreLookup, ...]


@quick_init
@dataclass(frozen=True, slots=True)
class SessionStoreUpdate:
    """Store writes (``put``/``delete``) to perform, with ``async_session_store``.

    Handle it before sending ``data_to_send()``: a session must be in the store before the
    records that let the client resume it leave.
    """

    operations: tuple[StoreWrite, ...]


Event = (
    HandshakeCompleted
    | ApplicationData
    | ConnectionClosed
    | SessionTicketReceived
    | EarlyDataRejected
    | KeyUpdated
    | ResumptionDecided
    | SessionLookupRequired
    | SessionStoreUpdate
    | ServerHelloReceived
    | RenegotiationCompleted
    | RenegotiationDeclined
    | PostHandshakeAuthCompleted
)

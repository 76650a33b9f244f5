"""Events a connection emits: facts about what happened, in the order they happened."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography import x509

from .crypto.suites import CipherSuite
from .enums import ProtocolVersion

if TYPE_CHECKING:
    from .session.model import ClientSession
    from .session.resumption import ResumptionDecision, StoreLookup, StoreWrite


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
    resumed_by: str | None = None  # "session_id", "ticket" or "psk" when resumed
    early_data_accepted: bool = False
    # Server side: how this connection resumed, or why it did not (the fallback reason).
    resumption: ResumptionDecision | None = None


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    info: ConnectionInfo


@dataclass(frozen=True, slots=True)
class ApplicationData:
    data: bytes
    # True for TLS 1.3 0-RTT data: it may be a replay, so act on it only if that is harmless.
    early: bool = False


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer will send no more data: it sent close_notify, or (``close_notify=False``) the
    transport reached end of stream without one (``receive_data(b"")``), so the data may have
    been cut short by an attacker or a crash: trust a length the application protocol states
    (Content-Length), not the end of the stream."""

    close_notify: bool = True


@dataclass(frozen=True, slots=True)
class SessionTicketReceived:
    """A client learned a session it can resume later (also stored in its session cache)."""

    session: ClientSession = field(repr=False)


@dataclass(frozen=True, slots=True)
class EarlyDataRejected:
    """The server refused our 0-RTT data; it was not delivered and may be sent again."""


@dataclass(frozen=True, slots=True)
class KeyUpdated:
    """TLS 1.3 traffic keys were updated (``initiator`` is "local" or "peer")."""

    initiator: str


@dataclass(frozen=True, slots=True)
class ResumptionDecided:
    """A server decided whether (and how) to resume the client's session, or why not."""

    decision: ResumptionDecision


@dataclass(frozen=True, slots=True)
class SessionLookupRequired:
    """The server connection needs these store operations answered before it can go on.

    Only with ``ServerConfig(external_session_lookup=True)``. Perform them in order and pass the
    answers to ``ServerConnection.provide_session`` — bytes or None for ``get``/``take``, a bool
    for ``add``, or the exception the store raised (that becomes a full handshake). Until then
    the connection only buffers what it receives.
    """

    operations: tuple[StoreLookup, ...]


@dataclass(frozen=True, slots=True)
class SessionStoreUpdate:
    """Store writes (``put``/``delete``) to perform, with ``external_session_lookup=True``.

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
)

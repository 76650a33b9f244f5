"""Facts: what a server tells its observers (statistics, metrics, logs), as one typed union.

A server connection reports each fact as it happens, through the observer guard
(:mod:`.guard`), to every observer in ``ServerConfig.observers`` (its
:class:`~tessera.session.stats.SessionStats` first). The handshake states count nothing
themselves. An observer matches the union exhaustively (``match`` with ``assert_never``), so a
new fact is a type error until every observer says what it does with it:

* :class:`~tessera.session.resumption.ResumptionDecision`: how a ClientHello was resumed, or why
  not (one per ClientHello that reaches a decision);
* :class:`~tessera.events.HandshakeCompleted`: a handshake finished (``info.resumption`` says
  how);
* :class:`TicketsIssued`, :class:`SessionCached`: resumption state handed out;
  :class:`NotIssued`: a ticket or session id the server meant to hand out and did not (its
  store write failed, or no ticket key could seal it);
* :class:`StoreFailed`: a store operation raised (the handshake went on without it);
* :class:`HandshakeFailed`: the connection ended in a fatal alert, sent or received;
* :class:`~tessera.events.RenegotiationCompleted`: a TLS 1.2 renegotiation finished (its
  handshake is also reported as ``HandshakeCompleted``, its decision as ``ResumptionDecision``);
* :class:`RenegotiationRefused`: a renegotiation the client started was refused;
* :class:`~tessera.events.PostHandshakeAuthCompleted`: a TLS 1.3 client answered a
  post-handshake CertificateRequest.

Observers run on the connection's thread, inside ``receive_data``: keep them quick. One that
raises is counted and skipped, never seen by the handshake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from ..enums import AlertDescription
from ..events import HandshakeCompleted, PostHandshakeAuthCompleted, RenegotiationCompleted
from ..session.resumption import NotIssued as NotIssuedReason
from ..session.resumption import ResumptionDecision


@dataclass(frozen=True, slots=True)
class TicketsIssued:
    count: int
    version: int


@dataclass(frozen=True, slots=True)
class SessionCached:
    """A TLS 1.2 session was written to the store under its id."""


@dataclass(frozen=True, slots=True)
class NotIssued:
    """``count`` tickets (or a session id) the server meant to give were not given."""

    what: Literal["ticket", "session id"]
    reason: NotIssuedReason
    count: int = 1


@dataclass(frozen=True, slots=True)
class StoreFailed:
    op: str  # get, take, add, put, delete
    error: str  # the exception's type and message


@dataclass(frozen=True, slots=True)
class HandshakeFailed:
    alert: AlertDescription
    sent: bool  # True: we sent the alert; False: the peer did
    during_handshake: bool


@dataclass(frozen=True, slots=True)
class RenegotiationRefused:
    reason: str  # in user words: disabled, insecure, over the rate limit


Fact = (
    ResumptionDecision
    | HandshakeCompleted
    | RenegotiationCompleted
    | PostHandshakeAuthCompleted
    | TicketsIssued
    | SessionCached
    | NotIssued
    | StoreFailed
    | HandshakeFailed
    | RenegotiationRefused
)


@runtime_checkable
class ResumptionObserver(Protocol):
    def observe(self, fact: Fact) -> None:
        """Called with each fact (see the module docstring)."""

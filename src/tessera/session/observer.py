"""Observers: what a server tells its statistics, metrics and logs.

A server connection reports facts as they happen to every observer in
``ServerConfig.observers`` (its :class:`~tessera.session.stats.SessionStats` always first). The
handshake states count nothing themselves. Facts:

* :class:`~tessera.session.resumption.ResumptionDecision`: how a ClientHello was resumed, or why
  not (one per ClientHello that reaches a decision);
* :class:`~tessera.events.HandshakeCompleted`: a handshake finished (``info.resumption`` says how);
* :class:`TicketsIssued`, :class:`SessionCached`: resumption state handed out;
* :class:`StoreFailed`: a store operation raised (the handshake went on without it);
* :class:`HandshakeFailed`: the connection ended in a fatal alert, sent or received;
* :class:`~tessera.events.RenegotiationCompleted`: a TLS 1.2 renegotiation finished (its
  handshake is also reported as ``HandshakeCompleted``, its decision as ``ResumptionDecision``);
* :class:`RenegotiationRefused`: a renegotiation the client started was refused;
* :class:`~tessera.events.PostHandshakeAuthCompleted`: a TLS 1.3 client answered a
  post-handshake CertificateRequest.

Observers run on the connection's thread, inside ``receive_data``: keep them quick and never
let them raise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..enums import AlertDescription


@dataclass(frozen=True, slots=True)
class TicketsIssued:
    count: int
    version: int


@dataclass(frozen=True, slots=True)
class SessionCached:
    """A TLS 1.2 session was written to the store under its id."""


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


@runtime_checkable
class ResumptionObserver(Protocol):
    def observe(self, fact: object) -> None:
        """Called with each fact (see the module docstring); ignore the ones you don't use."""

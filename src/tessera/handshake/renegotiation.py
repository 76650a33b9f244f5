"""Secure renegotiation (RFC 5746): a new TLS 1.2 handshake inside an open connection.

The connection keeps its record layer (records flow under the old keys until the new
ChangeCipherSpec), its handshake reassembler, its events and its configuration. Everything else
— transcript, randoms, negotiated values, keys — belongs to a fresh handshake context, which the
connection makes (the restart is injected into the context). The new handshake carries only what
RFC 5746 and RFC 7627 need from the one before (:class:`~.carry.Renegotiation`): both Finished
verify_data values and whether the extended master secret was used.

Server-initiated, to ask for a client certificate (the server refuses to resume, since only a
full handshake can carry a CertificateRequest)::

                                               <--  HelloRequest
    ClientHello (+renegotiation_info: client_verify_data)  -->
                  ServerHello (+renegotiation_info: client_verify_data | server_verify_data)
                  Certificate, ServerKeyExchange, CertificateRequest
                                               <--  ServerHelloDone
    Certificate, ClientKeyExchange, CertificateVerify, [ChangeCipherSpec], Finished  -->
                                               <--  NewSessionTicket*, [ChangeCipherSpec], Finished

Application data may interleave in both directions throughout, except between a
ChangeCipherSpec and its Finished. ``info`` describes the last completed handshake until the new
one completes; then ``RenegotiationCompleted`` reports it.

Rules, both sides: renegotiation_info carries the previous verify_data and is checked in constant
time (wrong or missing: fatal handshake_failure); the SCSV may not appear in a renegotiation
ClientHello; legacy (insecure) renegotiation — on a connection whose first handshake did not
signal RFC 5746 support — is always refused; a renegotiation keeps TLS 1.2 (RFC 8446 §4.1.2) and
the server sends no TLS 1.3 downgrade sentinel in it; a connection that used the extended master
secret keeps it (a renegotiation without it is a fatal handshake_failure).

Client-initiated renegotiation at the server is refused by default (a warning no_renegotiation
alert, as in OpenSSL 3). After :data:`MAX_REFUSALS` refusals on one connection, the next attempt
closes the connection with a fatal handshake_failure. With
``ServerConfig(client_renegotiation=True)`` it is accepted, at most
:data:`CLIENT_RENEGOTIATIONS_PER_WINDOW` times in any :data:`RENEGOTIATION_WINDOW` seconds per
connection (each one costs the server a full handshake's public-key operations); attempts beyond
that are refused like the others.

A client honours a HelloRequest by default (``ClientConfig(renegotiation=False)`` answers
no_renegotiation) and offers the current session for resumption; a HelloRequest that arrives
while the client is negotiating is ignored (RFC 5246 §7.4.1.1).
"""

from __future__ import annotations

import hmac

from ..config import ClientConfig
from ..crypto.suites import TLS_EMPTY_RENEGOTIATION_INFO_SCSV
from ..enums import AlertDescription, AlertLevel, ProtocolVersion
from ..errors import HandshakeFailure, ProtocolVersionError
from ..messages import ClientHello, ServerHello
from ..messages import extensions as X
from ..observe.facts import RenegotiationRefused
from ..session.resumption import HelloSummary
from .carry import (
    CLIENT_RENEGOTIATIONS_PER_WINDOW,
    RENEGOTIATION_WINDOW,
    Initiator,
    RenegotiationLimits,
)
from .context import AnyContext, ClientContext, ServerContext
from .negotiated import Negotiated12, Negotiated13

__all__ = [
    "CLIENT_RENEGOTIATIONS_PER_WINDOW",
    "MAX_REFUSALS",
    "RENEGOTIATION_WINDOW",
    "Initiator",
    "RenegotiationLimits",
]

# Refusals of client-initiated renegotiation per connection; the next attempt is fatal.
MAX_REFUSALS = 3


# -- the server ---------------------------------------------------------------------------------
def refusal_to_request(n: Negotiated12 | Negotiated13) -> str | None:
    """Why the server cannot renegotiate this connection (None: it can)."""
    if isinstance(n, Negotiated13):
        return (
            "TLS 1.3 has no renegotiation: ask for the certificate with post-handshake "
            "authentication (request_client_certificate)"
        )
    if not n.secure_renegotiation:
        return (
            "the client does not support secure renegotiation (no renegotiation_info or SCSV, "
            "RFC 5746); legacy renegotiation is refused"
        )
    return None


def refuse_client_initiated(ctx: ServerContext) -> str | None:
    if not ctx.config.client_renegotiation:
        return "client-initiated renegotiation is disabled (ServerConfig.client_renegotiation)"
    return ctx.limits.admit(ctx.now())


def refuse(ctx: ServerContext, why: str) -> None:
    """Decline with a warning no_renegotiation; a client that keeps trying is cut off."""
    limits = ctx.limits
    limits.refusals += 1
    ctx.observe(RenegotiationRefused(why))
    if limits.refusals > MAX_REFUSALS:
        raise HandshakeFailure(
            f"the client asked to renegotiate again after {MAX_REFUSALS} refusals ({why})"
        )
    decline(ctx)


def decline(ctx: AnyContext) -> None:
    ctx.port.send_alert(AlertLevel.WARNING, AlertDescription.no_renegotiation)


def version(ch: ClientHello) -> ProtocolVersion:
    """A renegotiation keeps TLS 1.2, which the ClientHello must still offer."""
    sv = ch.find(X.SupportedVersionsOffer)
    offered = (
        ProtocolVersion.TLS1_2 in sv.versions if sv is not None else ch.legacy_version >= 0x0303
    )
    if not offered:
        raise ProtocolVersionError(
            "a renegotiation ClientHello must offer TLS 1.2, the connection's version"
        )
    return ProtocolVersion.TLS1_2


def check_client_hello(ctx: ServerContext, hello: HelloSummary) -> bool:
    """RFC 5746 §3.6 (initial handshake) and §3.7 (renegotiation); returns whether the client
    supports secure renegotiation."""
    ch = hello.hello
    ri = ch.find(X.RenegotiationInfo)
    scsv = TLS_EMPTY_RENEGOTIATION_INFO_SCSV in ch.cipher_suites
    carry = ctx.carry
    if carry is None:
        if ri is not None and ri.renegotiated_connection:
            raise HandshakeFailure("renegotiation_info must be empty in an initial handshake")
        return ri is not None or scsv
    if scsv:
        raise HandshakeFailure(
            "TLS_EMPTY_RENEGOTIATION_INFO_SCSV in a renegotiation ClientHello (RFC 5746 §3.7)"
        )
    if ri is None or not hmac.compare_digest(ri.renegotiated_connection, carry.client_verify_data):
        raise HandshakeFailure(
            "the renegotiation ClientHello's renegotiation_info does not carry the previous "
            "handshake's client verify_data (RFC 5746 §3.7)"
        )
    if carry.extended_master_secret and not hello.ems:
        raise HandshakeFailure(
            "the renegotiation ClientHello drops extended_master_secret, which this connection "
            "uses (RFC 7627)"
        )
    return True


def server_hello_info(ctx: ServerContext) -> bytes:
    """The ServerHello's renegotiation_info: empty, or both previous verify_data."""
    carry = ctx.carry
    return b"" if carry is None else carry.client_verify_data + carry.server_verify_data


# -- the client ---------------------------------------------------------------------------------
def client_hello_info(ctx: ClientContext) -> bytes:
    carry = ctx.carry
    return b"" if carry is None else carry.client_verify_data


def client_refusal(config: ClientConfig, n: Negotiated12 | Negotiated13) -> str | None:
    """Why this client will not renegotiate this connection (None: it will)."""
    if isinstance(n, Negotiated13):
        return "only a TLS 1.2 connection can be renegotiated"
    if not config.renegotiation:
        return "renegotiation is disabled (ClientConfig.renegotiation)"
    if not n.secure_renegotiation:
        return (
            "the server does not support secure renegotiation (RFC 5746); legacy renegotiation "
            "is refused"
        )
    return None


def check_server_hello(ctx: ClientContext, sh: ServerHello, ems: bool) -> bool:
    """RFC 5746 §3.4 and §3.5 for the ServerHello; returns whether the server supports secure
    renegotiation."""
    ri = sh.find(X.RenegotiationInfo)
    carry = ctx.carry
    if carry is None:
        if ri is not None and ri.renegotiated_connection:
            raise HandshakeFailure("renegotiation_info must be empty in an initial handshake")
        return ri is not None
    expected = carry.client_verify_data + carry.server_verify_data
    if ri is None or not hmac.compare_digest(ri.renegotiated_connection, expected):
        raise HandshakeFailure(
            "the server's renegotiation_info does not carry both previous verify_data values "
            "(RFC 5746 §3.5)"
        )
    if carry.extended_master_secret and not ems:
        raise HandshakeFailure(
            "the server renegotiates without the extended master secret this connection uses "
            "(RFC 7627)"
        )
    return True

"""TLS 1.3 post-handshake client authentication (RFC 8446 §4.6.2).

TLS 1.3 has no renegotiation; a server that wants a client certificate after the handshake (for
one path of a web site, say) asks for it on the open connection, if the client offered
``post_handshake_auth`` in its ClientHello::

                                   <--  CertificateRequest (certificate_request_context: random)
    Certificate (the same context)
    CertificateVerify (if a certificate was sent)
    Finished                       -->

The messages travel under the application traffic keys, and application data may interleave.
Each exchange has its own transcript: the handshake's (ClientHello up to the client's Finished)
followed by the CertificateRequest, the Certificate and the CertificateVerify; the Finished key
comes from the client's *current* application traffic secret (after any KeyUpdate).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cryptography import x509

from ..config import ClientAuth
from ..crypto import signatures
from ..enums import HandshakeType, ProtocolVersion
from ..errors import (
    CertificateRequired,
    IllegalParameter,
    MissingExtension,
    UnexpectedMessage,
)
from ..events import PostHandshakeAuthCompleted
from ..messages import (
    Certificate13,
    CertificateEntry,
    CertificateRequest13,
    CertificateVerify,
    Finished,
    decode_message,
)
from ..messages import extensions as X
from ..messages.extensions import Extension
from .common13 import CLIENT_CV_CONTEXT, PostHandshakeAuth, Traffic13, cv_content, verify_cv
from .context import require, unexpected, verify_finished

if TYPE_CHECKING:
    from ..crypto.transcript import Transcript
    from .context import ClientContext, ServerContext, State

CONTEXT_LENGTH = 32  # random bytes in each certificate_request_context
# Post-handshake CertificateRequests a client answers per connection (each costs a signature).
MAX_REQUESTS = 16


def handle(ctx: Any, traffic: Traffic13, msg_type: int, body: bytes, raw: bytes) -> None:
    """A post-handshake authentication message on an open TLS 1.3 connection."""
    if ctx.is_client:
        if msg_type != HandshakeType.CERTIFICATE_REQUEST:
            unexpected(traffic, msg_type)
        answer(ctx, traffic, body, raw)
        return
    if traffic.auth is None:
        unexpected(traffic, msg_type)
    traffic.auth = traffic.auth.step(ctx, traffic, msg_type, body, raw)


# -- the server ---------------------------------------------------------------------------------
def refusal(ctx: ServerContext, state: State | None) -> str | None:
    """Why the server cannot ask this TLS 1.3 client for a certificate now (None: it can)."""
    if not ctx.post_handshake_auth:
        return (
            "the client did not offer post_handshake_auth, so TLS 1.3 gives no way to ask it "
            "for a certificate after the handshake (RFC 8446 §4.6.2; TLS 1.3 has no "
            "renegotiation)"
        )
    if not isinstance(state, Traffic13):
        return "the connection is not open"
    if state.auth is not None:
        return "a post-handshake CertificateRequest is already outstanding"
    return None


def request(ctx: ServerContext, traffic: Traffic13, client_auth: ClientAuth) -> None:
    """Send a post-handshake CertificateRequest; the exchange then runs in ``traffic``."""
    config = ctx.config
    exts: list[Extension] = [X.SignatureAlgorithms(config.signature_schemes)]
    if names := config.client_ca_names():
        exts.append(X.CertificateAuthorities(names))
    context = ctx.rng(CONTEXT_LENGTH)
    raw = ctx.send_untranscribed(CertificateRequest13(context, tuple(exts)))
    transcript = ctx.transcript.fork()
    transcript.add(raw)
    traffic.auth = AwaitCertificate(_Exchange(context, transcript, client_auth))


@dataclass(slots=True)
class _Exchange:
    context: bytes
    transcript: Transcript = field(repr=False)
    client_auth: ClientAuth
    chain: tuple[x509.Certificate, ...] = ()
    chain_der: tuple[bytes, ...] = ()


class _Step:
    """Waits for one message of the exchange; returns the next step, or None when done."""

    __slots__ = ("x",)
    expects: HandshakeType

    def __init__(self, x: _Exchange) -> None:
        self.x = x

    def step(
        self, ctx: ServerContext, traffic: Traffic13, msg_type: int, body: bytes, raw: bytes
    ) -> PostHandshakeAuth | None:
        require(traffic, msg_type, self.expects)
        return self.received(ctx, traffic, body, raw)

    def received(
        self, ctx: ServerContext, traffic: Traffic13, body: bytes, raw: bytes
    ) -> PostHandshakeAuth | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.x!r})"


class AwaitCertificate(_Step):
    expects = HandshakeType.CERTIFICATE

    def received(
        self, ctx: ServerContext, traffic: Traffic13, body: bytes, raw: bytes
    ) -> PostHandshakeAuth | None:
        msg = decode_message(Certificate13, body)
        x = self.x
        if not hmac.compare_digest(msg.context, x.context):
            raise IllegalParameter("the client's Certificate answers another CertificateRequest")
        x.transcript.add(raw)
        if not msg.entries:
            if x.client_auth is ClientAuth.REQUIRED:
                raise CertificateRequired("the client sent no certificate, and one is required")
            return AwaitFinished(x)
        x.chain, x.chain_der = ctx.verified_client_chain(msg.chain), msg.chain
        return AwaitCertificateVerify(x)


class AwaitCertificateVerify(_Step):
    expects = HandshakeType.CERTIFICATE_VERIFY

    def received(
        self, ctx: ServerContext, traffic: Traffic13, body: bytes, raw: bytes
    ) -> PostHandshakeAuth | None:
        cv = decode_message(CertificateVerify, body)
        x = self.x
        verify_cv(ctx, cv.scheme, cv.signature, CLIENT_CV_CONTEXT, x.transcript.digest(),
                  ctx.config.signature_schemes, x.chain)  # fmt: skip
        x.transcript.add(raw)
        return AwaitFinished(x)


class AwaitFinished(_Step):
    expects = HandshakeType.FINISHED

    def received(
        self, ctx: ServerContext, traffic: Traffic13, body: bytes, raw: bytes
    ) -> PostHandshakeAuth | None:
        x = self.x
        expected = traffic.ks.finished_mac(traffic.read_secret, x.transcript.digest())
        verify_finished(decode_message(Finished, body).verify_data, expected)
        assert ctx.info is not None
        if x.chain:
            ctx.peer_chain, ctx.peer_chain_der = x.chain, x.chain_der
            ctx.info = replace(ctx.info, peer_certificates=x.chain)
        event = PostHandshakeAuthCompleted(ctx.info, bool(x.chain))
        ctx.events.append(event)
        ctx.observe(event)
        return None


# -- the client ---------------------------------------------------------------------------------
def answer(ctx: ClientContext, traffic: Traffic13, body: bytes, raw: bytes) -> None:
    """Answer a post-handshake CertificateRequest: Certificate, CertificateVerify, Finished."""
    if not ctx.config.offers_post_handshake_auth:
        raise UnexpectedMessage(
            "a CertificateRequest after the handshake, but we did not offer post_handshake_auth "
            "(RFC 8446 §4.6.2)"
        )
    req = decode_message(CertificateRequest13, body)
    schemes = req.find_schemes()
    if schemes is None:
        raise MissingExtension("CertificateRequest without signature_algorithms")
    if req.context in traffic.request_contexts:
        raise IllegalParameter("a certificate_request_context the server used before")
    if len(traffic.request_contexts) >= MAX_REQUESTS:
        raise UnexpectedMessage(f"more than {MAX_REQUESTS} post-handshake CertificateRequests")
    traffic.request_contexts.add(req.context)
    transcript = ctx.transcript.fork()
    transcript.add(raw)
    sent = _send_certificate(ctx, req.context, schemes, transcript)
    verify = traffic.ks.finished_mac(traffic.write_secret, transcript.digest())
    ctx.send_untranscribed(Finished(verify))
    assert ctx.info is not None and ctx.version == ProtocolVersion.TLS1_3
    ctx.events.append(PostHandshakeAuthCompleted(ctx.info, sent))


def _send_certificate(
    ctx: ClientContext, context: bytes, schemes: tuple[int, ...], transcript: Transcript
) -> bool:
    """Certificate (and CertificateVerify); returns whether a certificate was sent."""
    cert = ctx.config.certificate
    scheme = None
    if cert is not None:
        scheme = signatures.choose_scheme(cert.key, schemes, ctx.config.signature_schemes, True)
    if cert is None or scheme is None:
        transcript.add(ctx.send_untranscribed(Certificate13(context, ())))
        return False
    entries = tuple(CertificateEntry(d) for d in cert.chain_der)
    transcript.add(ctx.send_untranscribed(Certificate13(context, entries)))
    content = cv_content(CLIENT_CV_CONTEXT, transcript.digest())
    cv = CertificateVerify(scheme, signatures.sign(cert.key, scheme, content))
    transcript.add(ctx.send_untranscribed(cv))
    return True

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

The server reads the answer with the handshake's own client-certificate states
(``server13.ExpectClientCertificate`` and the two after it), given a :class:`PostAuthFlow`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..config import ClientConfig
from ..crypto import signatures
from ..crypto.key_schedule import KeySchedule
from ..crypto.transcript import Transcript
from ..enums import ClientAuth
from ..errors import IllegalParameter, MissingExtension, UnexpectedMessage
from ..events import PostHandshakeAuthCompleted
from ..frozen import quick_init
from ..messages import (
    Certificate13,
    CertificateEntry,
    CertificateRequest13,
    CertificateVerify,
    Finished,
    decode_message,
)
from .context import ClientContext, ServerContext, ServerState
from .negotiated import Negotiated13
from .server13 import ExpectClientCertificate, ServerTraffic13, certificate_request_extensions
from .traffic13 import CLIENT_CV_CONTEXT, Keys13, cv_content

CONTEXT_LENGTH = 32  # random bytes in each certificate_request_context
# Post-handshake CertificateRequests a client answers per connection (each costs a signature).
MAX_REQUESTS = 16


# -- the server ---------------------------------------------------------------------------------
def refusal(state: ServerState | None) -> str | None:
    """Why the server cannot ask this TLS 1.3 client for a certificate now (None: it can)."""
    if isinstance(state, ServerTraffic13):
        if not state.post_handshake_auth:
            return (
                "the client did not offer post_handshake_auth, so TLS 1.3 gives no way to ask "
                "it for a certificate after the handshake (RFC 8446 §4.6.2; TLS 1.3 has no "
                "renegotiation)"
            )
        return None
    if state is not None and state.handshake_done and state.keys13() is not None:
        return "a post-handshake CertificateRequest is already outstanding"
    return "the connection is not open"


def request(ctx: ServerContext, traffic: ServerTraffic13, client_auth: ClientAuth) -> ServerState:
    """Send a post-handshake CertificateRequest; the client's answer is read next."""
    context = ctx.rng(CONTEXT_LENGTH)
    exts = certificate_request_extensions(ctx.config)
    raw = ctx.send_untranscribed(CertificateRequest13(context, exts))
    transcript = ctx.transcript.fork()
    transcript.add(raw)
    return ExpectClientCertificate(PostAuthFlow(traffic, transcript, context, client_auth))


@quick_init
@dataclass(frozen=True, slots=True)
class PostAuthFlow:
    """One post-handshake authentication exchange (a ``server13.ClientAuthFlow``)."""

    traffic: ServerTraffic13
    transcript: Transcript = field(repr=False)
    context: bytes
    client_auth: ClientAuth

    @property
    def keys(self) -> Keys13:
        return self.traffic.keys

    @property
    def negotiated(self) -> Negotiated13:
        return self.traffic.keys.n

    def schedule(self) -> KeySchedule:
        return self.traffic.keys.ks

    def finished_secret(self) -> bytes:
        return self.traffic.keys.read_secret  # the current one, after any KeyUpdate

    def done(self, ctx: ServerContext, n: Negotiated13, client_verify: bytes) -> ServerState:
        info = ctx.info
        assert info is not None
        sent = n is not self.negotiated
        if sent:
            self.traffic.keys.n = n
            info = ctx.info = replace(info, peer_certificates=n.peer_chain)
        event = PostHandshakeAuthCompleted(info, sent)
        ctx.events.append(event)
        ctx.observe(event)
        return self.traffic


# -- the client ---------------------------------------------------------------------------------
def answer(ctx: ClientContext, keys: Keys13, seen: set[bytes], body: bytes, raw: bytes) -> None:
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
    if req.context in seen:
        raise IllegalParameter("a certificate_request_context the server used before")
    if len(seen) >= MAX_REQUESTS:
        raise UnexpectedMessage(f"more than {MAX_REQUESTS} post-handshake CertificateRequests")
    seen.add(req.context)
    transcript = ctx.transcript.fork()
    transcript.add(raw)
    sent = send_certificate(ctx, ctx.config, req.context, schemes, transcript, False)
    verify = keys.ks.finished_mac(keys.write_secret, transcript.digest())
    ctx.send_untranscribed(Finished(verify))
    assert ctx.info is not None
    ctx.events.append(PostHandshakeAuthCompleted(ctx.info, sent))


def send_certificate(
    ctx: ClientContext, config: ClientConfig, context: bytes, schemes: tuple[int, ...],
    transcript: Transcript, in_handshake: bool,
) -> bool:  # fmt: skip
    """The client's Certificate (and CertificateVerify) for a TLS 1.3 CertificateRequest, in
    the handshake or after it; returns whether a certificate was sent."""
    cert = config.certificate
    scheme = None
    if cert is not None:
        scheme = signatures.choose_scheme(cert.key, schemes, config.signature_schemes, True)
    entries = tuple(CertificateEntry(d) for d in cert.chain_der) if cert and scheme else ()
    _send(ctx, Certificate13(context, entries), transcript, in_handshake)
    if cert is None or scheme is None:
        return False
    content = cv_content(CLIENT_CV_CONTEXT, transcript.digest())
    cv = CertificateVerify(scheme, signatures.sign(cert.key, scheme, content))
    _send(ctx, cv, transcript, in_handshake)
    return True


def _send(ctx: ClientContext, msg: Certificate13 | CertificateVerify, transcript: Transcript,
          in_handshake: bool) -> None:  # fmt: skip
    if in_handshake:
        ctx.send(msg)  # the handshake transcript is ``transcript``
    else:
        transcript.add(ctx.send_untranscribed(msg))

"""Pieces both TLS 1.3 roles use: signatures over the transcript, traffic keys, KeyUpdate and
the post-handshake traffic state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from cryptography import x509

from ..crypto import signatures
from ..crypto.key_schedule import KeySchedule
from ..crypto.x509 import leaf_public_key
from ..enums import AlertDescription, HandshakeType, KeyUpdateRequest
from ..errors import BadCertificate, DecodeError, IllegalParameter
from ..events import KeyUpdated
from ..messages import KeyUpdate, NewSessionTicket13, decode_message
from ..record.protection import AEAD13
from .context import HandshakeContext, State, unexpected

if TYPE_CHECKING:
    from .context import ServerContext

SERVER_CV_CONTEXT = b"TLS 1.3, server CertificateVerify"
CLIENT_CV_CONTEXT = b"TLS 1.3, client CertificateVerify"
MAX_TICKET_LIFETIME = 7 * 24 * 3600


def cv_content(context: bytes, transcript_hash: bytes) -> bytes:
    """RFC 8446 §4.4.3: 64 spaces, the context string, a zero byte, the transcript hash."""
    return b" " * 64 + context + b"\x00" + transcript_hash


def protection(ks: KeySchedule, secret: bytes) -> AEAD13:
    key, iv = ks.traffic_keys(secret)
    return AEAD13(ks.suite, key, iv)


def verify_cv(ctx: HandshakeContext, scheme: int, signature: bytes, context: bytes,  # type: ignore[type-arg]
              transcript_hash: bytes, offered: tuple[int, ...],
              chain: Sequence[x509.Certificate] | None = None) -> None:  # fmt: skip
    """Check a CertificateVerify against the peer's leaf (``chain``, by default the
    handshake's peer chain)."""
    chain = ctx.peer_chain if chain is None else chain
    if not chain:
        raise DecodeError("CertificateVerify without a certificate")
    key = leaf_public_key(chain[0])
    if scheme not in offered:
        raise IllegalParameter(
            f"CertificateVerify uses scheme 0x{scheme:04x}, which was not offered"
        )
    if not signatures.scheme_fits_key(scheme, key, tls13=True):
        raise IllegalParameter(f"signature scheme 0x{scheme:04x} does not fit the certificate")
    signatures.verify(key, scheme, cv_content(context, transcript_hash), signature, tls13=True)


def handshake_secrets(
    ctx: HandshakeContext,  # type: ignore[type-arg]
    ks: KeySchedule,
    shared: bytes | None,
) -> tuple[bytes, bytes]:
    """Advance to the handshake secret; (client, server) handshake traffic secrets, logged."""
    ks.to_handshake(shared)
    hs_hash = ctx.transcript.digest()
    c_hs = ks.derive(b"c hs traffic", hs_hash)
    s_hs = ks.derive(b"s hs traffic", hs_hash)
    ctx.keylog("CLIENT_HANDSHAKE_TRAFFIC_SECRET", c_hs)
    ctx.keylog("SERVER_HANDSHAKE_TRAFFIC_SECRET", s_hs)
    return c_hs, s_hs


def application_secrets(ctx: HandshakeContext, ks: KeySchedule) -> tuple[bytes, bytes]:  # type: ignore[type-arg]
    """Advance to the master secret; (client, server) application traffic secrets, logged."""
    ks.to_master()
    app_hash = ctx.transcript.digest()
    c_ap = ks.derive(b"c ap traffic", app_hash)
    s_ap = ks.derive(b"s ap traffic", app_hash)
    ctx.keylog("CLIENT_TRAFFIC_SECRET_0", c_ap)
    ctx.keylog("SERVER_TRAFFIC_SECRET_0", s_ap)
    if ctx.config.keylog is not None:
        ctx.keylog("EXPORTER_SECRET", ks.derive(b"exp master", app_hash))
    return c_ap, s_ap


def require_leaf_fits(ctx: HandshakeContext, offered: tuple[int, ...]) -> None:  # type: ignore[type-arg]
    key = leaf_public_key(ctx.peer_chain[0])
    if not any(signatures.scheme_fits_key(s, key, tls13=True) for s in offered):
        raise BadCertificate(
            "the peer's certificate key cannot sign with any scheme we offered",
            alert=AlertDescription.unsupported_certificate,
        )


_POST_AUTH_MESSAGES = frozenset(
    (
        HandshakeType.CERTIFICATE_REQUEST,
        HandshakeType.CERTIFICATE,
        HandshakeType.CERTIFICATE_VERIFY,
        HandshakeType.FINISHED,
    )
)


class PostHandshakeAuth(Protocol):
    """One step of the server's post-handshake authentication exchange (see post_auth)."""

    def step(
        self, ctx: ServerContext, traffic: Traffic13, msg_type: int, body: bytes, raw: bytes
    ) -> PostHandshakeAuth | None: ...


class Traffic13(State):
    """Application data flows; KeyUpdate in both directions; tickets arrive (client)."""

    accepts_application_data = True
    handshake_done = True

    def __init__(self, ks: KeySchedule, read_secret: bytes, write_secret: bytes,
                 resumption_master: bytes) -> None:  # fmt: skip
        self.ks = ks
        self.read_secret = read_secret
        self.write_secret = write_secret
        self.resumption_master = resumption_master
        # Post-handshake authentication: the server's outstanding request; the client's count
        # of requests answered and their contexts (each must be new).
        self.auth: PostHandshakeAuth | None = None
        self.request_contexts: set[bytes] = set()

    def handle(self, ctx: HandshakeContext, msg_type: int, body: bytes, raw: bytes) -> State:  # type: ignore[type-arg]
        if msg_type in _POST_AUTH_MESSAGES:
            from . import post_auth

            post_auth.handle(ctx, self, msg_type, body, raw)
            return self
        if msg_type == HandshakeType.KEY_UPDATE:
            ku = decode_message(KeyUpdate, body)
            self.read_secret = self.ks.next_traffic_secret(self.read_secret)
            ctx.set_read_protection(protection(self.ks, self.read_secret))
            ctx.events.append(KeyUpdated("peer"))
            if ku.request_update == KeyUpdateRequest.update_requested:
                self.update_write(ctx, request_peer=False)
            return self
        if msg_type == HandshakeType.NEW_SESSION_TICKET and ctx.is_client:
            from .client13 import receive_ticket

            receive_ticket(ctx, self, decode_message(NewSessionTicket13, body))  # type: ignore[arg-type]
            return self
        unexpected(self, msg_type)

    def update_write(self, ctx: HandshakeContext, request_peer: bool) -> None:  # type: ignore[type-arg]
        """Send KeyUpdate under the current keys, then switch to the next write secret."""
        req = (
            KeyUpdateRequest.update_requested
            if request_peer
            else KeyUpdateRequest.update_not_requested
        )
        ctx.send_untranscribed(KeyUpdate(req))
        self.write_secret = self.ks.next_traffic_secret(self.write_secret)
        ctx.set_write_protection(protection(self.ks, self.write_secret))
        ctx.events.append(KeyUpdated("local"))

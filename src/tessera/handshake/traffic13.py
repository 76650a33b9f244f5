"""Pieces both TLS 1.3 roles use: signatures over the transcript, the handshake and application
secrets, and the open connection's traffic keys with KeyUpdate (RFC 8446 §4.6.3). The
role-specific open states are ``server13.ServerTraffic13`` and ``client13.ClientTraffic13``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic

from cryptography import x509

from ..crypto import signatures
from ..crypto.key_schedule import KeySchedule
from ..crypto.x509 import leaf_public_key
from ..enums import AlertDescription, KeyUpdateRequest
from ..errors import BadCertificate, DecodeError, IllegalParameter
from ..events import KeyUpdated
from ..messages import KeyUpdate, decode_message
from .context import AnyContext, State, X
from .negotiated import Negotiated13
from .port import Direction, Epoch

SERVER_CV_CONTEXT = b"TLS 1.3, server CertificateVerify"
CLIENT_CV_CONTEXT = b"TLS 1.3, client CertificateVerify"
MAX_TICKET_LIFETIME = 7 * 24 * 3600


def cv_content(context: bytes, transcript_hash: bytes) -> bytes:
    """RFC 8446 §4.4.3: 64 spaces, the context string, a zero byte, the transcript hash."""
    return b" " * 64 + context + b"\x00" + transcript_hash


def verify_cv(scheme: int, signature: bytes, context: bytes, transcript_hash: bytes,
              offered: tuple[int, ...], chain: Sequence[x509.Certificate]) -> None:  # fmt: skip
    """Check a CertificateVerify against the peer's leaf certificate."""
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


def require_leaf_fits(chain: Sequence[x509.Certificate], offered: tuple[int, ...]) -> None:
    key = leaf_public_key(chain[0])
    if not any(signatures.scheme_fits_key(s, key, tls13=True) for s in offered):
        raise BadCertificate(
            "the peer's certificate key cannot sign with any scheme we offered",
            alert=AlertDescription.unsupported_certificate,
        )


def handshake_secrets(
    ctx: AnyContext, ks: KeySchedule, shared: bytes | None, client_random: bytes
) -> tuple[bytes, bytes]:
    """Advance to the handshake secret; (client, server) handshake traffic secrets, logged."""
    ks.to_handshake(shared)
    hs_hash = ctx.transcript.digest()
    c_hs = ks.derive(b"c hs traffic", hs_hash)
    s_hs = ks.derive(b"s hs traffic", hs_hash)
    ctx.keylog("CLIENT_HANDSHAKE_TRAFFIC_SECRET", client_random, c_hs)
    ctx.keylog("SERVER_HANDSHAKE_TRAFFIC_SECRET", client_random, s_hs)
    return c_hs, s_hs


def application_secrets(
    ctx: AnyContext, ks: KeySchedule, client_random: bytes
) -> tuple[bytes, bytes]:
    """Advance to the master secret; (client, server) application traffic secrets, logged."""
    ks.to_master()
    app_hash = ctx.transcript.digest()
    c_ap = ks.derive(b"c ap traffic", app_hash)
    s_ap = ks.derive(b"s ap traffic", app_hash)
    if ctx.config.keylog is not None:
        ctx.keylog("CLIENT_TRAFFIC_SECRET_0", client_random, c_ap)
        ctx.keylog("SERVER_TRAFFIC_SECRET_0", client_random, s_ap)
        ctx.keylog("EXPORTER_SECRET", client_random, ks.derive(b"exp master", app_hash))
    return c_ap, s_ap


class Keys13:
    """An open TLS 1.3 connection's traffic secrets (they move on with each KeyUpdate) and the
    resumption master secret, with what the handshake negotiated."""

    __slots__ = ("ks", "n", "read_secret", "resumption_master", "write_secret")

    def __init__(self, ks: KeySchedule, read_secret: bytes, write_secret: bytes,
                 resumption_master: bytes, n: Negotiated13) -> None:  # fmt: skip
        self.ks = ks
        self.read_secret = read_secret
        self.write_secret = write_secret
        self.resumption_master = resumption_master
        self.n = n

    def __repr__(self) -> str:
        return f"Keys13({self.n.suite.openssl_name})"  # never the secrets

    def peer_updated(self, ctx: AnyContext, body: bytes) -> None:
        """The peer's KeyUpdate: switch to its next read secret (and answer if asked)."""
        ku = decode_message(KeyUpdate, body)
        self.read_secret = self.ks.next_traffic_secret(self.read_secret)
        ctx.port.install_keys(Direction.READ, Epoch.APPLICATION, self.n.suite, self.read_secret)
        ctx.events.append(KeyUpdated("peer"))
        if ku.request_update == KeyUpdateRequest.update_requested:
            self.update_write(ctx, request_peer=False)

    def update_write(self, ctx: AnyContext, request_peer: bool) -> None:
        """Send KeyUpdate under the current keys, then switch to the next write secret."""
        req = (
            KeyUpdateRequest.update_requested
            if request_peer
            else KeyUpdateRequest.update_not_requested
        )
        ctx.send_untranscribed(KeyUpdate(req))
        self.write_secret = self.ks.next_traffic_secret(self.write_secret)
        ctx.port.install_keys(Direction.WRITE, Epoch.APPLICATION, self.n.suite, self.write_secret)
        ctx.events.append(KeyUpdated("local"))


class Traffic13(State[X], Generic[X]):
    """Application data flows; KeyUpdate in both directions (the roles add the rest)."""

    __slots__ = ("keys",)
    accepts_application_data = True
    handshake_done = True
    tls13 = True

    def __init__(self, keys: Keys13) -> None:
        self.keys = keys

    def keys13(self) -> Keys13:
        return self.keys

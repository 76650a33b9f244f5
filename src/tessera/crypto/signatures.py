"""Signature schemes (RFC 8446 §4.2.3): which keys can use them, signing and verifying."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from ..enums import SignatureScheme as S
from ..errors import DecryptError, IllegalParameter

PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


@dataclass(frozen=True, slots=True)
class SchemeInfo:
    code: int
    key: str  # "rsa", "ec", "ed25519", "ed448"
    hash: hashes.HashAlgorithm | None
    pss: bool = False
    curve: str | None = None  # TLS 1.3 binds ECDSA schemes to one curve
    tls13: bool = True


SCHEMES: dict[int, SchemeInfo] = {
    S.ecdsa_secp256r1_sha256: SchemeInfo(
        S.ecdsa_secp256r1_sha256, "ec", hashes.SHA256(), curve="secp256r1"
    ),
    S.ecdsa_secp384r1_sha384: SchemeInfo(
        S.ecdsa_secp384r1_sha384, "ec", hashes.SHA384(), curve="secp384r1"
    ),
    S.ecdsa_secp521r1_sha512: SchemeInfo(
        S.ecdsa_secp521r1_sha512, "ec", hashes.SHA512(), curve="secp521r1"
    ),
    S.ed25519: SchemeInfo(S.ed25519, "ed25519", None),
    S.ed448: SchemeInfo(S.ed448, "ed448", None),
    S.rsa_pss_rsae_sha256: SchemeInfo(S.rsa_pss_rsae_sha256, "rsa", hashes.SHA256(), pss=True),
    S.rsa_pss_rsae_sha384: SchemeInfo(S.rsa_pss_rsae_sha384, "rsa", hashes.SHA384(), pss=True),
    S.rsa_pss_rsae_sha512: SchemeInfo(S.rsa_pss_rsae_sha512, "rsa", hashes.SHA512(), pss=True),
    S.rsa_pkcs1_sha256: SchemeInfo(S.rsa_pkcs1_sha256, "rsa", hashes.SHA256(), tls13=False),
    S.rsa_pkcs1_sha384: SchemeInfo(S.rsa_pkcs1_sha384, "rsa", hashes.SHA384(), tls13=False),
    S.rsa_pkcs1_sha512: SchemeInfo(S.rsa_pkcs1_sha512, "rsa", hashes.SHA512(), tls13=False),
    S.rsa_pkcs1_sha1: SchemeInfo(S.rsa_pkcs1_sha1, "rsa", hashes.SHA1(), tls13=False),
    S.ecdsa_sha1: SchemeInfo(S.ecdsa_sha1, "ec", hashes.SHA1(), tls13=False),
}

# What we offer and accept, most preferred first. SHA-1 schemes are used only for TLS 1.2
# peers that send no signature_algorithms at all (RFC 5246 §7.4.1.4.1 defaults).
DEFAULT_SCHEMES: tuple[int, ...] = (
    S.ecdsa_secp256r1_sha256,
    S.ecdsa_secp384r1_sha384,
    S.ecdsa_secp521r1_sha512,
    S.ed25519,
    S.ed448,
    S.rsa_pss_rsae_sha256,
    S.rsa_pss_rsae_sha384,
    S.rsa_pss_rsae_sha512,
    S.rsa_pkcs1_sha256,
    S.rsa_pkcs1_sha384,
    S.rsa_pkcs1_sha512,
)
TLS12_IMPLICIT_SCHEMES: tuple[int, ...] = (S.rsa_pkcs1_sha1, S.ecdsa_sha1)


def key_kind(key: object) -> str:
    """The key's type: rsa, ec, ed25519, ed448, or "unsupported" for any other (DSA,
    X25519...), which no signature scheme fits."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "ec"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return "ed448"
    return "unsupported"


def key_curve(key: PrivateKey | PublicKey) -> str | None:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return key.curve.name
    return None


def scheme_fits_key(scheme: int, key: PrivateKey | PublicKey, tls13: bool) -> bool:
    info = SCHEMES.get(scheme)
    if info is None or info.key != key_kind(key):
        return False
    if tls13:
        if not info.tls13:
            return False
        if info.curve is not None and info.curve != key_curve(key):
            return False
    return True


def choose_scheme(
    key: PrivateKey, peer_schemes: tuple[int, ...], our_schemes: tuple[int, ...], tls13: bool
) -> int | None:
    """The first of our schemes the peer accepts and the key can make, or None."""
    peer = set(peer_schemes)
    for scheme in our_schemes:
        if scheme in peer and scheme_fits_key(scheme, key, tls13):
            return scheme
    return None


def _pss(h: hashes.HashAlgorithm) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)


def sign(key: PrivateKey, scheme: int, data: bytes) -> bytes:
    info = SCHEMES[scheme]
    if isinstance(key, rsa.RSAPrivateKey):
        assert info.hash is not None
        pad = _pss(info.hash) if info.pss else padding.PKCS1v15()
        return key.sign(data, pad, info.hash)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        assert info.hash is not None
        return key.sign(data, ec.ECDSA(info.hash))
    return key.sign(data)


def verify(key: PublicKey, scheme: int, data: bytes, signature: bytes, tls13: bool) -> None:
    """Raise DecryptError (alert decrypt_error) unless ``signature`` is valid."""
    info = SCHEMES.get(scheme)
    if info is None or not scheme_fits_key(scheme, key, tls13):
        raise IllegalParameter(f"signature scheme 0x{scheme:04x} does not fit the certificate key")
    try:
        if isinstance(key, rsa.RSAPublicKey):
            assert info.hash is not None
            pad = _pss(info.hash) if info.pss else padding.PKCS1v15()
            key.verify(signature, data, pad, info.hash)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            assert info.hash is not None
            key.verify(signature, data, ec.ECDSA(info.hash))
        else:
            key.verify(signature, data)
    except (InvalidSignature, ValueError):
        raise DecryptError("the peer's signature does not verify") from None

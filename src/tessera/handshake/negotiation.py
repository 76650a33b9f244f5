"""The server's choices from a ClientHello, shared by TLS 1.2 and TLS 1.3: version, cipher
suite and certificate, group, ALPN, and the hello checks every version makes."""

from __future__ import annotations

from cryptography import x509

from ..certs import CertifiedKey
from ..config import ServerConfig
from ..crypto.key_exchange import SUPPORTED_GROUPS
from ..crypto.signatures import TLS12_IMPLICIT_SCHEMES, choose_scheme
from ..crypto.suites import BY_CODE, TLS_FALLBACK_SCSV, Auth, CipherSuite, KeyExchange
from ..crypto.x509 import parse_chain, utc_clock, verify_client_chain
from ..enums import NamedGroup, ProtocolVersion
from ..errors import (
    HandshakeFailure,
    InappropriateFallback,
    NoApplicationProtocol,
    ProtocolVersionError,
)
from ..messages import ClientHello
from ..messages import extensions as X
from ..session.resumption.hello import sni_of

__all__ = [
    "check_legacy_version13",
    "negotiate_version",
    "ordered_suites",
    "select_alpn",
    "select_group",
    "select_suite_12",
    "sni_of",
    "verified_client_chain",
]

_AUTH_KIND = {Auth.ECDSA: ("ec",), Auth.RSA: ("rsa",), Auth.ANY: ("ec", "rsa", "ed25519", "ed448")}


def negotiate_version(config: ServerConfig, ch: ClientHello) -> ProtocolVersion:
    """The highest version both sides enable, or protocol_version."""
    ours = config.versions
    sv = ch.find(X.SupportedVersionsOffer)
    if sv is not None:
        if ch.legacy_version <= 0x0300:
            # RFC 8446 §D.5: SSL 3.0 (or garbage below it) in legacy_version is refused.
            raise ProtocolVersionError(
                f"the ClientHello's legacy_version is 0x{ch.legacy_version:04x}; SSL 3.0 and "
                "older are refused"
            )
        offered = set(sv.versions)
        for v in ours:
            if v in offered:
                chosen = v
                break
        else:
            raise ProtocolVersionError(
                "no protocol version in common: the client offers "
                + ", ".join(f"0x{v:04x}" for v in sv.versions if (v & 0x0F0F) != 0x0A0A)
            )
    else:
        if ch.legacy_version < ProtocolVersion.TLS1_2 or ProtocolVersion.TLS1_2 not in ours:
            raise ProtocolVersionError(
                f"the client offers at most 0x{ch.legacy_version:04x}; "
                f"this server needs {ours[-1].label} or later"
            )
        chosen = ProtocolVersion.TLS1_2
    if chosen == ProtocolVersion.TLS1_3:
        check_legacy_version13(ch)
    # RFC 7507: a fallback retry from a client that could do better than what we pick.
    if TLS_FALLBACK_SCSV in ch.cipher_suites and chosen < ours[0]:
        raise InappropriateFallback("TLS_FALLBACK_SCSV with a version below our highest")
    return chosen


def check_legacy_version13(ch: ClientHello) -> None:
    """RFC 8446 §4.1.2: a ClientHello that gets TLS 1.3 has legacy_version 0x0303."""
    if ch.legacy_version < ProtocolVersion.TLS1_2:
        raise ProtocolVersionError(
            f"a TLS 1.3 ClientHello has legacy_version 0x{ch.legacy_version:04x}, not 0x0303"
        )


def select_alpn(config: ServerConfig, ch: ClientHello) -> bytes | None:
    """Our first protocol the client offers (RFC 7301 §3.2); no overlap is fatal."""
    offer = ch.find(X.ALPN)
    if offer is None or not config.alpn_protocols:
        return None
    for proto in config.alpn_protocols:
        if proto in offer.protocols:
            return proto
    raise NoApplicationProtocol(
        "no application protocol in common: the client offers "
        + ", ".join(p.decode("latin-1") for p in offer.protocols)
    )


def select_group(config: ServerConfig, ch: ClientHello) -> int | None:
    ext = ch.find(X.SupportedGroups)
    if ext is None:
        # RFC 8422 §4: a client that sends no supported_groups accepts any curve.
        return NamedGroup.secp256r1 if NamedGroup.secp256r1 in config.groups else None
    theirs = set(ext.groups)
    for g in config.groups:
        if g in theirs and g in SUPPORTED_GROUPS:
            return g
    return None


def ordered_suites(config: ServerConfig, ch: ClientHello, version: int) -> list[CipherSuite]:
    """Suites both sides enable for ``version``, in the order the server will try them."""
    ours = config.suites_for(version)
    offered = set(ch.cipher_suites)
    if config.prefer_server_ciphers:
        return [s for s in ours if s.code in offered]
    enabled = {s.code for s in ours}
    return [BY_CODE[c] for c in ch.cipher_suites if c in enabled]


_CURVE_NAMES: dict[int, str] = {
    NamedGroup.secp256r1: "secp256r1",
    NamedGroup.secp384r1: "secp384r1",
    NamedGroup.secp521r1: "secp521r1",
}


def select_suite_12(
    config: ServerConfig, ch: ClientHello, certs: tuple[CertifiedKey, ...], group: int | None
) -> tuple[CipherSuite, CertifiedKey, int | None]:
    """The TLS 1.2 suite, the certificate for it and the ServerKeyExchange signature scheme.

    A client that sends no signature_algorithms accepts only SHA-1 signatures (RFC 5246
    §7.4.1.4.1 defaults): RFC 9155 §3 says to refuse it with handshake_failure unless nothing is
    signed (static RSA), so SHA-1 is used only when ``legacy_sha1_signatures`` is set. An ECDSA
    certificate must be on a curve the client lists in supported_groups (RFC 8422 §5.3).
    """
    sigalgs = ch.find(X.SignatureAlgorithms)
    sha1_refused = sigalgs is None and not config.legacy_sha1_signatures
    schemes = sigalgs.schemes if sigalgs is not None else TLS12_IMPLICIT_SCHEMES
    ours = config.signature_schemes if sigalgs is not None else TLS12_IMPLICIT_SCHEMES
    groups_ext = ch.find(X.SupportedGroups)
    client_curves = (
        {_CURVE_NAMES.get(g) for g in groups_ext.groups} if groups_ext is not None else None
    )
    for suite in ordered_suites(config, ch, ProtocolVersion.TLS1_2):
        if suite.kx is KeyExchange.ECDHE and (group is None or sha1_refused):
            continue
        kinds = _AUTH_KIND[suite.auth]
        for cert in certs:
            if cert.kind not in kinds:
                continue
            if cert.kind == "ec" and client_curves is not None and cert.curve not in client_curves:
                continue
            if suite.kx is KeyExchange.RSA:
                return suite, cert, None
            scheme = choose_scheme(cert.key, schemes, ours, tls13=False)
            if scheme is not None:
                return suite, cert, scheme
    if sha1_refused:
        raise HandshakeFailure(
            "the client sent no signature_algorithms, so it accepts only SHA-1 signatures, "
            "which RFC 9155 forbids; to allow them anyway set "
            "ServerConfig(legacy_sha1_signatures=True) (tessera serve --legacy-sha1)"
        )
    raise HandshakeFailure("no cipher suite in common with the client")


def verified_client_chain(
    config: ServerConfig, chain_der: tuple[bytes, ...]
) -> tuple[x509.Certificate, ...]:
    """The client's certificate chain, parsed and validated against ``client_cafile`` (the
    one place that does it: TLS 1.2, TLS 1.3 and post-handshake authentication)."""
    chain = parse_chain(chain_der)
    verify_client_chain(chain, config.client_trust_store(), utc_clock(config.clock),
                        profile=config.client_verify_profile)  # fmt: skip
    return tuple(chain)

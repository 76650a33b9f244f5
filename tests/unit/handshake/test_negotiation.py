"""The server's choices from a ClientHello: version, ALPN, group, suite and certificate, SNI."""

from __future__ import annotations

from typing import Any

import pytest

from tessera import ProtocolVersion, ServerConfig
from tessera.crypto.suites import BY_CODE, TLS_FALLBACK_SCSV, parse_cipher_list
from tessera.enums import NamedGroup
from tessera.enums import SignatureScheme as S
from tessera.errors import (
    HandshakeFailure,
    InappropriateFallback,
    NoApplicationProtocol,
    ProtocolVersionError,
)
from tessera.handshake import negotiation as N
from tessera.messages import ClientHello
from tessera.messages import extensions as X

TLS12 = ProtocolVersion.TLS1_2
TLS13 = ProtocolVersion.TLS1_3


def hello(
    suites: tuple[int, ...] = (0xC02B, 0xC02F), version: int = 0x0303, *exts: Any
) -> ClientHello:
    return ClientHello(version, bytes(32), b"", suites, (0,), tuple(exts))


@pytest.fixture
def config(pki) -> ServerConfig:  # type: ignore[no-untyped-def]
    return ServerConfig(
        certificates=(pki.ecdsa, pki.rsa),
        max_version=TLS12,
        cipher_suites=parse_cipher_list(
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA"
        ),
        alpn_protocols=("h2", "http/1.1"),
    )


def test_version(config: ServerConfig, pki) -> None:  # type: ignore[no-untyped-def]
    assert N.negotiate_version(config, hello()) is TLS12
    assert N.negotiate_version(config, hello((0xC02B,), 0x0304)) is TLS12  # a future legacy_version
    with pytest.raises(ProtocolVersionError):
        N.negotiate_version(config, hello((0xC02B,), 0x0302))
    with pytest.raises(ProtocolVersionError):
        N.negotiate_version(
            config, hello((0xC02B,), 0x0303, X.SupportedVersionsOffer((0x0304, 0x7A7A)))
        )
    assert (
        N.negotiate_version(
            config, hello((0xC02B,), 0x0303, X.SupportedVersionsOffer((0x0304, 0x0303)))
        )
        is TLS12
    )
    both = ServerConfig(certificates=(pki.ecdsa,), max_version=TLS13)
    assert (
        N.negotiate_version(
            both, hello((0x1301,), 0x0303, X.SupportedVersionsOffer((0x0304, 0x0303)))
        )
        is TLS13
    )


def test_fallback_scsv(pki) -> None:  # type: ignore[no-untyped-def]
    both = ServerConfig(certificates=(pki.ecdsa,), max_version=TLS13)
    with pytest.raises(InappropriateFallback):
        N.negotiate_version(both, hello((0xC02B, TLS_FALLBACK_SCSV)))
    only12 = ServerConfig(certificates=(pki.ecdsa,), max_version=TLS12)
    assert N.negotiate_version(only12, hello((0xC02B, TLS_FALLBACK_SCSV))) is TLS12


def test_alpn(config: ServerConfig) -> None:
    assert N.select_alpn(config, hello()) is None
    assert N.select_alpn(config, hello((1,), 0x0303, X.ALPN((b"http/1.1", b"h2")))) == b"h2"
    with pytest.raises(NoApplicationProtocol):
        N.select_alpn(config, hello((1,), 0x0303, X.ALPN((b"spdy/1",))))


def test_group(config: ServerConfig) -> None:
    assert N.select_group(config, hello()) == NamedGroup.secp256r1  # no extension: any curve
    assert (
        N.select_group(config, hello((1,), 0x0303, X.SupportedGroups((0x0018, 0x001D))))
        == NamedGroup.x25519
    )
    assert N.select_group(config, hello((1,), 0x0303, X.SupportedGroups((0x0100,)))) is None


def test_suite_order(config: ServerConfig) -> None:
    ch = hello((0x002F, 0xC02F, 0xC02B))
    assert [s.code for s in N.ordered_suites(config, ch, TLS12)] == [0xC02B, 0xC02F, 0x002F]
    from dataclasses import replace

    client_order = replace(config, prefer_server_ciphers=False)
    assert [s.code for s in N.ordered_suites(client_order, ch, TLS12)] == [0x002F, 0xC02F, 0xC02B]


def test_suite_and_certificate(config: ServerConfig, pki) -> None:  # type: ignore[no-untyped-def]
    sigs = X.SignatureAlgorithms((S.rsa_pss_rsae_sha256, S.ecdsa_secp256r1_sha256))
    suite, cert, scheme = N.select_suite_12(
        config, hello((0xC02F, 0xC02B), 0x0303, sigs), config.certificates, 0x1D
    )
    assert suite is BY_CODE[0xC02B] and cert is pki.ecdsa and scheme == S.ecdsa_secp256r1_sha256
    suite, cert, scheme = N.select_suite_12(
        config, hello((0xC02F,), 0x0303, sigs), config.certificates, 0x1D
    )
    assert suite is BY_CODE[0xC02F] and cert is pki.rsa and scheme == S.rsa_pss_rsae_sha256
    # No group: ECDHE is impossible, static RSA is left.
    suite, cert, scheme = N.select_suite_12(
        config, hello((0xC02B, 0x002F), 0x0303, sigs), config.certificates, None
    )
    assert suite is BY_CODE[0x002F] and cert is pki.rsa and scheme is None
    with pytest.raises(HandshakeFailure):
        N.select_suite_12(config, hello((0xC02F,), 0x0303, sigs), (pki.ecdsa,), 0x1D)


def test_sha1_only_without_signature_algorithms(config: ServerConfig) -> None:
    with pytest.raises(HandshakeFailure, match="RFC 9155"):  # refused by default
        N.select_suite_12(config, hello((0xC02B,)), config.certificates, 0x1D)
    from dataclasses import replace

    legacy = replace(config, legacy_sha1_signatures=True)
    _, _, scheme = N.select_suite_12(legacy, hello((0xC02B,)), legacy.certificates, 0x1D)
    assert scheme == S.ecdsa_sha1  # RFC 5246 §7.4.1.4.1 default
    sigs = X.SignatureAlgorithms((S.ecdsa_sha1,))
    with pytest.raises(HandshakeFailure):  # offered, but we do not sign with SHA-1 then
        N.select_suite_12(config, hello((0xC02B,), 0x0303, sigs), config.certificates, 0x1D)


def test_ecdsa_certificate_curve_must_be_supported(config: ServerConfig) -> None:
    sigs = X.SignatureAlgorithms((S.ecdsa_secp256r1_sha256,))
    groups = X.SupportedGroups((NamedGroup.x25519, NamedGroup.secp384r1))
    with pytest.raises(HandshakeFailure):
        N.select_suite_12(config, hello((0xC02B,), 0x0303, sigs, groups), config.certificates, 0x1D)


def test_sni() -> None:
    assert N.sni_of(hello()) is None
    assert N.sni_of(hello((1,), 0x0303, X.ServerName("WWW.Example.COM."))) == "www.example.com"

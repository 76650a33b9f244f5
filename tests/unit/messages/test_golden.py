"""Golden bytes recorded from OpenSSL 3.0 (tests/vectors/, see capture_openssl.py there):
decoded and re-encoded byte for byte, and checked for what they must contain."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from tessera import ServerConfig, ServerConnection
from tessera.crypto import signatures
from tessera.enums import ContentType, ExtensionType, HandshakeType, ProtocolVersion
from tessera.messages import (
    Certificate12,
    CertificateRequest12,
    ClientHello,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchangeECDHE,
    decode_message,
    encode_handshake,
)
from tessera.messages import extensions as X

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


def handshake_messages(path: str) -> list[bytes]:
    """Whole handshake messages (with headers) from a file of plaintext handshake records."""
    data = (VECTORS / path).read_bytes()
    stream = b""
    pos = 0
    while pos < len(data):
        assert data[pos] == ContentType.HANDSHAKE
        n = int.from_bytes(data[pos + 3 : pos + 5], "big")
        stream += data[pos + 5 : pos + 5 + n]
        pos += 5 + n
    assert pos == len(data)
    out = []
    pos = 0
    while pos < len(stream):
        n = int.from_bytes(stream[pos + 1 : pos + 4], "big")
        out.append(stream[pos : pos + 4 + n])
        pos += 4 + n
    assert pos == len(stream)
    return out


@pytest.mark.parametrize(
    "path",
    [
        "openssl_s_client_hello.bin",
        "openssl_s_client_hello_tls12_alpn.bin",
        "openssl_s_server_tls12_client_hello.bin",
    ],
)
def test_client_hello_round_trip(path: str) -> None:
    (raw,) = handshake_messages(path)
    assert raw[0] == HandshakeType.CLIENT_HELLO
    ch = decode_message(ClientHello, raw[4:])
    assert encode_handshake(ch) == raw
    assert ch.legacy_version == ProtocolVersion.TLS1_2
    assert ch.compression_methods == (0,)
    assert ch.find(X.ServerName) == X.ServerName("localhost")
    assert ch.find(X.ExtendedMasterSecret) is not None
    assert any(s in ch.cipher_suites for s in (0xC02B, 0xC02F))


def test_openssl_tls13_client_hello_contents() -> None:
    (raw,) = handshake_messages("openssl_s_client_hello.bin")
    ch = decode_message(ClientHello, raw[4:])
    versions = ch.find(X.SupportedVersionsOffer)
    assert versions is not None and 0x0304 in versions.versions and 0x0303 in versions.versions
    shares = ch.find(X.KeyShareOffer)
    assert shares is not None and shares.entries[0].group == 0x001D
    assert len(shares.entries[0].key_exchange) == 32
    assert ch.find(X.PskKeyExchangeModes) is not None
    assert len(ch.session_id) == 32  # middlebox compatibility mode
    codes = [X.ext_code(e) for e in ch.extensions]
    assert len(codes) == len(set(codes))
    assert ExtensionType.encrypt_then_mac in codes


def test_openssl_tls12_alpn_client_hello_contents() -> None:
    (raw,) = handshake_messages("openssl_s_client_hello_tls12_alpn.bin")
    ch = decode_message(ClientHello, raw[4:])
    assert ch.find(X.ALPN) == X.ALPN((b"h2", b"http/1.1"))
    assert ch.find(X.SupportedVersionsOffer) is None
    assert ch.find(X.SessionTicketExt) == X.SessionTicketExt(b"")


@pytest.mark.parametrize(
    ("path", "alpn"),
    [("openssl_s_client_hello.bin", None), ("openssl_s_client_hello_tls12_alpn.bin", "h2")],
)
def test_tessera_server_answers_openssl_client_hello(pki, path: str, alpn: str | None) -> None:  # type: ignore[no-untyped-def]
    config = ServerConfig(
        certificates=(pki.ecdsa, pki.rsa),
        max_version=ProtocolVersion.TLS1_2,
        alpn_protocols=("h2",),
    )
    server = ServerConnection(config)
    server.receive_data((VECTORS / path).read_bytes())
    out = server.data_to_send()
    assert out[0] == ContentType.HANDSHAKE
    sh_raw = out[5 : 5 + 4 + int.from_bytes(out[6:9], "big")]
    sh = decode_message(ServerHello, sh_raw[4:])
    assert sh.legacy_version == ProtocolVersion.TLS1_2
    assert sh.cipher_suite in (0xC02C, 0xC02B, 0xC030, 0xC02F, 0xCCA9, 0xCCA8)
    assert sh.find(X.ExtendedMasterSecret) is not None
    assert sh.find(X.SupportedVersionSelected) is None  # TLS 1.2 says so with legacy_version
    got = sh.find(X.ALPN)
    assert (got.protocols[0].decode() if got else None) == alpn


def test_openssl_server_flight_round_trip() -> None:
    msgs = handshake_messages("openssl_s_server_tls12_flight.bin")
    assert [m[0] for m in msgs] == [
        HandshakeType.SERVER_HELLO,
        HandshakeType.CERTIFICATE,
        HandshakeType.SERVER_KEY_EXCHANGE,
        HandshakeType.CERTIFICATE_REQUEST,
        HandshakeType.SERVER_HELLO_DONE,
    ]
    classes = [
        ServerHello,
        Certificate12,
        ServerKeyExchangeECDHE,
        CertificateRequest12,
        ServerHelloDone,
    ]
    decoded = [decode_message(cls, raw[4:]) for cls, raw in zip(classes, msgs, strict=True)]
    for msg, raw in zip(decoded, msgs, strict=True):
        assert encode_handshake(msg) == raw


def test_openssl_server_flight_contents() -> None:
    (ch_raw,) = handshake_messages("openssl_s_server_tls12_client_hello.bin")
    ch = decode_message(ClientHello, ch_raw[4:])
    sh_raw, cert_raw, ske_raw, cr_raw, _ = handshake_messages("openssl_s_server_tls12_flight.bin")
    sh = decode_message(ServerHello, sh_raw[4:])
    assert sh.cipher_suite in ch.cipher_suites
    assert sh.find(X.RenegotiationInfo) == X.RenegotiationInfo(b"")
    assert sh.find(X.ExtendedMasterSecret) is not None
    chain = [
        x509.load_der_x509_certificate(d) for d in decode_message(Certificate12, cert_raw[4:]).chain
    ]
    assert chain[0].subject.rfc4514_string() == "CN=localhost"
    ske = decode_message(ServerKeyExchangeECDHE, ske_raw[4:])
    assert ske.group in ch.find(X.SupportedGroups).groups
    # The signature covers client_random + server_random + params: the recorded bytes agree.
    signatures.verify(
        chain[0].public_key(),  # type: ignore[arg-type]
        ske.scheme,
        ch.random + sh.random + ske.params,
        ske.signature,
        tls13=False,
    )
    cr = decode_message(CertificateRequest12, cr_raw[4:])
    assert cr.authorities  # -CAfile: the CA's distinguished name is listed
    assert x509.Name.from_rfc4514_string("CN=tessera test CA").public_bytes() == cr.authorities[0]

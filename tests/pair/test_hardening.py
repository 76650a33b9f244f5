"""Conformance defects found by strict probes (issue 13, items 7 and 9-16), in memory.

Each test feeds a connection exactly what a probe sent and checks the alert the RFC asks for.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tessera import ServerConnection
from tessera.enums import AlertDescription as AD
from tessera.enums import ContentType, HandshakeType, NamedGroup, ProtocolVersion
from tessera.errors import (
    HandshakeFailure,
    ProtocolVersionError,
)
from tessera.messages import ClientHello, ServerKeyExchangeECDHE
from tessera.messages import extensions as X
from tessera.messages.base import encode_handshake

from .helpers import (
    Message,
    World,
    expect_failure,
    frame,
    parse_records,
    split_messages,
)
from .test_tls13_support import (
    client13,
    expect_alert13,
    nth_client_hello,
    on_hello_messages,
    server13,
)

HS = ContentType.HANDSHAKE
CV = HandshakeType.CERTIFICATE_VERIFY


def first_client_hello(world: World, **client_kw: Any) -> ClientHello:
    pair = world.pair(world.client_config(**client_kw))
    pair.start()
    raw = parse_records(pair.client.data_to_send())[0].fragment
    return Message(raw[0], raw[4:]).decode(ClientHello)


def hello_records(ch: ClientHello | bytes, version: int = 0x0301) -> bytes:
    raw = ch if isinstance(ch, bytes) else encode_handshake(ch)
    return b"".join(r.to_bytes() for r in frame(HS, raw, version))


def server_hello_sent(conn: ServerConnection) -> bool:
    out = parse_records(conn.data_to_send())
    return bool(out) and out[0].content_type == HS and out[0].fragment[0] == 2


# -- item 7: no SHA-1 signatures for a client without signature_algorithms (RFC 9155) ----------
def _no_sigalgs(ch: ClientHello) -> ClientHello:
    return replace(ch, extensions=tuple(
        e for e in ch.extensions if not isinstance(e, X.SignatureAlgorithms)))  # fmt: skip


def test_no_signature_algorithms_is_handshake_failure(world: World) -> None:
    """RFC 9155 §3: a server whose key exchange is signed must abort with handshake_failure
    when the client sends no signature_algorithms (its implied default is SHA-1)."""
    ch = _no_sigalgs(first_client_hello(world))
    err = expect_failure(
        ServerConnection(world.server_config()),
        hello_records(ch),
        HandshakeFailure,
        AD.handshake_failure,
    )
    assert "signature_algorithms" in str(err) and "RFC 9155" in str(err), err


def test_no_signature_algorithms_allowed_by_the_legacy_option(world: World) -> None:
    """The explicit legacy option signs with SHA-1, the RFC 5246 §7.4.1.4.1 default."""
    ch = _no_sigalgs(first_client_hello(world))
    conn = ServerConnection(world.server_config(legacy_sha1_signatures=True))
    conn.receive_data(hello_records(ch))
    flight = b"".join(r.fragment for r in parse_records(conn.data_to_send()))
    ske = next(m for m in split_messages(flight)[0]
               if m.msg_type == HandshakeType.SERVER_KEY_EXCHANGE)  # fmt: skip
    assert ske.decode(ServerKeyExchangeECDHE).scheme in (0x0201, 0x0203)  # rsa/ecdsa + SHA-1


def test_no_signature_algorithms_with_static_rsa_needs_no_signature(world: World) -> None:
    """Static RSA key exchange signs nothing, so RFC 9155 does not apply to it."""
    ch = _no_sigalgs(first_client_hello(world, cipher_suites="AES128-GCM-SHA256"))
    conn = ServerConnection(world.server_config(cipher_suites="AES128-GCM-SHA256"))
    conn.receive_data(hello_records(ch))
    assert server_hello_sent(conn)


# -- item 9: TLS 1.3 ClientHello.legacy_version must be 0x0303 -------------------------------
@pytest.mark.parametrize("legacy", [0x0000, 0x0102, 0x0300, 0x0301, 0x0302])
def test_tls13_client_hello_with_old_legacy_version(world: World, legacy: int) -> None:
    """RFC 8446 §4.1.2 (legacy_version MUST be 0x0303) and §D.5 (0x0300: protocol_version)."""
    pair = world.pair(
        client13(world),
        server13(world),
        tamper=on_hello_messages(
            nth_client_hello(0, lambda ch: replace(ch, legacy_version=legacy))
        ),
    )
    pair.start()
    err = expect_alert13(pair, ProtocolVersionError, AD.protocol_version)
    assert err == "server"


@pytest.mark.parametrize("legacy", [0x0000, 0x0300])
def test_tls12_via_supported_versions_with_ssl3_legacy_version(world: World, legacy: int) -> None:
    """§D.5: a legacy_version of 0x0300 or below is refused even when supported_versions picks
    TLS 1.2."""
    ch = first_client_hello(world, max_version=ProtocolVersion.TLS1_3)
    ch = replace(ch, legacy_version=legacy)
    expect_failure(
        ServerConnection(world.server_config()),
        hello_records(ch),
        ProtocolVersionError,
        AD.protocol_version,
    )


def test_tls13_second_client_hello_with_old_legacy_version(world: World) -> None:
    """The same after a HelloRetryRequest (the client's only share is X25519; the server
    takes only P-256)."""
    pair = world.pair(
        client13(
            world,
            groups=(NamedGroup.x25519, NamedGroup.secp256r1),
            key_share_groups=(NamedGroup.x25519,),
        ),
        server13(world, groups=(NamedGroup.secp256r1,)),
        tamper=on_hello_messages(
            nth_client_hello(1, lambda ch: replace(ch, legacy_version=0x0301))
        ),
    )
    pair.start()
    assert expect_alert13(pair, ProtocolVersionError, AD.protocol_version) == "server"

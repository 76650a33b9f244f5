"""Conformance defects found by strict probes (issue 13, items 7 and 9-16), in memory.

Each test feeds a connection exactly what a probe sent and checks the alert the RFC asks for.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tessera import AlertReceived, ClientAuth, ServerConnection
from tessera.enums import AlertDescription as AD
from tessera.enums import ContentType, HandshakeType, NamedGroup, ProtocolVersion
from tessera.errors import (
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    ProtocolVersionError,
    RecordOverflow,
    UnexpectedMessage,
)
from tessera.messages import CertificateVerify, ClientHello, ServerKeyExchangeECDHE
from tessera.messages import extensions as X
from tessera.messages.base import encode_handshake
from tessera.record.layer import MAX_HANDSHAKE_MESSAGE

from .helpers import (
    Direction,
    Message,
    Record,
    World,
    expect_failure,
    expect_pair_failure,
    frame,
    on_messages,
    parse_records,
    record,
    rewrite,
    split_messages,
)
from .test_tls13_malformed import by_type, logged_pair, server_flight
from .test_tls13_support import (
    client13,
    expect_alert13,
    expect_conn_alert13,
    nth_client_hello,
    on_hello_messages,
    protected_record,
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


# -- item 10: the TLS 1.3 length limit applies to the whole TLSInnerPlaintext ---------------------
def tls13_pair(world: World) -> Any:
    return world.connect(client13(world), server13(world))


def test_tls13_inner_plaintext_over_limit_mostly_padding(world: World) -> None:
    """RFC 8446 §5.4: TLSInnerPlaintext (content, type and zeros) is at most 2^14 + 1 bytes."""
    pair = tls13_pair(world)
    inner = b"x" + bytes((ContentType.APPLICATION_DATA,)) + bytes(1 << 14)  # 2^14 + 2 bytes
    expect_conn_alert13(
        pair.server, protected_record(pair.client, inner), RecordOverflow, AD.record_overflow
    )


def test_tls13_inner_plaintext_at_the_limit_is_accepted(world: World) -> None:
    pair = tls13_pair(world)
    full = b"y" * (1 << 14) + bytes((ContentType.APPLICATION_DATA,))  # 2^14 + 1 bytes
    padded = b"z" + bytes((ContentType.APPLICATION_DATA,)) + bytes((1 << 14) - 1)
    client = pair.client
    pair.server.receive_data(protected_record(client, full) + protected_record(client, padded, 1))
    data = b"".join(getattr(e, "data", b"") for e in pair.server.events())
    assert data == b"y" * (1 << 14) + b"z"


# -- item 11: zero-length alert or handshake records are unexpected_message -------------------
@pytest.mark.parametrize("ctype", [ContentType.ALERT, ContentType.HANDSHAKE])
def test_tls13_zero_length_protected_record(world: World, ctype: int) -> None:
    """RFC 8446 §5.4: zero-length fragments of Handshake or Alert are unexpected_message."""
    pair = tls13_pair(world)
    expect_conn_alert13(
        pair.server,
        protected_record(pair.client, bytes((ctype,))),
        UnexpectedMessage,
        AD.unexpected_message,
    )


@pytest.mark.parametrize("ctype", [ContentType.ALERT, ContentType.HANDSHAKE])
def test_tls12_zero_length_protected_record(world: World, ctype: int) -> None:
    """RFC 5246 §6.2.1 forbids them too; the same alert as TLS 1.3."""
    pair = world.connect(world.client_config(), world.server_config())
    pair.client._records.write_records(ctype, b"")
    expect_failure(
        pair.server, pair.client.data_to_send(), UnexpectedMessage, AD.unexpected_message
    )


# -- item 12: the largest valid ClientHello fits --------------------------------------------------
def largest_client_hello(world: World) -> bytes:
    """A ClientHello with every variable field at its maximum (RFC 5246 §7.4.1.2): a 32-byte
    session id, 2^15 - 1 cipher suites, 255 compression methods and 2^16 - 1 bytes of
    extensions (the real ones of a client, then padding)."""
    ch = first_client_hello(world)
    real = list(ch.cipher_suites)
    suites = real + [c for c in range(0x0100, 0x8100) if c not in real]
    suites = suites[: (0xFFFE // 2)]
    body = bytearray()
    body += (0x0303).to_bytes(2, "big") + ch.random
    body += bytes((32,)) + bytes(range(32))
    body += (len(suites) * 2).to_bytes(2, "big") + b"".join(c.to_bytes(2, "big") for c in suites)
    body += bytes((255,)) + bytes(range(255))  # null compression (0) among them
    exts = bytearray()
    from tessera.codec import Writer

    w = Writer()
    X.encode_extensions(w, ch.extensions)
    exts += bytes(w.buf)[2:]
    pad = 0xFFFF - len(exts) - 4
    exts += (21).to_bytes(2, "big") + pad.to_bytes(2, "big") + bytes(pad)  # padding (RFC 7685)
    assert len(exts) == 0xFFFF
    body += len(exts).to_bytes(2, "big") + exts
    assert len(body) == 131_396
    return bytes((HandshakeType.CLIENT_HELLO,)) + len(body).to_bytes(3, "big") + bytes(body)


def test_largest_valid_client_hello_is_answered(world: World) -> None:
    msg = largest_client_hello(world)
    assert len(msg) - 4 <= MAX_HANDSHAKE_MESSAGE
    conn = ServerConnection(world.server_config())
    conn.receive_data(hello_records(msg))
    assert server_hello_sent(conn)


def test_handshake_message_limit_is_the_largest_client_hello() -> None:
    """Memory stays bounded: no message larger than the largest valid ClientHello is buffered."""
    assert MAX_HANDSHAKE_MESSAGE == 131_396


# -- item 13: an empty signature fails to verify: decrypt_error ----------------------------------
def test_tls12_empty_client_certificate_verify(world: World) -> None:
    def empty(m: Message) -> Message:
        return Message.of(replace(m.decode(CertificateVerify), signature=b""))

    pair = world.pair(
        world.client_config(certificate=world.certs.client),
        world.server_config(client_auth=ClientAuth.REQUIRED),
        tamper=on_messages(rewrite(Direction.C2S, CV, empty)),
    )
    pair.start()
    assert expect_pair_failure(pair, DecryptError, AD.decrypt_error) == "server"


def test_tls12_empty_server_key_exchange_signature(world: World) -> None:
    def empty(m: Message) -> Message:
        return Message.of(replace(m.decode(ServerKeyExchangeECDHE), signature=b""))

    pair = world.pair(
        tamper=on_messages(rewrite(Direction.S2C, HandshakeType.SERVER_KEY_EXCHANGE, empty))
    )
    pair.start()
    assert expect_pair_failure(pair, DecryptError, AD.decrypt_error) == "client"


def test_tls13_empty_server_certificate_verify(world: World) -> None:
    def empty(ms: list[Message]) -> list[Message]:
        cv = by_type(ms, CV)
        new = Message.of(replace(cv.decode(CertificateVerify), signature=b""))
        return [new if m is cv else m for m in ms]

    pair = logged_pair(world, server_flight(empty))
    assert expect_alert13(pair, DecryptError, AD.decrypt_error) == "client"


# -- item 14: server_name must be an ASCII DNS host name (RFC 6066 §3) ---------------------------
@pytest.mark.parametrize(
    "name",
    ["bell\x07.example", "\x1b[31mred.example", "tab\t.example", "a b.example", "a..example",
     ".example", "slash/example", "x" * 64 + ".example", "del\x7f.example"],
)  # fmt: skip
def test_server_name_that_is_not_a_dns_name(world: World, name: str) -> None:
    ch = first_client_hello(world)
    ch = replace(ch, extensions=tuple(
        X.ServerName(name) if isinstance(e, X.ServerName) else e for e in ch.extensions))  # fmt: skip
    expect_failure(
        ServerConnection(world.server_config()),
        hello_records(ch),
        IllegalParameter,
        AD.illegal_parameter,
    )


@pytest.mark.parametrize(
    "name", ["localhost", "a-b.example", "xn--bcher-kva.example", "_srv.example", "example.",
             "127.0.0.1", "A" * 63 + ".example"],
)  # fmt: skip
def test_server_name_that_is_a_dns_name(world: World, name: str) -> None:
    ch = first_client_hello(world)
    ch = replace(ch, extensions=tuple(
        X.ServerName(name) if isinstance(e, X.ServerName) else e for e in ch.extensions))  # fmt: skip
    conn = ServerConnection(world.server_config())
    conn.receive_data(hello_records(ch))
    assert server_hello_sent(conn)


# -- item 15: tight budgets for TLS 1.3 ChangeCipherSpec and warning alerts -----------------------
def test_tls13_second_change_cipher_spec_is_unexpected(world: World) -> None:
    """RFC 8446 §D.4: one compatibility ChangeCipherSpec per side. A second one (here, a copy of
    the client's) is unexpected_message instead of being dropped without bound."""

    def twice(d: Direction, records: list[Record]) -> list[Record]:
        out = []
        for r in records:
            out.append(r)
            if d is Direction.C2S and r.content_type == ContentType.CHANGE_CIPHER_SPEC:
                out.append(r)
        return out

    pair = world.pair(client13(world), server13(world), tamper=twice)
    pair.start()
    assert expect_alert13(pair, UnexpectedMessage, AD.unexpected_message) == "server"


WARNING = bytes((1, AD.no_renegotiation))


def test_five_warning_alerts_in_a_row_are_unexpected(world: World) -> None:
    """Like OpenSSL (MAX_WARN_ALERT_COUNT): four warning alerts in a row are tolerated."""
    pair = world.connect(world.client_config(), world.server_config())
    for _ in range(4):
        pair.client._records.write_records(ContentType.ALERT, WARNING)
    pair.server.receive_data(pair.client.data_to_send())
    assert not pair.server.failed
    pair.client._records.write_records(ContentType.ALERT, WARNING)
    expect_failure(
        pair.server, pair.client.data_to_send(), UnexpectedMessage, AD.unexpected_message
    )


def test_data_between_warning_alerts_renews_their_allowance(world: World) -> None:
    pair = world.connect(world.client_config(), world.server_config())
    for _ in range(3):
        for _ in range(4):
            pair.client._records.write_records(ContentType.ALERT, WARNING)
        pair.client.send_data(b"x")
    pair.server.receive_data(pair.client.data_to_send())
    assert not pair.server.failed


# -- item 16: a TLS 1.2 peer's alert in a 0x0301 record before the version is settled ------------
def test_tls12_server_reports_the_alert_in_a_tls10_record(world: World) -> None:
    """A TLS 1.2-only client answers the server's first flight with handshake_failure in a
    record of version 0x0301 (as OpenSSL accepts): the alert it sent is what is reported."""
    conn = ServerConnection(world.server_config())
    conn.receive_data(hello_records(first_client_hello(world)))
    assert server_hello_sent(conn)
    with pytest.raises(AlertReceived) as info:
        conn.receive_data(record(ContentType.ALERT, b"\x02\x28", 0x0301))
    assert info.value.alert is AD.handshake_failure


def test_tls12_client_reports_the_alert_in_a_tls10_record(world: World) -> None:
    """The same on the client, after the server's first flight settled the version."""
    pair = world.pair()
    pair.start()
    pair.deliver(Direction.C2S)
    pair.deliver(Direction.S2C)
    with pytest.raises(AlertReceived) as info:
        pair.client.receive_data(record(ContentType.ALERT, b"\x02\x2f", 0x0301))
    assert info.value.alert is AD.illegal_parameter


def test_tls10_record_version_still_refused_for_handshake_records(world: World) -> None:
    """Only alerts get this leniency: a handshake record must carry the negotiated version."""
    pair = world.pair()
    pair.start()
    pair.deliver(Direction.C2S)
    pair.deliver(Direction.S2C)
    expect_failure(
        pair.server,
        record(HS, b"\x10\x00\x00\x01\x00", 0x0301),
        ProtocolVersionError,
        AD.protocol_version,
    )

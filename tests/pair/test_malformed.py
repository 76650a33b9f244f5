"""Malformed and hostile input, fed through the tamper hook or crafted and fed directly.

Every failure must be a typed ``RemoteProtocolError`` with the right alert, queued as the last
record, after which the connection refuses further use.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tessera import ClientAuth, ServerConnection
from tessera.crypto import signatures
from tessera.enums import AlertDescription as AD
from tessera.enums import ContentType, HandshakeType, NamedGroup, SignatureScheme
from tessera.errors import (
    BadRecordMac,
    DecodeError,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    NoApplicationProtocol,
    ProtocolVersionError,
    RecordOverflow,
    UnexpectedMessage,
    UnsupportedExtension,
)
from tessera.messages import (
    Certificate12,
    CertificateVerify,
    ClientHello,
    ClientKeyExchangeECDHE,
    Finished,
    ServerHello,
    ServerKeyExchangeECDHE,
)
from tessera.messages import extensions as X
from tessera.messages.base import encode_handshake

from .helpers import (
    MAX_FRAGMENT,
    ConnectionPair,
    Direction,
    Message,
    Record,
    World,
    expect_failure,
    expect_pair_failure,
    flip_bit,
    frame,
    on_messages,
    parse_records,
    record,
    rewrite,
    seal_with_seq,
)

HS = ContentType.HANDSHAKE


def hs_record(msg_type: int, body: bytes, version: int = 0x0301) -> bytes:
    return record(HS, Message(msg_type, body).raw, version)


def real_client_hello(world: World, **kw: Any) -> ClientHello:
    pair = world.pair(world.client_config(**kw))
    pair.start()
    raw = parse_records(pair.client.data_to_send())[0].fragment
    return Message(raw[0], raw[4:]).decode(ClientHello)


def ch_body(ch: ClientHello) -> bytes:
    return encode_handshake(ch)[4:]


def server(world: World, **kw: Any) -> ServerConnection:
    return ServerConnection(world.server_config(**kw))


# -- decode_error ------------------------------------------------------------------------------
def test_valid_crafted_client_hello_is_answered(world: World) -> None:
    """Control for the cases below: the re-encoded ClientHello is accepted."""
    conn = server(world)
    conn.receive_data(hs_record(HandshakeType.CLIENT_HELLO, ch_body(real_client_hello(world))))
    types = [r.content_type for r in parse_records(conn.data_to_send())]
    assert types and all(t == HS for t in types)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda b: b[:-1], id="truncated-last-extension"),
        pytest.param(lambda b: b[:40], id="truncated-in-session-id"),
        pytest.param(lambda b: b[:2], id="only-version"),
        pytest.param(lambda b: b + b"\x00", id="trailing-byte"),
        pytest.param(lambda b: b[:34] + b"\x21" + bytes(33) + b[35:], id="session-id-33"),
        pytest.param(lambda b: b[:-2] + b"\xff\xff", id="overlong-extension-length"),
    ],
)
def test_client_hello_decode_errors(world: World, mangle) -> None:  # type: ignore[no-untyped-def]
    body = mangle(ch_body(real_client_hello(world)))
    expect_failure(server(world), hs_record(1, body), DecodeError, AD.decode_error)


def _with_raw_extension(ch: ClientHello, code: int, data: bytes) -> bytes:
    return ch_body(replace(ch, extensions=(*ch.extensions, X.UnknownExtension(code, data))))


@pytest.mark.parametrize(
    ("code", "data"),
    [
        (X.ExtensionType.supported_groups, b"\x00\x03\x00\x1d\x00"),  # odd list
        (X.ExtensionType.supported_groups, b"\x00\x02\x00\x1d\x00"),  # trailing byte
        (X.ExtensionType.signature_algorithms, b"\x00\x00"),  # empty list, min is 2
        (X.ExtensionType.application_layer_protocol_negotiation, b"\x00\x02\x00\x00"),  # empty name
        (X.ExtensionType.server_name, b"\x00\x05\x00\x00\x09abc"),  # name longer than its vector
        (X.ExtensionType.extended_master_secret, b"\x00"),  # must be empty
        (X.ExtensionType.renegotiation_info, b"\x05\x00"),
        (X.ExtensionType.ec_point_formats, b"\x00"),
    ],
)
def test_malformed_extension_is_decode_error(world: World, code: int, data: bytes) -> None:
    ch = real_client_hello(world)
    ch = replace(ch, extensions=tuple(e for e in ch.extensions if X.ext_code(e) != code))
    body = _with_raw_extension(ch, code, data)
    expect_failure(server(world), hs_record(1, body), DecodeError, AD.decode_error)


def test_duplicate_extension_is_decode_error(world: World) -> None:
    ch = real_client_hello(world)
    body = ch_body(replace(ch, extensions=(*ch.extensions, X.ExtendedMasterSecret())))
    expect_failure(server(world), hs_record(1, body), DecodeError, AD.decode_error)


def test_unknown_extensions_are_ignored(world: World) -> None:
    ch = real_client_hello(world)
    body = _with_raw_extension(ch, 0x7777, b"anything at all")
    conn = server(world)
    conn.receive_data(hs_record(1, body))
    assert conn.data_to_send()


def test_client_key_exchange_decode_error(world: World) -> None:
    def cut(m: Message) -> Message:
        return Message(m.msg_type, m.body[:-1])

    pair = world.pair(
        tamper=on_messages(rewrite(Direction.C2S, HandshakeType.CLIENT_KEY_EXCHANGE, cut))
    )
    pair.start()
    expect_pair_failure(pair, DecodeError, AD.decode_error)


def test_server_hello_decode_error(world: World) -> None:
    def cut(m: Message) -> Message:
        return Message(m.msg_type, m.body[:20])

    pair = world.pair(tamper=on_messages(rewrite(Direction.S2C, HandshakeType.SERVER_HELLO, cut)))
    pair.start()
    assert expect_pair_failure(pair, DecodeError, AD.decode_error) == "client"


def test_certificate_with_trailing_garbage(world: World) -> None:
    def pad(m: Message) -> Message:
        return Message(m.msg_type, m.body + b"\x00")

    pair = world.pair(tamper=on_messages(rewrite(Direction.S2C, HandshakeType.CERTIFICATE, pad)))
    pair.start()
    assert expect_pair_failure(pair, DecodeError, AD.decode_error) == "client"


def test_empty_server_certificate(world: World) -> None:
    pair = world.pair(
        tamper=on_messages(
            rewrite(
                Direction.S2C, HandshakeType.CERTIFICATE, lambda m: Message.of(Certificate12(()))
            )
        )
    )
    pair.start()
    assert expect_pair_failure(pair, DecodeError, AD.decode_error) == "client"


def test_bad_alert_length(world: World) -> None:
    expect_failure(
        server(world), record(ContentType.ALERT, b"\x01\x00\x00"), DecodeError, AD.decode_error
    )


def test_bad_alert_level(world: World) -> None:
    expect_failure(
        server(world),
        record(ContentType.ALERT, b"\x03\x00"),
        IllegalParameter,
        AD.illegal_parameter,
    )


# -- records -------------------------------------------------------------------------------------
def test_plaintext_record_overflow_before_body(world: World) -> None:
    # Only the header: the error comes before any of the 2^14+1 bytes are buffered.
    header = bytes((HS, 3, 1)) + (MAX_FRAGMENT + 1).to_bytes(2, "big")
    expect_failure(server(world), header, RecordOverflow, AD.record_overflow)


def test_plaintext_record_at_limit_is_not_overflow(world: World) -> None:
    conn = server(world)
    conn.receive_data(bytes((HS, 3, 1)) + MAX_FRAGMENT.to_bytes(2, "big"))
    assert not conn.failed


def test_encrypted_record_overflow(world: World) -> None:
    pair = world.connect(world.client_config(), world.server_config())
    header = bytes((ContentType.APPLICATION_DATA, 3, 3)) + (MAX_FRAGMENT + 2049).to_bytes(2, "big")
    expect_failure(pair.server, header, RecordOverflow, AD.record_overflow)


def test_encrypted_record_at_limit_is_only_a_mac_failure(world: World) -> None:
    pair = world.connect(world.client_config(), world.server_config())
    n = MAX_FRAGMENT + 2048
    pair.server.receive_data(bytes((ContentType.APPLICATION_DATA, 3, 3)) + n.to_bytes(2, "big"))
    assert not pair.server.failed
    expect_failure(pair.server, bytes(n), BadRecordMac, AD.bad_record_mac)


@pytest.mark.parametrize("suite", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA"])
def test_decrypted_record_over_2_14(world: World, suite: str) -> None:
    pair = world.connect(world.client_config(cipher_suites=suite), world.server_config())
    big = seal_with_seq(pair.client, ContentType.APPLICATION_DATA, bytes(MAX_FRAGMENT + 1), 1)
    expect_failure(pair.server, big, RecordOverflow, AD.record_overflow)


@pytest.mark.parametrize(
    ("suite", "etm"),
    [
        ("ECDHE-ECDSA-AES128-GCM-SHA256", True),
        ("ECDHE-RSA-AES256-GCM-SHA384", True),
        ("ECDHE-ECDSA-CHACHA20-POLY1305", True),
        ("ECDHE-ECDSA-AES128-SHA", False),
        ("ECDHE-ECDSA-AES128-SHA", True),
        ("AES256-SHA256", False),
        ("AES256-SHA256", True),
    ],
)
@pytest.mark.parametrize("where", ["first", "middle", "last", "type"])
@pytest.mark.parametrize("direction", [Direction.C2S, Direction.S2C])
def test_flipped_bit_is_bad_record_mac(
    world: World, suite: str, etm: bool, where: str, direction: Direction
) -> None:
    pair = world.connect(
        world.client_config(cipher_suites=suite, encrypt_then_mac=etm), world.server_config()
    )
    assert pair.client.info.encrypt_then_mac is (
        etm and "GCM" not in suite and "CHACHA" not in suite
    )
    sender, receiver = (
        (pair.client, pair.server) if direction is Direction.C2S else (pair.server, pair.client)
    )
    sender.send_data(b"some application data, long enough for two CBC blocks")
    (rec,) = parse_records(sender.data_to_send())
    if where == "type":
        rec.content_type = ContentType.HANDSHAKE  # 0x17 -> 0x16: one bit, authenticated
    else:
        index = {"first": 0, "middle": len(rec.fragment) // 2, "last": len(rec.fragment) - 1}[where]
        rec.fragment = flip_bit(rec.fragment, index, bit=3)
    expect_failure(receiver, rec.to_bytes(), BadRecordMac, AD.bad_record_mac)


def test_flipped_bit_in_finished_record(world: World) -> None:
    def hook(direction: Direction, records: list[Record]) -> list[Record]:
        for r in records:
            if direction is Direction.C2S and r.encrypted:
                r.fragment = flip_bit(r.fragment, 10)
        return records

    pair = world.pair(tamper=hook)
    pair.start()
    assert expect_pair_failure(pair, BadRecordMac, AD.bad_record_mac) == "server"


def test_replayed_record_is_bad_record_mac(world: World) -> None:
    pair = world.connect(world.client_config(), world.server_config())
    pair.client.send_data(b"once")
    wire = pair.client.data_to_send()
    pair.server.receive_data(wire)
    expect_failure(pair.server, wire, BadRecordMac, AD.bad_record_mac)


def test_reordered_records_are_bad_record_mac(world: World) -> None:
    pair = world.connect(world.client_config(), world.server_config())
    pair.client.send_data(b"one")
    first = pair.client.data_to_send()
    pair.client.send_data(b"two")
    second = pair.client.data_to_send()
    expect_failure(pair.server, second + first, BadRecordMac, AD.bad_record_mac)


def test_truncated_encrypted_record(world: World) -> None:
    pair = world.connect(world.client_config(), world.server_config())
    expect_failure(
        pair.server,
        record(ContentType.APPLICATION_DATA, bytes(20)),
        BadRecordMac,
        AD.bad_record_mac,
    )


def test_tampered_rsa_premaster_shows_only_as_bad_record_mac(world: World) -> None:
    """RFC 5246 §7.4.7.1: a bad RSA-encrypted premaster gives a random one, so the failure
    appears only when the client's Finished does not decrypt."""

    def garble(m: Message) -> Message:
        return Message(m.msg_type, m.body[:2] + flip_bit(m.body[2:], 5))

    pair = world.pair(
        world.client_config(cipher_suites="AES128-GCM-SHA256"),
        tamper=on_messages(rewrite(Direction.C2S, HandshakeType.CLIENT_KEY_EXCHANGE, garble)),
    )
    pair.start()
    assert expect_pair_failure(pair, BadRecordMac, AD.bad_record_mac) == "server"


def test_unknown_content_type(world: World) -> None:
    expect_failure(server(world), record(99, b"x"), UnexpectedMessage, AD.unexpected_message)


def test_plain_http_to_tls_port(world: World) -> None:
    expect_failure(
        server(world), b"GET / HTTP/1.1\r\n\r\n", UnexpectedMessage, AD.unexpected_message
    )


def test_sslv2_client_hello(world: World) -> None:
    sslv2 = bytes.fromhex("802e0103010015000000100100800300800700c0") + bytes(16)
    expect_failure(server(world), sslv2, ProtocolVersionError, AD.protocol_version)


def test_record_with_foreign_major_version(world: World) -> None:
    expect_failure(
        server(world),
        record(HS, b"\x01\x00\x00\x00", 0x0401),
        ProtocolVersionError,
        AD.protocol_version,
    )


def test_record_version_must_stay_tls12(world: World) -> None:
    def downgrade(direction: Direction, records: list[Record]) -> list[Record]:
        if direction is Direction.C2S:
            for r in records:
                if r.content_type == HS and r.fragment[0] == HandshakeType.CLIENT_KEY_EXCHANGE:
                    r.version = 0x0301
        return records

    pair = world.pair(tamper=downgrade)
    pair.start()
    assert expect_pair_failure(pair, ProtocolVersionError, AD.protocol_version) == "server"


def test_empty_plaintext_handshake_record(world: World) -> None:
    expect_failure(server(world), record(HS, b""), UnexpectedMessage, AD.unexpected_message)


# -- Finished ------------------------------------------------------------------------------------
def test_bad_client_finished_is_decrypt_error(world: World) -> None:
    """The client's Finished replaced by a well-formed one with wrong verify_data."""

    def hook(direction: Direction, records: list[Record]) -> list[Record | bytes]:
        out: list[Record | bytes] = []
        for r in records:
            if direction is Direction.C2S and r.encrypted:
                out.append(seal_with_seq(pair.client, HS, Message.of(Finished(bytes(12))).raw, 0))
            else:
                out.append(r)
        return out

    pair = world.pair(tamper=hook)
    pair.start()
    assert expect_pair_failure(pair, DecryptError, AD.decrypt_error) == "server"


def test_bad_server_finished_is_decrypt_error(world: World) -> None:
    def hook(direction: Direction, records: list[Record]) -> list[Record | bytes]:
        out: list[Record | bytes] = []
        for r in records:
            if direction is Direction.S2C and r.encrypted and r.content_type == HS:
                out.append(seal_with_seq(pair.server, HS, Message.of(Finished(bytes(12))).raw, 0))
            else:
                out.append(r)
        return out

    pair = world.pair(tamper=hook)
    pair.start()
    assert expect_pair_failure(pair, DecryptError, AD.decrypt_error) == "client"


def test_short_finished_is_decode_error(world: World) -> None:
    def hook(direction: Direction, records: list[Record]) -> list[Record | bytes]:
        return [
            seal_with_seq(pair.client, HS, Message.of(Finished(bytes(11))).raw, 0)
            if direction is Direction.C2S and r.encrypted
            else r
            for r in records
        ]

    pair = world.pair(tamper=hook)
    pair.start()
    assert expect_pair_failure(pair, DecodeError, AD.decode_error) == "server"


def _add_unknown_extension(m: Message) -> Message:
    ch = m.decode(ClientHello)
    return Message.of(replace(ch, extensions=(*ch.extensions, X.UnknownExtension(0x7A7A, b"!"))))


def test_modified_transcript_is_decrypt_error(world: World) -> None:
    """Without EMS the keys do not depend on the transcript, so a ClientHello changed on the way
    gives working keys but a Finished mismatch, detected by the server."""
    pair = world.pair(
        world.client_config(extended_master_secret=False),
        tamper=on_messages(
            rewrite(Direction.C2S, HandshakeType.CLIENT_HELLO, _add_unknown_extension)
        ),
    )
    pair.start()
    assert expect_pair_failure(pair, DecryptError, AD.decrypt_error) == "server"


def test_modified_transcript_with_ems_breaks_the_keys(world: World) -> None:
    """With EMS the master secret covers the transcript: the server cannot even decrypt."""
    pair = world.pair(
        tamper=on_messages(
            rewrite(Direction.C2S, HandshakeType.CLIENT_HELLO, _add_unknown_extension)
        )
    )
    pair.start()
    assert expect_pair_failure(pair, BadRecordMac, AD.bad_record_mac) == "server"


def test_modified_transcript_in_abbreviated_handshake(world: World) -> None:
    server_config = world.server_config()
    client_config = world.client_config()
    world.connect(client_config, server_config)
    pair = world.pair(
        client_config,
        server_config,
        tamper=on_messages(
            rewrite(Direction.C2S, HandshakeType.CLIENT_HELLO, _add_unknown_extension)
        ),
    )
    pair.start()
    assert expect_pair_failure(pair, DecryptError, AD.decrypt_error) == "client"


# -- versions, suites, ALPN ---------------------------------------------------------------------
def test_tls11_only_client_hello(world: World) -> None:
    ch = real_client_hello(world)
    ch = replace(ch, legacy_version=0x0302)
    expect_failure(
        server(world), hs_record(1, ch_body(ch)), ProtocolVersionError, AD.protocol_version
    )


def test_tls13_only_client_hello_to_tls12_server(world: World) -> None:
    ch = real_client_hello(world)
    ch = replace(ch, extensions=(*ch.extensions, X.SupportedVersionsOffer((0x0304,))))
    expect_failure(
        server(world), hs_record(1, ch_body(ch)), ProtocolVersionError, AD.protocol_version
    )


def test_server_hello_with_old_version(world: World) -> None:
    def old(m: Message) -> Message:
        return Message.of(replace(m.decode(ServerHello), legacy_version=0x0302))

    pair = world.pair(tamper=on_messages(rewrite(Direction.S2C, HandshakeType.SERVER_HELLO, old)))
    pair.start()
    assert expect_pair_failure(pair, ProtocolVersionError, AD.protocol_version) == "client"


def test_no_null_compression(world: World) -> None:
    ch = replace(real_client_hello(world), compression_methods=(1,))
    expect_failure(server(world), hs_record(1, ch_body(ch)), IllegalParameter, AD.illegal_parameter)


def test_non_empty_renegotiation_info(world: World) -> None:
    ch = real_client_hello(world)
    exts = tuple(
        X.RenegotiationInfo(b"\x01" * 12) if isinstance(e, X.RenegotiationInfo) else e
        for e in ch.extensions
    )
    body = ch_body(replace(ch, extensions=exts))
    expect_failure(server(world), hs_record(1, body), HandshakeFailure, AD.handshake_failure)


def test_no_common_alpn(world: World) -> None:
    pair = world.pair(
        world.client_config(alpn_protocols=("spdy/3",)),
        world.server_config(alpn_protocols=("h2", "http/1.1")),
    )
    pair.start()
    assert expect_pair_failure(pair, NoApplicationProtocol, AD.no_application_protocol) == "server"


def test_server_hello_suite_not_offered(world: World) -> None:
    def other_suite(m: Message) -> Message:
        return Message.of(replace(m.decode(ServerHello), cipher_suite=0xC030))

    pair = world.pair(
        world.client_config(cipher_suites="ECDHE-ECDSA-AES128-GCM-SHA256"),
        tamper=on_messages(rewrite(Direction.S2C, HandshakeType.SERVER_HELLO, other_suite)),
    )
    pair.start()
    assert expect_pair_failure(pair, IllegalParameter, AD.illegal_parameter) == "client"


def test_server_hello_compression(world: World) -> None:
    def compressed(m: Message) -> Message:
        return Message.of(replace(m.decode(ServerHello), compression_method=1))

    pair = world.pair(
        tamper=on_messages(rewrite(Direction.S2C, HandshakeType.SERVER_HELLO, compressed))
    )
    pair.start()
    assert expect_pair_failure(pair, IllegalParameter, AD.illegal_parameter) == "client"


def test_server_hello_unsolicited_extension(world: World) -> None:
    def add_alpn(m: Message) -> Message:
        sh = m.decode(ServerHello)
        return Message.of(replace(sh, extensions=(*sh.extensions, X.ALPN((b"h2",)))))

    pair = world.pair(
        tamper=on_messages(rewrite(Direction.S2C, HandshakeType.SERVER_HELLO, add_alpn))
    )
    pair.start()
    assert expect_pair_failure(pair, UnsupportedExtension, AD.unsupported_extension) == "client"


def test_server_hello_alpn_not_offered(world: World) -> None:
    def swap_alpn(m: Message) -> Message:
        sh = m.decode(ServerHello)
        exts = tuple(X.ALPN((b"evil",)) if isinstance(e, X.ALPN) else e for e in sh.extensions)
        return Message.of(replace(sh, extensions=exts))

    pair = world.pair(
        world.client_config(alpn_protocols=("h2",)),
        world.server_config(alpn_protocols=("h2",)),
        tamper=on_messages(rewrite(Direction.S2C, HandshakeType.SERVER_HELLO, swap_alpn)),
    )
    pair.start()
    assert expect_pair_failure(pair, IllegalParameter, AD.illegal_parameter) == "client"


# -- key exchange and signatures -----------------------------------------------------------------
def _replace_cke(public: bytes) -> Any:
    return on_messages(
        rewrite(
            Direction.C2S,
            HandshakeType.CLIENT_KEY_EXCHANGE,
            lambda m: Message.of(ClientKeyExchangeECDHE(public)),
        )
    )


P256_NOT_ON_CURVE = b"\x04" + bytes(31) + b"\x01" + bytes(31) + b"\x01"


@pytest.mark.parametrize(
    ("group", "public"),
    [
        (NamedGroup.x25519, bytes(31)),  # wrong length
        (NamedGroup.x25519, bytes(32)),  # low-order point: all-zero shared secret
        (NamedGroup.secp256r1, P256_NOT_ON_CURVE),
        (NamedGroup.secp256r1, b"\x02" + bytes(31) + b"\x01"),  # compressed point
        (NamedGroup.secp256r1, b"\x04" + bytes(64)),  # the point at infinity, spelled out
        (NamedGroup.secp384r1, b"\x04" + bytes(96)),
        (NamedGroup.x448, bytes(56)),
    ],
    ids=[
        "x25519-short",
        "x25519-zero",
        "p256-off-curve",
        "p256-compressed",
        "p256-zero",
        "p384-zero",
        "x448-zero",
    ],
)
def test_bad_client_key_share(world: World, group: int, public: bytes) -> None:
    pair = world.pair(world.client_config(groups=(group,)), tamper=_replace_cke(public))
    pair.start()
    assert expect_pair_failure(pair, IllegalParameter, AD.illegal_parameter) == "server"


def test_bad_server_key_share_with_valid_signature(world: World) -> None:
    """A (malicious) server signs an invalid X25519 point: the client refuses it."""
    randoms: dict[str, bytes] = {}

    def fn(direction: Direction, m: Message) -> Message:
        if m.msg_type == HandshakeType.CLIENT_HELLO:
            randoms["client"] = m.decode(ClientHello).random
        elif m.msg_type == HandshakeType.SERVER_HELLO:
            randoms["server"] = m.decode(ServerHello).random
        elif m.msg_type == HandshakeType.SERVER_KEY_EXCHANGE:
            ske = m.decode(ServerKeyExchangeECDHE)
            bad = bytes(32)
            params = ServerKeyExchangeECDHE.encode_params(ske.group, bad)
            sig = signatures.sign(
                world.certs.ecdsa.key, ske.scheme, randoms["client"] + randoms["server"] + params
            )
            return Message.of(ServerKeyExchangeECDHE(ske.group, bad, ske.scheme, sig))
        return m

    pair = world.pair(
        world.client_config(cipher_suites="ECDHE-ECDSA-AES128-GCM-SHA256"), tamper=on_messages(fn)
    )
    pair.start()
    assert expect_pair_failure(pair, IllegalParameter, AD.illegal_parameter) == "client"


def _rewrite_ske(change: Any) -> Any:
    return on_messages(
        rewrite(
            Direction.S2C,
            HandshakeType.SERVER_KEY_EXCHANGE,
            lambda m: Message.of(change(m.decode(ServerKeyExchangeECDHE))),
        )
    )


def test_server_key_exchange_bad_signature(world: World) -> None:
    pair = world.pair(tamper=_rewrite_ske(lambda s: replace(s, signature=flip_bit(s.signature, 9))))
    pair.start()
    assert expect_pair_failure(pair, DecryptError, AD.decrypt_error) == "client"


def test_server_key_exchange_group_not_offered(world: World) -> None:
    pair = world.pair(
        world.client_config(groups=(NamedGroup.x25519,)),
        tamper=_rewrite_ske(lambda s: replace(s, group=NamedGroup.secp384r1)),
    )
    pair.start()
    assert expect_pair_failure(pair, IllegalParameter, AD.illegal_parameter) == "client"


def test_server_key_exchange_scheme_not_offered(world: World) -> None:
    pair = world.pair(tamper=_rewrite_ske(lambda s: replace(s, scheme=SignatureScheme.ecdsa_sha1)))
    pair.start()
    assert expect_pair_failure(pair, IllegalParameter, AD.illegal_parameter) == "client"


def test_server_key_exchange_scheme_for_other_key_type(world: World) -> None:
    pair = world.pair(
        world.client_config(cipher_suites="ECDHE-ECDSA-AES128-GCM-SHA256"),
        tamper=_rewrite_ske(lambda s: replace(s, scheme=SignatureScheme.rsa_pss_rsae_sha256)),
    )
    pair.start()
    assert expect_pair_failure(pair, IllegalParameter, AD.illegal_parameter) == "client"


def test_server_key_exchange_wrong_curve_type(world: World) -> None:
    def explicit(m: Message) -> Message:
        return Message(m.msg_type, b"\x01" + m.body[1:])

    pair = world.pair(
        tamper=on_messages(rewrite(Direction.S2C, HandshakeType.SERVER_KEY_EXCHANGE, explicit))
    )
    pair.start()
    assert expect_pair_failure(pair, IllegalParameter, AD.illegal_parameter) == "client"


def test_client_certificate_verify_bad_signature(world: World) -> None:
    def corrupt(m: Message) -> Message:
        cv = m.decode(CertificateVerify)
        return Message.of(replace(cv, signature=flip_bit(cv.signature, 12)))

    pair = world.pair(
        world.client_config(certificate=world.certs.client),
        world.server_config(client_auth=ClientAuth.REQUIRED),
        tamper=on_messages(rewrite(Direction.C2S, HandshakeType.CERTIFICATE_VERIFY, corrupt)),
    )
    pair.start()
    assert expect_pair_failure(pair, DecryptError, AD.decrypt_error) == "server"


def test_client_certificate_garbage_der(world: World) -> None:
    from tessera.errors import BadCertificate

    pair = world.pair(
        world.client_config(certificate=world.certs.client),
        world.server_config(client_auth=ClientAuth.REQUIRED),
        tamper=on_messages(
            rewrite(
                Direction.C2S,
                HandshakeType.CERTIFICATE,
                lambda m: Message.of(Certificate12((b"not a certificate",))),
            )
        ),
    )
    pair.start()
    assert expect_pair_failure(pair, BadCertificate, AD.bad_certificate) == "server"


# -- ChangeCipherSpec, empty records, warning alerts --------------------------------------------
@pytest.mark.parametrize("payload", [b"\x02", b"\x01\x01", b"\x00"])
def test_wrong_ccs_payload(world: World, payload: bytes) -> None:
    def hook(direction: Direction, records: list[Record]) -> list[Record]:
        for r in records:
            if r.content_type == ContentType.CHANGE_CIPHER_SPEC and direction is Direction.C2S:
                r.fragment = payload
        return records

    pair = world.pair(tamper=hook)
    pair.start()
    assert expect_pair_failure(pair, IllegalParameter, AD.illegal_parameter) == "server"


def test_empty_ccs_record(world: World) -> None:
    expect_failure(
        server(world),
        record(ContentType.CHANGE_CIPHER_SPEC, b""),
        UnexpectedMessage,
        AD.unexpected_message,
    )


WARNING = bytes((1, AD.no_renegotiation))


def test_warning_alerts_are_tolerated_up_to_a_limit(world: World) -> None:
    from tessera.connection import MAX_WARNING_ALERTS

    conn = server(world)
    conn.receive_data(record(ContentType.ALERT, WARNING) * MAX_WARNING_ALERTS)
    assert not conn.failed
    expect_failure(
        conn, record(ContentType.ALERT, WARNING), UnexpectedMessage, AD.unexpected_message
    )


def test_empty_records_after_handshake_up_to_a_limit(world: World) -> None:
    pair = world.connect(world.client_config(), world.server_config())
    for _ in range(32):
        pair.client._records.write_records(ContentType.APPLICATION_DATA, b"")
    pair.server.receive_data(pair.client.data_to_send())
    assert not pair.server.failed
    pair.client._records.write_records(ContentType.APPLICATION_DATA, b"")
    expect_failure(
        pair.server, pair.client.data_to_send(), UnexpectedMessage, AD.unexpected_message
    )


def test_data_resets_the_empty_record_budget(world: World) -> None:
    pair = world.connect(world.client_config(), world.server_config())
    for _ in range(5):
        for _ in range(30):
            pair.client._records.write_records(ContentType.APPLICATION_DATA, b"")
        pair.client.send_data(b"x")
    pair.server.receive_data(pair.client.data_to_send())
    assert not pair.server.failed
    assert sum(1 for e in pair.server.events() if getattr(e, "data", None) == b"x") == 5


def test_encrypted_warning_alerts_limit(world: World) -> None:
    pair = world.connect(world.client_config(), world.server_config())
    for _ in range(33):
        pair.client._records.write_records(ContentType.ALERT, WARNING)
    expect_failure(
        pair.server, pair.client.data_to_send(), UnexpectedMessage, AD.unexpected_message
    )


# -- handshake message size --------------------------------------------------------------------
def test_oversized_handshake_message_header_alone_fails(world: World) -> None:
    from tessera.record.layer import MAX_HANDSHAKE_MESSAGE

    header = bytes((HandshakeType.CLIENT_HELLO,)) + (MAX_HANDSHAKE_MESSAGE + 1).to_bytes(3, "big")
    conn = server(world)
    expect_failure(conn, record(HS, header), IllegalParameter, AD.illegal_parameter)
    assert conn._records.buffered() < 16  # nothing of the message body was waited for


def test_huge_handshake_message_header(world: World) -> None:
    conn = server(world)
    expect_failure(conn, record(HS, b"\x01\xff\xff\xff"), IllegalParameter, AD.illegal_parameter)


def test_largest_handshake_message_is_buffered_then_decoded(world: World) -> None:
    """A message of exactly the limit is accepted for reassembly across records (and here it is
    garbage, so it fails to decode, but only once complete)."""
    from tessera.record.layer import MAX_HANDSHAKE_MESSAGE

    conn = server(world)
    msg = Message(HandshakeType.CLIENT_HELLO, bytes(MAX_HANDSHAKE_MESSAGE)).raw
    records = frame(HS, msg, 0x0301)
    conn.receive_data(b"".join(r.to_bytes() for r in records[:-1]))
    assert not conn.failed
    expect_failure(conn, records[-1].to_bytes(), DecodeError, AD.decode_error)


def test_oversized_certificate_to_client(world: World) -> None:
    from tessera.record.layer import MAX_HANDSHAKE_MESSAGE

    pair = world.pair(
        tamper=on_messages(
            rewrite(
                Direction.S2C,
                HandshakeType.CERTIFICATE,
                lambda m: Message(m.msg_type, bytes(MAX_HANDSHAKE_MESSAGE + 1)),
            )
        )
    )
    pair.start()
    assert expect_pair_failure(pair, IllegalParameter, AD.illegal_parameter) == "client"


def test_long_server_name_is_refused_cleanly(world: World) -> None:
    """A 300-byte host name is legal on the wire (opaque HostName<1..2^16-1>) but cannot be kept
    in a session (its encoding has a 1-byte length). The server must answer with a protocol
    alert, or simply not cache the session; it must not fail with a LocalProtocolError that
    leaves the connection half-alive and sends no alert."""
    pair = world.pair(world.client_config(verify=False), server_name="a" * 300)
    pair.start()
    try:
        pair.pump()
    except Exception as e:
        assert isinstance(e, UnexpectedMessage | DecodeError | IllegalParameter), repr(e)
        assert pair.server.failed
        assert parse_records(pair.server.data_to_send())[-1].content_type == ContentType.ALERT
    else:
        assert pair.server.handshake_complete and pair.client.handshake_complete


def test_everything_raised_is_an_alert_error(world: World) -> None:
    """A sweep of garbage records into a fresh server and a client waiting for ServerHello."""
    from tessera import AlertError, ClientConnection

    samples = [
        record(HS, b"\x02\x00\x00\x01\x00"),
        record(HS, b"\x0b\x00\x00\x03\x00\x00\x01"),
        record(ContentType.ALERT, b"\x02\x28"),
        record(ContentType.APPLICATION_DATA, b"data"),
        record(ContentType.CHANGE_CIPHER_SPEC, b"\x01"),
        record(HS, b"\x01\x00\x00\x02\x03\x03"),
        record(HS, b"\x14\x00\x00\x0c" + bytes(12)),
    ]
    for data in samples:
        for conn in (
            server(world),
            ClientConnection(world.client_config(), "localhost"),
        ):
            if isinstance(conn, ClientConnection):
                conn.start_handshake()
                conn.data_to_send()
            with pytest.raises(AlertError):
                conn.receive_data(data)


def test_pair_helper_sanity(world: World) -> None:
    pair: ConnectionPair = world.connect(world.client_config(), world.server_config())
    assert pair.send(Direction.C2S, b"ok") == b"ok"

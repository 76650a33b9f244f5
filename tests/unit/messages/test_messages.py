"""Handshake messages: known bytes both ways, framing, and malformed bodies."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.enums import AlertDescription, HandshakeType
from tessera.errors import DecodeError, IllegalParameter
from tessera.messages import (
    Alert,
    Certificate12,
    Certificate13,
    CertificateEntry,
    CertificateRequest12,
    CertificateRequest13,
    CertificateVerify,
    ClientHello,
    ClientKeyExchangeECDHE,
    ClientKeyExchangeRSA,
    EncryptedExtensions,
    EndOfEarlyData,
    Finished,
    HelloRequest,
    KeyUpdate,
    NewSessionTicket12,
    NewSessionTicket13,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchangeECDHE,
    decode_message,
    encode_handshake,
)
from tessera.messages import extensions as X
from tessera.messages.hello import HELLO_RETRY_REQUEST_RANDOM

R32 = bytes(range(32))

GOLDEN: list[tuple[Any, str]] = [
    (
        ClientHello(0x0303, R32, b"", (0xC02B, 0x00FF), (0,), (X.ExtendedMasterSecret(),)),
        "0303" + R32.hex() + "00" + "0004c02b00ff" + "0100" + "0004" + "00170000",
    ),
    (
        ClientHello(0x0303, R32, b"\x01" * 32, (0x002F,), (0,), (), has_extensions_block=False),
        "0303" + R32.hex() + "20" + "01" * 32 + "0002002f" + "0100",
    ),
    (
        ClientHello(0x0303, R32, b"", (0x002F,), (0,), ()),  # an empty block is kept
        "0303" + R32.hex() + "00" + "0002002f" + "0100" + "0000",
    ),
    (
        ServerHello(
            0x0303,
            R32,
            b"\xaa" * 32,
            0xC02F,
            0,
            (X.RenegotiationInfo(b""), X.ExtendedMasterSecret()),
        ),
        "0303" + R32.hex() + "20" + "aa" * 32 + "c02f" + "00" + "0009" + "ff01000100" + "00170000",
    ),
    (ServerHello(0x0303, R32, b"", 0x009C), "0303" + R32.hex() + "00" + "009c" + "00"),
    (
        Certificate12((b"\x30\x01", b"\x30\x02\x00")),
        "00000b" + "000002" + "3001" + "000003" + "300200",
    ),
    (Certificate12(()), "000000"),
    (
        Certificate13(b"", (CertificateEntry(b"\x30\x00", ()),)),
        "00" + "000007" + "000002" + "3000" + "0000",
    ),
    (
        CertificateRequest12((1, 64), (0x0403, 0x0804), (b"\x30\x00",)),
        "02" + "0140" + "0004" + "04030804" + "0004" + "0002" + "3000",
    ),
    (
        CertificateRequest13(b"", (X.SignatureAlgorithms((0x0403,)),)),
        "00" + "0008" + "000d" + "0004" + "00020403",
    ),
    (CertificateVerify(0x0403, b"\x30\x06sig"), "0403" + "0005" + "3006736967"),
    (
        ServerKeyExchangeECDHE(0x001D, b"\x09" * 32, 0x0403, b"sig"),
        "03" + "001d" + "20" + "09" * 32 + "0403" + "0003" + b"sig".hex(),
    ),
    (ClientKeyExchangeECDHE(b"\x09" * 32), "20" + "09" * 32),
    (ClientKeyExchangeRSA(b"\x55" * 256), "0100" + "55" * 256),
    (ServerHelloDone(), ""),
    (HelloRequest(), ""),
    (EndOfEarlyData(), ""),
    (Finished(b"\x0f" * 12), "0f" * 12),
    (NewSessionTicket12(7200, b"tkt"), "00001c20" + "0003" + b"tkt".hex()),
    (NewSessionTicket12(0, b""), "00000000" + "0000"),
    (
        NewSessionTicket13(7200, 0x01020304, b"\x00", b"tkt", (X.EarlyDataLimit(1024),)),
        "00001c20"
        + "01020304"
        + "0100"
        + "0003"
        + b"tkt".hex()
        + "0008"
        + "002a"
        + "0004"
        + "00000400",
    ),
    (EncryptedExtensions((X.ALPN((b"h2",)),)), "0009" + "0010" + "0005" + "0003026832"),
    (KeyUpdate(1), "01"),
]


@pytest.mark.parametrize(
    ("msg", "hexbody"), GOLDEN, ids=lambda v: type(v).__name__ if not isinstance(v, str) else ""
)
def test_golden(msg: Any, hexbody: str) -> None:
    body = bytes.fromhex(hexbody)
    raw = encode_handshake(msg)
    assert raw == bytes((msg.msg_type,)) + len(body).to_bytes(3, "big") + body
    decoded = decode_message(type(msg), body)
    assert decoded == msg
    assert encode_handshake(decoded) == raw


@pytest.mark.parametrize(
    ("msg", "hexbody"), GOLDEN, ids=lambda v: type(v).__name__ if not isinstance(v, str) else ""
)
def test_trailing_byte_and_every_truncation(msg: Any, hexbody: str) -> None:
    body = bytes.fromhex(hexbody)
    if type(msg) is Finished:
        return  # Finished takes the rest: its length is checked by the state machine
    with pytest.raises((DecodeError, IllegalParameter)):
        decode_message(type(msg), body + b"\x00")
    for cut in range(len(body)):
        try:
            decoded = decode_message(type(msg), body[:cut])
        except (DecodeError, IllegalParameter):
            continue
        # The only valid prefix: a hello cut just before its (optional) extensions block.
        assert isinstance(msg, ClientHello | ServerHello), (cut, decoded)
        assert decoded.extensions == ()
        assert encode_handshake(decoded)[4:] == body[:cut]


def test_client_hello_without_extensions_keeps_that() -> None:
    body = bytes.fromhex("0303" + R32.hex() + "00" + "0002002f" + "0100")
    ch = decode_message(ClientHello, body)
    assert ch.has_extensions_block is False and ch.extensions == ()
    assert encode_handshake(ch)[4:] == body


@pytest.mark.parametrize(
    "hexbody",
    [
        "0303" + R32.hex() + "21" + "00" * 33 + "0002002f0100",  # session id over 32
        "0303" + R32.hex() + "00" + "0000" + "0100",  # no cipher suites
        "0303" + R32.hex() + "00" + "0003002f00" + "0100",  # odd suite list
        "0303" + R32.hex() + "00" + "0002002f" + "00",  # no compression methods
        "0303" + R32[:31].hex(),  # short random
    ],
)
def test_client_hello_malformed(hexbody: str) -> None:
    with pytest.raises(DecodeError):
        decode_message(ClientHello, bytes.fromhex(hexbody))


def test_hello_retry_request_uses_its_registry() -> None:
    hrr = ServerHello(
        0x0303, HELLO_RETRY_REQUEST_RANDOM, b"", 0x1301, 0, (X.KeyShareRetry(0x0017),)
    )
    raw = encode_handshake(hrr)
    decoded = decode_message(ServerHello, raw[4:])
    assert decoded.is_hello_retry_request
    assert decoded.find(X.KeyShareRetry) == X.KeyShareRetry(0x0017)
    sh = decode_message(ServerHello, encode_handshake(ServerHello(0x0303, R32, b"", 0x1301))[4:])
    assert not sh.is_hello_retry_request


def test_certificate12_entries_must_not_be_empty() -> None:
    with pytest.raises(DecodeError):
        decode_message(Certificate12, bytes.fromhex("000003000000"))


def test_certificate_request12_needs_types_and_schemes() -> None:
    with pytest.raises(DecodeError):
        decode_message(CertificateRequest12, bytes.fromhex("00" + "00020403" + "0000"))
    with pytest.raises(DecodeError):
        decode_message(CertificateRequest12, bytes.fromhex("0101" + "0000" + "0000"))


def test_server_key_exchange_curve_type() -> None:
    body = bytes.fromhex("01001d0001aa04030001ff")
    with pytest.raises(IllegalParameter):
        decode_message(ServerKeyExchangeECDHE, body)


def test_server_key_exchange_signed_params() -> None:
    ske = ServerKeyExchangeECDHE(0x0017, b"\x04" + bytes(64), 0x0403, b"s")
    assert ske.params == b"\x03\x00\x17\x41" + b"\x04" + bytes(64)
    assert encode_handshake(ske)[4:].startswith(ske.params)


def test_key_update_values() -> None:
    with pytest.raises(IllegalParameter):
        decode_message(KeyUpdate, b"\x02")


def test_alert() -> None:
    a = Alert.decode(b"\x02\x28")
    assert a == Alert(2, 40)
    assert a.description_enum is AlertDescription.handshake_failure
    assert a.to_bytes() == b"\x02\x28"
    assert Alert.decode(b"\x01\xee").description_enum is None
    for bad in (b"", b"\x02", b"\x02\x28\x00"):
        with pytest.raises(DecodeError):
            Alert.decode(bad)
    with pytest.raises(IllegalParameter):
        Alert.decode(b"\x00\x28")


def test_message_types() -> None:
    assert ClientHello.msg_type is HandshakeType.CLIENT_HELLO
    assert NewSessionTicket12.msg_type == NewSessionTicket13.msg_type == 4
    assert Finished.msg_type == 20


# -- the prebuilt encodings the server's hot path uses ------------------------------------------
@pytest.mark.parametrize("group", [None, 0x001D])
@pytest.mark.parametrize("psk", [None, 0, 3])
def test_server_hello13_bytes_match_the_dataclass(group: int | None, psk: int | None) -> None:
    from tessera.messages import server_hello13_extensions, server_hello_bytes

    public = bytes(range(32)) if group is not None else b""
    exts: list[X.Extension] = [X.SupportedVersionSelected(0x0304)]
    if group is not None:
        exts.append(X.KeyShareSelected(X.KeyShareEntry(group, public)))
    if psk is not None:
        exts.append(X.PreSharedKeySelected(psk))
    sh = ServerHello(0x0303, bytes(range(32)), b"s" * 32, 0x1301, 0, tuple(exts))
    fast = server_hello_bytes(sh.random, sh.session_id, 0x1301,
                              server_hello13_extensions(group, public, psk))  # fmt: skip
    assert fast == encode_handshake(sh)


def test_server_hello12_bytes_and_finished_bytes_match_the_dataclasses() -> None:
    from tessera.messages import Finished, extensions_block, finished_bytes, server_hello_bytes

    exts = (X.RenegotiationInfo(b""), X.ExtendedMasterSecret(), X.SessionTicketExt(b""),
            X.ALPN((b"h2",)), X.ServerNameAck())  # fmt: skip
    sh = ServerHello(0x0303, bytes(32), b"", 0xC02B, 0, exts)
    assert server_hello_bytes(sh.random, b"", 0xC02B, extensions_block(exts)) == encode_handshake(
        sh
    )
    assert finished_bytes(b"v" * 12) == encode_handshake(Finished(b"v" * 12))


@pytest.mark.parametrize("max_early", [0, 16384])
def test_new_session_ticket13_bytes_match_the_dataclass(max_early: int) -> None:
    from tessera.messages import (
        NewSessionTicket13,
        extensions_block,
        new_session_ticket13_bytes,
    )

    exts: tuple[X.Extension, ...] = (X.EarlyDataLimit(max_early),) if max_early else ()
    nst = NewSessionTicket13(7200, 0x01020304, b"\x00", b"t" * 100, exts)
    fast = new_session_ticket13_bytes(7200, 0x01020304, b"\x00", b"t" * 100, extensions_block(exts))
    assert fast == encode_handshake(nst)

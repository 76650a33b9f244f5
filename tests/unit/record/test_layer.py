"""RecordLayer framing and HandshakeReassembler: fragmentation and reassembly."""

from __future__ import annotations

import os

import pytest

from tessera.crypto.suites import BY_CODE
from tessera.enums import ContentType
from tessera.errors import IllegalParameter, ProtocolVersionError, RecordOverflow, UnexpectedMessage
from tessera.record.layer import MAX_HANDSHAKE_MESSAGE, HandshakeReassembler, RecordLayer
from tessera.record.protection import AEAD12, MAX_PLAINTEXT, NullProtection

HS = ContentType.HANDSHAKE
APP = ContentType.APPLICATION_DATA


def rec(ctype: int, data: bytes, version: bytes = b"\x03\x03") -> bytes:
    return bytes((ctype,)) + version + len(data).to_bytes(2, "big") + data


def msg(t: int, body: bytes) -> bytes:
    return bytes((t,)) + len(body).to_bytes(3, "big") + body


def test_records_arrive_in_pieces() -> None:
    layer = RecordLayer()
    wire = rec(HS, b"hello") + rec(APP, b"") + rec(ContentType.ALERT, b"\x01\x00")
    got = []
    for i in range(len(wire)):
        layer.feed(wire[i : i + 1])
        while (r := layer.next_record()) is not None:
            got.append(r)
    assert got == [(HS, b"hello"), (APP, b""), (ContentType.ALERT, b"\x01\x00")]
    assert layer.buffered() == 0


def test_several_records_in_one_feed() -> None:
    layer = RecordLayer()
    layer.feed(rec(HS, b"a") + rec(HS, b"bc") + rec(HS, b"d")[:-1])
    assert layer.next_record() == (HS, b"a")
    assert layer.next_record() == (HS, b"bc")
    assert layer.next_record() is None
    assert layer.buffered() == 5
    layer.feed(b"d")
    assert layer.next_record() == (HS, b"d")


def test_header_checks() -> None:
    with pytest.raises(RecordOverflow):
        layer = RecordLayer()
        layer.feed(bytes((HS, 3, 3)) + (MAX_PLAINTEXT + 1).to_bytes(2, "big"))
        layer.next_record()
    layer = RecordLayer()
    layer.feed(rec(HS, b"x", b"\x02\x00"))
    with pytest.raises(ProtocolVersionError):
        layer.next_record()
    layer = RecordLayer()
    layer.check_version = 0x0303
    layer.feed(rec(HS, b"x", b"\x03\x01"))
    with pytest.raises(ProtocolVersionError):
        layer.next_record()
    layer = RecordLayer()
    layer.feed(rec(HS, b""))
    with pytest.raises(UnexpectedMessage):
        layer.next_record()
    layer = RecordLayer()
    layer.feed(rec(0x42, b"x"))
    with pytest.raises(UnexpectedMessage):
        layer.next_record()


def test_any_record_version_with_major_3_before_negotiation() -> None:
    layer = RecordLayer()
    layer.feed(rec(HS, b"x", b"\x03\x00") + rec(HS, b"y", b"\x03\x04"))
    assert layer.next_record() == (HS, b"x")
    assert layer.next_record() == (HS, b"y")


@pytest.mark.parametrize(
    ("n", "records"),
    [
        (0, 1),
        (1, 1),
        (MAX_PLAINTEXT, 1),
        (MAX_PLAINTEXT + 1, 2),
        (3 * MAX_PLAINTEXT, 3),
        (100 * 1024, 7),
    ],
)
def test_write_fragments_at_2_14(n: int, records: int) -> None:
    layer = RecordLayer()
    layer.write = NullProtection(b"\x03\x03")
    data = os.urandom(n)
    layer.write_records(APP, data)
    out = layer.take_output()
    assert layer.take_output() == b""
    reader = RecordLayer()
    reader.feed(out)
    got = []
    while (r := reader.next_record()) is not None:
        got.append(r)
    assert len(got) == records
    assert all(t == APP and len(d) <= MAX_PLAINTEXT for t, d in got)
    assert b"".join(d for _, d in got) == data


def test_protected_records_round_trip() -> None:
    suite = BY_CODE[0xC02B]
    key, iv = os.urandom(16), os.urandom(4)
    w, r = RecordLayer(), RecordLayer()
    w.write = AEAD12(suite, key, iv)
    r.read = AEAD12(suite, key, iv)
    data = os.urandom(2 * MAX_PLAINTEXT + 10)
    w.write_records(APP, data)
    r.feed(w.take_output())
    got = b""
    while (x := r.next_record()) is not None:
        got += x[1]
    assert got == data


def test_protected_record_limit() -> None:
    suite = BY_CODE[0xC02B]
    r = RecordLayer()
    r.read = AEAD12(suite, bytes(16), bytes(4))
    r.feed(bytes((APP, 3, 3)) + (MAX_PLAINTEXT + 2049).to_bytes(2, "big"))
    with pytest.raises(RecordOverflow):
        r.next_record()


# -- reassembly -----------------------------------------------------------------------------------
def drain(h: HandshakeReassembler) -> list[tuple[int, bytes, bytes]]:
    out = []
    while (m := h.next_message()) is not None:
        out.append(m)
    return out


def test_several_messages_per_record() -> None:
    h = HandshakeReassembler()
    h.add(msg(2, b"sh") + msg(11, b"cert") + msg(14, b""))
    got = drain(h)
    assert [(t, b) for t, b, _ in got] == [(2, b"sh"), (11, b"cert"), (14, b"")]
    assert got[1][2] == msg(11, b"cert")  # the raw bytes for the transcript
    assert not h.pending


def test_one_message_across_records() -> None:
    h = HandshakeReassembler()
    whole = msg(11, os.urandom(40000))
    for i in range(0, len(whole), 7000):
        assert drain(h) == []
        h.add(whole[i : i + 7000])
    (m,) = drain(h)
    assert m[2] == whole


def test_header_split_across_records() -> None:
    h = HandshakeReassembler()
    whole = msg(1, b"body") + msg(20, b"f" * 12)
    for b in whole[:-1]:
        h.add(bytes((b,)))
    got = drain(h)
    assert [t for t, _, _ in got] == [1]
    assert h.pending
    h.add(whole[-1:])
    assert [t for t, _, _ in drain(h)] == [20]
    assert not h.pending


def test_empty_handshake_fragment() -> None:
    with pytest.raises(UnexpectedMessage):
        HandshakeReassembler().add(b"")


def test_message_size_limit() -> None:
    h = HandshakeReassembler()
    h.add(bytes((11,)) + MAX_HANDSHAKE_MESSAGE.to_bytes(3, "big"))
    assert drain(h) == []  # the limit itself is allowed: wait for the body
    h = HandshakeReassembler()
    h.add(bytes((11,)) + (MAX_HANDSHAKE_MESSAGE + 1).to_bytes(3, "big"))
    with pytest.raises(IllegalParameter):
        h.next_message()

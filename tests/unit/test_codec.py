"""codec.Reader / codec.Writer: bounds, vectors, back-patching."""

from __future__ import annotations

import pytest

from tessera.codec import Reader, Writer
from tessera.errors import DecodeError, LocalProtocolError


def test_integers() -> None:
    r = Reader(bytes(range(1, 19)))
    assert r.u8() == 0x01
    assert r.u16() == 0x0203
    assert r.u24() == 0x040506
    assert r.u32() == 0x0708090A
    assert r.u64() == 0x0B0C0D0E0F101112
    assert r.at_end() and r.remaining == 0 and r.position == 18


@pytest.mark.parametrize(
    ("method", "size"), [("u8", 1), ("u16", 2), ("u24", 3), ("u32", 4), ("u64", 8)]
)
def test_integer_truncated(method: str, size: int) -> None:
    for n in range(size):
        r = Reader(bytes(n))
        with pytest.raises(DecodeError):
            getattr(r, method)()


def test_raw() -> None:
    r = Reader(b"abcdef")
    assert r.raw(2) == b"ab"
    assert r.raw(0) == b""
    with pytest.raises(DecodeError):
        r.raw(5)
    assert r.rest() == b"cdef"
    assert r.rest() == b""


@pytest.mark.parametrize("len_bytes", [1, 2, 3, 4])
def test_opaque_round_trip(len_bytes: int) -> None:
    w = Writer()
    w.opaque(len_bytes, b"hello")
    data = w.getvalue()
    assert data == (5).to_bytes(len_bytes, "big") + b"hello"
    r = Reader(data)
    assert r.opaque(len_bytes) == b"hello"
    r.expect_empty()


def test_vector_min_max() -> None:
    data = b"\x03abc"
    assert Reader(data).opaque(1, 3, 3) == b"abc"
    with pytest.raises(DecodeError, match="shorter"):
        Reader(data).opaque(1, 4)
    with pytest.raises(DecodeError, match="longer"):
        Reader(data).opaque(1, 0, 2)


def test_vector_longer_than_input() -> None:
    with pytest.raises(DecodeError):
        Reader(b"\x05abc").opaque(1)
    with pytest.raises(DecodeError):
        Reader(b"\x00").opaque(2)  # the length itself is cut off
    with pytest.raises(DecodeError):
        Reader(b"\x00\x00").vector(3)


def test_sub_reader_is_bounded() -> None:
    r = Reader(b"\x02\xaa\xbb\xcc\xdd")
    sub = r.vector(1)
    assert sub.u16() == 0xAABB
    with pytest.raises(DecodeError):
        sub.u8()  # cannot read into the parent's bytes
    assert r.u16() == 0xCCDD  # the parent skipped past the vector
    r.expect_empty()


def test_sub_reader_cannot_declare_past_its_end() -> None:
    r = Reader(b"\x03\x02\xaa\xbb\xff")
    sub = r.vector(1)  # 3 bytes: 02 aa bb
    inner = sub.vector(1)
    assert inner.raw(2) == b"\xaa\xbb"
    r2 = Reader(b"\x02\x05\xaa\xff\xff\xff\xff")
    with pytest.raises(DecodeError):
        r2.vector(1).vector(1)  # 5 > 1 byte left inside the outer vector


def test_reader_window() -> None:
    r = Reader(b"xxabcdyy", 2, 6)
    assert r.remaining == 4
    assert r.rest() == b"abcd"


def test_u16_list() -> None:
    assert Reader(b"\x00\x04\x00\x1d\x00\x17").u16_list(2) == (0x1D, 0x17)
    with pytest.raises(DecodeError, match="odd"):
        Reader(b"\x00\x03\x00\x1d\x00").u16_list(2)
    with pytest.raises(DecodeError):
        Reader(b"\x00\x00").u16_list(2, 2)
    w = Writer()
    w.u16_list(2, (0x1D, 0x17))
    assert w.getvalue() == b"\x00\x04\x00\x1d\x00\x17"


def test_u8_list() -> None:
    assert Reader(b"\x02\x00\x01").u8_list(1) == (0, 1)
    w = Writer()
    w.u8_list(1, [0, 1])
    assert w.getvalue() == b"\x02\x00\x01"


def test_expect_empty() -> None:
    r = Reader(b"ab")
    r.u8()
    with pytest.raises(DecodeError, match="trailing"):
        r.expect_empty()


def test_writer_back_patches_nested_lengths() -> None:
    w = Writer()
    outer = w.open(2)
    w.u8(7)
    inner = w.open(3)
    w.raw(b"abc")
    w.close(inner, 3)
    w.close(outer, 2)
    assert w.getvalue() == b"\x00\x07\x07\x00\x00\x03abc"


def test_writer_refuses_overlong_vectors() -> None:
    w = Writer()
    with pytest.raises(LocalProtocolError):
        w.opaque(1, bytes(256))
    w = Writer()
    m = w.open(1)
    w.raw(bytes(256))
    with pytest.raises(LocalProtocolError):
        w.close(m, 1)
    Writer().opaque(1, bytes(255))  # the largest that fits


def test_writer_integers() -> None:
    w = Writer()
    w.u8(1)
    w.u16(0x0203)
    w.u24(0x040506)
    w.u32(0x0708090A)
    w.u64(1)
    assert w.getvalue() == bytes(range(1, 11)) + bytes(7) + b"\x01"


def test_every_truncation_raises_decode_error_only() -> None:
    """Cut a nested structure at every length: only DecodeError, never IndexError."""
    w = Writer()
    m = w.open(2)
    for item in (b"a", b"bc", b"def"):
        w.opaque(1, item)
    w.close(m, 2)
    w.u32(5)
    data = w.getvalue()

    def parse(r: Reader) -> tuple[list[bytes], int]:
        lst = r.vector(2, 1)
        items = []
        while not lst.at_end():
            items.append(lst.opaque(1, 1))
        n = r.u32()
        r.expect_empty()
        return items, n

    assert parse(Reader(data)) == ([b"a", b"bc", b"def"], 5)
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            parse(Reader(data[:cut]))
    with pytest.raises(DecodeError):
        parse(Reader(data + b"\x00"))

"""The wire codec: a bounded ``Reader`` cursor and a back-patching ``Writer``.

Every malformed input raises :class:`~tessera.errors.DecodeError` (alert ``decode_error``);
nothing here raises ``IndexError`` or ``struct.error``. A ``Reader`` never looks past the end it
was given, so a sub-reader for a vector cannot read into the bytes that follow the vector.
"""

from __future__ import annotations

from struct import unpack_from

from .errors import DecodeError, LocalProtocolError

_MAX_FOR_LEN = {1: 0xFF, 2: 0xFFFF, 3: 0xFFFFFF, 4: 0xFFFFFFFF}


class Reader:
    """A cursor over ``data[pos:end]``."""

    __slots__ = ("_buf", "_end", "_pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self._buf = data
        self._pos = pos
        self._end = len(data) if end is None else end

    # -- fixed-size integers -------------------------------------------------------------
    def _take(self, n: int) -> int:
        pos = self._pos
        if pos + n > self._end:
            raise DecodeError(f"truncated: needed {n} more byte(s), {self._end - pos} left")
        self._pos = pos + n
        return pos

    def u8(self) -> int:
        pos = self._pos
        if pos >= self._end:
            raise DecodeError("truncated: needed 1 more byte, 0 left")
        self._pos = pos + 1
        return self._buf[pos]

    def u16(self) -> int:
        p = self._pos
        if p + 2 > self._end:
            raise DecodeError(f"truncated: needed 2 more byte(s), {self._end - p} left")
        self._pos = p + 2
        b = self._buf
        return (b[p] << 8) | b[p + 1]

    def u24(self) -> int:
        p = self._take(3)
        b = self._buf
        return (b[p] << 16) | (b[p + 1] << 8) | b[p + 2]

    def u32(self) -> int:
        p = self._take(4)
        return int.from_bytes(self._buf[p : p + 4], "big")

    def u64(self) -> int:
        p = self._take(8)
        return int.from_bytes(self._buf[p : p + 8], "big")

    def raw(self, n: int) -> bytes:
        p = self._take(n)
        return bytes(self._buf[p : p + n])

    # -- vectors -------------------------------------------------------------------------
    def _vector_bounds(self, len_bytes: int, min_len: int, max_len: int | None) -> tuple[int, int]:
        p = self._pos
        start = p + len_bytes
        if start > self._end:
            raise DecodeError(f"truncated: a {len_bytes}-byte vector length is cut off")
        b = self._buf
        if len_bytes == 1:
            n = b[p]
        elif len_bytes == 2:
            n = (b[p] << 8) | b[p + 1]
        else:
            n = int.from_bytes(b[p:start], "big")
        if n < min_len:
            raise DecodeError(f"vector of {n} byte(s) is shorter than the minimum {min_len}")
        if max_len is not None and n > max_len:
            raise DecodeError(f"vector of {n} byte(s) is longer than the maximum {max_len}")
        end = start + n
        if end > self._end:
            raise DecodeError(f"truncated: a vector of {n} byte(s) has {self._end - start} left")
        self._pos = end
        return start, end

    def opaque(self, len_bytes: int, min_len: int = 0, max_len: int | None = None) -> bytes:
        """A length-prefixed byte string ``opaque x<min..max>``."""
        start, end = self._vector_bounds(len_bytes, min_len, max_len)
        return bytes(self._buf[start:end])

    def vector(self, len_bytes: int, min_len: int = 0, max_len: int | None = None) -> Reader:
        """A sub-reader over a length-prefixed vector; the parent skips past it."""
        start, end = self._vector_bounds(len_bytes, min_len, max_len)
        return Reader(self._buf, start, end)

    def u16_list(
        self, len_bytes: int, min_len: int = 0, max_len: int | None = None
    ) -> tuple[int, ...]:
        """A vector of uint16 values (cipher suites, groups, signature schemes)."""
        start, end = self._vector_bounds(len_bytes, min_len, max_len)
        if (end - start) & 1:
            raise DecodeError("a list of 16-bit values has an odd length")
        return unpack_from(f">{(end - start) >> 1}H", self._buf, start)

    def u8_list(
        self, len_bytes: int, min_len: int = 0, max_len: int | None = None
    ) -> tuple[int, ...]:
        start, end = self._vector_bounds(len_bytes, min_len, max_len)
        return tuple(self._buf[start:end])

    # -- position ------------------------------------------------------------------------
    @property
    def remaining(self) -> int:
        return self._end - self._pos

    @property
    def position(self) -> int:
        return self._pos

    def at_end(self) -> bool:
        return self._pos >= self._end

    def rest(self) -> bytes:
        p = self._pos
        self._pos = self._end
        return bytes(self._buf[p : self._end])

    def expect_empty(self, what: str = "message") -> None:
        if self._pos != self._end:
            raise DecodeError(f"{self._end - self._pos} trailing byte(s) after the {what}")


class Writer:
    """Appends to a ``bytearray``; length prefixes are reserved and back-patched."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def u8(self, v: int) -> None:
        self.buf.append(v)

    def u16(self, v: int) -> None:
        self.buf += v.to_bytes(2, "big")

    def u24(self, v: int) -> None:
        self.buf += v.to_bytes(3, "big")

    def u32(self, v: int) -> None:
        self.buf += v.to_bytes(4, "big")

    def u64(self, v: int) -> None:
        self.buf += v.to_bytes(8, "big")

    def raw(self, data: bytes) -> None:
        self.buf += data

    def opaque(self, len_bytes: int, data: bytes) -> None:
        n = len(data)
        if n > _MAX_FOR_LEN[len_bytes]:
            raise LocalProtocolError(f"{n} bytes do not fit a {len_bytes}-byte length prefix")
        self.buf += n.to_bytes(len_bytes, "big")
        self.buf += data

    def u16_list(self, len_bytes: int, values: tuple[int, ...] | list[int]) -> None:
        self.buf += (2 * len(values)).to_bytes(len_bytes, "big")
        for v in values:
            self.buf += v.to_bytes(2, "big")

    def u8_list(self, len_bytes: int, values: tuple[int, ...] | list[int]) -> None:
        self.buf += len(values).to_bytes(len_bytes, "big")
        self.buf += bytes(values)

    def open(self, len_bytes: int) -> int:
        """Reserve a length prefix; pass the result to :meth:`close` once the body is written."""
        mark = len(self.buf)
        self.buf += bytes(len_bytes)
        return mark

    def close(self, mark: int, len_bytes: int) -> None:
        n = len(self.buf) - mark - len_bytes
        if n > _MAX_FOR_LEN[len_bytes]:
            raise LocalProtocolError(f"{n} bytes do not fit a {len_bytes}-byte length prefix")
        self.buf[mark : mark + len_bytes] = n.to_bytes(len_bytes, "big")

    def getvalue(self) -> bytes:
        return bytes(self.buf)

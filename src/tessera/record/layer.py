"""Record framing in both directions, and handshake message reassembly.

Incoming bytes are buffered; :meth:`RecordLayer.next_record` returns one deprotected record at
a time, so a key change made while handling one record applies to the next. Outgoing data is
fragmented at 2^14 bytes and sealed with the current write protection.
"""

from __future__ import annotations

from ..enums import ContentType, ProtocolVersion
from ..errors import (
    BadRecordMac,
    IllegalParameter,
    ProtocolVersionError,
    RecordOverflow,
    UnexpectedMessage,
)
from ..messages.hello import MAX_CLIENT_HELLO
from .protection import MAX_PLAINTEXT, NullProtection, RecordProtection

_KNOWN_TYPES = frozenset(int(t) for t in ContentType)
# A handshake message larger than the largest valid ClientHello is refused before any of it is
# buffered, so reassembly never holds more than ~128 KiB (certificate chains are capped there
# too; OpenSSL's default cap for them is 100 KiB).
MAX_HANDSHAKE_MESSAGE = MAX_CLIENT_HELLO


class RecordLayer:
    __slots__ = (
        "_inbuf", "_pos", "check_version", "out", "plaintext_alerts", "read", "skip_budget",
        "write",
    )  # fmt: skip

    def __init__(self) -> None:
        self.read: RecordProtection = NullProtection()
        self.write: RecordProtection = NullProtection()
        self._inbuf = bytearray()
        self._pos = 0
        self.out: list[bytes] = []
        # Once a version is agreed, TLS 1.2 records must carry it (None: only major 3 checked).
        self.check_version: int | None = None
        # TLS 1.3 server that refused 0-RTT: bytes of undecryptable early data still skipped.
        self.skip_budget = 0
        # TLS 1.3: a peer may send a plaintext alert before it has switched to handshake keys.
        self.plaintext_alerts = True

    # -- input ---------------------------------------------------------------------------
    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._pos:
            del self._inbuf[: self._pos]
            self._pos = 0
        self._inbuf += data

    def buffered(self) -> int:
        return len(self._inbuf) - self._pos

    def next_record(self) -> tuple[int, bytes] | None:
        """The next whole record as (content type, plaintext), or None until more bytes come."""
        buf = self._inbuf
        while True:
            pos = self._pos
            if len(buf) - pos < 5:
                return None
            ctype = buf[pos]
            if ctype not in _KNOWN_TYPES:
                self._bad_first_bytes(ctype)
            if buf[pos + 1] != 3:
                raise ProtocolVersionError(
                    f"record version 0x{buf[pos + 1]:02x}{buf[pos + 2]:02x} is not TLS"
                )
            check = self.check_version
            if check is not None:
                self._check_version(ctype, (buf[pos + 1] << 8) | buf[pos + 2], check)
            read = self.read
            length = (buf[pos + 3] << 8) | buf[pos + 4]
            if length > read.max_fragment:
                raise RecordOverflow(
                    f"record of {length} bytes exceeds the limit {read.max_fragment}"
                )
            end = pos + 5 + length
            if len(buf) < end:
                return None
            self._pos = end
            fragment = bytes(buf[pos + 5 : end])
            if not read.encrypted:
                if ctype == ContentType.APPLICATION_DATA and self.skip_budget > 0:
                    self._skip(length)  # 0-RTT data sent before a HelloRetryRequest
                    continue
                if not length and ctype != ContentType.APPLICATION_DATA:
                    raise UnexpectedMessage(f"empty {ContentType(ctype).name} record")
                return ctype, fragment
            if read.plaintext_ccs and (
                ctype == ContentType.CHANGE_CIPHER_SPEC
                or (ctype == ContentType.ALERT and self.plaintext_alerts and length == 2)
            ):
                return ctype, fragment  # TLS 1.3 never encrypts these
            try:
                ctype, plain = read.open(ctype, fragment)
            except BadRecordMac:
                if self.skip_budget > 0 and ctype == ContentType.APPLICATION_DATA:
                    self._skip(length)  # refused 0-RTT data (RFC 8446 §4.2.10)
                    continue
                raise
            self.skip_budget = 0
            if len(plain) > MAX_PLAINTEXT:
                raise RecordOverflow(f"decrypted record of {len(plain)} bytes exceeds 2^14")
            return ctype, plain

    def _skip(self, n: int) -> None:
        self.skip_budget -= n
        if self.skip_budget < 0:
            raise UnexpectedMessage("more refused early data than max_early_data_size")

    def _check_version(self, ctype: int, version: int, check: int) -> None:
        if version != check and not self._early_alert(ctype, version):
            raise ProtocolVersionError(
                f"record version 0x{version:04x} differs from the negotiated 0x{check:04x}"
            )

    def _early_alert(self, ctype: int, version: int) -> bool:
        """An alert in a TLS 1.0 record before the peer's first protected record: a TLS 1.2
        peer that has not yet settled the version (its answer to our first flight) may send one,
        and OpenSSL accepts it. Reading the alert reports what the peer really said."""
        return (
            ctype == ContentType.ALERT
            and version == ProtocolVersion.TLS1_0
            and not self.read.encrypted
        )

    def _bad_first_bytes(self, ctype: int) -> None:
        head = bytes(self._inbuf[self._pos : self._pos + 5])
        if head[:4] in (b"GET ", b"POST", b"HEAD", b"PUT ", b"OPTI", b"CONN"):
            raise UnexpectedMessage("the peer sent plaintext HTTP to a TLS port")
        if head.startswith(b"HTTP/") or head.lower().startswith((b"<html", b"<!doc")):
            raise UnexpectedMessage("the server answered in plaintext HTTP: is this a TLS port?")
        if ctype & 0x80 and len(head) >= 3 and head[2] == 1:
            raise ProtocolVersionError(
                "the peer sent an SSLv2-format ClientHello; SSLv2 is refused"
            )
        raise UnexpectedMessage(f"unknown record content type {ctype}")

    # -- output --------------------------------------------------------------------------
    def write_records(self, content_type: int, data: bytes) -> None:
        seal = self.write.seal
        out = self.out
        n = len(data)
        if n <= MAX_PLAINTEXT:
            out.append(seal(content_type, data))
            return
        view = memoryview(data)
        for i in range(0, n, MAX_PLAINTEXT):
            out.append(seal(content_type, bytes(view[i : i + MAX_PLAINTEXT])))

    def take_records(self) -> list[bytes]:
        """The queued records, each one bytes object (for vectored writes: no joined copy)."""
        records = self.out
        self.out = []
        return records

    def take_output(self) -> bytes:
        out = self.out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data


class HandshakeReassembler:
    """Joins handshake records into messages: several per record, or one across records."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def add(self, data: bytes) -> None:
        if not data:
            raise UnexpectedMessage("empty handshake record")
        self._buf += data

    @property
    def pending(self) -> bool:
        return bool(self._buf)

    def next_message(self) -> tuple[int, bytes, bytes] | None:
        """(type, body, whole message bytes) or None until the message is complete."""
        buf = self._buf
        if len(buf) < 4:
            return None
        length = (buf[1] << 16) | (buf[2] << 8) | buf[3]
        if length > MAX_HANDSHAKE_MESSAGE:
            raise IllegalParameter(f"handshake message of {length} bytes is too large")
        if len(buf) < 4 + length:
            return None
        raw = bytes(buf[: 4 + length])
        del buf[: 4 + length]
        return raw[0], raw[4:], raw


__all__ = ["MAX_HANDSHAKE_MESSAGE", "HandshakeReassembler", "RecordLayer"]

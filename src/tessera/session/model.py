"""What a resumable session is, and its one binary encoding.

The server's :class:`ServerSession` encodes to the same bytes whether they are sealed in a ticket
or kept in a store. The encoding is compact (a TLS 1.2 session with SNI ``localhost`` is 74
bytes) because a server may keep hundreds of thousands of them::

    u8   format (1)
    u8   TLS minor version (3 = TLS 1.2, 4 = TLS 1.3)
    u16  cipher suite
    u8   flags: 1 extended master secret, 2 peer chain present, 4 TLS 1.3 fields present
    u48  creation time, milliseconds since the epoch
    u32  lifetime, seconds
    [n]  secret: the TLS 1.2 master secret (48 bytes) or TLS 1.3 resumption PSK (hash length)
    opaque sni<0..255>, opaque alpn<0..255>
    TLS 1.3 only: u32 ticket_age_add, u32 max_early_data
    peer chain only: opaque chain<1..2^24-1> of opaque cert<1..2^24-1>

:class:`ClientSession` is what a client keeps to resume: the same values plus the session id
and/or ticket it presents.
"""

from __future__ import annotations

import base64
import math
import struct
from dataclasses import dataclass, field, replace

from ..codec import Reader, Writer
from ..crypto.suites import BY_CODE
from ..enums import ProtocolVersion
from ..errors import DecodeError, LocalProtocolError, TLSError
from ..frozen import quick_init

FORMAT = 1
_HEADER = struct.Struct(">BBHBHII")  # format, version, suite, flags, created (u48), lifetime
_TLS13 = struct.Struct(">II")  # ticket_age_add, max_early_data
_FLAG_EMS = 1
_FLAG_CHAIN = 2
_FLAG_TLS13 = 4
_CLIENT_FORMAT = 1
_PEM_LABEL = "TESSERA SESSION"


class SessionDecodeError(TLSError):
    """Bytes that are not a session we can use (corrupt, or from an unknown format)."""


@quick_init
@dataclass(frozen=True, slots=True)
class ServerSession:
    version: int
    cipher_suite: int
    secret: bytes = field(repr=False)
    extended_master_secret: bool
    created: float  # seconds since the epoch
    lifetime: int  # seconds
    server_name: str | None = None
    alpn: bytes | None = None
    peer_chain: tuple[bytes, ...] = ()
    ticket_age_add: int = 0
    max_early_data: int = 0

    def expired(self, now: float) -> bool:
        return now >= self.created + self.lifetime or now < self.created - 60

    def remaining(self, now: float) -> int:
        """Whole seconds of lifetime left, rounded up (0 once expired)."""
        return max(0, math.ceil(self.created + self.lifetime - now))

    def to_bytes(self) -> bytes:
        tls13 = self.version == ProtocolVersion.TLS1_3
        flags = (
            (_FLAG_EMS if self.extended_master_secret else 0)
            | (_FLAG_CHAIN if self.peer_chain else 0)
            | (_FLAG_TLS13 if tls13 else 0)
        )
        created = round(self.created * 1000)
        sni = self.server_name.encode("ascii") if self.server_name else b""
        alpn = self.alpn or b""
        if len(sni) > 255 or len(alpn) > 255:
            raise LocalProtocolError("a session's server name and ALPN are at most 255 bytes")
        parts = [
            _HEADER.pack(FORMAT, self.version & 0xFF, self.cipher_suite, flags,
                         created >> 32, created & 0xFFFFFFFF, self.lifetime),
            self.secret, bytes((len(sni),)), sni, bytes((len(alpn),)), alpn,
        ]  # fmt: skip
        if tls13:
            parts.append(_TLS13.pack(self.ticket_age_add, self.max_early_data))
        if self.peer_chain:
            w = Writer()
            m = w.open(3)
            for der in self.peer_chain:
                w.opaque(3, der)
            w.close(m, 3)
            parts.append(bytes(w.buf))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> ServerSession:
        try:
            return cls._decode(data)
        except (DecodeError, UnicodeDecodeError, ValueError) as e:
            raise SessionDecodeError(f"not a valid session: {e}") from None

    @classmethod
    def _decode(cls, data: bytes) -> ServerSession:
        # The fixed header in one unpack (this runs for every ticket or cached id a client
        # offers): format, version, suite, flags, created (u48 as u16 + u32), lifetime.
        if len(data) < _HEADER.size:
            raise SessionDecodeError(f"a session is at least {_HEADER.size} bytes")
        fmt, minor, suite_code, flags, created_hi, created_lo, lifetime = _HEADER.unpack_from(data)
        if fmt != FORMAT:
            raise SessionDecodeError(f"unknown session format {fmt}")
        version = 0x0300 | minor
        if version not in (ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_3):
            raise SessionDecodeError(f"session has unsupported version 0x{version:04x}")
        suite = BY_CODE.get(suite_code)
        if suite is None or suite.is_tls13 != (version == ProtocolVersion.TLS1_3):
            raise SessionDecodeError(f"session has unusable cipher suite 0x{suite_code:04x}")
        r = Reader(data, _HEADER.size)
        secret = r.raw(suite.hash_len if suite.is_tls13 else 48)
        sni = r.opaque(1)
        alpn = r.opaque(1)
        age_add = max_early = 0
        if flags & _FLAG_TLS13:
            age_add = r.u32()
            max_early = r.u32()
        chain: tuple[bytes, ...] = ()
        if flags & _FLAG_CHAIN:
            lst = r.vector(3, 1)
            items = []
            while not lst.at_end():
                items.append(lst.opaque(3, 1))
            chain = tuple(items)
        r.expect_empty("session")
        return cls(
            version,
            suite_code,
            secret,
            bool(flags & _FLAG_EMS),
            ((created_hi << 32) | created_lo) / 1000,
            lifetime,
            sni.decode("ascii") if sni else None,
            alpn or None,
            chain,
            age_add,
            max_early,
        )


@quick_init
@dataclass(frozen=True, slots=True)
class ClientSession:
    """A session a client can offer: its parameters plus the session id and/or ticket."""

    state: ServerSession
    session_id: bytes = b""
    ticket: bytes = b""

    @property
    def version(self) -> int:
        return self.state.version

    @property
    def cipher_suite(self) -> int:
        return self.state.cipher_suite

    def expired(self, now: float) -> bool:
        return self.state.expired(now)

    def with_ticket(self, ticket: bytes, lifetime: int, now: float) -> ClientSession:
        return replace(
            self, ticket=ticket, state=replace(self.state, created=now, lifetime=lifetime)
        )

    def to_bytes(self) -> bytes:
        w = Writer()
        w.u8(_CLIENT_FORMAT)
        w.opaque(1, self.session_id)
        w.opaque(2, self.ticket)
        w.opaque(3, self.state.to_bytes())
        return bytes(w.buf)

    @classmethod
    def from_bytes(cls, data: bytes) -> ClientSession:
        try:
            r = Reader(data)
            if r.u8() != _CLIENT_FORMAT:
                raise SessionDecodeError("unknown client session format")
            sid = r.opaque(1, 0, 32)
            ticket = r.opaque(2)
            state = ServerSession.from_bytes(r.opaque(3, 1))
            r.expect_empty("client session")
        except DecodeError as e:
            raise SessionDecodeError(f"not a valid client session: {e}") from None
        return cls(state, sid, ticket)

    def to_pem(self) -> str:
        body = base64.encodebytes(self.to_bytes()).decode("ascii")
        return f"-----BEGIN {_PEM_LABEL}-----\n{body}-----END {_PEM_LABEL}-----\n"

    @classmethod
    def from_pem(cls, text: str) -> ClientSession:
        begin, end = f"-----BEGIN {_PEM_LABEL}-----", f"-----END {_PEM_LABEL}-----"
        if begin not in text or end not in text:
            raise SessionDecodeError(f"no {_PEM_LABEL} block found")
        inner = text.split(begin, 1)[1].split(end, 1)[0]
        try:
            raw = base64.b64decode("".join(inner.split()), validate=True)
        except ValueError as e:
            raise SessionDecodeError(f"bad base64 in session file: {e}") from None
        return cls.from_bytes(raw)

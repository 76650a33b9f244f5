"""ClientHello, ServerHello and HelloRetryRequest (RFC 5246 §7.4.1, RFC 8446 §4.1)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar, cast

from ..codec import Reader, Writer
from ..enums import HandshakeType
from ..frozen import quick_init
from . import extensions as X
from .extensions import Extension, T

# SHA-256("HelloRetryRequest"): a ServerHello with this random is a HelloRetryRequest.
HELLO_RETRY_REQUEST_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)
# RFC 8446 §4.1.3: the last 8 bytes of ServerHello.random when a TLS 1.3 server negotiates less.
DOWNGRADE_TLS12 = b"DOWNGRD\x01"
DOWNGRADE_TLS11 = b"DOWNGRD\x00"
# The largest ClientHello body the grammar allows (RFC 5246 §7.4.1.2, RFC 8446 §4.1.2), every
# variable-length field at its maximum: 131,396 bytes, the largest handshake message accepted.
MAX_CLIENT_HELLO = (
    2 + 32  # legacy_version, random
    + 1 + 32  # legacy_session_id<0..32>
    + 2 + 0xFFFE  # cipher_suites<2..2^16-2>
    + 1 + 0xFF  # legacy_compression_methods<1..2^8-1>
    + 2 + 0xFFFF  # extensions<8..2^16-1>
)  # fmt: skip


@quick_init
@dataclass(frozen=True, slots=True)
class ClientHello:
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    compression_methods: tuple[int, ...] = (0,)
    extensions: tuple[Extension, ...] = ()
    # True when the extensions block was present on the wire (even if empty).
    has_extensions_block: bool = field(default=True, compare=False)
    # The extensions by class (at most one of each: a repeated code is a decode_error), so
    # that the server's many look-ups are one dict access each.
    by_type: dict[type, Extension] = field(default_factory=dict, compare=False, repr=False)
    msg_type: ClassVar[HandshakeType] = HandshakeType.CLIENT_HELLO

    def __post_init__(self) -> None:
        if self.extensions and not self.by_type:
            self.by_type.update((type(e), e) for e in self.extensions)

    def encode_body(self, w: Writer) -> None:
        w.u16(self.legacy_version)
        w.raw(self.random)
        w.opaque(1, self.session_id)
        w.u16_list(2, self.cipher_suites)
        w.u8_list(1, self.compression_methods)
        if self.extensions or self.has_extensions_block:
            X.encode_extensions(w, self.extensions)

    @classmethod
    def decode_body(cls, r: Reader) -> ClientHello:
        version = r.u16()
        random = r.raw(32)
        session_id = r.opaque(1, 0, 32)
        suites = r.u16_list(2, 2, 0xFFFE)
        compression = r.u8_list(1, 1)
        if r.at_end():
            return cls(version, random, session_id, suites, compression, (), False)
        by_type: dict[type, Extension] = {}
        exts = X.decode_extensions(r, X.CLIENT_HELLO, by_type)
        return cls(version, random, session_id, suites, compression, exts, True, by_type)

    def find(self, cls: type[T]) -> T | None:
        return cast("T | None", self.by_type.get(cls))


@quick_init
@dataclass(frozen=True, slots=True)
class ServerHello:
    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int = 0
    extensions: tuple[Extension, ...] = ()
    msg_type: ClassVar[HandshakeType] = HandshakeType.SERVER_HELLO

    @property
    def is_hello_retry_request(self) -> bool:
        return self.random == HELLO_RETRY_REQUEST_RANDOM

    def encode_body(self, w: Writer) -> None:
        w.u16(self.legacy_version)
        w.raw(self.random)
        w.opaque(1, self.session_id)
        w.u16(self.cipher_suite)
        w.u8(self.compression_method)
        if self.extensions:
            X.encode_extensions(w, self.extensions)

    @classmethod
    def decode_body(cls, r: Reader) -> ServerHello:
        version = r.u16()
        random = r.raw(32)
        session_id = r.opaque(1, 0, 32)
        suite = r.u16()
        compression = r.u8()
        exts: tuple[Extension, ...] = ()
        if not r.at_end():
            registry = (
                X.HELLO_RETRY_REQUEST if random == HELLO_RETRY_REQUEST_RANDOM else X.SERVER_HELLO
            )
            exts = X.decode_extensions(r, registry)
        return cls(version, random, session_id, suite, compression, exts)

    def find(self, cls: type[T]) -> T | None:
        return X.find(self.extensions, cls)


def server_hello_bytes(random: bytes, session_id: bytes, suite: int, extensions: bytes,
                       version: int = 0x0303) -> bytes:  # fmt: skip
    """An encoded ServerHello (handshake header included) around an encoded extensions block
    (a prebuilt one: the extensions of a resumed TLS 1.2 flight repeat from connection to
    connection)."""
    n = 38 + len(session_id) + len(extensions)  # version, random, id, suite, compression
    return b"".join((
        bytes((HandshakeType.SERVER_HELLO, n >> 16, (n >> 8) & 0xFF, n & 0xFF,
               version >> 8, version & 0xFF)),
        random, bytes((len(session_id),)), session_id,
        bytes((suite >> 8, suite & 0xFF, 0)), extensions,
    ))  # fmt: skip


def extensions_block(extensions: tuple[Extension, ...]) -> bytes:
    """An encoded ``Extension extensions<0..2^16-1>`` block."""
    w = Writer()
    X.encode_extensions(w, extensions)
    return bytes(w.buf)


_SUPPORTED_VERSION_13 = bytes((0, 43, 0, 2, 3, 4))  # supported_versions: TLS 1.3
_KEY_SHARE_HEAD = struct.Struct(">HHHH").pack  # type 51, length, group, key length
_PSK_SELECTED = struct.Struct(">HHH").pack  # type 41, length 2, selected identity


def server_hello13_extensions(group: int | None, public: bytes, psk_index: int | None) -> bytes:
    """The extensions block of a TLS 1.3 ServerHello: supported_versions, key_share (unless
    psk_ke), pre_shared_key (when resumed) — byte for byte what ``ServerHello.encode_body``
    writes for the same extensions."""
    parts = [_SUPPORTED_VERSION_13]
    if group is not None:
        parts.append(_KEY_SHARE_HEAD(51, 4 + len(public), group, len(public)))
        parts.append(public)
    if psk_index is not None:
        parts.append(_PSK_SELECTED(41, 2, psk_index))
    body = b"".join(parts)
    return len(body).to_bytes(2, "big") + body

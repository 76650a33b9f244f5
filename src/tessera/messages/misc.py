"""Finished, NewSessionTicket, EncryptedExtensions, KeyUpdate and Alert."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from ..codec import Reader, Writer
from ..enums import AlertDescription, AlertLevel, HandshakeType
from ..errors import DecodeError, IllegalParameter, LocalProtocolError
from ..frozen import quick_init
from . import extensions as X
from .extensions import Extension, T

_NST13_HEAD = struct.Struct(">BBHIIB").pack  # type, length (u24), lifetime, age_add, nonce len


def new_session_ticket13_bytes(
    lifetime: int, age_add: int, nonce: bytes, ticket: bytes, extensions: bytes
) -> bytes:
    """An encoded TLS 1.3 NewSessionTicket (handshake header included) around an encoded
    extensions block: what ``NewSessionTicket13.encode_body`` writes, for the ticket flight."""
    n = 11 + len(nonce) + len(ticket) + len(extensions)
    if len(nonce) > 255 or len(ticket) > 0xFFFF or n > 0xFFFFFF:
        raise LocalProtocolError("a NewSessionTicket's nonce or ticket is too long")
    head = _NST13_HEAD(HandshakeType.NEW_SESSION_TICKET, n >> 16, n & 0xFFFF, lifetime,
                       age_add, len(nonce))  # fmt: skip
    return b"".join((head, nonce, len(ticket).to_bytes(2, "big"), ticket, extensions))


def finished_bytes(verify_data: bytes) -> bytes:
    """An encoded Finished (handshake header included)."""
    return bytes((HandshakeType.FINISHED, 0, 0, len(verify_data))) + verify_data


@quick_init
@dataclass(frozen=True, slots=True)
class Finished:
    verify_data: bytes
    msg_type: ClassVar[HandshakeType] = HandshakeType.FINISHED

    def encode_body(self, w: Writer) -> None:
        w.raw(self.verify_data)

    @classmethod
    def decode_body(cls, r: Reader) -> Finished:
        return cls(r.rest())


@quick_init
@dataclass(frozen=True, slots=True)
class NewSessionTicket12:
    """RFC 5077 §3.3: ``lifetime_hint`` in seconds (0 = unspecified) and an opaque ticket."""

    lifetime_hint: int
    ticket: bytes
    msg_type: ClassVar[HandshakeType] = HandshakeType.NEW_SESSION_TICKET

    def encode_body(self, w: Writer) -> None:
        w.u32(self.lifetime_hint)
        w.opaque(2, self.ticket)

    @classmethod
    def decode_body(cls, r: Reader) -> NewSessionTicket12:
        return cls(r.u32(), r.opaque(2))


@quick_init
@dataclass(frozen=True, slots=True)
class NewSessionTicket13:
    lifetime: int
    age_add: int
    nonce: bytes
    ticket: bytes
    extensions: tuple[Extension, ...] = ()
    msg_type: ClassVar[HandshakeType] = HandshakeType.NEW_SESSION_TICKET

    def encode_body(self, w: Writer) -> None:
        w.u32(self.lifetime)
        w.u32(self.age_add)
        w.opaque(1, self.nonce)
        w.opaque(2, self.ticket)
        X.encode_extensions(w, self.extensions)

    @classmethod
    def decode_body(cls, r: Reader) -> NewSessionTicket13:
        lifetime = r.u32()
        age_add = r.u32()
        nonce = r.opaque(1)
        ticket = r.opaque(2, 1)
        exts = X.decode_extensions(r, X.NEW_SESSION_TICKET_13)
        return cls(lifetime, age_add, nonce, ticket, exts)

    def find(self, cls: type[T]) -> T | None:
        return X.find(self.extensions, cls)


@quick_init
@dataclass(frozen=True, slots=True)
class EncryptedExtensions:
    extensions: tuple[Extension, ...]
    msg_type: ClassVar[HandshakeType] = HandshakeType.ENCRYPTED_EXTENSIONS

    def encode_body(self, w: Writer) -> None:
        X.encode_extensions(w, self.extensions)

    @classmethod
    def decode_body(cls, r: Reader) -> EncryptedExtensions:
        return cls(X.decode_extensions(r, X.ENCRYPTED_EXTENSIONS))

    def find(self, cls: type[T]) -> T | None:
        return X.find(self.extensions, cls)


@quick_init
@dataclass(frozen=True, slots=True)
class KeyUpdate:
    request_update: int
    msg_type: ClassVar[HandshakeType] = HandshakeType.KEY_UPDATE

    def encode_body(self, w: Writer) -> None:
        w.u8(self.request_update)

    @classmethod
    def decode_body(cls, r: Reader) -> KeyUpdate:
        v = r.u8()
        if v > 1:
            raise IllegalParameter(f"KeyUpdate request_update={v} is neither 0 nor 1")
        return cls(v)


@quick_init
@dataclass(frozen=True, slots=True)
class Alert:
    level: int
    description: int

    def to_bytes(self) -> bytes:
        return bytes((self.level, self.description))

    @classmethod
    def decode(cls, data: bytes) -> Alert:
        if len(data) != 2:
            raise DecodeError(f"an alert is 2 bytes, got {len(data)}")
        level, desc = data[0], data[1]
        if level not in (AlertLevel.WARNING, AlertLevel.FATAL):
            raise IllegalParameter(f"alert level {level} is neither warning nor fatal")
        return cls(level, desc)

    @property
    def description_enum(self) -> AlertDescription | None:
        try:
            return AlertDescription(self.description)
        except ValueError:
            return None

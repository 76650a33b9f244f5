"""Handshake message framing: ``msg_type(1) | length(3) | body``."""

from __future__ import annotations

from typing import ClassVar, Protocol, TypeVar

from ..codec import Reader, Writer
from ..enums import HandshakeType


class HandshakeMessage(Protocol):
    msg_type: ClassVar[HandshakeType]

    def encode_body(self, w: Writer) -> None: ...


class _DecodableMessage(Protocol):
    msg_type: ClassVar[HandshakeType]

    @classmethod
    def decode_body(cls: type[M], r: Reader) -> M: ...


M = TypeVar("M", bound=_DecodableMessage)


def encode_handshake(msg: HandshakeMessage) -> bytes:
    """The message with its 4-byte handshake header, as it goes into the transcript."""
    w = Writer()
    w.u8(msg.msg_type)
    m = w.open(3)
    msg.encode_body(w)
    w.close(m, 3)
    return bytes(w.buf)


def decode_message(cls: type[M], body: bytes) -> M:
    """Decode a whole handshake body as ``cls``; trailing bytes are a decode_error."""
    r = Reader(body)
    msg = cls.decode_body(r)
    if not r.at_end():
        r.expect_empty(cls.msg_type.name.lower())
    return msg

"""TLS 1.2 ServerKeyExchange, ClientKeyExchange and ServerHelloDone (RFC 5246, RFC 8422)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from ..codec import Reader, Writer
from ..enums import HandshakeType
from ..errors import IllegalParameter
from ..frozen import quick_init

NAMED_CURVE = 3  # ECCurveType.named_curve


@quick_init
@dataclass(frozen=True, slots=True)
class ServerKeyExchangeECDHE:
    """ECDHE parameters and their signature. ``params`` are the signed bytes."""

    group: int
    public: bytes
    scheme: int
    signature: bytes
    msg_type: ClassVar[HandshakeType] = HandshakeType.SERVER_KEY_EXCHANGE

    @staticmethod
    def encode_params(group: int, public: bytes) -> bytes:
        return bytes((NAMED_CURVE, group >> 8, group & 0xFF, len(public))) + public

    @property
    def params(self) -> bytes:
        return self.encode_params(self.group, self.public)

    def encode_body(self, w: Writer) -> None:
        w.raw(self.params)
        w.u16(self.scheme)
        w.opaque(2, self.signature)

    @classmethod
    def decode_body(cls, r: Reader) -> ServerKeyExchangeECDHE:
        if r.u8() != NAMED_CURVE:
            raise IllegalParameter("ServerKeyExchange uses a curve type other than named_curve")
        group = r.u16()
        public = r.opaque(1, 1)
        scheme = r.u16()
        signature = r.opaque(2)  # <0..2^16-1>: an empty one fails to verify (decrypt_error)
        return cls(group, public, scheme, signature)


@quick_init
@dataclass(frozen=True, slots=True)
class ClientKeyExchangeECDHE:
    public: bytes
    msg_type: ClassVar[HandshakeType] = HandshakeType.CLIENT_KEY_EXCHANGE

    def encode_body(self, w: Writer) -> None:
        w.opaque(1, self.public)

    @classmethod
    def decode_body(cls, r: Reader) -> ClientKeyExchangeECDHE:
        return cls(r.opaque(1, 1))


@quick_init
@dataclass(frozen=True, slots=True)
class ClientKeyExchangeRSA:
    """The premaster secret encrypted to the server's RSA key (RFC 5246 §7.4.7.1)."""

    encrypted_premaster: bytes
    msg_type: ClassVar[HandshakeType] = HandshakeType.CLIENT_KEY_EXCHANGE

    def encode_body(self, w: Writer) -> None:
        w.opaque(2, self.encrypted_premaster)

    @classmethod
    def decode_body(cls, r: Reader) -> ClientKeyExchangeRSA:
        return cls(r.opaque(2, 1))


@quick_init
@dataclass(frozen=True, slots=True)
class _EmptyMessage:
    def encode_body(self, w: Writer) -> None:
        pass

    @classmethod
    def decode_body(cls, r: Reader) -> Self:
        return cls()


@quick_init
@dataclass(frozen=True, slots=True)
class ServerHelloDone(_EmptyMessage):
    msg_type: ClassVar[HandshakeType] = HandshakeType.SERVER_HELLO_DONE


@quick_init
@dataclass(frozen=True, slots=True)
class HelloRequest(_EmptyMessage):
    msg_type: ClassVar[HandshakeType] = HandshakeType.HELLO_REQUEST


@quick_init
@dataclass(frozen=True, slots=True)
class EndOfEarlyData(_EmptyMessage):
    msg_type: ClassVar[HandshakeType] = HandshakeType.END_OF_EARLY_DATA

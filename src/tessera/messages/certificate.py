"""Certificate, CertificateRequest and CertificateVerify (RFC 5246 §7.4.2/4/8, RFC 8446 §4.4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..codec import Reader, Writer
from ..enums import HandshakeType
from ..frozen import quick_init
from . import extensions as X
from .extensions import Extension

MAX_CERT_LIST = 0xFFFFFF


@quick_init
@dataclass(frozen=True, slots=True)
class Certificate12:
    """TLS 1.2 Certificate: a chain of DER certificates, leaf first (may be empty)."""

    chain: tuple[bytes, ...]
    msg_type: ClassVar[HandshakeType] = HandshakeType.CERTIFICATE

    def encode_body(self, w: Writer) -> None:
        m = w.open(3)
        for der in self.chain:
            w.opaque(3, der)
        w.close(m, 3)

    @classmethod
    def decode_body(cls, r: Reader) -> Certificate12:
        lst = r.vector(3)
        chain = []
        while not lst.at_end():
            chain.append(lst.opaque(3, 1))
        return cls(tuple(chain))


@quick_init
@dataclass(frozen=True, slots=True)
class CertificateEntry:
    cert_data: bytes
    extensions: tuple[Extension, ...] = ()


@quick_init
@dataclass(frozen=True, slots=True)
class Certificate13:
    """TLS 1.3 Certificate: request context plus entries with per-certificate extensions."""

    context: bytes
    entries: tuple[CertificateEntry, ...]
    msg_type: ClassVar[HandshakeType] = HandshakeType.CERTIFICATE

    @property
    def chain(self) -> tuple[bytes, ...]:
        return tuple(e.cert_data for e in self.entries)

    def encode_body(self, w: Writer) -> None:
        w.opaque(1, self.context)
        m = w.open(3)
        for e in self.entries:
            w.opaque(3, e.cert_data)
            X.encode_extensions(w, e.extensions)
        w.close(m, 3)

    @classmethod
    def decode_body(cls, r: Reader) -> Certificate13:
        context = r.opaque(1)
        lst = r.vector(3)
        entries = []
        while not lst.at_end():
            der = lst.opaque(3, 1)
            exts = X.decode_extensions(lst, X.EMPTY)
            entries.append(CertificateEntry(der, exts))
        return cls(context, tuple(entries))


@quick_init
@dataclass(frozen=True, slots=True)
class CertificateRequest12:
    certificate_types: tuple[int, ...]
    signature_schemes: tuple[int, ...]
    authorities: tuple[bytes, ...] = ()
    msg_type: ClassVar[HandshakeType] = HandshakeType.CERTIFICATE_REQUEST

    def encode_body(self, w: Writer) -> None:
        w.u8_list(1, self.certificate_types)
        w.u16_list(2, self.signature_schemes)
        m = w.open(2)
        for dn in self.authorities:
            w.opaque(2, dn)
        w.close(m, 2)

    @classmethod
    def decode_body(cls, r: Reader) -> CertificateRequest12:
        types = r.u8_list(1, 1)
        schemes = r.u16_list(2, 2)
        lst = r.vector(2)
        authorities = []
        while not lst.at_end():
            authorities.append(lst.opaque(2, 1))
        return cls(types, schemes, tuple(authorities))


@quick_init
@dataclass(frozen=True, slots=True)
class CertificateRequest13:
    context: bytes
    extensions: tuple[Extension, ...]
    msg_type: ClassVar[HandshakeType] = HandshakeType.CERTIFICATE_REQUEST

    def encode_body(self, w: Writer) -> None:
        w.opaque(1, self.context)
        X.encode_extensions(w, self.extensions)

    @classmethod
    def decode_body(cls, r: Reader) -> CertificateRequest13:
        context = r.opaque(1)
        return cls(context, X.decode_extensions(r, X.CERTIFICATE_REQUEST_13))

    def find_schemes(self) -> tuple[int, ...] | None:
        ext = X.find(self.extensions, X.SignatureAlgorithms)
        return ext.schemes if ext is not None else None


@quick_init
@dataclass(frozen=True, slots=True)
class CertificateVerify:
    scheme: int
    signature: bytes
    msg_type: ClassVar[HandshakeType] = HandshakeType.CERTIFICATE_VERIFY

    def encode_body(self, w: Writer) -> None:
        w.u16(self.scheme)
        w.opaque(2, self.signature)

    @classmethod
    def decode_body(cls, r: Reader) -> CertificateVerify:
        # signature<0..2^16-1>: an empty one is well formed and fails to verify (decrypt_error).
        return cls(r.u16(), r.opaque(2))

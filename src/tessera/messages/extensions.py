"""Hello extensions.

The same extension code point carries different bodies in different messages (``key_share`` is a
list in ClientHello, one entry in ServerHello and a bare group in HelloRetryRequest), so each
message decodes its extensions with the registry for its context. Unknown extensions are kept as
:class:`UnknownExtension` (type, bytes). Each body is decoded inside a sub-reader of exactly its
declared length and must be consumed entirely.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Protocol, Self, TypeVar

from ..codec import Reader, Writer
from ..enums import AlertDescription, ExtensionType, NameType
from ..errors import DecodeError, IllegalParameter
from ..frozen import quick_init

T = TypeVar("T", bound="Extension")


class Extension(Protocol):
    ext_type: ClassVar[int]

    def encode(self, w: Writer) -> None: ...


class _Decodable(Protocol):
    ext_type: ClassVar[int]

    @classmethod
    def decode(cls, r: Reader) -> Extension: ...


@quick_init
@dataclass(frozen=True, slots=True)
class UnknownExtension:
    """An extension we do not interpret; kept so it can be re-encoded unchanged."""

    code: int
    data: bytes
    ext_type: ClassVar[int] = -1

    def encode(self, w: Writer) -> None:
        w.raw(self.data)


@quick_init
@dataclass(frozen=True, slots=True)
class _Empty:
    """Base for extensions whose body is empty."""

    def encode(self, w: Writer) -> None:
        pass

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls()


# --- server_name (RFC 6066 §3) ---------------------------------------------------------------
# A host name: labels of 1..63 letters, digits, hyphens (and underscores, seen in real names),
# joined by dots, at most one trailing dot. No controls, spaces, slashes or empty labels.
_DNS_NAME = re.compile(rb"[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\.?")


@quick_init
@dataclass(frozen=True, slots=True)
class ServerName:
    """ClientHello ``server_name``: the one host name the client asks for."""

    host_name: str
    ext_type: ClassVar[int] = ExtensionType.server_name

    def encode(self, w: Writer) -> None:
        outer = w.open(2)
        w.u8(NameType.host_name)
        w.opaque(2, self.host_name.encode("ascii"))
        w.close(outer, 2)

    @classmethod
    def decode(cls, r: Reader) -> ServerName:
        names = r.vector(2, 1)
        host: str | None = None
        while not names.at_end():
            name_type = names.u8()
            name = names.opaque(2, 1)
            if name_type != NameType.host_name:
                continue
            if host is not None:
                raise IllegalParameter("server_name lists more than one host_name")
            if b"\x00" in name:
                raise IllegalParameter("server_name contains a NUL byte")
            if len(name) > 255:
                raise IllegalParameter(
                    f"server_name of {len(name)} bytes; a DNS host name is at most 255",
                    alert=AlertDescription.unrecognized_name,
                )
            if not _DNS_NAME.fullmatch(name):
                raise IllegalParameter(
                    f"server_name {name!r} is not an ASCII DNS host name (RFC 6066 §3): "
                    "letters, digits, '-' and '_' in dot-separated labels of 1..63"
                )
            host = name.decode("ascii")
        if host is None:
            raise IllegalParameter("server_name has no host_name entry")
        return cls(host)


@quick_init
@dataclass(frozen=True, slots=True)
class ServerNameAck(_Empty):
    """ServerHello / EncryptedExtensions ``server_name``: empty, says the name was used."""

    ext_type: ClassVar[int] = ExtensionType.server_name


# --- groups, point formats, signature algorithms ---------------------------------------------
@quick_init
@dataclass(frozen=True, slots=True)
class SupportedGroups:
    groups: tuple[int, ...]
    ext_type: ClassVar[int] = ExtensionType.supported_groups

    def encode(self, w: Writer) -> None:
        w.u16_list(2, self.groups)

    @classmethod
    def decode(cls, r: Reader) -> SupportedGroups:
        return cls(r.u16_list(2, 2))


@quick_init
@dataclass(frozen=True, slots=True)
class ECPointFormats:
    formats: tuple[int, ...]
    ext_type: ClassVar[int] = ExtensionType.ec_point_formats

    def encode(self, w: Writer) -> None:
        w.u8_list(1, self.formats)

    @classmethod
    def decode(cls, r: Reader) -> ECPointFormats:
        return cls(r.u8_list(1, 1))


@quick_init
@dataclass(frozen=True, slots=True)
class SignatureAlgorithms:
    schemes: tuple[int, ...]
    ext_type: ClassVar[int] = ExtensionType.signature_algorithms

    def encode(self, w: Writer) -> None:
        w.u16_list(2, self.schemes)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        return cls(r.u16_list(2, 2))


@quick_init
@dataclass(frozen=True, slots=True)
class SignatureAlgorithmsCert(SignatureAlgorithms):
    ext_type: ClassVar[int] = ExtensionType.signature_algorithms_cert


# --- certificate_authorities (RFC 8446 §4.2.4) -------------------------------------------------
@quick_init
@dataclass(frozen=True, slots=True)
class CertificateAuthorities:
    """DER-encoded distinguished names of the CAs whose certificates the sender accepts."""

    names: tuple[bytes, ...]
    ext_type: ClassVar[int] = ExtensionType.certificate_authorities

    def encode(self, w: Writer) -> None:
        m = w.open(2)
        for dn in self.names:
            w.opaque(2, dn)
        w.close(m, 2)

    @classmethod
    def decode(cls, r: Reader) -> Self:
        lst = r.vector(2, 3)
        names = []
        while not lst.at_end():
            names.append(lst.opaque(2, 1))
        return cls(tuple(names))


# --- ALPN (RFC 7301) -------------------------------------------------------------------------
@quick_init
@dataclass(frozen=True, slots=True)
class ALPN:
    protocols: tuple[bytes, ...]
    ext_type: ClassVar[int] = ExtensionType.application_layer_protocol_negotiation

    def encode(self, w: Writer) -> None:
        m = w.open(2)
        for p in self.protocols:
            w.opaque(1, p)
        w.close(m, 2)

    @classmethod
    def decode(cls, r: Reader) -> ALPN:
        lst = r.vector(2, 2)
        protocols = []
        while not lst.at_end():
            protocols.append(lst.opaque(1, 1))
        return cls(tuple(protocols))


# --- flags -----------------------------------------------------------------------------------
@quick_init
@dataclass(frozen=True, slots=True)
class EncryptThenMac(_Empty):
    ext_type: ClassVar[int] = ExtensionType.encrypt_then_mac


@quick_init
@dataclass(frozen=True, slots=True)
class ExtendedMasterSecret(_Empty):
    ext_type: ClassVar[int] = ExtensionType.extended_master_secret


@quick_init
@dataclass(frozen=True, slots=True)
class EarlyDataIndication(_Empty):
    """``early_data`` in ClientHello and EncryptedExtensions (empty body)."""

    ext_type: ClassVar[int] = ExtensionType.early_data


@quick_init
@dataclass(frozen=True, slots=True)
class PostHandshakeAuth(_Empty):
    ext_type: ClassVar[int] = ExtensionType.post_handshake_auth


# --- session_ticket (RFC 5077 §3.2) and renegotiation_info (RFC 5746 §3.2) -------------------
@quick_init
@dataclass(frozen=True, slots=True)
class SessionTicketExt:
    ticket: bytes = b""
    ext_type: ClassVar[int] = ExtensionType.session_ticket

    def encode(self, w: Writer) -> None:
        w.raw(self.ticket)

    @classmethod
    def decode(cls, r: Reader) -> SessionTicketExt:
        return cls(r.rest())


@quick_init
@dataclass(frozen=True, slots=True)
class RenegotiationInfo:
    renegotiated_connection: bytes = b""
    ext_type: ClassVar[int] = ExtensionType.renegotiation_info

    def encode(self, w: Writer) -> None:
        w.opaque(1, self.renegotiated_connection)

    @classmethod
    def decode(cls, r: Reader) -> RenegotiationInfo:
        return cls(r.opaque(1))


# --- supported_versions (RFC 8446 §4.2.1) ----------------------------------------------------
@quick_init
@dataclass(frozen=True, slots=True)
class SupportedVersionsOffer:
    versions: tuple[int, ...]
    ext_type: ClassVar[int] = ExtensionType.supported_versions

    def encode(self, w: Writer) -> None:
        w.u16_list(1, self.versions)

    @classmethod
    def decode(cls, r: Reader) -> SupportedVersionsOffer:
        return cls(r.u16_list(1, 2, 254))


@quick_init
@dataclass(frozen=True, slots=True)
class SupportedVersionSelected:
    version: int
    ext_type: ClassVar[int] = ExtensionType.supported_versions

    def encode(self, w: Writer) -> None:
        w.u16(self.version)

    @classmethod
    def decode(cls, r: Reader) -> SupportedVersionSelected:
        return cls(r.u16())


# --- key_share (RFC 8446 §4.2.8) -------------------------------------------------------------
@quick_init
@dataclass(frozen=True, slots=True)
class KeyShareEntry:
    group: int
    key_exchange: bytes

    def encode(self, w: Writer) -> None:
        w.u16(self.group)
        w.opaque(2, self.key_exchange)

    @classmethod
    def decode(cls, r: Reader) -> KeyShareEntry:
        return cls(r.u16(), r.opaque(2, 1))


@quick_init
@dataclass(frozen=True, slots=True)
class KeyShareOffer:
    entries: tuple[KeyShareEntry, ...]
    ext_type: ClassVar[int] = ExtensionType.key_share

    def encode(self, w: Writer) -> None:
        m = w.open(2)
        for e in self.entries:
            e.encode(w)
        w.close(m, 2)

    @classmethod
    def decode(cls, r: Reader) -> KeyShareOffer:
        lst = r.vector(2)
        entries = []
        seen = set()
        while not lst.at_end():
            e = KeyShareEntry.decode(lst)
            if e.group in seen:
                raise IllegalParameter("key_share offers the same group twice")
            seen.add(e.group)
            entries.append(e)
        return cls(tuple(entries))


@quick_init
@dataclass(frozen=True, slots=True)
class KeyShareSelected:
    entry: KeyShareEntry
    ext_type: ClassVar[int] = ExtensionType.key_share

    def encode(self, w: Writer) -> None:
        self.entry.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> KeyShareSelected:
        return cls(KeyShareEntry.decode(r))


@quick_init
@dataclass(frozen=True, slots=True)
class KeyShareRetry:
    """HelloRetryRequest ``key_share``: the group the server wants a share for."""

    group: int
    ext_type: ClassVar[int] = ExtensionType.key_share

    def encode(self, w: Writer) -> None:
        w.u16(self.group)

    @classmethod
    def decode(cls, r: Reader) -> KeyShareRetry:
        return cls(r.u16())


# --- pre_shared_key and psk_key_exchange_modes (RFC 8446 §4.2.9, §4.2.11) --------------------
@quick_init
@dataclass(frozen=True, slots=True)
class PskIdentity:
    identity: bytes
    obfuscated_ticket_age: int


@quick_init
@dataclass(frozen=True, slots=True)
class OfferedPsks:
    identities: tuple[PskIdentity, ...]
    binders: tuple[bytes, ...]
    ext_type: ClassVar[int] = ExtensionType.pre_shared_key

    def encode(self, w: Writer) -> None:
        m = w.open(2)
        for ident in self.identities:
            w.opaque(2, ident.identity)
            w.u32(ident.obfuscated_ticket_age)
        w.close(m, 2)
        m = w.open(2)
        for b in self.binders:
            w.opaque(1, b)
        w.close(m, 2)

    def binders_length(self) -> int:
        """Bytes the binders list takes on the wire, with its 2-byte length prefix."""
        return 2 + sum(1 + len(b) for b in self.binders)

    @classmethod
    def decode(cls, r: Reader) -> OfferedPsks:
        ids = r.vector(2, 7)
        identities = []
        while not ids.at_end():
            identities.append(PskIdentity(ids.opaque(2, 1), ids.u32()))
        bl = r.vector(2, 33)
        binders = []
        while not bl.at_end():
            binders.append(bl.opaque(1, 32, 255))
        if len(binders) != len(identities):
            raise IllegalParameter(
                "pre_shared_key has a different number of binders and identities"
            )
        return cls(tuple(identities), tuple(binders))


@quick_init
@dataclass(frozen=True, slots=True)
class PreSharedKeySelected:
    selected_identity: int
    ext_type: ClassVar[int] = ExtensionType.pre_shared_key

    def encode(self, w: Writer) -> None:
        w.u16(self.selected_identity)

    @classmethod
    def decode(cls, r: Reader) -> PreSharedKeySelected:
        return cls(r.u16())


@quick_init
@dataclass(frozen=True, slots=True)
class PskKeyExchangeModes:
    modes: tuple[int, ...]
    ext_type: ClassVar[int] = ExtensionType.psk_key_exchange_modes

    def encode(self, w: Writer) -> None:
        w.u8_list(1, self.modes)

    @classmethod
    def decode(cls, r: Reader) -> PskKeyExchangeModes:
        return cls(r.u8_list(1, 1))


@quick_init
@dataclass(frozen=True, slots=True)
class EarlyDataLimit:
    """NewSessionTicket ``early_data``: how much 0-RTT data the ticket allows."""

    max_early_data_size: int
    ext_type: ClassVar[int] = ExtensionType.early_data

    def encode(self, w: Writer) -> None:
        w.u32(self.max_early_data_size)

    @classmethod
    def decode(cls, r: Reader) -> EarlyDataLimit:
        return cls(r.u32())


@quick_init
@dataclass(frozen=True, slots=True)
class Cookie:
    cookie: bytes
    ext_type: ClassVar[int] = ExtensionType.cookie

    def encode(self, w: Writer) -> None:
        w.opaque(2, self.cookie)

    @classmethod
    def decode(cls, r: Reader) -> Cookie:
        return cls(r.opaque(2, 1))


# --- registries per context ------------------------------------------------------------------
Registry = dict[int, type[_Decodable]]


def _registry(*classes: type[_Decodable]) -> Registry:
    return {c.ext_type: c for c in classes}


CLIENT_HELLO: Registry = _registry(
    ServerName,
    SupportedGroups,
    ECPointFormats,
    SignatureAlgorithms,
    SignatureAlgorithmsCert,
    ALPN,
    EncryptThenMac,
    ExtendedMasterSecret,
    SessionTicketExt,
    RenegotiationInfo,
    SupportedVersionsOffer,
    KeyShareOffer,
    OfferedPsks,
    PskKeyExchangeModes,
    EarlyDataIndication,
    Cookie,
    PostHandshakeAuth,
)
SERVER_HELLO: Registry = _registry(
    ServerNameAck,
    ECPointFormats,
    ALPN,
    EncryptThenMac,
    ExtendedMasterSecret,
    SessionTicketExt,
    RenegotiationInfo,
    SupportedVersionSelected,
    KeyShareSelected,
    PreSharedKeySelected,
)
HELLO_RETRY_REQUEST: Registry = _registry(SupportedVersionSelected, KeyShareRetry, Cookie)
ENCRYPTED_EXTENSIONS: Registry = _registry(
    ServerNameAck, SupportedGroups, ALPN, EarlyDataIndication
)
CERTIFICATE_REQUEST_13: Registry = _registry(
    SignatureAlgorithms, SignatureAlgorithmsCert, CertificateAuthorities
)
NEW_SESSION_TICKET_13: Registry = _registry(EarlyDataLimit)
EMPTY: Registry = {}


# The extensions without a body (flags), each decoded to one shared frozen instance.
_EMPTY: dict[type[_Decodable], Extension] = {
    cls: cls() for cls in (EncryptThenMac, ExtendedMasterSecret, EarlyDataIndication,
                           PostHandshakeAuth, ServerNameAck)
}  # fmt: skip


def encode_extensions(w: Writer, extensions: Iterable[Extension]) -> None:
    outer = w.open(2)
    for ext in extensions:
        w.u16(ext.code if isinstance(ext, UnknownExtension) else ext.ext_type)
        m = w.open(2)
        ext.encode(w)
        w.close(m, 2)
    w.close(outer, 2)


# Decoded extension bodies that repeat from hello to hello (a client's groups, signature
# schemes, versions, server name, ...), by (class, body): decoding is a pure function of the
# body, so a body seen before is answered with the same frozen instance; a body that failed to
# decode is never kept, so every extension is still decoded strictly. Bounded: at most
# _DECODED_MAX entries of at most _DECODED_BODY_MAX bytes, emptied when full. Bodies that differ
# on every connection (key shares, PSK identities and binders, tickets, cookies) are not kept.
# ClientHello extensions are public: nothing secret is held.
_DECODED: dict[tuple[type[_Decodable], bytes], Extension] = {}
_DECODED_MAX = 512
_DECODED_BODY_MAX = 512
_UNCACHED: frozenset[type[_Decodable]] = frozenset(
    {KeyShareOffer, OfferedPsks, SessionTicketExt, Cookie, KeyShareSelected,
     PreSharedKeySelected, CertificateAuthorities}
)  # fmt: skip


def _decode_body(cls: type[_Decodable], buf: bytes, start: int, end: int, code: int,
                 body: bytes) -> Extension:  # fmt: skip
    """One known extension's body (``buf[start:end]``), decoded strictly (and kept in
    :data:`_DECODED` if it may repeat)."""
    empty = _EMPTY.get(cls)
    if empty is not None:  # a flag: no body to decode, one shared (frozen) instance
        if body:
            raise DecodeError(
                f"{len(body)} trailing byte(s) in extension {ExtensionType(code).name}"
            )
        ext: Extension = empty
    else:
        r = Reader(buf, start, end)
        ext = cls.decode(r)
        if r._pos != end:
            raise DecodeError(
                f"{end - r._pos} trailing byte(s) in extension {ExtensionType(code).name}"
            )
    if len(body) <= _DECODED_BODY_MAX and cls not in _UNCACHED:
        if len(_DECODED) >= _DECODED_MAX:
            _DECODED.clear()
        _DECODED[cls, body] = ext
    return ext


def decode_extensions(
    r: Reader, registry: Registry, by_type: dict[type, Extension] | None = None
) -> tuple[Extension, ...]:
    """Decode an ``Extension extensions<0..2^16-1>`` block; duplicates are a decode_error.

    The extension headers are read straight from the buffer (this runs for every hello); each
    known extension body is decoded by its class inside a Reader bounded to its length, every
    one of them strictly (a malformed extension the server does not read is still refused).
    ``by_type``, if given, gets the extensions by class.
    """
    block = r.vector(2)
    buf, p, end = block._buf, block._pos, block._end
    if type(buf) is not bytes:  # the cache's keys are bytes (a memoryview's slices are not)
        buf = bytes(buf)
    out: list[Extension] = []
    seen: set[int] = set()
    while p < end:
        if p + 4 > end:
            raise DecodeError(f"truncated: an extension header needs 4 bytes, {end - p} left")
        code = (buf[p] << 8) | buf[p + 1]
        start = p + 4
        p = start + ((buf[p + 2] << 8) | buf[p + 3])
        if p > end:
            raise DecodeError(
                f"truncated: extension {code} claims {p - start} byte(s), {end - start} left"
            )
        if code in seen:
            raise DecodeError(f"extension {code} appears twice")
        seen.add(code)
        cls = registry.get(code)
        if cls is None:
            out.append(UnknownExtension(code, bytes(buf[start:p])))
            continue
        body = buf[start:p]
        ext = _DECODED.get((cls, body))
        if ext is None:
            ext = _decode_body(cls, buf, start, p, code, body)
        out.append(ext)
        if by_type is not None:
            by_type[cls] = ext
    return tuple(out)


def ext_code(ext: Extension) -> int:
    return ext.code if isinstance(ext, UnknownExtension) else ext.ext_type


def find(extensions: tuple[Extension, ...], cls: type[T]) -> T | None:
    for e in extensions:
        if type(e) is cls:
            return e
    return None

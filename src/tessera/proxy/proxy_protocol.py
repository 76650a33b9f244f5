"""The PROXY protocol version 2 header a proxy sends its backend first (HAProxy's spec,
``doc/proxy-protocol.txt``), with the TLS facts the way hitch and HAProxy send them.

::

    signature (12) | 0x21 (v2, PROXY) | family (0x11 TCP/IPv4, 0x21 TCP/IPv6) | length (2)
    source address | destination address | source port | destination port
    TLVs: type (1) | length (2) | value

TLVs sent: ``PP2_TYPE_ALPN`` (the negotiated protocol), ``PP2_TYPE_AUTHORITY`` (the SNI host
name) and ``PP2_TYPE_SSL`` (client flags, verify result 0, then the sub-TLVs
``PP2_SUBTYPE_SSL_VERSION`` such as ``TLSv1.3`` and ``PP2_SUBTYPE_SSL_CIPHER``, the OpenSSL
name of the suite). Pure: bytes out, no I/O.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
VERSION_PROXY = 0x21  # version 2, command PROXY
VERSION_LOCAL = 0x20  # version 2, command LOCAL (no address: a health check)
FAMILY_TCP4 = 0x11
FAMILY_TCP6 = 0x21
FAMILY_UNSPEC = 0x00

PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_SSL = 0x20
PP2_SUBTYPE_SSL_VERSION = 0x21
PP2_SUBTYPE_SSL_CIPHER = 0x23
PP2_CLIENT_SSL = 0x01

_HEAD = struct.Struct(">12sBBH")
_TLV = struct.Struct(">BH")


@dataclass(frozen=True, slots=True)
class TlsFacts:
    """What the backend is told about the client's TLS connection."""

    version: str  # "TLSv1.3"
    cipher: str  # OpenSSL's name, "TLS_AES_128_GCM_SHA256" or "ECDHE-ECDSA-AES128-GCM-SHA256"
    server_name: str | None = None
    alpn: str | None = None


def tlv(kind: int, value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise ValueError("a PROXY v2 TLV holds at most 65535 bytes")
    return _TLV.pack(kind, len(value)) + value


def _addresses(source: tuple[str, int], destination: tuple[str, int]) -> tuple[int, bytes]:
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if src.version != dst.version:  # an IPv4 client on a dual-stack socket: both as IPv6
        src, dst = _as_v6(src), _as_v6(dst)
    family = FAMILY_TCP4 if src.version == 4 else FAMILY_TCP6
    return family, src.packed + dst.packed + struct.pack(">HH", source[1], destination[1])


def _as_v6(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    if isinstance(addr, ipaddress.IPv6Address):
        return addr
    return ipaddress.IPv6Address(b"\x00" * 10 + b"\xff\xff" + addr.packed)


def header(
    source: tuple[str, int] | None, destination: tuple[str, int] | None, tls: TlsFacts | None
) -> bytes:
    """The v2 header for a client at ``source`` that connected to ``destination``; LOCAL (no
    addresses) when either is unknown."""
    tlvs = b""
    if tls is not None:
        if tls.alpn:
            tlvs += tlv(PP2_TYPE_ALPN, tls.alpn.encode())
        if tls.server_name:
            tlvs += tlv(PP2_TYPE_AUTHORITY, tls.server_name.encode())
        subs = tlv(PP2_SUBTYPE_SSL_VERSION, tls.version.encode())
        subs += tlv(PP2_SUBTYPE_SSL_CIPHER, tls.cipher.encode())
        tlvs += tlv(PP2_TYPE_SSL, struct.pack(">BI", PP2_CLIENT_SSL, 0) + subs)
    if source is None or destination is None:
        return _HEAD.pack(SIGNATURE, VERSION_LOCAL, FAMILY_UNSPEC, len(tlvs)) + tlvs
    family, addresses = _addresses(source, destination)
    body = addresses + tlvs
    return _HEAD.pack(SIGNATURE, VERSION_PROXY, family, len(body)) + body

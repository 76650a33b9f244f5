"""The PROXY v2 header, byte for byte (HAProxy's proxy-protocol.txt, section 2.2)."""

from __future__ import annotations

import struct

import pytest

from tessera.proxy.proxy_protocol import SIGNATURE, TlsFacts, header, tlv

FACTS = TlsFacts("TLSv1.3", "TLS_AES_128_GCM_SHA256", "example.com", "h2")


def test_ipv4_with_tls_facts() -> None:
    h = header(("192.0.2.7", 51234), ("198.51.100.1", 443), FACTS)
    assert h[:12] == SIGNATURE == bytes.fromhex("0d0a0d0a000d0a515549540a")
    assert h[12] == 0x21 and h[13] == 0x11
    (length,) = struct.unpack(">H", h[14:16])
    assert length == len(h) - 16
    assert h[16:28] == bytes([192, 0, 2, 7, 198, 51, 100, 1]) + struct.pack(">HH", 51234, 443)
    ssl_value = (
        b"\x01\x00\x00\x00\x00" + tlv(0x21, b"TLSv1.3") + tlv(0x23, b"TLS_AES_128_GCM_SHA256")
    )
    assert h[28:] == tlv(0x01, b"h2") + tlv(0x02, b"example.com") + tlv(0x20, ssl_value)
    assert h[28:31] == b"\x01\x00\x02"  # type ALPN, length 2


def test_ipv6_and_mixed_families() -> None:
    h = header(("::1", 1), ("::1", 2), None)
    assert h[13] == 0x21 and struct.unpack(">H", h[14:16])[0] == 36
    assert h[16:32] == b"\x00" * 15 + b"\x01"
    # an IPv4 client seen on an IPv6 socket's address: both sent as IPv6 (v4-mapped)
    mixed = header(("10.0.0.1", 1), ("::1", 2), None)
    assert mixed[13] == 0x21 and mixed[16:32] == b"\x00" * 10 + b"\xff\xff" + bytes([10, 0, 0, 1])


def test_local_without_addresses() -> None:
    h = header(None, ("127.0.0.1", 443), None)
    assert h == SIGNATURE + b"\x20\x00\x00\x00"


def test_optional_tlvs_left_out() -> None:
    h = header(("127.0.0.1", 1), ("127.0.0.1", 2), TlsFacts("TLSv1.2", "AES128-GCM-SHA256"))
    assert h[28] == 0x20  # no ALPN, no authority: the SSL TLV comes first


def test_oversized_tlv_refused() -> None:
    with pytest.raises(ValueError, match="65535"):
        tlv(0x02, b"x" * 70000)

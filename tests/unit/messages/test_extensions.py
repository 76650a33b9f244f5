"""Each extension body encodes to known bytes and decodes back (RFC 6066, 8422, 7301, 8446...)."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.codec import Reader, Writer
from tessera.errors import DecodeError, IllegalParameter
from tessera.messages import extensions as X


def enc(ext: Any) -> bytes:
    w = Writer()
    ext.encode(w)
    return w.getvalue()


def dec(cls: Any, data: bytes) -> Any:
    r = Reader(data)
    out = cls.decode(r)
    r.expect_empty()
    return out


GOLDEN = [
    # RFC 6066 §3: server_name_list<1..2^16-1> of (name_type, HostName<1..2^16-1>)
    (X.ServerName("example.com"), "000e00000b6578616d706c652e636f6d"),
    (X.ServerNameAck(), ""),
    (X.SupportedGroups((0x001D, 0x0017, 0x0018)), "0006001d00170018"),
    (X.ECPointFormats((0,)), "0100"),
    (X.SignatureAlgorithms((0x0403, 0x0804, 0x0401)), "0006040308040401"),
    (X.SignatureAlgorithmsCert((0x0403,)), "00020403"),
    # RFC 7301 §3.1: ProtocolNameList protocol_name_list<2..2^16-1>
    (X.ALPN((b"h2", b"http/1.1")), "000c02683208687474702f312e31"),
    (X.EncryptThenMac(), ""),
    (X.ExtendedMasterSecret(), ""),
    (X.EarlyDataIndication(), ""),
    (X.PostHandshakeAuth(), ""),
    (X.SessionTicketExt(b""), ""),
    (X.SessionTicketExt(b"\x01\x02\x03"), "010203"),
    (X.RenegotiationInfo(b""), "00"),
    (X.RenegotiationInfo(b"\xaa" * 12), "0c" + "aa" * 12),
    (X.SupportedVersionsOffer((0x0304, 0x0303)), "0403040303"),
    (X.SupportedVersionSelected(0x0304), "0304"),
    (X.KeyShareOffer((X.KeyShareEntry(0x001D, b"\x11" * 32),)), "0024001d0020" + "11" * 32),
    (
        X.KeyShareSelected(X.KeyShareEntry(0x0017, b"\x04" + b"\x22" * 64)),
        "00170041" + "04" + "22" * 64,
    ),
    (X.KeyShareRetry(0x0018), "0018"),
    (
        X.OfferedPsks((X.PskIdentity(b"ticket1", 0x01020304),), (b"\x33" * 32,)),
        "000d0007" + b"ticket1".hex() + "01020304" + "0021" + "20" + "33" * 32,
    ),
    (X.PreSharedKeySelected(1), "0001"),
    (X.PskKeyExchangeModes((1,)), "0101"),
    (X.EarlyDataLimit(16384), "00004000"),
    (X.Cookie(b"cookie"), "0006" + b"cookie".hex()),
    # RFC 8446 §4.2.4: DistinguishedName authorities<3..2^16-1>, each <1..2^16-1>
    (X.CertificateAuthorities((b"\x30\x00", b"\x30\x01\x05")), "0009" + "00023000" + "0003300105"),
]


@pytest.mark.parametrize(
    ("ext", "hexdata"), GOLDEN, ids=lambda v: type(v).__name__ if not isinstance(v, str) else ""
)
def test_golden_bytes(ext: Any, hexdata: str) -> None:
    data = bytes.fromhex(hexdata)
    assert enc(ext) == data
    assert dec(type(ext), data) == ext


def test_extensions_block_round_trip() -> None:
    exts = (
        X.ServerName("a.example"),
        X.UnknownExtension(0xFAFA, b"grease"),
        X.ExtendedMasterSecret(),
    )
    w = Writer()
    X.encode_extensions(w, exts)
    data = w.getvalue()
    assert data[:2] == (len(data) - 2).to_bytes(2, "big")
    assert data[2:4] == b"\x00\x00"  # server_name first, in the given order
    r = Reader(data)
    assert X.decode_extensions(r, X.CLIENT_HELLO) == exts
    r.expect_empty()


def test_repeated_bodies_come_from_the_cache_and_stay_strict() -> None:
    """A body decoded once is answered with the same frozen instance; a malformed body is
    refused however often a valid one was seen; per-connection bodies are not kept."""
    groups = X.SupportedGroups((0x001D, 0x0017))
    share = X.KeyShareOffer((X.KeyShareEntry(0x001D, b"\x01" * 32),))
    w = Writer()
    X.encode_extensions(w, (groups, share))
    data = w.getvalue()
    first = X.decode_extensions(Reader(data), X.CLIENT_HELLO)
    again = X.decode_extensions(Reader(memoryview(data)), X.CLIENT_HELLO)
    assert first == again == (groups, share)
    assert again[0] is first[0]  # from the cache
    assert again[1] is not first[1]  # key shares differ per connection: decoded each time
    assert (X.KeyShareOffer, data[-38:]) not in X._DECODED
    # The same code with an odd-length (malformed) body is still a decode_error.
    bad = bytes.fromhex("0007" + "000a" + "0003" + "0002" + "1d")
    for _ in range(2):
        with pytest.raises(DecodeError):
            X.decode_extensions(Reader(bad), X.CLIENT_HELLO)


def test_decoded_cache_is_bounded() -> None:
    for i in range(X._DECODED_MAX + 10):
        body = (2).to_bytes(2, "big") + i.to_bytes(2, "big")
        data = (4 + len(body)).to_bytes(2, "big") + b"\x00\x0a" + len(body).to_bytes(2, "big")
        (ext,) = X.decode_extensions(Reader(data + body), X.CLIENT_HELLO)
        assert ext == X.SupportedGroups((i,))
        assert len(X._DECODED) <= X._DECODED_MAX


def test_unknown_extension_kept_verbatim() -> None:
    r = Reader(bytes.fromhex("0008" + "1234" + "0004" + "deadbeef"))
    (ext,) = X.decode_extensions(r, X.CLIENT_HELLO)
    assert ext == X.UnknownExtension(0x1234, bytes.fromhex("deadbeef"))
    assert X.ext_code(ext) == 0x1234


def test_extension_known_elsewhere_is_unknown_here() -> None:
    # key_share is not part of the TLS 1.2-only ServerHello registry for EncryptedExtensions.
    r = Reader(bytes.fromhex("0006" + "0033" + "0002" + "001d"))
    (ext,) = X.decode_extensions(r, X.ENCRYPTED_EXTENSIONS)
    assert isinstance(ext, X.UnknownExtension)


def test_same_code_different_context() -> None:
    body = bytes.fromhex("001d0002abcd")
    assert X.KeyShareSelected.decode(Reader(body)).entry == X.KeyShareEntry(0x1D, b"\xab\xcd")
    with pytest.raises(DecodeError):
        dec(X.KeyShareRetry, body)


def test_duplicate_extension() -> None:
    data = bytes.fromhex("0008" + "0017" + "0000" + "0017" + "0000")
    with pytest.raises(DecodeError, match="twice"):
        X.decode_extensions(Reader(data), X.CLIENT_HELLO)


def test_extension_body_must_be_consumed() -> None:
    data = bytes.fromhex("0005" + "0017" + "0001" + "00")
    with pytest.raises(DecodeError):
        X.decode_extensions(Reader(data), X.CLIENT_HELLO)


def test_extension_body_cannot_overrun() -> None:
    # supported_groups claims 4 bytes inside a 2-byte extension body.
    data = bytes.fromhex("0006" + "000a" + "0002" + "0004" + "001d")
    with pytest.raises(DecodeError):
        X.decode_extensions(Reader(data), X.CLIENT_HELLO)


@pytest.mark.parametrize(
    ("hexdata", "error"),
    [
        ("0000", DecodeError),  # empty server_name_list
        ("000400000161" + "00", DecodeError),  # trailing byte inside the list? (list length 4)
        ("0008" + "000001" + "61" + "000001" + "62", IllegalParameter),  # two host names
        ("0006" + "00000300" + "6162", IllegalParameter),  # NUL
        ("0004" + "000001" + "ff", IllegalParameter),  # not ASCII
        ("0004" + "010001" + "61", IllegalParameter),  # no host_name entry
        ("0003" + "000000", DecodeError),  # empty name
    ],
)
def test_server_name_errors(hexdata: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        dec(X.ServerName, bytes.fromhex(hexdata))


def test_server_name_skips_other_name_types() -> None:
    data = bytes.fromhex("0008" + "010001" + "7a" + "000001" + "61")
    assert dec(X.ServerName, data) == X.ServerName("a")


@pytest.mark.parametrize(
    ("cls", "hexdata"),
    [
        (X.SupportedGroups, "0000"),
        (X.SupportedGroups, "0001001d"),
        (X.ECPointFormats, "00"),
        (X.SignatureAlgorithms, "0000"),
        (X.ALPN, "0000"),
        (X.ALPN, "0003000161"),  # a protocol name must not be empty
        (X.SupportedVersionsOffer, "00"),
        (X.SupportedVersionsOffer, "01"),
        (X.KeyShareOffer, "0004001d0000"),  # empty key_exchange
        (X.PskKeyExchangeModes, "00"),
        (X.Cookie, "0000"),
        (X.RenegotiationInfo, "05"),
        (X.CertificateAuthorities, "0000"),  # the list may not be empty
        (X.CertificateAuthorities, "000400000000"),  # nor may a name
    ],
)
def test_bounds(cls: Any, hexdata: str) -> None:
    with pytest.raises(DecodeError):
        dec(cls, bytes.fromhex(hexdata))


def test_key_share_duplicate_group() -> None:
    data = bytes.fromhex("000c" + "001d000211ab" + "001d000222cd")
    with pytest.raises(IllegalParameter):
        dec(X.KeyShareOffer, data)


def test_psk_binder_count_mismatch() -> None:
    ok = X.OfferedPsks((X.PskIdentity(b"id", 0),), (b"\x00" * 32,))
    data = enc(ok)
    assert ok.binders_length() == 2 + 1 + 32
    bad = data[: -(2 + 33)] + bytes.fromhex("0042") + (b"\x20" + b"\x00" * 32) * 2
    with pytest.raises(IllegalParameter):
        dec(X.OfferedPsks, bad)


def test_psk_binder_too_short() -> None:
    data = bytes.fromhex("0008" + "0002" + "6964" + "00000000" + "0011" + "10" + "00" * 16)
    with pytest.raises(DecodeError):
        dec(X.OfferedPsks, data)


def test_find() -> None:
    exts = (X.ServerName("a"), X.SignatureAlgorithmsCert((1,)), X.SignatureAlgorithms((2,)))
    assert X.find(exts, X.SignatureAlgorithms) == X.SignatureAlgorithms((2,))  # exact type
    assert X.find(exts, X.ALPN) is None

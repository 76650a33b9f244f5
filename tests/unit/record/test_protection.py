"""TLS 1.2 record protection, checked against ``cryptography``'s primitives directly:
AES-GCM explicit nonces (RFC 5288), ChaCha20-Poly1305 nonces (RFC 7905), CBC MAC-then-encrypt
(RFC 5246 §6.2.3.2) and encrypt-then-MAC (RFC 7366), sequence numbers and padding checks."""

from __future__ import annotations

import hmac
import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from tessera.crypto.suites import BY_CODE
from tessera.enums import ContentType
from tessera.errors import BadRecordMac, InternalError, UnexpectedMessage
from tessera.record.protection import AEAD12, AEAD13, CBC12, MAX_PLAINTEXT, NullProtection

GCM128 = BY_CODE[0xC02B]
GCM256 = BY_CODE[0xC02C]
CHACHA = BY_CODE[0xCCA9]
CBC_SHA1 = BY_CODE[0xC009]
CBC_SHA256 = BY_CODE[0x003C]
CBC_SHA384 = BY_CODE[0xC024]
APP = ContentType.APPLICATION_DATA


def header(ctype: int, n: int) -> bytes:
    return bytes((ctype, 3, 3)) + n.to_bytes(2, "big")


def aad(seq: int, ctype: int, n: int) -> bytes:
    return seq.to_bytes(8, "big") + header(ctype, n)


def split(rec: bytes) -> tuple[bytes, bytes]:
    assert int.from_bytes(rec[3:5], "big") == len(rec) - 5
    return rec[:5], rec[5:]


# -- AEAD -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("suite", [GCM128, GCM256])
def test_gcm_record_layout_and_nonce(suite) -> None:  # type: ignore[no-untyped-def]
    key, salt = os.urandom(suite.key_len), os.urandom(4)
    prot = AEAD12(suite, key, salt)
    for seq, data in enumerate([b"first", b"", b"third record"]):
        hdr, frag = split(prot.seal(APP, data))
        assert hdr[:3] == b"\x17\x03\x03"
        explicit = frag[:8]
        assert explicit == seq.to_bytes(8, "big")  # RFC 5288 §3: the sequence number is fine
        assert len(frag) == 8 + len(data) + 16
        plain = AESGCM(key).decrypt(salt + explicit, frag[8:], aad(seq, APP, len(data)))
        assert plain == data
    assert prot.seq == 3


def test_chacha_record_layout_and_nonce() -> None:
    key, iv = os.urandom(32), os.urandom(12)
    prot = AEAD12(CHACHA, key, iv)
    prot.seq = 0x0102030405060708
    data = b"chacha"
    _, frag = split(prot.seal(APP, data))
    assert len(frag) == len(data) + 16  # no explicit nonce (RFC 7905 §2)
    nonce = (int.from_bytes(iv, "big") ^ 0x0102030405060708).to_bytes(12, "big")
    assert (
        ChaCha20Poly1305(key).decrypt(nonce, frag, aad(0x0102030405060708, APP, len(data))) == data
    )


@pytest.mark.parametrize("suite", [GCM128, CHACHA])
def test_aead_open_round_trip_and_sequence(suite) -> None:  # type: ignore[no-untyped-def]
    key, iv = os.urandom(suite.key_len), os.urandom(suite.fixed_iv_len)
    w, r = AEAD12(suite, key, iv), AEAD12(suite, key, iv)
    recs = [w.seal(APP, bytes([i]) * i) for i in range(5)]
    for i, rec in enumerate(recs):
        assert r.open(rec[0], rec[5:]) == (APP, bytes([i]) * i)
    assert r.seq == 5
    # Out of order: the sequence number is part of the nonce / AAD.
    r2 = AEAD12(suite, key, iv)
    with pytest.raises(BadRecordMac):
        r2.open(APP, recs[1][5:])


@pytest.mark.parametrize("suite", [GCM128, CHACHA])
def test_aead_rejects_changes(suite) -> None:  # type: ignore[no-untyped-def]
    key, iv = os.urandom(suite.key_len), os.urandom(suite.fixed_iv_len)
    rec = AEAD12(suite, key, iv).seal(APP, b"payload")
    frag = rec[5:]
    for i in range(len(frag)):
        bad = bytearray(frag)
        bad[i] ^= 0x80
        with pytest.raises(BadRecordMac):
            AEAD12(suite, key, iv).open(APP, bytes(bad))
    with pytest.raises(BadRecordMac):
        AEAD12(suite, key, iv).open(ContentType.HANDSHAKE, frag)  # type is authenticated
    for n in range(0, 8 + 16 if suite is GCM128 else 16):
        with pytest.raises(BadRecordMac):
            AEAD12(suite, key, iv).open(APP, frag[:n])


def test_sequence_number_limit() -> None:
    prot = AEAD12(GCM128, bytes(16), bytes(4))
    prot.seq = (1 << 64) - 2
    prot.seal(APP, b"last")
    with pytest.raises(InternalError):
        prot.seal(APP, b"wraps")


# -- CBC ------------------------------------------------------------------------------------------
def cbc_keys(suite):  # type: ignore[no-untyped-def]
    return os.urandom(suite.key_len), os.urandom(suite.mac_len)


def mac(suite, mac_key: bytes, seq: int, ctype: int, data: bytes) -> bytes:  # type: ignore[no-untyped-def]
    return hmac.new(mac_key, aad(seq, ctype, len(data)) + data, suite.mac).digest()


def aes_cbc(key: bytes, iv: bytes, data: bytes, decrypt: bool = False) -> bytes:
    c = Cipher(algorithms.AES(key), modes.CBC(iv))
    op = c.decryptor() if decrypt else c.encryptor()
    return op.update(data) + op.finalize()


@pytest.mark.parametrize("suite", [CBC_SHA1, CBC_SHA256, CBC_SHA384])
def test_cbc_mac_then_encrypt_layout(suite) -> None:  # type: ignore[no-untyped-def]
    key, mac_key = cbc_keys(suite)
    prot = CBC12(suite, key, mac_key, etm=False)
    for seq, data in enumerate([b"", b"x", bytes(15), bytes(100)]):
        _, frag = split(prot.seal(APP, data))
        assert len(frag) % 16 == 0
        iv, body = frag[:16], frag[16:]
        plain = aes_cbc(key, iv, body, decrypt=True)
        pad = plain[-1]
        assert plain[-pad - 1 :] == bytes([pad]) * (pad + 1)
        content = plain[: -pad - 1]
        assert content[: len(data)] == data
        assert content[len(data) :] == mac(suite, mac_key, seq, APP, data)


@pytest.mark.parametrize("suite", [CBC_SHA1, CBC_SHA256, CBC_SHA384])
def test_cbc_encrypt_then_mac_layout(suite) -> None:  # type: ignore[no-untyped-def]
    key, mac_key = cbc_keys(suite)
    prot = CBC12(suite, key, mac_key, etm=True)
    for seq, data in enumerate([b"", b"y" * 17]):
        _, frag = split(prot.seal(APP, data))
        body, tag = frag[: -suite.mac_len], frag[-suite.mac_len :]
        assert len(body) % 16 == 0
        # RFC 7366 §3: MAC(seq || type || version || length of IV+ciphertext || IV+ciphertext)
        assert tag == mac(suite, mac_key, seq, APP, body)
        plain = aes_cbc(key, body[:16], body[16:], decrypt=True)
        assert plain[: len(data)] == data


@pytest.mark.parametrize("etm", [False, True])
@pytest.mark.parametrize("suite", [CBC_SHA1, CBC_SHA256, CBC_SHA384])
def test_cbc_round_trip(suite, etm: bool) -> None:  # type: ignore[no-untyped-def]
    key, mac_key = cbc_keys(suite)
    w, r = CBC12(suite, key, mac_key, etm), CBC12(suite, key, mac_key, etm)
    for data in (b"", b"a", bytes(range(256)) * 64, bytes(MAX_PLAINTEXT)):
        rec = w.seal(APP, data)
        assert r.open(APP, rec[5:]) == (APP, data)


def mte_record(suite, key, mac_key, seq, data, padding: bytes) -> bytes:  # type: ignore[no-untyped-def]
    """A MAC-then-encrypt fragment with the given raw padding bytes (including the length byte)."""
    plain = data + mac(suite, mac_key, seq, APP, data) + padding
    assert len(plain) % 16 == 0
    iv = os.urandom(16)
    return iv + aes_cbc(key, iv, plain)


def test_cbc_mte_accepts_long_padding() -> None:
    suite = CBC_SHA1
    key, mac_key = cbc_keys(suite)
    data = b"abc"  # 3 + 20 = 23 bytes; pad to 64 with 41 bytes of value 40
    frag = mte_record(suite, key, mac_key, 0, data, bytes([40]) * 41)
    assert CBC12(suite, key, mac_key, False).open(APP, frag) == (APP, data)


@pytest.mark.parametrize(
    "padding",
    [
        bytes([8]) * 8 + bytes([8]),  # 9 bytes of 8: correct
        bytes([8]) * 7 + bytes([7, 8]),  # one wrong padding byte
        bytes([9]) * 9,  # length byte says 9, but there are 10 needed
    ],
    ids=["good", "wrong-byte", "wrong-length"],
)
def test_cbc_mte_padding_checks(padding: bytes) -> None:
    suite = CBC_SHA1
    key, mac_key = cbc_keys(suite)
    data = b"abc"  # 23 bytes + 9 padding = 32
    frag = mte_record(suite, key, mac_key, 0, data, padding)
    prot = CBC12(suite, key, mac_key, False)
    if padding == bytes([8]) * 9:
        assert prot.open(APP, frag) == (APP, data)
    else:
        with pytest.raises(BadRecordMac):
            prot.open(APP, frag)


def test_cbc_mte_padding_longer_than_record() -> None:
    suite = CBC_SHA1
    key, mac_key = cbc_keys(suite)
    iv = os.urandom(16)
    plain = bytes(47) + b"\xff"  # claims 255 bytes of padding
    with pytest.raises(BadRecordMac):
        CBC12(suite, key, mac_key, False).open(APP, iv + aes_cbc(key, iv, plain))


def test_cbc_etm_bad_padding_under_valid_mac() -> None:
    suite = CBC_SHA256
    key, mac_key = cbc_keys(suite)
    iv = os.urandom(16)
    body = iv + aes_cbc(key, iv, b"hello" + bytes([3]) * 10 + b"\x09")
    frag = body + mac(suite, mac_key, 0, APP, body)
    with pytest.raises(BadRecordMac, match="padding"):
        CBC12(suite, key, mac_key, True).open(APP, frag)


@pytest.mark.parametrize("etm", [False, True])
def test_cbc_rejects_bad_lengths(etm: bool) -> None:
    suite = CBC_SHA1
    key, mac_key = cbc_keys(suite)
    good = CBC12(suite, key, mac_key, etm).seal(APP, b"data")[5:]
    for frag in (b"", bytes(16), bytes(31), good[:-1], good + b"\x00", good[:32]):
        with pytest.raises(BadRecordMac):
            CBC12(suite, key, mac_key, etm).open(APP, frag)


@pytest.mark.parametrize("etm", [False, True])
def test_cbc_any_flipped_bit_fails(etm: bool) -> None:
    suite = CBC_SHA1
    key, mac_key = cbc_keys(suite)
    frag = CBC12(suite, key, mac_key, etm).seal(APP, b"0123456789abcdef0123")[5:]
    for i in range(len(frag)):
        bad = bytearray(frag)
        bad[i] ^= 0x01
        with pytest.raises(BadRecordMac):
            CBC12(suite, key, mac_key, etm).open(APP, bytes(bad))
    with pytest.raises(BadRecordMac):
        CBC12(suite, key, mac_key, etm).open(ContentType.HANDSHAKE, frag)


def test_cbc_sequence_numbers() -> None:
    suite = CBC_SHA1
    key, mac_key = cbc_keys(suite)
    w = CBC12(suite, key, mac_key, False)
    first, second = w.seal(APP, b"1")[5:], w.seal(APP, b"2")[5:]
    r = CBC12(suite, key, mac_key, False)
    with pytest.raises(BadRecordMac):
        r.open(APP, second)
    r = CBC12(suite, key, mac_key, False)
    assert r.open(APP, first) == (APP, b"1")
    assert r.open(APP, second) == (APP, b"2")


def test_cbc_iv_is_fresh() -> None:
    suite = CBC_SHA1
    key, mac_key = cbc_keys(suite)
    w = CBC12(suite, key, mac_key, False)
    ivs = {w.seal(APP, b"same")[5:21] for _ in range(8)}
    assert len(ivs) == 8


# -- others -------------------------------------------------------------------------------------
def test_null_protection() -> None:
    p = NullProtection()
    assert p.seal(ContentType.HANDSHAKE, b"abc") == b"\x16\x03\x01\x00\x03abc"
    assert NullProtection(b"\x03\x03").seal(APP, b"") == b"\x17\x03\x03\x00\x00"
    assert p.open(APP, b"x") == (APP, b"x")
    assert not p.encrypted


def test_aead13_inner_type_and_padding() -> None:
    suite = BY_CODE[0x1301]
    key, iv = os.urandom(16), os.urandom(12)
    rec = AEAD13(suite, key, iv).seal(ContentType.HANDSHAKE, b"hs")
    assert rec[0] == APP  # the outer type is always application_data
    assert AEAD13(suite, key, iv).open(APP, rec[5:]) == (ContentType.HANDSHAKE, b"hs")
    # All padding, no content type.
    nonce = iv
    hdr = header(APP, 4 + 16)
    frag = AESGCM(key).encrypt(nonce, bytes(4), hdr)
    with pytest.raises(UnexpectedMessage):
        AEAD13(suite, key, iv).open(APP, frag)
    with pytest.raises(UnexpectedMessage):
        AEAD13(suite, key, iv).open(ContentType.HANDSHAKE, rec[5:])

"""Record protection: one object per direction and epoch.

``seal(content_type, data)`` returns a whole record (header and protected fragment) for at most
2^14 bytes of plaintext; ``open(content_type, fragment)`` returns ``(content_type, plaintext)``
or raises :class:`~tessera.errors.BadRecordMac`. TLS 1.3 protection (inner content type, per-record
nonce) sits beside the TLS 1.2 classes with the same two methods.
"""

from __future__ import annotations

import hmac
import os
import struct
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ..crypto.mac import HmacKey
from ..crypto.suites import BulkCipher, CipherSuite
from ..enums import ContentType
from ..errors import BadRecordMac, InternalError, RecordOverflow, UnexpectedMessage

MAX_PLAINTEXT = 1 << 14
MAX_CIPHERTEXT_12 = MAX_PLAINTEXT + 2048
MAX_CIPHERTEXT_13 = MAX_PLAINTEXT + 256
_SEQ_LIMIT = (1 << 64) - 1
_TAG = 16


_HEADER = struct.Struct(">BHH").pack  # content type, version, length
_AAD12 = struct.Struct(">QBHH").pack  # TLS 1.2 AEAD additional data: seq | header


def _header12(content_type: int, length: int) -> bytes:
    return _HEADER(content_type, 0x0303, length)


class RecordProtection(Protocol):
    encrypted: bool
    plaintext_ccs: bool  # TLS 1.3: ChangeCipherSpec (and early alerts) stay unencrypted
    max_fragment: int  # the largest fragment this epoch accepts on the wire

    def seal(self, content_type: int, data: bytes) -> bytes: ...

    def open(self, content_type: int, fragment: bytes) -> tuple[int, bytes]: ...


class NullProtection:
    """Plaintext records, before the first ChangeCipherSpec / handshake keys."""

    encrypted = False
    plaintext_ccs = False
    max_fragment = MAX_PLAINTEXT

    def __init__(self, version: bytes = b"\x03\x01") -> None:
        self.version = version
        self._version = int.from_bytes(version, "big")

    def seal(self, content_type: int, data: bytes) -> bytes:
        return _HEADER(content_type, self._version, len(data)) + data

    def open(self, content_type: int, fragment: bytes) -> tuple[int, bytes]:
        return content_type, fragment


class _Sequenced:
    __slots__ = ("seq",)

    def __init__(self) -> None:
        self.seq = 0

    def _next_seq(self) -> int:
        seq = self.seq
        if seq >= _SEQ_LIMIT:
            raise InternalError("the record sequence number would wrap; the connection must end")
        self.seq = seq + 1
        return seq


class AEAD12(_Sequenced):
    """TLS 1.2 AEAD records: AES-GCM (RFC 5288, 8-byte explicit nonce) or ChaCha20-Poly1305
    (RFC 7905: 12-byte IV XOR sequence number, no explicit nonce)."""

    __slots__ = ("_aead", "_chacha", "_iv_int", "_salt")
    encrypted = True
    plaintext_ccs = False
    max_fragment = MAX_CIPHERTEXT_12

    def __init__(self, suite: CipherSuite, key: bytes, fixed_iv: bytes) -> None:
        super().__init__()
        self._chacha = suite.cipher is BulkCipher.CHACHA20_POLY1305
        self._aead: AESGCM | ChaCha20Poly1305 = (
            ChaCha20Poly1305(key) if self._chacha else AESGCM(key)
        )
        self._salt = fixed_iv
        self._iv_int = int.from_bytes(fixed_iv, "big")

    def seal(self, content_type: int, data: bytes) -> bytes:
        seq = self._next_seq()
        aad = _AAD12(seq, content_type, 0x0303, len(data))
        if self._chacha:
            nonce = (self._iv_int ^ seq).to_bytes(12, "big")
            body = self._aead.encrypt(nonce, data, aad)
            return _header12(content_type, len(body)) + body
        seq_bytes = aad[:8]
        body = self._aead.encrypt(self._salt + seq_bytes, data, aad)
        return _header12(content_type, 8 + len(body)) + seq_bytes + body

    def open(self, content_type: int, fragment: bytes) -> tuple[int, bytes]:
        seq = self._next_seq()
        try:
            if self._chacha:
                n = len(fragment) - _TAG
                if n < 0:
                    raise BadRecordMac("record too short to be authenticated")
                nonce = (self._iv_int ^ seq).to_bytes(12, "big")
                aad = _AAD12(seq, content_type, 0x0303, n)
                return content_type, self._aead.decrypt(nonce, fragment, aad)
            n = len(fragment) - 8 - _TAG
            if n < 0:
                raise BadRecordMac("record too short to be authenticated")
            aad = _AAD12(seq, content_type, 0x0303, n)
            nonce = self._salt + fragment[:8]
            return content_type, self._aead.decrypt(nonce, memoryview(fragment)[8:], aad)
        except InvalidTag:
            raise BadRecordMac("record authentication failed") from None


class CBC12(_Sequenced):
    """TLS 1.2 AES-CBC with HMAC: MAC-then-encrypt (RFC 5246 §6.2.3.2) or, when negotiated,
    encrypt-then-MAC (RFC 7366).

    Padding and MAC failures are indistinguishable to the peer (one alert, bad_record_mac), and
    the MAC is computed and compared even when the padding is wrong, over the same length as
    with zero padding, so the two failures cost about the same. Pure Python cannot promise
    constant time (Lucky13); these suites are legacy and off by default for that reason.
    """

    __slots__ = ("_etm", "_hmac", "_key", "_mac_len")
    encrypted = True
    plaintext_ccs = False
    max_fragment = MAX_CIPHERTEXT_12

    def __init__(self, suite: CipherSuite, key: bytes, mac_key: bytes, etm: bool) -> None:
        super().__init__()
        assert suite.mac is not None
        self._key = key
        self._hmac = HmacKey(suite.mac, mac_key)  # keyed once per epoch
        self._mac_len = suite.mac_len
        self._etm = etm

    def _mac(self, seq: int, content_type: int, data: bytes) -> bytes:
        return self._hmac.mac(_AAD12(seq, content_type, 0x0303, len(data)) + data)

    def _cipher(self, iv: bytes) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(iv))

    def seal(self, content_type: int, data: bytes) -> bytes:
        seq = self._next_seq()
        iv = os.urandom(16)
        if self._etm:
            pad = 15 - (len(data) % 16)
            enc = self._cipher(iv).encryptor()
            body = iv + enc.update(data + bytes((pad,)) * (pad + 1)) + enc.finalize()
            body += self._mac(seq, content_type, body)
            return _header12(content_type, len(body)) + body
        plain = data + self._mac(seq, content_type, data)
        pad = 15 - (len(plain) % 16)
        enc = self._cipher(iv).encryptor()
        body = iv + enc.update(plain + bytes((pad,)) * (pad + 1)) + enc.finalize()
        return _header12(content_type, len(body)) + body

    def open(self, content_type: int, fragment: bytes) -> tuple[int, bytes]:
        seq = self._next_seq()
        mac_len = self._mac_len
        if self._etm:
            if len(fragment) < 32 + mac_len or (len(fragment) - mac_len) % 16:
                raise BadRecordMac("record too short or not a whole number of blocks")
            body, tag = fragment[:-mac_len], fragment[-mac_len:]
            if not hmac.compare_digest(self._mac(seq, content_type, body), tag):
                raise BadRecordMac("record authentication failed")
            dec = self._cipher(body[:16]).decryptor()
            plain = dec.update(body[16:]) + dec.finalize()
            pad = plain[-1]
            if pad + 1 > len(plain) or plain[-pad - 1 :] != bytes((pad,)) * (pad + 1):
                raise BadRecordMac("bad record padding")
            return content_type, plain[: -pad - 1]
        if len(fragment) < 16 + max(16, (mac_len + 16) & ~15) or len(fragment) % 16:
            raise BadRecordMac("record too short or not a whole number of blocks")
        dec = self._cipher(fragment[:16]).decryptor()
        plain = dec.update(fragment[16:]) + dec.finalize()
        pad = plain[-1]
        good_pad = pad + 1 + mac_len <= len(plain) and (
            plain[-pad - 1 :] == bytes((pad,)) * (pad + 1)
        )
        if not good_pad:
            pad = -1  # check the MAC as if there were no padding, then fail anyway
        end = len(plain) - pad - 1 - mac_len
        content = plain[:end]
        expected = self._mac(seq, content_type, content)
        mac_ok = hmac.compare_digest(expected, plain[end : end + mac_len])
        if not (good_pad and mac_ok):
            raise BadRecordMac("record authentication failed")
        return content_type, content


class AEAD13(_Sequenced):
    """TLS 1.3 records (RFC 8446 §5.2): per-record nonce = IV XOR sequence number, the real
    content type inside the encrypted body, zero padding after it."""

    __slots__ = ("_aead", "_iv_int")
    encrypted = True
    plaintext_ccs = True
    max_fragment = MAX_CIPHERTEXT_13

    def __init__(self, suite: CipherSuite, key: bytes, iv: bytes) -> None:
        super().__init__()
        self._aead: AESGCM | ChaCha20Poly1305 = (
            ChaCha20Poly1305(key) if suite.cipher is BulkCipher.CHACHA20_POLY1305 else AESGCM(key)
        )
        self._iv_int = int.from_bytes(iv, "big")

    def seal(self, content_type: int, data: bytes) -> bytes:
        nonce = (self._iv_int ^ self._next_seq()).to_bytes(12, "big")
        header = _header12(ContentType.APPLICATION_DATA, len(data) + 1 + _TAG)
        return header + self._aead.encrypt(nonce, data + bytes((content_type,)), header)

    def open(self, content_type: int, fragment: bytes) -> tuple[int, bytes]:
        if content_type != ContentType.APPLICATION_DATA:
            raise UnexpectedMessage(
                f"a protected TLS 1.3 record must have type application_data, not {content_type}"
            )
        # The sequence number advances only when a record decrypts: a server skipping refused
        # 0-RTT records must not count them.
        seq = self.seq
        if seq >= _SEQ_LIMIT:
            raise InternalError("the record sequence number would wrap; the connection must end")
        nonce = (self._iv_int ^ seq).to_bytes(12, "big")
        header = _header12(content_type, len(fragment))
        try:
            plain = self._aead.decrypt(nonce, fragment, header)
        except InvalidTag:
            raise BadRecordMac("record authentication failed") from None
        self.seq = seq + 1
        # RFC 8446 §5.4: the whole TLSInnerPlaintext (content, type, padding) is at most
        # 2^14 + 1 bytes, so padding cannot stretch a record past the limit.
        if len(plain) > MAX_PLAINTEXT + 1:
            raise RecordOverflow(
                f"a TLS 1.3 record's inner plaintext is {len(plain)} bytes, over 2^14 + 1"
            )
        # Strip the zero padding; the last non-zero byte is the real content type.
        end = len(plain.rstrip(b"\x00"))
        if end == 0:
            raise UnexpectedMessage("a TLS 1.3 record has no content type (all padding)")
        if plain[end - 1] == ContentType.CHANGE_CIPHER_SPEC:
            raise UnexpectedMessage("an encrypted ChangeCipherSpec (RFC 8446 §5)")
        return plain[end - 1], plain[: end - 1]

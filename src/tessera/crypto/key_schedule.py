"""The TLS 1.3 key schedule (RFC 8446 §7.1), on HKDF: a secret used for one HMAC goes through
OpenSSL's one-shot HMAC, a secret used for several is keyed once (:mod:`.mac`).

::

              0
              |
    PSK ->  HKDF-Extract = Early Secret --> binder_key, client_early_traffic_secret
              |
        Derive-Secret(., "derived", "")
              |
    (EC)DHE -> HKDF-Extract = Handshake Secret --> c/s hs traffic secrets
              |
        Derive-Secret(., "derived", "")
              |
    0 ->    HKDF-Extract = Master Secret --> c/s ap traffic, exporter, resumption secrets
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from .mac import HmacKey, hmac_digest
from .suites import CipherSuite


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    return hmac_digest(salt, ikm, hash_name)


# HkdfLabel (RFC 8446 §7.1) up to the context, by (label, length): built once per label.
_PREFIXES: dict[tuple[bytes, int], bytes] = {}
# The whole HKDF-Expand input for an empty context, counter byte included (one block).
_EMPTY_INFO: dict[tuple[bytes, int], bytes] = {}
# Derive-Secret's HkdfLabel up to the context (its length byte included), by (label, output
# length, context length).
_DERIVE_INFO: dict[tuple[bytes, int, int], bytes] = {}


def _label_prefix(label: bytes, length: int) -> bytes:
    prefix = _PREFIXES.get((label, length))
    if prefix is None:
        full = b"tls13 " + label
        prefix = _PREFIXES[label, length] = length.to_bytes(2, "big") + bytes((len(full),)) + full
    return prefix


def hkdf_expand_label(hash_name: str, secret: bytes, label: bytes, context: bytes,
                      length: int) -> bytes:  # fmt: skip
    info = _label_prefix(label, length) + bytes((len(context),)) + context
    block = hmac_digest(secret, info + b"\x01", hash_name)
    if length <= len(block):
        return block[:length] if length < len(block) else block
    out = block
    i = 2
    while len(out) < length:
        block = hmac_digest(secret, block + info + bytes((i,)), hash_name)
        out += block
        i += 1
    return out[:length]


def _empty_info(label: bytes, length: int) -> bytes:
    info = _EMPTY_INFO.get((label, length))
    if info is None:
        info = _EMPTY_INFO[label, length] = _label_prefix(label, length) + b"\x00\x01"
    return info


def expand_empty(hash_name: str, secret: bytes, label: bytes, length: int) -> bytes:
    """HKDF-Expand-Label with an empty context and at most one hash block of output (keys,
    IVs, Finished keys, KeyUpdate and resumption-free labels): one HMAC over a prebuilt input."""
    block = hmac_digest(secret, _empty_info(label, length), hash_name)
    return block[:length] if length < len(block) else block


def traffic_keys(suite: CipherSuite, secret: bytes) -> tuple[bytes, bytes]:
    """(key, iv) for a TLS 1.3 traffic secret (RFC 8446 §7.3): two HMACs under one key."""
    mac = HmacKey(suite.prf_hash, secret).mac
    key = mac(_empty_info(b"key", suite.key_len))
    return key[: suite.key_len], mac(_empty_info(b"iv", 12))[:12]


@lru_cache(maxsize=8)
def _no_psk_secrets(hash_name: str) -> tuple[bytes, HmacKey]:
    """(Early Secret, the key of its "derived" secret) without a PSK: the same for every
    handshake, and no secret."""
    zeros = bytes(hashlib.new(hash_name).digest_size)
    early = hkdf_extract(hash_name, zeros, zeros)
    derived = hkdf_expand_label(hash_name, early, b"derived", _empty_hash(hash_name), len(zeros))
    return early, HmacKey(hash_name, derived)


@lru_cache(maxsize=8)
def _zero_salt(hash_name: str) -> HmacKey:
    """HKDF-Extract's key for the Early Secret of a PSK (the salt is all zeros)."""
    return HmacKey(hash_name, bytes(hashlib.new(hash_name).digest_size))


_EMPTY_HASHES: dict[str, bytes] = {}


def _empty_hash(hash_name: str) -> bytes:
    h = _EMPTY_HASHES.get(hash_name)
    if h is None:
        h = _EMPTY_HASHES[hash_name] = hashlib.new(hash_name).digest()
    return h


class KeySchedule:
    """One connection's TLS 1.3 secrets for one cipher suite's hash. The current stage's secret
    is keyed once for the secrets derived from it (two traffic secrets and the next stage's
    salt, or the binder key and that salt)."""

    __slots__ = ("_empty_hash", "_psk", "_stage", "hash_len", "hash_name", "secret", "suite")

    def __init__(self, suite: CipherSuite, psk: bytes | None = None) -> None:
        self.suite = suite
        self.hash_name = suite.prf_hash
        self.hash_len = suite.hash_len
        self._empty_hash = _empty_hash(self.hash_name)
        if psk is None:
            self.secret = _no_psk_secrets(self.hash_name)[0]
        else:
            self.secret = _zero_salt(self.hash_name).mac(psk)
        self._psk = psk is not None
        self._stage: HmacKey | None = None  # the current secret's key, once something uses it

    def _stage_key(self) -> HmacKey:
        stage = self._stage
        if stage is None:
            stage = self._stage = HmacKey(self.hash_name, self.secret)
        return stage

    def expand_label(self, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
        return hkdf_expand_label(self.hash_name, secret, label, context, length)

    def derive(self, label: bytes, transcript_hash: bytes) -> bytes:
        """Derive-Secret(current secret, label, messages) given the messages' hash."""
        key = (label, self.hash_len, len(transcript_hash))
        info = _DERIVE_INFO.get(key)
        if info is None:
            info = _DERIVE_INFO[key] = _label_prefix(label, key[1]) + bytes((key[2],))
        return self._stage_key().mac(info + transcript_hash + b"\x01")

    def _advance(self, ikm: bytes | None) -> None:
        ikm = ikm or bytes(self.hash_len)
        if not self._psk and self.secret is _no_psk_secrets(self.hash_name)[0]:
            self.secret = _no_psk_secrets(self.hash_name)[1].mac(ikm)
        else:
            derived = self.derive(b"derived", self._empty_hash)
            self.secret = hkdf_extract(self.hash_name, derived, ikm)
        self._stage = None

    def binder_key(self, external: bool = False) -> bytes:
        return self.derive(b"ext binder" if external else b"res binder", self._empty_hash)

    def to_handshake(self, shared_secret: bytes | None) -> None:
        """Early Secret -> Handshake Secret, mixing in the (EC)DHE secret (None for psk_ke)."""
        self._advance(shared_secret)

    def to_master(self) -> None:
        self._advance(None)

    # -- derived keys --------------------------------------------------------------------
    def finished_key(self, base_secret: bytes) -> bytes:
        return expand_empty(self.hash_name, base_secret, b"finished", self.hash_len)

    def finished_mac(self, base_secret: bytes, transcript_hash: bytes) -> bytes:
        name = self.hash_name
        key = expand_empty(name, base_secret, b"finished", self.hash_len)
        return hmac_digest(key, transcript_hash, name)

    def traffic_keys(self, secret: bytes) -> tuple[bytes, bytes]:
        """(key, iv) for a traffic secret."""
        return traffic_keys(self.suite, secret)

    def next_traffic_secret(self, secret: bytes) -> bytes:
        return expand_empty(self.hash_name, secret, b"traffic upd", self.hash_len)

    def resumption_psk(self, resumption_master: bytes, nonce: bytes) -> bytes:
        return self.expand_label(resumption_master, b"resumption", nonce, self.hash_len)

    def binder(self, transcript_hash: bytes) -> bytes:
        """The resumption PSK binder over the (partial) ClientHello transcript hash."""
        return self.finished_mac(self.binder_key(), transcript_hash)


def psk_binder(suite: CipherSuite, psk: bytes, transcript_hash: bytes) -> bytes:
    return KeySchedule(suite, psk).binder(transcript_hash)

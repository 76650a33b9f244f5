"""The TLS 1.3 key schedule (RFC 8446 §7.1) against an independent derivation.

tessera builds HKDF from one-shot HMACs; here the expectations come from ``cryptography``'s HKDF
primitives (``HKDFExpand``, ``hmac.HMAC``) and RFC 8446's definitions, for both hashes (SHA-256
and SHA-384 suites), every label the handshake uses, and output lengths that need more than one
HKDF block. The RFC 8448 traces (SHA-256 only) are checked in tests/vectors/test_rfc8448.py.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from tessera.crypto.key_schedule import KeySchedule, hkdf_expand_label, hkdf_extract, psk_binder
from tessera.crypto.suites import TLS13_SUITES, CipherSuite

_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384}


# -- an independent reference implementation on cryptography's primitives --------------------
def ref_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    h = c_hmac.HMAC(salt, _HASHES[hash_name]())
    h.update(ikm)
    return h.finalize()


def ref_expand_label(hash_name: str, secret: bytes, label: bytes, context: bytes, n: int) -> bytes:
    full = b"tls13 " + label
    info = n.to_bytes(2, "big") + len(full).to_bytes(1, "big") + full
    info += len(context).to_bytes(1, "big") + context
    return HKDFExpand(_HASHES[hash_name](), n, info).derive(secret)


def ref_hmac(hash_name: str, key: bytes, data: bytes) -> bytes:
    h = c_hmac.HMAC(key, _HASHES[hash_name]())
    h.update(data)
    return h.finalize()


class RefSchedule:
    """RFC 8446 §7.1 written out step by step."""

    def __init__(self, hash_name: str, psk: bytes | None, ecdhe: bytes | None) -> None:
        self.h = hash_name
        n = hashlib.new(hash_name).digest_size
        self.n = n
        empty = hashlib.new(hash_name).digest()
        self.early = ref_extract(hash_name, bytes(n), psk if psk is not None else bytes(n))
        d1 = ref_expand_label(hash_name, self.early, b"derived", empty, n)
        self.handshake = ref_extract(hash_name, d1, ecdhe if ecdhe is not None else bytes(n))
        d2 = ref_expand_label(hash_name, self.handshake, b"derived", empty, n)
        self.master = ref_extract(hash_name, d2, bytes(n))
        self.binder_key = ref_expand_label(hash_name, self.early, b"res binder", empty, n)
        self.ext_binder_key = ref_expand_label(hash_name, self.early, b"ext binder", empty, n)

    def derive(self, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
        return ref_expand_label(self.h, secret, label, transcript_hash, self.n)

    def finished(self, base: bytes, transcript_hash: bytes) -> bytes:
        key = ref_expand_label(self.h, base, b"finished", b"", self.n)
        return ref_hmac(self.h, key, transcript_hash)


def _ids(suite: CipherSuite) -> str:
    return suite.name


def _h(hash_name: str, tag: bytes) -> bytes:
    return hashlib.new(hash_name, tag).digest()


# -- HKDF ----------------------------------------------------------------------------------
@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
@pytest.mark.parametrize(("salt", "ikm"), [(b"", b"ikm"), (bytes(48), bytes(48)), (b"s" * 7, b"")])
def test_hkdf_extract_is_hmac_with_the_salt_as_key(hash_name: str, salt: bytes, ikm: bytes) -> None:
    assert hkdf_extract(hash_name, salt, ikm) == ref_extract(hash_name, salt, ikm)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
@pytest.mark.parametrize("length", [1, 12, 16, 32, 48, 64, 100, 255])
def test_hkdf_expand_label_any_length(hash_name: str, length: int) -> None:
    secret = _h(hash_name, b"secret")
    context = _h(hash_name, b"context")
    got = hkdf_expand_label(hash_name, secret, b"c hs traffic", context, length)
    assert len(got) == length
    assert got == ref_expand_label(hash_name, secret, b"c hs traffic", context, length)


def test_hkdf_extract_then_expand_equals_cryptography_hkdf() -> None:
    # HKDF(salt, ikm, info, L) = Expand(Extract(salt, ikm), info, L) (RFC 5869).
    salt, ikm = b"\x00\x01\x02", b"\x0b" * 22
    info = (42).to_bytes(2, "big") + b"\x0ftls13 some info" + b"\x00"
    expected = HKDF(hashes.SHA256(), 42, salt, info).derive(ikm)
    prk = hkdf_extract("sha256", salt, ikm)
    assert HKDFExpand(hashes.SHA256(), 42, info).derive(prk) == expected
    assert hkdf_expand_label("sha256", prk, b"some info", b"", 42) == expected


@pytest.mark.parametrize(
    "label", [b"derived", b"finished", b"key", b"iv", b"traffic upd", b"resumption", b"a" * 249]
)
def test_hkdf_expand_label_labels(label: bytes) -> None:
    secret = bytes(range(32))
    assert hkdf_expand_label("sha256", secret, label, b"", 32) == ref_expand_label(
        "sha256", secret, label, b"", 32
    )


def test_hkdf_expand_label_distinguishes_label_and_context() -> None:
    secret = bytes(32)
    a = hkdf_expand_label("sha256", secret, b"ab", b"c", 32)
    b = hkdf_expand_label("sha256", secret, b"a", b"bc", 32)
    assert a != b


# -- the whole schedule, per suite -------------------------------------------------------------
@pytest.mark.parametrize("suite", TLS13_SUITES, ids=_ids)
@pytest.mark.parametrize("mode", ["full", "psk_dhe_ke", "psk_ke"])
def test_key_schedule_matches_rfc8446(suite: CipherSuite, mode: str) -> None:
    h = suite.prf_hash
    n = suite.hash_len
    psk = None if mode == "full" else _h(h, b"psk")
    ecdhe = None if mode == "psk_ke" else b"\x42" * 32
    ref = RefSchedule(h, psk, ecdhe)

    ks = KeySchedule(suite, psk)
    assert ks.hash_name == h and ks.hash_len == n
    assert ks.secret == ref.early
    if psk is not None:
        assert ks.binder_key() == ref.binder_key
        assert ks.binder_key(external=True) == ref.ext_binder_key
    ch_hash = _h(h, b"ClientHello")
    assert ks.derive(b"c e traffic", ch_hash) == ref.derive(ref.early, b"c e traffic", ch_hash)

    ks.to_handshake(ecdhe)
    assert ks.secret == ref.handshake
    hs_hash = _h(h, b"ClientHello..ServerHello")
    c_hs = ks.derive(b"c hs traffic", hs_hash)
    s_hs = ks.derive(b"s hs traffic", hs_hash)
    assert c_hs == ref.derive(ref.handshake, b"c hs traffic", hs_hash)
    assert s_hs == ref.derive(ref.handshake, b"s hs traffic", hs_hash)
    assert c_hs != s_hs

    ks.to_master()
    assert ks.secret == ref.master
    ap_hash = _h(h, b"ClientHello..server Finished")
    for label in (b"c ap traffic", b"s ap traffic", b"exp master", b"res master"):
        assert ks.derive(label, ap_hash) == ref.derive(ref.master, label, ap_hash)

    fin_hash = _h(h, b"transcript")
    assert ks.finished_key(s_hs) == ref_expand_label(h, s_hs, b"finished", b"", n)
    assert ks.finished_mac(s_hs, fin_hash) == ref.finished(s_hs, fin_hash)
    assert len(ks.finished_mac(c_hs, fin_hash)) == n


def test_psk_ke_and_zero_ecdhe_are_the_same_input() -> None:
    """RFC 8446 §7.1: without (EC)DHE the IKM is a string of Hash.length zero bytes."""
    suite = TLS13_SUITES[0]
    a = KeySchedule(suite, b"p" * 32)
    a.to_handshake(None)
    b = KeySchedule(suite, b"p" * 32)
    b.to_handshake(bytes(32))
    assert a.secret == b.secret


@pytest.mark.parametrize("suite", TLS13_SUITES, ids=_ids)
def test_traffic_keys_per_suite(suite: CipherSuite) -> None:
    ks = KeySchedule(suite)
    secret = _h(suite.prf_hash, b"traffic")
    key, iv = ks.traffic_keys(secret)
    assert len(key) == suite.key_len and len(iv) == 12
    assert key == ref_expand_label(suite.prf_hash, secret, b"key", b"", suite.key_len)
    assert iv == ref_expand_label(suite.prf_hash, secret, b"iv", b"", 12)


@pytest.mark.parametrize("suite", TLS13_SUITES, ids=_ids)
def test_key_update_chain(suite: CipherSuite) -> None:
    """application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length)."""
    ks = KeySchedule(suite)
    secret = _h(suite.prf_hash, b"ap0")
    seen = {secret}
    for _ in range(3):
        nxt = ks.next_traffic_secret(secret)
        assert nxt == ref_expand_label(suite.prf_hash, secret, b"traffic upd", b"", suite.hash_len)
        assert nxt not in seen
        seen.add(nxt)
        secret = nxt


def test_key_update_matches_values_published_by_botan() -> None:
    """CLIENT/SERVER_TRAFFIC_SECRET_1 after RFC 8448 §3's secrets. These are not in the RFC; they
    are from Botan's tls_cipher_state test (an independent implementation)."""
    ks = KeySchedule(TLS13_SUITES[0])
    c_ap0 = bytes.fromhex("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5")
    s_ap0 = bytes.fromhex("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643")
    assert ks.next_traffic_secret(c_ap0) == bytes.fromhex(
        "fcdfcc72725aaee48bf64e4fd8b749cdbdbab39d90da0b26e2245ca6ea167207"
    )
    assert ks.next_traffic_secret(s_ap0) == bytes.fromhex(
        "51921b8aa3001976eb401d0a4319a8516416a6c56001a357e5d162031e84f916"
    )


@pytest.mark.parametrize("suite", TLS13_SUITES, ids=_ids)
@pytest.mark.parametrize("nonce", [b"", b"\x00", b"\x00\x01", bytes(255)])
def test_resumption_psk_from_nonce(suite: CipherSuite, nonce: bytes) -> None:
    ks = KeySchedule(suite)
    rms = _h(suite.prf_hash, b"res master")
    psk = ks.resumption_psk(rms, nonce)
    assert psk == ref_expand_label(suite.prf_hash, rms, b"resumption", nonce, suite.hash_len)


def test_resumption_psks_differ_per_nonce() -> None:
    ks = KeySchedule(TLS13_SUITES[0])
    rms = bytes(32)
    psks = {ks.resumption_psk(rms, bytes((i,))) for i in range(16)}
    assert len(psks) == 16


@pytest.mark.parametrize("suite", TLS13_SUITES, ids=_ids)
def test_psk_binder(suite: CipherSuite) -> None:
    h = suite.prf_hash
    psk = _h(h, b"resumption psk")
    partial = _h(h, b"truncated ClientHello")
    ref = RefSchedule(h, psk, None)
    expected = ref.finished(ref.binder_key, partial)
    assert psk_binder(suite, psk, partial) == expected
    assert len(expected) == suite.hash_len
    # The binder depends on the PSK and on every byte of the hello.
    assert psk_binder(suite, psk[:-1] + b"\x00", partial) != expected
    assert psk_binder(suite, psk, _h(h, b"another hello")) != expected


def test_key_schedule_does_not_share_state() -> None:
    suite = TLS13_SUITES[0]
    a = KeySchedule(suite)
    b = KeySchedule(suite)
    a.to_handshake(b"\x01" * 32)
    assert b.secret == RefSchedule("sha256", None, None).early

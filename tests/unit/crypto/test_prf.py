"""The TLS 1.2 PRF (RFC 5246 §5) against the published test vectors, and everything derived
from it against an independent implementation on ``cryptography``'s HMAC."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tessera.crypto import prf
from tessera.crypto.suites import BY_CODE
from tessera.handshake import keys12

# The TLS 1.2 PRF test vectors posted to the IETF TLS list (also used by many TLS stacks).
SHA256_VECTOR = (
    "9bbe436ba940f017b17652849a71db35",
    "a0ba9f936cda311827a6f796ffd5198c",
    "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
    "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
    "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
    "87347b66",
)
SHA384_VECTOR = (
    "b80b733d6ceefcdc71566ea48e5567df",
    "cd665cf6a8447dd6ff8b27555edb7465",
    "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd"
    "e9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd"
    "8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425"
    "9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee6"
    "91c8f3a26854308d5eaa3be85e0990703d73e56f",
)


def reference_prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, n: int) -> bytes:
    algo = {"sha256": hashes.SHA256, "sha384": hashes.SHA384}[hash_name]

    def h(data: bytes) -> bytes:
        mac = c_hmac.HMAC(secret, algo())
        mac.update(data)
        return mac.finalize()

    out, a = b"", label + seed
    while len(out) < n:
        a = h(a)
        out += h(a + label + seed)
    return out[:n]


@pytest.mark.parametrize(
    ("hash_name", "vector"), [("sha256", SHA256_VECTOR), ("sha384", SHA384_VECTOR)]
)
def test_published_vectors(hash_name: str, vector: tuple[str, str, str]) -> None:
    secret, seed, expected = (bytes.fromhex(v) for v in vector)
    assert prf.prf(hash_name, secret, b"test label", seed, len(expected)) == expected
    assert reference_prf(hash_name, secret, b"test label", seed, len(expected)) == expected


@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 64, 100, 200])
def test_lengths_are_prefixes(n: int) -> None:
    secret, seed = b"s", b"seed"
    full = prf.prf("sha256", secret, b"l", seed, 200)
    assert prf.prf("sha256", secret, b"l", seed, n) == full[:n]


def test_master_secret() -> None:
    pms, cr, sr = os.urandom(48), os.urandom(32), os.urandom(32)
    ms = prf.master_secret("sha256", pms, cr, sr)
    assert len(ms) == 48
    assert ms == reference_prf("sha256", pms, b"master secret", cr + sr, 48)


def test_extended_master_secret() -> None:
    pms, session_hash = os.urandom(48), os.urandom(48)
    ems = prf.extended_master_secret("sha384", pms, session_hash)
    assert ems == reference_prf("sha384", pms, b"extended master secret", session_hash, 48)


def test_key_block_uses_server_random_first() -> None:
    ms, cr, sr = os.urandom(48), os.urandom(32), os.urandom(32)
    kb = prf.key_block("sha256", ms, cr, sr, 72)
    assert kb == reference_prf("sha256", ms, b"key expansion", sr + cr, 72)


@pytest.mark.parametrize(
    ("is_client", "label"), [(True, b"client finished"), (False, b"server finished")]
)
def test_verify_data(is_client: bool, label: bytes) -> None:
    ms, digest = os.urandom(48), os.urandom(32)
    vd = prf.verify_data("sha256", ms, is_client, digest)
    assert vd == reference_prf("sha256", ms, label, digest, 12)


def test_keys12_gcm_key_block_layout() -> None:
    """RFC 5246 §6.3: client MAC, server MAC, client key, server key, client IV, server IV."""
    suite = BY_CODE[0xC02C]  # AES-256-GCM, SHA-384 PRF
    ms, cr, sr = os.urandom(48), os.urandom(32), os.urandom(32)
    block = reference_prf("sha384", ms, b"key expansion", sr + cr, 2 * (32 + 4))
    c_key, s_key, c_iv, s_iv = block[:32], block[32:64], block[64:68], block[68:72]
    client_w, server_w = keys12.protections(suite, ms, cr, sr, etm=False)
    for prot, key, iv in ((client_w, c_key, c_iv), (server_w, s_key, s_iv)):
        rec = prot.seal(23, b"check")
        frag = rec[5:]
        aad = bytes(8) + b"\x17\x03\x03\x00\x05"
        assert AESGCM(key).decrypt(iv + frag[:8], frag[8:], aad) == b"check"


def test_keys12_cbc_key_block_layout() -> None:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    suite = BY_CODE[0xC013]  # AES-128-CBC, HMAC-SHA1
    ms, cr, sr = os.urandom(48), os.urandom(32), os.urandom(32)
    block = reference_prf("sha256", ms, b"key expansion", sr + cr, 2 * (20 + 16))
    c_mac, c_key = block[:20], block[40:56]
    client_w, _ = keys12.protections(suite, ms, cr, sr, etm=True)
    frag = client_w.seal(23, b"check")[5:]
    body, tag = frag[:-20], frag[-20:]
    mac = c_hmac.HMAC(c_mac, hashes.SHA1())
    mac.update(bytes(8) + b"\x17\x03\x03" + len(body).to_bytes(2, "big") + body)
    assert mac.finalize() == tag
    dec = Cipher(algorithms.AES(c_key), modes.CBC(body[:16])).decryptor()
    assert (dec.update(body[16:]) + dec.finalize()).startswith(b"check")


def test_compute_master_secret_switches_on_session_hash() -> None:
    suite = BY_CODE[0xC02F]
    pms, cr, sr, sh = os.urandom(48), os.urandom(32), os.urandom(32), os.urandom(32)
    assert keys12.compute_master_secret(suite, pms, cr, sr, None) == prf.master_secret(
        "sha256", pms, cr, sr
    )
    assert keys12.compute_master_secret(suite, pms, cr, sr, sh) == prf.extended_master_secret(
        "sha256", pms, sh
    )

"""Cipher suite table and names, ephemeral key exchange, signature schemes, the transcript."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tessera.crypto import signatures
from tessera.crypto.key_exchange import SUPPORTED_GROUPS, KeyShare
from tessera.crypto.suites import (
    ALL_SUITES,
    BY_CODE,
    DEFAULT_TLS12_SUITES,
    TLS13_SUITES,
    BulkCipher,
    parse_cipher_list,
    suites_from_codes,
)
from tessera.crypto.transcript import Transcript
from tessera.enums import NamedGroup
from tessera.enums import SignatureScheme as S
from tessera.errors import ConfigError, DecryptError, IllegalParameter


# -- suites ---------------------------------------------------------------------------------------
def test_suite_table_is_consistent() -> None:
    assert len(BY_CODE) == len(ALL_SUITES)
    for s in ALL_SUITES:
        if s.cipher is BulkCipher.AES_CBC:
            assert s.fixed_iv_len == 0 and s.mac_len in (20, 32, 48) and not s.is_aead
        elif s.cipher is BulkCipher.CHACHA20_POLY1305 or s.is_tls13:
            assert s.fixed_iv_len == 12 and s.mac_len == 0
        else:
            assert s.fixed_iv_len == 4
        assert s.key_len in (16, 32)
        assert s.hash_len == (48 if s.prf_hash == "sha384" else 32)
        assert ("SHA384" in s.name) == (s.prf_hash == "sha384")
    assert not any(s.legacy for s in DEFAULT_TLS12_SUITES)


def test_parse_cipher_list() -> None:
    got = parse_cipher_list("ECDHE-RSA-AES128-GCM-SHA256:TLS_RSA_WITH_AES_128_CBC_SHA, aes256-sha")
    assert got[: len(TLS13_SUITES)] == TLS13_SUITES  # TLS 1.3 suites are configured apart
    assert [s.code for s in got[len(TLS13_SUITES) :]] == [0xC02F, 0x002F, 0x0035]
    assert parse_cipher_list("DEFAULT")[len(TLS13_SUITES) :] == DEFAULT_TLS12_SUITES
    assert parse_cipher_list("TLS_AES_128_GCM_SHA256:AES128-SHA") == (
        BY_CODE[0x1301],
        BY_CODE[0x002F],
    )
    dup = parse_cipher_list("AES128-SHA:AES128-SHA")
    assert dup.count(BY_CODE[0x002F]) == 1


@pytest.mark.parametrize("spec", ["NOPE", "", " : ", "RC4-MD5"])
def test_parse_cipher_list_errors(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_cipher_list(spec)


def test_suites_from_codes_skips_unknown() -> None:
    assert suites_from_codes([0x1234, 0xC02B, 0x00FF]) == [BY_CODE[0xC02B]]


# -- key exchange ---------------------------------------------------------------------------------
@pytest.mark.parametrize("group", sorted(SUPPORTED_GROUPS), ids=lambda g: NamedGroup(g).name)
def test_key_share_agreement(group: int) -> None:
    a, b = KeyShare(group), KeyShare(group)
    assert a.exchange(b.public) == b.exchange(a.public)
    assert a.public != b.public


@pytest.mark.parametrize(
    ("group", "public"),
    [
        (NamedGroup.x25519, bytes(33)),
        (NamedGroup.x25519, bytes(32)),
        (NamedGroup.x448, bytes(55)),
        (NamedGroup.secp256r1, b"\x04" + bytes(63)),
        (NamedGroup.secp256r1, b"\x03" + bytes(64)),
        (NamedGroup.secp256r1, b"\x04" + b"\x01" * 64),  # not on the curve
        (NamedGroup.secp384r1, KeyShare(NamedGroup.secp256r1).public),  # the other curve's point
    ],
)
def test_key_share_rejects(group: int, public: bytes) -> None:
    with pytest.raises(IllegalParameter):
        KeyShare(group).exchange(public)


def test_unsupported_group() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        KeyShare(NamedGroup.ffdhe2048)


# -- signatures -----------------------------------------------------------------------------------
EC = ec.generate_private_key(ec.SECP256R1())
RSA = rsa.generate_private_key(65537, 2048)


@pytest.mark.parametrize(
    ("key", "scheme"),
    [
        (EC, S.ecdsa_secp256r1_sha256),
        (EC, S.ecdsa_sha1),
        (RSA, S.rsa_pss_rsae_sha256),
        (RSA, S.rsa_pss_rsae_sha512),
        (RSA, S.rsa_pkcs1_sha256),
        (RSA, S.rsa_pkcs1_sha1),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_sign_verify(key, scheme: int) -> None:  # type: ignore[no-untyped-def]
    sig = signatures.sign(key, scheme, b"message")
    signatures.verify(key.public_key(), scheme, b"message", sig, tls13=False)
    with pytest.raises(DecryptError):
        signatures.verify(key.public_key(), scheme, b"messagE", sig, tls13=False)
    with pytest.raises(DecryptError):
        signatures.verify(
            key.public_key(), scheme, b"message", sig[:-1] + bytes([sig[-1] ^ 1]), tls13=False
        )


def test_verify_scheme_must_fit_key() -> None:
    sig = signatures.sign(EC, S.ecdsa_secp256r1_sha256, b"m")
    with pytest.raises(IllegalParameter):
        signatures.verify(EC.public_key(), S.rsa_pss_rsae_sha256, b"m", sig, tls13=False)
    with pytest.raises(IllegalParameter):
        signatures.verify(EC.public_key(), 0x0999, b"m", sig, tls13=False)
    with pytest.raises(IllegalParameter):  # TLS 1.3 binds ECDSA schemes to curves
        signatures.verify(EC.public_key(), S.ecdsa_secp384r1_sha384, b"m", sig, tls13=True)
    with pytest.raises(IllegalParameter):  # no PKCS#1 v1.5 in TLS 1.3
        signatures.verify(RSA.public_key(), S.rsa_pkcs1_sha256, b"m", b"x", tls13=True)


def test_choose_scheme() -> None:
    ours = (S.ecdsa_secp384r1_sha384, S.ecdsa_secp256r1_sha256, S.rsa_pss_rsae_sha256)
    assert (
        signatures.choose_scheme(EC, (S.ecdsa_secp256r1_sha256,), ours, tls13=True)
        == S.ecdsa_secp256r1_sha256
    )
    # TLS 1.2 allows any ECDSA hash with any curve; our order wins.
    assert (
        signatures.choose_scheme(
            EC, (S.ecdsa_secp256r1_sha256, S.ecdsa_secp384r1_sha384), ours, False
        )
        == S.ecdsa_secp384r1_sha384
    )
    assert signatures.choose_scheme(EC, (S.ecdsa_secp384r1_sha384,), ours, tls13=True) is None
    assert signatures.choose_scheme(RSA, (S.ecdsa_secp256r1_sha256,), ours, False) is None


# -- transcript -----------------------------------------------------------------------------------
def test_transcript_buffers_until_hash_known() -> None:
    t = Transcript()
    t.add(b"client hello")
    t.add(b"server hello")
    assert not t.hash_ready
    t.set_hash("sha384")
    t.add(b"more")
    assert t.digest() == hashlib.sha384(b"client helloserver hellomore").digest()
    assert t.digest() == t.digest()  # digest() does not disturb the running hash
    t.add(b"!")
    assert t.digest() == hashlib.sha384(b"client helloserver hellomore!").digest()


def test_transcript_keeps_messages_when_asked() -> None:
    t = Transcript()
    t.add(b"a")
    t.keep_messages()
    t.set_hash("sha256")
    t.add(b"b")
    assert t.messages() == b"ab"
    plain = Transcript()
    plain.add(b"a")
    plain.set_hash("sha256")
    plain.add(b"b")
    assert plain.messages() == b""


def test_transcript_message_hash() -> None:
    t = Transcript()
    t.set_hash("sha256")
    t.add(b"ch1")
    t.replace_with_message_hash()
    inner = hashlib.sha256(b"ch1").digest()
    assert t.digest() == hashlib.sha256(b"\xfe\x00\x00\x20" + inner).digest()

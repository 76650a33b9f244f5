"""The TLS 1.2 PRF (RFC 5246 §5) and what is derived from it."""

from __future__ import annotations

from .key_schedule import hmac_digest

MASTER_SECRET_LEN = 48
VERIFY_DATA_LEN = 12


def p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """P_hash(secret, seed): HMAC iterated until ``length`` bytes are produced."""
    out = b""
    a = seed
    while len(out) < length:
        a = hmac_digest(secret, a, hash_name)
        out += hmac_digest(secret, a + seed, hash_name)
    return bytes(out[:length])


def prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    return p_hash(hash_name, secret, label + seed, length)


def master_secret(
    hash_name: str, premaster: bytes, client_random: bytes, server_random: bytes
) -> bytes:
    return prf(
        hash_name, premaster, b"master secret", client_random + server_random, MASTER_SECRET_LEN
    )


def extended_master_secret(hash_name: str, premaster: bytes, session_hash: bytes) -> bytes:
    """RFC 7627 §4: the master secret bound to the hash of the handshake so far."""
    return prf(hash_name, premaster, b"extended master secret", session_hash, MASTER_SECRET_LEN)


def key_block(
    hash_name: str, master: bytes, client_random: bytes, server_random: bytes, length: int
) -> bytes:
    return prf(hash_name, master, b"key expansion", server_random + client_random, length)


def verify_data(hash_name: str, master: bytes, is_client: bool, handshake_hash: bytes) -> bytes:
    label = b"client finished" if is_client else b"server finished"
    return prf(hash_name, master, label, handshake_hash, VERIFY_DATA_LEN)

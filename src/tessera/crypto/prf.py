"""The TLS 1.2 PRF (RFC 5246 §5) and what is derived from it.

A :class:`Prf` is the PRF under one secret, keyed once: a handshake derives its key block and
both Finished messages from one master secret (8 HMACs for AES-GCM), so the secret's HMAC key is
made once per handshake (see :mod:`.mac`).
"""

from __future__ import annotations

from .mac import HmacKey

MASTER_SECRET_LEN = 48
VERIFY_DATA_LEN = 12
_CLIENT_FINISHED = b"client finished"
_SERVER_FINISHED = b"server finished"


class Prf:
    """PRF(secret, label, seed) for one secret (its ``repr`` never shows it)."""

    __slots__ = ("_mac",)

    def __init__(self, hash_name: str, secret: bytes) -> None:
        self._mac = HmacKey(hash_name, secret)

    def __call__(self, label: bytes, seed: bytes, length: int) -> bytes:
        """P_hash(secret, label + seed): HMAC iterated until ``length`` bytes are produced."""
        mac = self._mac.mac
        seed = label + seed
        out = b""
        a = seed
        while len(out) < length:
            a = mac(a)
            out += mac(a + seed)
        return out if len(out) == length else out[:length]

    def key_block(self, client_random: bytes, server_random: bytes, length: int) -> bytes:
        return self(b"key expansion", server_random + client_random, length)

    def verify_data(self, is_client: bool, handshake_hash: bytes) -> bytes:
        label = _CLIENT_FINISHED if is_client else _SERVER_FINISHED
        return self(label, handshake_hash, VERIFY_DATA_LEN)

    def __repr__(self) -> str:
        return "Prf(...)"


def prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    return Prf(hash_name, secret)(label, seed, length)


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
    return Prf(hash_name, master).key_block(client_random, server_random, length)


def verify_data(hash_name: str, master: bytes, is_client: bool, handshake_hash: bytes) -> bytes:
    return Prf(hash_name, master).verify_data(is_client, handshake_hash)

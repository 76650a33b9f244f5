"""HMAC (RFC 2104) over hashlib's hashes, with the key's two padded blocks hashed once.

OpenSSL 3's one-shot HMAC (``hmac.digest``, ``_hashlib.hmac_digest``) fetches the MAC and the
digest by name on every call: about twice the cost of hashing a short message twice. An
:class:`HmacKey` absorbs its key once into an inner and an outer hash state, and each MAC copies
the two: a key used twice already costs less than two one-shot MACs, and TLS keys most MACs with
a secret it uses again (the TLS 1.2 PRF runs the key block and both Finished under the master
secret; the TLS 1.3 key schedule expands two traffic secrets and the next stage from each stage
secret, and a key and an IV from each traffic secret; the ticket sealer MACs every ticket under
one key). A key used once goes through :func:`hmac_digest`, OpenSSL's one-shot.
"""

from __future__ import annotations

import hashlib

# OpenSSL's one-shot HMAC, without the argument checks of hmac.digest() (tessera needs OpenSSL
# anyway: cryptography is built on it).
from _hashlib import hmac_digest as hmac_digest  # noqa: PLC0414 (re-exported)
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import _Hash

_IPAD = bytes.maketrans(bytes(range(256)), bytes(b ^ 0x36 for b in range(256)))
_OPAD = bytes.maketrans(bytes(range(256)), bytes(b ^ 0x5C for b in range(256)))
# (constructor, block size) of the hashes TLS MACs with, by the names the suites use.
_HASHES: dict[str, tuple[Callable[[bytes], _Hash], int]] = {
    "sha256": (hashlib.sha256, 64),
    "sha384": (hashlib.sha384, 128),
    "sha1": (hashlib.sha1, 64),
    "sha512": (hashlib.sha512, 128),
}


def _hash(hash_name: str) -> tuple[Callable[[bytes], _Hash], int]:
    found = _HASHES.get(hash_name)
    if found is not None:
        return found

    def new(data: bytes) -> _Hash:
        return hashlib.new(hash_name, data)

    return new, hashlib.new(hash_name).block_size


def new_hash(hash_name: str, data: bytes = b"") -> _Hash:
    """A fresh hash object, through the hash's own constructor (``hashlib.new`` looks the name
    up in Python first: about twice the cost)."""
    found = _HASHES.get(hash_name)
    return found[0](data) if found is not None else hashlib.new(hash_name, data)


class HmacKey:
    """One HMAC key, ready to MAC any number of messages: ``HmacKey("sha256", key).mac(msg)``
    equals ``hmac.digest(key, msg, "sha256")``. It holds the key (in its hash states) for as
    long as it lives, like the secret it is made from; its ``repr`` never shows it."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, hash_name: str, key: bytes) -> None:
        new, block = _hash(hash_name)
        if len(key) > block:
            key = new(key).digest()
        key = key.ljust(block, b"\x00")
        self._inner = new(key.translate(_IPAD))
        self._outer = new(key.translate(_OPAD))

    def mac(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    @property
    def digest_size(self) -> int:
        return self._inner.digest_size

    def __repr__(self) -> str:
        return f"HmacKey({self._inner.name})"

"""Ticket keys and the keyring that rotates them.

A ticket key is a 16-byte name, an HMAC-SHA256 key and an AES key (16 bytes: AES-128-CBC, or
32 bytes: AES-256-CBC). The keyring holds one key that encrypts and older keys kept only to
decrypt, as an immutable snapshot swapped atomically on rotation. A key is erased once it is
older than ``rotation_interval * (keep + 1)``; when every key has expired and none can be made,
no tickets are issued or accepted — handshakes simply go without.

Key files, by layout (all are raw bytes, one key after another, newest-first unless noted):

==============  ======  ===================================  ==============================
layout          bytes   order                                used by
==============  ======  ===================================  ==============================
``native``      48      name16 | hmac16 | aes16              Node.js ticketKeys, OpenSSL 1.0
``native``      80      name16 | hmac32 | aes32              OpenSSL 1.1+ (AES-256-CBC)
``nginx``       48      name16 | aes16 | hmac16              ssl_session_ticket_key
``nginx``       80      name16 | hmac32 | aes32              ssl_session_ticket_key
``haproxy``     48/80   base64 lines, name | aes | hmac      tls-ticket-keys
``apache``      48      name16 | hmac16 | aes16              SSLSessionTicketKeyFile
==============  ======  ===================================  ==============================

A native, nginx or Apache file holds one key (nginx takes one file per key; the first file
encrypts; Apache's mod_ssl reads exactly 48 bytes). A HAProxy file holds several lines; HAProxy
keeps the last three, encrypts with the second-to-last line, so that a new key can be
distributed (last line) before it is used.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import ConfigError
from ..files import MAX_KEY_FILE, read_bounded
from .memo import SessionMemo


class KeyFileFormat(Enum):
    NATIVE = "native"
    NGINX = "nginx"
    HAPROXY = "haproxy"
    APACHE = "apache"

    @property
    def sizes(self) -> tuple[int, ...]:
        """The key sizes (bytes) this layout holds."""
        return (48,) if self is KeyFileFormat.APACHE else (48, 80)

    def hmac_first(self, aes_size: int) -> bool:
        """Whether the HMAC key comes before the AES key (else name | aes | hmac)."""
        return self in (KeyFileFormat.NATIVE, KeyFileFormat.APACHE) or (
            self is KeyFileFormat.NGINX and aes_size == 32
        )


@dataclass(frozen=True, slots=True)
class TicketKey:
    name: bytes
    hmac_key: bytes = field(repr=False)
    aes_key: bytes = field(repr=False)
    created: float = 0.0
    aes: algorithms.AES = field(init=False, repr=False, compare=False)
    # Per-thread AES block contexts for cbc_encrypt/cbc_decrypt: they die with the key.
    _blocks: threading.local = field(init=False, repr=False, compare=False)
    # Tickets this key opened lately, decoded (see session.memo): cleared when the keyring lets
    # the key go, and gone with the key.
    opened: SessionMemo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.name) != 16:
            raise ConfigError("a ticket key name is 16 bytes")
        if len(self.aes_key) not in (16, 32):
            raise ConfigError("a ticket AES key is 16 or 32 bytes")
        if len(self.hmac_key) < 16:
            raise ConfigError("a ticket HMAC key is at least 16 bytes")
        object.__setattr__(self, "aes", algorithms.AES(self.aes_key))
        object.__setattr__(self, "_blocks", threading.local())
        object.__setattr__(self, "opened", SessionMemo())

    # -- AES-CBC over whole blocks ---------------------------------------------------------
    # A ticket is sealed or opened per handshake; building a cryptography ``Cipher`` for each
    # costs more than the encryption (about 20 us on a busy server). So each thread keeps one
    # long-lived CBC encryptor and one ECB (raw block) decryptor per key; they die with it.
    # The encryptor's chaining value is the last ciphertext block it produced, so a message
    # with its own IV starts with P1 ^ IV ^ last: E(P1 ^ IV ^ last ^ last) = E(P1 ^ IV) = C1,
    # and the rest chains as usual. Decryption: P_i = D(C_i) ^ C_i-1, with C_0 = IV.
    def cbc_encrypt(self, iv: bytes, plaintext: bytes) -> bytes:
        """AES-CBC of ``plaintext`` (a whole number of blocks, padded by the caller)."""
        blocks = self._blocks
        try:
            enc = blocks.enc
        except AttributeError:
            enc = blocks.enc = Cipher(self.aes, modes.CBC(bytes(16))).encryptor()
            blocks.last = 0
        first = int.from_bytes(plaintext[:16], "big") ^ int.from_bytes(iv, "big") ^ blocks.last
        out: bytes = enc.update(first.to_bytes(16, "big") + plaintext[16:])
        blocks.last = int.from_bytes(out[-16:], "big")
        return out

    def cbc_decrypt(self, iv: bytes, ciphertext: bytes) -> bytes:
        """The inverse of :meth:`cbc_encrypt` (``ciphertext`` a whole number of blocks)."""
        blocks = self._blocks
        try:
            dec = blocks.dec
        except AttributeError:
            dec = blocks.dec = Cipher(self.aes, modes.ECB()).decryptor()  # noqa: S305 (block op)
        n = len(ciphertext)
        raw = dec.update(ciphertext)
        chain = int.from_bytes(iv + ciphertext[: n - 16], "big")
        return (int.from_bytes(raw, "big") ^ chain).to_bytes(n, "big")

    @classmethod
    def generate(
        cls, created: float, size: int = 80, rng: Callable[[int], bytes] = os.urandom
    ) -> TicketKey:
        if size == 48:
            return cls(rng(16), rng(16), rng(16), created)
        if size == 80:
            return cls(rng(16), rng(32), rng(32), created)
        raise ConfigError("ticket keys are 48 or 80 bytes")

    def to_bytes(self, fmt: KeyFileFormat = KeyFileFormat.NATIVE) -> bytes:
        """The key in ``fmt``'s byte order (for HAProxy: without the base64 armour)."""
        size = 16 + len(self.hmac_key) + len(self.aes_key)
        if size not in fmt.sizes:
            sizes = " or ".join(map(str, fmt.sizes))
            raise ConfigError(f"a {fmt.value} ticket key is {sizes} bytes; this one is {size}")
        if fmt.hmac_first(len(self.aes_key)):
            return self.name + self.hmac_key + self.aes_key
        return self.name + self.aes_key + self.hmac_key

    @classmethod
    def from_bytes(cls, raw: bytes, fmt: KeyFileFormat, created: float) -> TicketKey:
        if len(raw) not in fmt.sizes:
            sizes = " or ".join(map(str, fmt.sizes))
            raise ConfigError(
                f"a {fmt.value} ticket key is {sizes} bytes, got {len(raw)}; "
                "check the file and --ticket-key-format"
            )
        half = 16 if len(raw) == 48 else 32
        name, a, b = raw[:16], raw[16 : 16 + half], raw[16 + half :]
        if fmt.hmac_first(half):
            return cls(name, hmac_key=a, aes_key=b, created=created)
        return cls(name, hmac_key=b, aes_key=a, created=created)


def read_key_file(path: str | Path, fmt: KeyFileFormat, created: float) -> list[TicketKey]:
    """Keys in a file, the encrypting key first."""
    data = read_bounded(path, "ticket key file", MAX_KEY_FILE)
    if fmt is KeyFileFormat.HAPROXY:
        keys = []
        for n, text in enumerate(data.decode("ascii", "replace").splitlines(), 1):
            line = text.strip()
            if not line or line.startswith("#"):
                continue
            try:
                raw = base64.b64decode(line, validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(f"{path}:{n}: not a base64 ticket key") from None
            keys.append(TicketKey.from_bytes(raw, fmt, created))
        if not keys:
            raise ConfigError(f"{path}: no ticket keys")
        if len(keys) >= 2:
            enc = len(keys) - 2
            keys = [keys[enc]] + [k for i, k in enumerate(keys) if i != enc]
        return keys
    if len(data) not in fmt.sizes:
        sizes = " or ".join(map(str, fmt.sizes))
        raise ConfigError(
            f"{path}: a {fmt.value} ticket key file is {sizes} bytes, this one is {len(data)}"
        )
    return [TicketKey.from_bytes(data, fmt, created)]


def key_file_bytes(keys: Sequence[TicketKey], fmt: KeyFileFormat) -> bytes:
    """The content of a ``fmt`` key file holding ``keys`` (HAProxy: one line each, in order)."""
    if fmt is KeyFileFormat.HAPROXY:
        return b"".join(base64.b64encode(k.to_bytes(fmt)) + b"\n" for k in keys)
    if len(keys) != 1:
        raise ConfigError(f"a {fmt.value} key file holds exactly one key")
    return keys[0].to_bytes(fmt)


def write_key_file(path: str | Path, keys: Sequence[TicketKey], fmt: KeyFileFormat) -> None:
    """Write ``keys`` (private: mode 0600). Only ever called when the user asks for a file."""
    data = key_file_bytes(keys, fmt)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@runtime_checkable
class TicketKeySource(Protocol):
    """Where a ticket sealer gets its keys: this module's :class:`TicketKeyring`, or a fleet
    keyring fed from a shared store."""

    def encryption_key(self) -> TicketKey | None:
        """The key that seals new tickets now, or None (issue no tickets)."""

    def decryption_key(self, name: bytes) -> tuple[TicketKey, bool] | None:
        """(key, is the current encrypting key) for a key name, or None if unknown/erased."""

    def decrypts_until(self, key: TicketKey) -> float | None:
        """When ``key`` will be erased (seconds since the epoch), or None if not known."""


@dataclass(frozen=True, slots=True)
class _Snapshot:
    encrypt: TicketKey | None
    by_name: dict[bytes, TicketKey]
    oldest: float  # creation time of the oldest key kept


class TicketKeyring:
    """The encrypting key plus up to ``keep`` older keys that still decrypt.

    With ``generate=True`` (the default when no keys are given) a new random key is made every
    ``rotation_interval`` seconds; such keys live in memory only. Keys given explicitly (say, from
    a file shared by a fleet) are used as they are: rotate them with :meth:`install`.
    """

    def __init__(
        self,
        keys: Sequence[TicketKey] = (),
        *,
        rotation_interval: float = 3600.0,
        keep: int = 2,
        generate: bool | None = None,
        key_size: int = 80,
        static_key_lifetime: float | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if rotation_interval <= 0:
            raise ConfigError("rotation_interval must be positive")
        if keep < 0:
            raise ConfigError("keep must be zero or more")
        self.rotation_interval = rotation_interval
        self.keep = keep
        self.generate = (not keys) if generate is None else generate
        self.key_size = key_size
        self.static_key_lifetime = static_key_lifetime
        self._clock = clock
        self._rng = rng
        self._lock = threading.Lock()
        self.rotations = 0
        self._snap = self._build([])
        self._swap(list(keys))
        if self.generate and not keys:
            self.rotate()

    @property
    def max_key_age(self) -> float:
        return self.rotation_interval * (self.keep + 1)

    def _swap(self, keys: list[TicketKey]) -> None:
        """Make ``keys`` the snapshot (under the lock); the keys let go forget what they
        opened."""
        old = self._snap.by_name.values()
        self._snap = self._build(keys)
        for key in old:
            if key.name not in self._snap.by_name:
                key.opened.clear()

    @staticmethod
    def _build(keys: list[TicketKey]) -> _Snapshot:
        oldest = min((k.created for k in keys), default=float("inf"))
        return _Snapshot(keys[0] if keys else None, {k.name: k for k in keys}, oldest)

    def _ordered(self, snap: _Snapshot | None = None) -> list[TicketKey]:
        snap = snap or self._snap
        rest = [k for k in snap.by_name.values() if k is not snap.encrypt]
        rest.sort(key=lambda k: -k.created)
        return ([snap.encrypt] if snap.encrypt else []) + rest

    def keys(self) -> list[TicketKey]:
        """Current keys, the encrypting one first."""
        return self._ordered()

    def rotate(self) -> TicketKey:
        """Make a new random key the encrypting key now; the previous ``keep`` keys become
        decrypt-only and older ones are erased."""
        with self._lock:
            key = TicketKey.generate(self._clock(), self.key_size, self._rng)
            self._swap([key, *self._ordered()][: self.keep + 1])
            self.rotations += 1
            return key

    def install(self, keys: Sequence[TicketKey]) -> None:
        """Replace the keys, e.g. after a fleet-wide key file changes: the first encrypts, all
        the others decrypt (the whole list is kept, whatever ``keep`` says)."""
        names = [k.name for k in keys]
        if len(set(names)) != len(names):
            raise ConfigError("two ticket keys share a key name; every key needs its own name")
        with self._lock:
            self._swap(list(keys))

    def _maintain(self, now: float) -> _Snapshot:
        """The current snapshot, after any rotation or erasure that is due. Changes are made
        under the lock and only if still due for the snapshot current under the lock
        (compare-and-swap, as rustls' ``TicketRotator::maybe_roll``), so a concurrent
        :meth:`install` or rotation is never overwritten."""
        snap = self._snap
        if not self._due(snap, now):
            return snap
        with self._lock:
            snap = self._snap
            if self._due(snap, now):
                live = self._live(snap, now)
                if self.generate and (not live or now - live[0].created >= self.rotation_interval):
                    key = TicketKey.generate(now, self.key_size, self._rng)
                    live = [key, *live][: self.keep + 1]
                    self.rotations += 1
                self._swap(live)
            return self._snap

    def _due(self, snap: _Snapshot, now: float) -> bool:
        """Whether a key must be erased or made now."""
        if self.generate:
            enc = snap.encrypt
            if enc is None or now - enc.created >= self.rotation_interval:
                return True
            return now - snap.oldest >= self.max_key_age
        if self.static_key_lifetime is None:
            return False
        return now - snap.oldest >= self.static_key_lifetime

    def _lifetime(self) -> float | None:
        return self.max_key_age if self.generate else self.static_key_lifetime

    def _live(self, snap: _Snapshot, now: float) -> list[TicketKey]:
        """The snapshot's keys not yet past their lifetime, the encrypting one first."""
        limit = self._lifetime()
        keys = self._ordered(snap)
        return keys if limit is None else [k for k in keys if now - k.created < limit]

    def decrypts_until(self, key: TicketKey) -> float | None:
        limit = self._lifetime()
        return None if limit is None else key.created + limit

    def encryption_key(self) -> TicketKey | None:
        return self._maintain(self._clock()).encrypt

    def decryption_key(self, name: bytes) -> tuple[TicketKey, bool] | None:
        """(key, is_the_current_encrypting_key) for ``name``, or None if unknown/erased."""
        snap = self._maintain(self._clock())
        key = snap.by_name.get(name)
        if key is None:
            return None
        return key, key is snap.encrypt

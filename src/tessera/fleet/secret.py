"""The fleet secret and the AEAD that seals what a fleet keeps in Redis.

The fleet secret is 32 random bytes shared by every node (a file, mode 0600, an environment
variable, or a systemd credential, as hex); it is never written to Redis. Each use gets its own
key derived with HKDF (SHA-256) under a label, so a session-store key can never open a ticket
key and back. Values are sealed with AES-256-GCM, ``version | nonce[12] | ciphertext+tag``,
with the Redis key (or the ticket key's name) as associated data: a value moved to another key
does not open.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import ConfigError
from ..files import read_bounded
from .hygiene import warn_if_exposed

SECRET_SIZE = 32
ENV_VAR = "TESSERA_FLEET_SECRET"
# The credential a systemd unit passes with LoadCredential=fleet-secret:FILE: systemd puts it in
# $CREDENTIALS_DIRECTORY, readable by the service alone, so the file itself may stay root's.
CREDENTIAL = "fleet-secret"
SOURCE_HELP = (
    f"The fleet secret file (default: ${ENV_VAR}, else the systemd credential {CREDENTIAL}, "
    "given by LoadCredential=)."
)
_MAKE_ONE = "make one with `tessera keys fleet-secret -o FILE`"
_VERSION = b"\x01"
_NONCE = 12


@dataclass(frozen=True, slots=True)
class FleetSecret:
    """The fleet's shared secret. Its repr never shows the bytes."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < SECRET_SIZE:
            raise ConfigError(
                f"a fleet secret is at least {SECRET_SIZE} bytes; "
                "make one with `tessera keys fleet-secret -o FILE`"
            )

    @classmethod
    def generate(cls) -> FleetSecret:
        return cls(os.urandom(SECRET_SIZE))

    @classmethod
    def parse(cls, text: str, where: str) -> FleetSecret:
        digits = text.strip()
        try:
            secret = bytes.fromhex(digits)
        except ValueError:
            secret = b""
        if len(secret) < SECRET_SIZE:
            found = _what(digits)
            raise ConfigError(
                f"{where}: expected a fleet secret, {SECRET_SIZE * 2} hex digits on one line; "
                f"found {found} ({_MAKE_ONE})"
            )
        return cls(secret)

    @classmethod
    def load(cls, path: str | Path | None = None) -> FleetSecret:
        """From ``path`` (a warning if others may read it), else from $TESSERA_FLEET_SECRET,
        else from the systemd credential ``fleet-secret`` ($CREDENTIALS_DIRECTORY)."""
        if path is None and not os.environ.get(ENV_VAR):
            path = credential_path()
            if path is None:
                raise ConfigError(
                    f"no fleet secret: pass --fleet-secret FILE, set ${ENV_VAR}, or give the "
                    f"service LoadCredential={CREDENTIAL}:FILE (systemd); {_MAKE_ONE}"
                )
        if path is None:
            return cls.parse(os.environ[ENV_VAR], f"${ENV_VAR}")
        warn_if_exposed(path, "fleet secret file")
        data = read_bounded(path, "fleet secret file", 4096)
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise ConfigError(
                f"{path}: expected a fleet secret, {SECRET_SIZE * 2} hex digits on one line; "
                f"found binary data ({len(data)} bytes; {_MAKE_ONE})"
            ) from None
        return cls.parse(text, str(path))

    def write(self, path: str | Path, force: bool = False) -> None:
        """Write the secret as hex to ``path`` (mode 0600); refuses an existing file unless
        ``force``."""
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            raise ConfigError(f"{path} exists; pass --force to replace it") from None
        with os.fdopen(fd, "w", encoding="ascii") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(self.secret.hex() + "\n")

    def derive(self, label: str, size: int = 32) -> bytes:
        return HKDF(hashes.SHA256(), size, None, b"tessera fleet " + label.encode()).derive(
            self.secret
        )

    def box(self, label: str) -> SealedBox:
        return SealedBox(AESGCM(self.derive(label)))


def credential_path() -> Path | None:
    """The systemd credential ``fleet-secret``, if the service was given one."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / CREDENTIAL
    return path if path.exists() else None


def secret_source(path: str | Path | None) -> str:
    """Where :meth:`FleetSecret.load` takes the secret from, in words for messages."""
    if path is not None:
        return f"the fleet secret {path}"
    if os.environ.get(ENV_VAR):
        return f"the fleet secret ${ENV_VAR}"
    credential = credential_path()
    return f"the fleet secret {credential}" if credential else "the fleet secret"


def _what(text: str) -> str:
    if not text:
        return "nothing"
    if all(c in "0123456789abcdefABCDEF" for c in text):
        return f"{len(text)} hex digits"
    lines = len(text.splitlines())
    return f"{len(text)} characters on {lines} line(s), not all hex digits"


class SealedBox:
    """AES-256-GCM under one derived key; ``aad`` binds a value to where it is stored."""

    __slots__ = ("_aead",)

    def __init__(self, aead: AESGCM) -> None:
        self._aead = aead

    def __repr__(self) -> str:
        return "SealedBox(AES-256-GCM)"

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext, aad)

    @staticmethod
    def shaped(value: bytes) -> bool:
        """Whether ``value`` looks like something sealed here (version and length), whatever
        the key: a value that does not is not ours at all (a stub answering ``+OK``)."""
        return len(value) >= 1 + _NONCE + 16 and value[:1] == _VERSION

    def open(self, aad: bytes, sealed: bytes) -> bytes | None:
        """The plaintext, or None if ``sealed`` was not sealed here for ``aad`` (another fleet
        secret, another key, tampered)."""
        if not self.shaped(sealed):
            return None
        try:
            return self._aead.decrypt(sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :], aad)
        except InvalidTag:
            return None

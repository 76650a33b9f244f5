"""Reading the files a server is given (certificates, private keys, CA bundles, ticket keys),
bounded: a wrong path such as ``--cert /dev/zero`` is refused after a few MiB instead of growing
the process to GiBs — at start and on every SIGHUP reload."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

MAX_PEM_FILE = 1 << 20  # a certificate chain or a private key: far less in practice
MAX_CA_FILE = 16 << 20  # CA bundles (the system's is about 200 KiB)
MAX_KEY_FILE = 64 << 10  # ticket key files


def read_bounded(path: str | Path, what: str, limit: int = MAX_PEM_FILE) -> bytes:
    """The bytes of ``path``; :class:`ConfigError` if it cannot be read or holds more than
    ``limit`` bytes (``what``: "certificate file", "private key file"...)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the {what} ({e.strerror})") from None
    if len(data) > limit:
        raise ConfigError(
            f"{path}: the {what} is larger than {limit >> 10} KiB; is it the right file?"
        )
    return data

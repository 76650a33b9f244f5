"""The servers ``tessera keys sync`` writes keys for, one class per kind of target.

Each target turns a :class:`~.view.KeyView` into the files its server reads, in that server's
layout — the layouts themselves live in :mod:`tessera.session.keyring` (one place knows each):

==================  ==========================================  ================================
``--to``            files                                       the server
==================  ==========================================  ================================
``nginx:DIR``       ``DIR/ticket.{0,1,2}.key``, 80 bytes each   ``ssl_session_ticket_key``, one
                    (0: encrypting; 1, 2: next, decrypt-only)   line per file; reload to read
``haproxy:FILE``    3 base64 lines: decrypt-only, encrypting,   ``tls-ticket-keys FILE``; the
                    next (HAProxy's order)                      runtime API, or a reload
``node:FILE``       48 bytes, the encrypting key                ``server.setTicketKeys()``
``apache:FILE``     48 bytes, the encrypting key                ``SSLSessionTicketKeyFile``
==================  ==========================================  ================================

Slots a server has but the fleet cannot fill are filled with random keys that nobody ever
encrypts with (so a configuration can list fixed files). Node.js and Apache hold one key of 48
bytes (AES-128): they get a key *derived* from the fleet's encrypting key (HKDF-SHA256, with a
name of its own), the same on every host, so such servers resume each other's tickets — but
each rotation costs the tickets issued under the previous key, since they keep no other.

Every file is written atomically (a new file, mode 0600, renamed over the old one), so a server
reading it never sees half a key and no other user can read it for a moment.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ...session.keyring import KeyFileFormat, TicketKey, key_file_bytes
from .view import KeyView

NGINX_FILES = 3
NARROW_LABEL = b"tessera keys sync: a 48-byte ticket key"
KINDS = ("nginx", "haproxy", "node", "apache")

# What a target holds, slot by slot: a key name, or None for a random filler.
Held = tuple[bytes | None, ...]


class Target(Protocol):
    """Where one ``--to FORMAT:PATH`` writes."""

    path: Path  # the directory (nginx) or the file
    kind: str

    @property
    def label(self) -> str:
        """``FORMAT:PATH``, as given."""

    def holds(self, view: KeyView) -> Held:
        """What the target would hold for ``view`` (compared to decide whether to write)."""

    def write(self, view: KeyView) -> None:
        """Write the files for ``view``; raises OSError."""

    def encrypting(self, view: KeyView) -> TicketKey:
        """The key the target's server encrypts with for ``view``."""


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file beside ``path`` (mode 0600) and rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def narrow(key: TicketKey) -> TicketKey:
    """A 48-byte key (AES-128, a 16-byte HMAC key) for servers that take nothing longer,
    derived from ``key`` — every agent derives the same — with a name of its own (a tessera
    node offered its tickets answers "key name unknown", not a failed MAC)."""
    if len(key.aes_key) == 16 and len(key.hmac_key) == 16:
        return key
    hkdf = HKDF(hashes.SHA256(), 48, salt=key.name, info=NARROW_LABEL)
    raw = hkdf.derive(key.hmac_key + key.aes_key)
    return TicketKey(raw[:16], hmac_key=raw[16:32], aes_key=raw[32:], created=key.created)


def haproxy_ring(view: KeyView) -> tuple[TicketKey | None, TicketKey, TicketKey]:
    """HAProxy's three keys, in its order: decrypt-only (None: a filler), encrypting, and the
    last one, only accepted — the next key, or the encrypting key again when there is none
    (so that the runtime API can later append the next key without changing which key
    encrypts: see :mod:`.haproxy`)."""
    previous = view.retired[0].key if view.retired else None
    nxt = view.next_key
    return previous, view.encrypting, nxt if nxt is not None else view.encrypting


class _FileTarget:
    kind = ""

    def __init__(self, path: Path, rng: Callable[[int], bytes] = os.urandom) -> None:
        self.path = path
        self._rng = rng

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.path}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"

    def encrypting(self, view: KeyView) -> TicketKey:
        return view.encrypting

    def _filler(self) -> TicketKey:
        return TicketKey.generate(0.0, 80, self._rng)


class NginxTarget(_FileTarget):
    """``DIR/ticket.0.key`` (encrypting), ``ticket.1.key``, ``ticket.2.key``."""

    kind = "nginx"

    def files(self) -> list[Path]:
        return [self.path / f"ticket.{i}.key" for i in range(NGINX_FILES)]

    def _keys(self, view: KeyView) -> list[TicketKey | None]:
        rest: list[TicketKey | None] = list(view.decrypt_only()[: NGINX_FILES - 1])
        return [view.encrypting, *rest, *[None] * (NGINX_FILES - 1 - len(rest))]

    def holds(self, view: KeyView) -> Held:
        return tuple(k.name if k is not None else None for k in self._keys(view))

    def write(self, view: KeyView) -> None:
        # The decrypting files first: the encrypting file is never newer than its companions.
        pairs = list(zip(self.files(), self._keys(view), strict=True))
        for path, key in reversed(pairs):
            data = key_file_bytes([key or self._filler()], KeyFileFormat.NGINX)
            replace_file(path, data)


class HaproxyTarget(_FileTarget):
    """A ``tls-ticket-keys`` file: three base64 lines in HAProxy's order."""

    kind = "haproxy"

    def holds(self, view: KeyView) -> Held:
        return tuple(k.name if k is not None else None for k in haproxy_ring(view))

    def write(self, view: KeyView) -> None:
        keys = [k or self._filler() for k in haproxy_ring(view)]
        replace_file(self.path, key_file_bytes(keys, KeyFileFormat.HAPROXY))


class _OneKeyTarget(_FileTarget):
    fmt = KeyFileFormat.NATIVE

    def encrypting(self, view: KeyView) -> TicketKey:
        return narrow(view.encrypting)

    def holds(self, view: KeyView) -> Held:
        return (view.encrypting.name,)

    def write(self, view: KeyView) -> None:
        replace_file(self.path, key_file_bytes([self.encrypting(view)], self.fmt))


class NodeTarget(_OneKeyTarget):
    """48 bytes in Node.js's ``ticketKeys`` order (name, HMAC key, AES key)."""

    kind = "node"


class ApacheTarget(_OneKeyTarget):
    """48 bytes for mod_ssl's ``SSLSessionTicketKeyFile``."""

    kind = "apache"
    fmt = KeyFileFormat.APACHE


_CLASSES: dict[str, Callable[[Path], Target]] = {
    "nginx": NginxTarget,
    "haproxy": HaproxyTarget,
    "node": NodeTarget,
    "apache": ApacheTarget,
}


class TargetError(ValueError):
    """A ``--to`` value that cannot be used; the message says why and what to do."""


def parse_target(spec: str) -> Target:
    """``FORMAT:PATH`` -> a target; the directory (nginx) or the file's directory must exist."""
    kind, sep, raw = spec.partition(":")
    if not sep or kind not in _CLASSES or not raw:
        raise TargetError(f"{spec!r}: expected FORMAT:PATH with FORMAT one of {', '.join(KINDS)}")
    path = Path(raw).absolute()
    directory = path if kind == "nginx" else path.parent
    if not directory.is_dir():
        what = "directory" if kind == "nginx" else "directory for the file"
        raise TargetError(f"{spec}: no such {what} {directory}; create it (on tmpfs, say /run)")
    return _CLASSES[kind](path)


def parse_targets(specs: Sequence[str]) -> list[Target]:
    targets = [parse_target(s) for s in specs]
    labels = [t.label for t in targets]
    if len(set(labels)) != len(labels):
        raise TargetError("the same --to is given twice")
    return targets


def filesystem_type(path: Path, mounts: str = "/proc/self/mounts") -> str | None:
    """The type of the filesystem ``path`` is on (``tmpfs``, ``ext4``...), None if unknown."""
    try:
        table = Path(mounts).read_text()
    except OSError:
        return None
    best, kind = "", None
    real = str(path.resolve())
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def on_persistent_disk(target: Target) -> str | None:
    """The filesystem type when ``target`` is not on a memory filesystem (tmpfs, ramfs)."""
    path = target.path
    kind = filesystem_type(path if path.is_dir() else path.parent)
    return None if kind in (None, "tmpfs", "ramfs") else kind

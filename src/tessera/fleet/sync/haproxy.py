"""HAProxy's runtime API (``--haproxy-socket PATH``): rotate its ticket keys without a reload.

HAProxy keeps a ring of three keys per ``tls-ticket-keys`` file (``show tls-keys #ID`` dumps it
oldest first): the oldest only decrypts, the middle one encrypts, the last is only accepted.
``set ssl tls-key #ID KEY`` overwrites the oldest with ``KEY``, which becomes the last, and the
previous last starts encrypting — one push moves every key along by one slot. So a push never
changes just one slot, and what encrypts after a push is whatever was last before it. The ring
is therefore kept so that the last slot is always the encrypting key again or the next key:

====================  =============================  =============================
ring before           fleet change                   pushes (ring after)
====================  =============================  =============================
``[d, E, E]``         next key ``N`` published       ``N`` -> ``[E, E, N]``
``[d, E, N]``         ``N`` starts encrypting        ``N`` -> ``[E, N, N]``
anything else         (an agent just started...)     ``E``, then ``N`` or ``E``
====================  =============================  =============================

In the first two rows every push leaves HAProxy encrypting with the fleet's encrypting key; the
decrypt-only key of the moment is dropped one rotation early while a next key is waiting (a
ticket older than a rotation then costs a full handshake on HAProxy). In the last row — a ring
out of step — HAProxy encrypts, between the two pushes (microseconds), with what was last in
its ring. The ring is read back after the pushes and compared.

Each command is one connection to the socket (HAProxy's non-interactive mode). The keys read
back from ``show tls-keys`` are compared by name and never logged.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import socket
from collections.abc import Sequence

from ...session.keyring import KeyFileFormat, TicketKey

MAX_REPLY = 1 << 20
UPDATED = "TLS ticket key updated"
_REF = re.compile(r"^(\d+) \((.*)\)$")
_KEY = re.compile(r"^\d+\.(\d+) (\S+)$")


class HaproxyError(Exception):
    """HAProxy could not be reached or refused a command; the message says which."""


def ring_pushes(ring: Sequence[bytes], encrypting: TicketKey, last: TicketKey) -> list[TicketKey]:
    """The keys to push so that ``encrypting`` encrypts and ``last`` is last, from ``ring``
    (key names, oldest first), every push leaving ``encrypting`` encrypting when the ring is
    in step (see the module docstring)."""
    if len(ring) < 2:
        return [encrypting, last]
    if ring[-2] == encrypting.name and ring[-1] == last.name:
        return []
    if ring[-2] == encrypting.name and ring[-1] == encrypting.name:
        return [last]
    if ring[-1] == encrypting.name:
        return [last]
    return [encrypting, last]


class HaproxyRuntime:
    """One HAProxy's admin socket (``stats socket PATH level admin``)."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = 5.0) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"HaproxyRuntime({self.path})"

    def command(self, line: str) -> str:
        """Send one command, return HAProxy's whole answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(self.path)
                s.sendall(line.encode("ascii") + b"\n")
                reply = b""
                while chunk := s.recv(65536):
                    reply += chunk
                    if len(reply) > MAX_REPLY:
                        raise HaproxyError(f"HAProxy at {self.path}: answer too long")
        except OSError as e:
            raise HaproxyError(f"cannot talk to HAProxy at {self.path}: {e}") from None
        return reply.decode("utf-8", "replace")

    def reference(self, path: str | os.PathLike[str]) -> str:
        """``#ID`` of the ``tls-ticket-keys`` file ``path`` in this HAProxy."""
        listed = []
        for line in self.command("show tls-keys").splitlines():
            m = _REF.match(line.strip())
            if m is None:
                continue
            listed.append(m.group(2))
            if _same_file(m.group(2), os.fspath(path)):
                return f"#{m.group(1)}"
        has = ", ".join(listed) or "none"
        raise HaproxyError(
            f"HAProxy at {self.path} has no 'tls-ticket-keys {path}' (it has: {has}); "
            "give the same path to --to haproxy: as in its configuration"
        )

    def ring(self, ref: str) -> list[bytes]:
        """The key names in ``ref``'s ring, oldest first (the encrypting one second to last)."""
        names = []
        for line in self.command(f"show tls-keys {ref}").splitlines():
            m = _KEY.match(line.strip())
            if m is None:
                continue
            try:
                names.append(base64.b64decode(m.group(2), validate=True)[:16])
            except (binascii.Error, ValueError):
                raise HaproxyError(f"HAProxy at {self.path}: unreadable key in {ref}") from None
        if not names:
            raise HaproxyError(f"HAProxy at {self.path} shows no keys for {ref}")
        return names

    def push(self, ref: str, key: TicketKey) -> None:
        armoured = base64.b64encode(key.to_bytes(KeyFileFormat.HAPROXY)).decode("ascii")
        answer = self.command(f"set ssl tls-key {ref} {armoured}").strip()
        if not answer.startswith(UPDATED):
            hint = ""
            if "wrong size" in answer:
                size = len(key.to_bytes())
                hint = (f" (its keys are not {size} bytes long: restart HAProxy once on the "
                        "file keys sync wrote)")  # fmt: skip
            raise HaproxyError(f"HAProxy at {self.path} refused a key for {ref}: {answer}{hint}")

    def sync(self, path: str | os.PathLike[str], encrypting: TicketKey, last: TicketKey) -> int:
        """Bring the ring of ``path`` in step: ``encrypting`` encrypts, ``last`` is last. The
        number of keys pushed."""
        ref = self.reference(path)
        pushes = ring_pushes(self.ring(ref), encrypting, last)
        for key in pushes:
            self.push(ref, key)
        after = self.ring(ref)
        if after[-2:] != [encrypting.name, last.name]:
            raise HaproxyError(
                f"HAProxy at {self.path}: the keys of {path} are not as pushed "
                "(another program changing them?)"
            )
        return len(pushes)


def _same_file(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)

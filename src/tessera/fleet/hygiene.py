"""Keeping secrets in memory and in files private: a warning for a secret file others can read
(as ssh warns about a private key), and no core dumps while secrets are loaded.

Used by every command that loads a fleet secret, a ticket key file or a private key; the
functions never fail a start — a file that cannot be checked is simply not warned about.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import stat
from pathlib import Path

log = logging.getLogger("tessera")
_warned: set[str] = set()


def exposed(path: str | Path) -> int | None:
    """The permission bits of ``path`` if its group or others may read or write it (a
    symlink is judged by its target), else None."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    return mode if mode & 0o077 else None


def warn_if_exposed(path: str | Path, what: str) -> bool:
    """Log a warning (once per file) when ``path`` is readable by its group or others; True if
    it is. ``what``: the file's role, e.g. "fleet secret file"."""
    mode = exposed(path)
    if mode is None:
        return False
    key = str(path)
    if key not in _warned:
        _warned.add(key)
        log.warning(
            "%s %s has permissions %04o: other users on this machine may read the secret in "
            "it; make it private with chmod 600 %s",
            what, path, mode, path,
        )  # fmt: skip
    return True


def disable_core_dumps() -> bool:
    """Set this process's core file limit to 0 (soft and hard, inherited by workers), so a
    crash cannot write ticket keys, master secrets or private keys to disk. True if the
    limit is 0 now."""
    with contextlib.suppress(OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return resource.getrlimit(resource.RLIMIT_CORE)[0] == 0

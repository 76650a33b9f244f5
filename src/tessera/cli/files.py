"""Files that hold secrets (ticket keys, saved sessions): written only when asked, mode 0600."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import click


def write_private(
    path: str | Path, write: Callable[[Path], object], *, overwrite: bool, option: str = "--force"
) -> None:
    """Write a secret file with ``write(temporary_path)``: the data goes to a new 0600 file
    beside ``path`` that is then renamed over it, so the secret is never readable by others,
    not even for a moment, whatever the mode of a file it replaces. Without ``overwrite`` an
    existing ``path`` is refused (the error names ``option``)."""
    target = Path(path)
    if not overwrite and (target.exists() or target.is_symlink()):
        raise click.UsageError(f"{target} already exists; pass {option} to overwrite it")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)  # mkstemp made it 0600
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

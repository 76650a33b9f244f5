"""NSS key log files (the SSLKEYLOGFILE format Wireshark reads).

Key material is written only to a file the user names, either explicitly or through the
``SSLKEYLOGFILE`` environment variable, never anywhere else.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


def keylog_to_file(path: str | Path) -> Callable[[str], None]:
    """A ``keylog`` callback that appends lines to ``path`` (created with mode 0600)."""
    lock = threading.Lock()
    target = Path(path)

    def write(line: str) -> None:
        with lock:
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="ascii") as f:
                f.write(line + "\n")

    return write


def keylog_from_env() -> Callable[[str], None] | None:
    path = os.environ.get("SSLKEYLOGFILE")
    return keylog_to_file(path) if path else None

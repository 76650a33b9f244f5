"""Nothing a test starts outlives the test session.

Every process the tests start inherits one environment variable whose value is unique to this
pytest session (set at import, before any test runs). At the end of the session, a process that
still carries it is a leftover: a server a fixture forgot to stop, a daemon that escaped its
process group, a worker whose supervisor died. Other test runs on the same box carry another
value, so they are never counted. (A program started with an environment of its own, without
``os.environ``, escapes the check; the tests' helpers all pass ``os.environ`` on.)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from pathlib import Path

from waiting import wait_until

VARIABLE = "TESSERA_TEST_SESSION"
MARK = f"{VARIABLE}={secrets.token_hex(8)}".encode()


def mark_this_session() -> None:
    """Every process started from now on carries this session's mark."""
    os.environ[VARIABLE] = MARK.split(b"=", 1)[1].decode()


def _alive_and_marked(proc: Path) -> str | None:
    """``proc``'s command line if it carries the mark and has not ended (a zombie has)."""
    with contextlib.suppress(OSError, ValueError):
        if MARK not in (proc / "environ").read_bytes().split(b"\0"):
            return None
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return None
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        return cmdline.strip()[:200] or "?"
    return None


def leftovers() -> dict[int, str]:
    """The processes this session started that still run: pid -> command line."""
    out: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            cmdline = _alive_and_marked(proc)
            if cmdline is not None:
                out[int(proc.name)] = cmdline
    return out


def check_and_kill(grace: float = 10.0) -> dict[int, str]:
    """The leftovers still running after ``grace`` s (a process being stopped may take a moment
    to go), each killed; empty when the session left nothing behind."""
    left: dict[int, str] = {}

    def gone() -> bool:
        nonlocal left
        left = leftovers()
        return not left

    with contextlib.suppress(AssertionError):
        wait_until(gone, "leftover processes", grace)
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return left

"""Waiting on a condition, never on the clock: the one poll loop of the tests (and benchmarks).

A test waits for the thing itself (a banner, a port, a log line, a counter, a file), polled
every few milliseconds, and fails after a deadline showing why (the process's output). The
deadline is generous on purpose: it costs nothing when the condition comes, and this box runs
the suite beside CPU hogs and other test runs, where a server can take seconds to start.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# What a condition may take on a loaded 2-core box before it is a failure (seconds).
WAIT = 30.0
POLL = 0.02


def wait_until(check: Callable[[], object], what: str, timeout: float = WAIT,
               details: Callable[[], str] | None = None,
               ignore: tuple[type[BaseException], ...] = ()) -> None:  # fmt: skip
    """Poll ``check`` until it returns something true (``ignore``: exceptions that mean "not
    yet"); after ``timeout`` s fail naming ``what``, with ``details()`` (a process's output)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except ignore:
            pass
        if time.monotonic() > deadline:
            more = f"\n{details()}" if details is not None else ""
            raise AssertionError(f"after {timeout:g} s: {what}{more}")
        time.sleep(POLL)

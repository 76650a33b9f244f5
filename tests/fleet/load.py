"""Clients resuming on random nodes under load, every connection recorded: the fleet tests'
and ``bench/fleet.py``'s soak runs (no pytest here: the benchmark imports it too)."""

from __future__ import annotations

import random
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Context = ssl.SSLContext
Connect = Callable[[int, ssl.SSLContext, ssl.SSLSession | None],
                   tuple[bool, ssl.SSLSession | None]]  # fmt: skip


@dataclass(frozen=True)
class Conn:
    at: float  # time.monotonic() when the connection started
    mode: str
    offered: bool  # the client offered a session (id or ticket) to resume
    resumed: bool
    ticket: bool  # the connection left the client holding a ticket (ticket modes)
    stale: bool = False  # the session offered had (about) reached its lifetime: the client
    # may leave it out itself (OpenSSL checks in whole seconds)


class Load:
    """Client threads (one per mode in ``modes``), each resuming its last session on a random
    node of ``ports`` in a loop (bounded: at most ``limit`` seconds); every connection is
    recorded, every failed one too. ``context(mode)`` makes a client's SSLContext (``tls12-id``,
    ``tls12-ticket``, ``tls13``); ``connect(port, ctx, session)`` makes one connection and
    answers (resumed, the session to offer next)."""

    def __init__(self, ports: list[int], modes: Sequence[str], context: Callable[[str], Context],
                 connect: Connect, pause: tuple[float, float] = (0.01, 0.05),
                 limit: float = 300.0) -> None:  # fmt: skip
        self.ports = ports
        self.context = context
        self.connect = connect
        self.pause = pause
        self.limit = limit
        self.results: list[Conn] = []
        self.errors: list[str] = []
        self.sessions: dict[int, ssl.SSLSession] = {}  # each client's latest session
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(m, i))
                         for i, m in enumerate(modes)]  # fmt: skip

    def _client(self, mode: str, seed: int) -> None:
        rng = random.Random(seed)
        ctx = self.context(mode)
        session = None
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            offered = session is not None and bool(session.has_ticket or session.id)
            stale = session is not None and session.time + session.timeout <= time.time() + 1
            at = time.monotonic()
            try:
                reused, session = self.connect(rng.choice(self.ports), ctx, session)
            except OSError as e:
                self.errors.append(f"{mode}: {e}")
                continue
            ticket = session is not None and session.has_ticket
            if session is not None:
                self.sessions[seed] = session
            self.results.append(Conn(at, mode, offered, reused, ticket, stale))
            time.sleep(rng.uniform(*self.pause))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def since(self, start: float, end: float = float("inf")) -> list[Conn]:
        return [c for c in list(self.results) if start <= c.at < end]

    def wait(self, what: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not what():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def misses(self, start: float, end: float = float("inf")) -> list[Conn]:
        """Connections that offered a session and did not resume."""
        return [c for c in self.since(start, end) if c.offered and not c.resumed]

    def healed_after(self, start: float, streak: int, timeout: float, quiet: float = 5.0) -> float:
        """Seconds from ``start`` to the last miss after it, once ``streak`` connections in a
        row have resumed and no miss has happened for ``quiet`` seconds (inf if that never
        happens within ``timeout``)."""

        def healed() -> bool:
            after = self.since(start)
            if len(after) < streak or not all(c.resumed for c in after[-streak:]):
                return False
            last = max((c.at for c in self.misses(start)), default=start)
            return time.monotonic() - last >= quiet

        if not self.wait(healed, timeout):
            return float("inf")
        return max((c.at for c in self.misses(start)), default=start) - start

    def counts(self) -> dict[str, int]:
        """Connections, failures, resumptions, misses, and ticket-mode connections that left
        the client without a ticket."""
        tickets = [c for c in self.results if c.mode != "tls12-id"]
        return {
            "connections": len(self.results),
            "failed": len(self.errors),
            "resumed": sum(c.resumed for c in self.results),
            "offered, not resumed": len(self.misses(0)),
            "without a ticket": sum(not c.ticket for c in tickets),
        }

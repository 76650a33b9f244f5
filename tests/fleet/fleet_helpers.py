"""Start ``tessera serve`` nodes that share a Redis, and talk to them with real clients."""

from __future__ import annotations

import random
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from peers import HTTP_GET, TESSERA, Peer, openssl_s_client
from resumption_helpers import StatusPage, outcomes, parse_status_page

from conftest import Pki, free_port

KEY_REFRESH = 0.25  # fast refresh for tests: a new key encrypts 0.5 s after it is published
WIDE = {"COLUMNS": "300"}


def fleet_node(pki: Pki, log_dir: Path, redis_url: str | None, secret: Path | None, *args: str,
               namespace: str = "default", name: str = "node",
               env: dict[str, str] | None = None) -> Peer:  # fmt: skip
    """``tessera serve --www`` with the test PKI, sharing ``redis_url`` (None: no Redis)."""
    port = free_port()
    argv = [*TESSERA, "serve", "--port", str(port), "--www", "--handshake-timeout", "5",
            "--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key),
            "--key-refresh", str(KEY_REFRESH), *args]  # fmt: skip
    if redis_url is not None:
        argv += ["--redis", redis_url, "--redis-namespace", namespace]
    if secret is not None:
        argv += ["--fleet-secret", str(secret)]
    return Peer(argv, port=port, log_dir=log_dir, name=name, env={**WIDE, **(env or {})})


def wait_for_tickets(peer: Peer, pki: Pki, timeout: float = 10.0) -> None:
    """Wait until a node issues tickets (its first fleet key encrypts after the lead time)."""
    deadline = time.monotonic() + timeout
    while True:
        page = page_from(peer, pki)
        if "encrypting" in page.text:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no encrypting ticket key:\n{page.text}")
        time.sleep(0.1)


def page_from(peer: Peer, pki: Pki, *args: str, version: str = "-tls1_3") -> StatusPage:
    """The node's --www page fetched with openssl s_client (``args``: -sess_in/-sess_out...)."""
    out = s_client_get(peer, pki, *args, version=version)
    page = parse_status_page(out)
    return StatusPage(out, page.outcome, page.fields, page.stats, page.reasons)


def s_client_get(peer: Peer, pki: Pki, *args: str, version: str = "-tls1_3") -> str:
    assert peer.port is not None
    return openssl_s_client(peer.port, version, "-CAfile", str(pki.ca_file), "-ign_eof",
                            *args, input=HTTP_GET, timeout=15)  # fmt: skip


def outcome(out: str) -> str:
    found = outcomes(out)
    assert len(found) == 1, out
    return found[0]


def worker_of(page: StatusPage) -> str:
    m = re.search(r"worker: (\d+) of", page.text)
    assert m, page.text
    return m.group(1)


# -- CPython ssl clients (C handshakes: cheap for the load loops) ------------------------------
def client_context(ca: Path, version: str) -> ssl.SSLContext:
    """``tls12-id`` (no tickets), ``tls12-ticket`` or ``tls13``."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if version.startswith("tls12"):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if version == "tls12-id":
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def python_get(port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None,
               timeout: float = 10.0) -> tuple[bool, ssl.SSLSession | None, str]:  # fmt: skip
    """GET / from a --www node: (resumed, the session to use next, the page)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, \
         ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:  # fmt: skip
        reused = s.session_reused
        s.sendall(HTTP_GET)
        page = b""
        while chunk := s.recv(65536):
            page += chunk
        return reused, s.session, page.decode(errors="replace")


def page_reason(page: str, reason: str) -> int:
    m = re.search(rf"^\s*{re.escape(reason)}: (\d+)$", page, re.MULTILINE)
    return int(m.group(1)) if m else 0


def http_backend(log_dir: Path) -> Peer:
    """A plaintext HTTP backend for ``tessera proxy`` (CPython's http.server)."""
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
            "--directory", str(log_dir)]  # fmt: skip
    return Peer(argv, port=port, log_dir=log_dir, name="http-backend")


def proxy_node(pki: Pki, log_dir: Path, backend: int, redis_url: str, secret: Path, *args: str,
               name: str = "proxy") -> Peer:  # fmt: skip
    """``tessera proxy`` in front of ``backend``, sharing ``redis_url``."""
    port = free_port()
    argv = [*TESSERA, "proxy", "--listen", f"127.0.0.1:{port}", "--backend",
            f"127.0.0.1:{backend}", "--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key),
            "--redis", redis_url, "--fleet-secret", str(secret), "--key-refresh",
            str(KEY_REFRESH), *args]  # fmt: skip
    return Peer(argv, port=port, log_dir=log_dir, name=name, env=WIDE)


# -- load: clients resuming on random nodes, every connection recorded ------------------------
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
    recorded, every failed one too."""

    def __init__(self, ports: list[int], ca: Path, modes: tuple[str, ...],
                 pause: tuple[float, float] = (0.01, 0.05), limit: float = 300.0) -> None:  # fmt: skip
        self.ports = ports
        self.ca = ca
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
        ctx = client_context(self.ca, mode)
        session = None
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            offered = session is not None and bool(session.has_ticket or session.id)
            stale = session is not None and session.time + session.timeout <= time.time() + 1
            at = time.monotonic()
            try:
                reused, session, _ = python_get(rng.choice(self.ports), ctx, session)
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

    def healed_after(self, start: float, streak: int, timeout: float) -> float:
        """Seconds from ``start`` to the last miss after it, once ``streak`` connections in a
        row have resumed since (inf if that never happens within ``timeout``)."""

        def healed() -> bool:
            after = self.since(start)
            return len(after) >= streak and all(c.resumed for c in after[-streak:])

        if not self.wait(healed, timeout):
            return float("inf")
        missed = self.misses(start)
        return max((c.at for c in missed), default=start) - start

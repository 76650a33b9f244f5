"""Start ``tessera serve`` nodes that share a Redis, and talk to them with real clients."""

from __future__ import annotations

import re
import socket
import ssl
import sys
from pathlib import Path

from load import Load
from peers import HTTP_GET, TESSERA, Peer, openssl_s_client
from resumption_helpers import StatusPage, outcomes, parse_status_page

from conftest import Pki, free_port
from waiting import WAIT, wait_until

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


def wait_output(peer: Peer, needle: str, timeout: float = WAIT) -> str:
    """The peer's output once it contains ``needle`` (a node listens a moment before its
    banner is all printed); fails at once if the node has ended without printing it."""

    def printed() -> bool:
        if needle in peer.output():
            return True
        assert peer.proc.poll() is None, f"{needle!r} never printed:\n{peer.output()}"
        return False

    wait_until(printed, f"{needle!r} never printed", timeout, peer.output)
    return peer.output()


def wait_for_tickets(peer: Peer, pki: Pki, timeout: float = WAIT) -> None:
    """Wait until a node issues tickets (its first fleet key encrypts after the lead time)."""
    text = ""

    def encrypting() -> bool:
        nonlocal text
        text = page_from(peer, pki).text
        return "encrypting" in text

    wait_until(encrypting, "no encrypting ticket key", timeout, lambda: text)


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
               name: str = "proxy", env: dict[str, str] | None = None) -> Peer:  # fmt: skip
    """``tessera proxy`` in front of ``backend``, sharing ``redis_url``."""
    port = free_port()
    argv = [*TESSERA, "proxy", "--listen", f"127.0.0.1:{port}", "--backend",
            f"127.0.0.1:{backend}", "--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key),
            "--redis", redis_url, "--fleet-secret", str(secret), "--key-refresh",
            str(KEY_REFRESH), *args]  # fmt: skip
    return Peer(argv, port=port, log_dir=log_dir, name=name, env={**WIDE, **(env or {})})


# -- load: clients resuming on random nodes (tests/fleet/load.py), with verified clients ---------
def client_load(ports: list[int], ca: Path, modes: tuple[str, ...],
                pause: tuple[float, float] = (0.01, 0.05), limit: float = 300.0) -> Load:  # fmt: skip
    """A :class:`Load` of CPython clients verifying the test CA and fetching the --www page."""

    def connect(port: int, ctx: ssl.SSLContext,
                session: ssl.SSLSession | None) -> tuple[bool, ssl.SSLSession | None]:  # fmt: skip
        reused, new, _ = python_get(port, ctx, session)
        return reused, new

    return Load(ports, modes, lambda mode: client_context(ca, mode), connect, pause, limit)


# -- cross-node checks shared by the single-Redis and Cluster/Sentinel tests -------------------
def openssl_resumes_across(a: Peer, b: Peer, pki: Pki, tmp: Path, version: str,
                           flags: tuple[str, ...], resumed_by: str) -> StatusPage:  # fmt: skip
    """A session OpenSSL made on ``a`` resumes on ``b`` (by ``resumed_by``); b's page."""
    sess = tmp / "sess.pem"
    first = s_client_get(a, pki, *flags, "-sess_out", str(sess), version=version)
    assert outcome(first) == "New", first
    page = page_from(b, pki, *flags, "-sess_in", str(sess), version=version)
    assert page.outcome == "Reused", page.text
    assert page.fields["Resumed"] == f"yes, by {resumed_by}", page.text
    return page


def early_data_replay_refused(a: Peer, b: Peer, pki: Pki, tmp: Path) -> None:
    """0-RTT accepted on ``a``, the same flight replayed to ``b`` refused."""
    sess = tmp / "sess.pem"
    early = tmp / "req.txt"
    early.write_bytes(HTTP_GET)
    assert outcome(s_client_get(a, pki, "-sess_out", str(sess))) == "New"
    first = s_client_get(a, pki, "-sess_in", str(sess), "-early_data", str(early))
    assert "Early data was accepted" in first, first
    replay = s_client_get(b, pki, "-sess_in", str(sess), "-early_data", str(early))
    assert "Early data was rejected" in replay, replay

"""Start ``tessera serve`` nodes that share a Redis, and talk to them with real clients."""

from __future__ import annotations

import re
import time
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

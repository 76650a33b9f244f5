"""Many CPython ``ssl`` clients at once against one ``tessera serve --www`` (a thread per
connection): every client resumes its own session, and the server's counters add up exactly.

This is what a shared session cache, keyring and statistics must survive in a real server:
handshakes, cache lookups, ticket sealing and counting running in parallel threads.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from peers import HTTP_GET, Peer, tessera_serve
from resumption_helpers import StatusPage, parse_status_page

from conftest import Pki, free_port

pytestmark = pytest.mark.interop

CLIENTS = 24
CONNECTIONS = 5  # per client: one full handshake, then resumptions of its session


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    logs = tmp_path_factory.mktemp("concurrency")
    certs = ["--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)]
    with tessera_serve(free_port(), logs, "--www", "--quiet", *certs) as peer:
        yield peer


def context(pki: Pki, mode: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    if mode == "tls13":
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    else:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if mode == "tls12-id":
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def fetch(
    port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None
) -> tuple[bool, ssl.SSLSession | None, StatusPage]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost", session=session) as tls,
    ):
        tls.sendall(HTTP_GET)
        page = b""
        while len(page) < 1 << 20 and (chunk := tls.recv(65536)):
            page += chunk
        return tls.session_reused, tls.session, parse_status_page(page.decode())


def client(port: int, ctx: ssl.SSLContext) -> list[tuple[bool, str]]:
    """One client's connections: (session_reused, the page's Resumed line) for each."""
    results = []
    session = None
    for _ in range(CONNECTIONS):
        reused, new_session, page = fetch(port, ctx, session)
        results.append((reused, page.fields["Resumed"]))
        session = session or new_session
    return results


@pytest.mark.parametrize(
    ("mode", "resumed_by", "counter"),
    [
        ("tls12-ticket", "ticket", "resumed_ticket"),
        ("tls12-id", "session_id", "resumed_session_id"),
        ("tls13", "psk", "resumed_psk"),
    ],
)
def test_parallel_clients_all_resume(
    server: Peer, pki: Pki, mode: str, resumed_by: str, counter: str
) -> None:
    assert server.port is not None
    ctx = context(pki, mode)
    before = fetch(server.port, ctx, None)[2].stats
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(client, server.port, ctx) for _ in range(CLIENTS)]
        results = [f.result(timeout=60) for f in futures]
    expected = [(False, "no")] + [(True, f"yes, by {resumed_by}")] * (CONNECTIONS - 1)
    assert results == [expected] * CLIENTS, results
    after = fetch(server.port, ctx, None)[2].stats
    # The counters saw every handshake exactly once (one full handshake per client, plus the
    # page fetch that read `after`); nothing fell back.
    assert after["full_handshakes"] - before["full_handshakes"] == CLIENTS + 1, (before, after)
    resumptions = CLIENTS * (CONNECTIONS - 1)
    assert after["resumed"] - before["resumed"] == resumptions, (before, after)
    assert after[counter] - before[counter] == resumptions, (before, after)
    assert after["misses"] == before["misses"], (before, after)
    assert after["ticket_failures"] == before["ticket_failures"], (before, after)

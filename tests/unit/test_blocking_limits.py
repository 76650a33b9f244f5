"""Blocking front end limits against a hostile peer (issue 13, item 4): a server that floods a
client with TLS 1.3 tickets cannot make TLSSocket hoard them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import Pki, serving
from tessera import ClientConfig, ClientSessionCache, ServerConfig, TLSServer, TLSSocket
from tessera.messages.misc import NewSessionTicket13

TICKETS = 300
TICKET_SIZE = 16 * 1024


def flood_tickets(tls: TLSSocket) -> None:
    """A hostile server: after the handshake, TICKETS NewSessionTickets of 16 KiB each, then
    the end of the stream."""
    ctx = tls.conn._ctx
    for i in range(TICKETS):
        ticket = i.to_bytes(4, "big") + bytes(TICKET_SIZE - 4)
        ctx.send_untranscribed(NewSessionTicket13(3600, i, i.to_bytes(4, "big"), ticket))
    ctx.port.flush()
    tls.sendall(b"done")
    tls.recv(1)  # until the client closes


@pytest.fixture
def flooding_server(pki: Pki) -> Iterator[TLSServer]:
    with serving(ServerConfig(certificates=(pki.ecdsa,), num_tickets=0), flood_tickets) as server:
        yield server


def test_a_ticket_flood_keeps_only_the_newest_sessions(flooding_server: TLSServer) -> None:
    cache = ClientSessionCache()
    config = ClientConfig(verify=False, session_cache=cache)
    with TLSSocket.connect(flooding_server.address, config, "localhost", timeout=20) as tls:
        tls.sock.settimeout(20)
        assert tls.recv_exactly(4) == b"done"  # every ticket was processed before this
        kept = [int.from_bytes(s.ticket[:4], "big") for s in tls.sessions]
    assert 1 <= len(kept) <= 16, f"the client kept {len(kept)} sessions of 16 KiB tickets"
    assert kept == list(range(TICKETS - len(kept), TICKETS))  # the newest ones
    assert len(cache) <= cache.tickets_per_server

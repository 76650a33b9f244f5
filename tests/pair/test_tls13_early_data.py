"""TLS 1.3 0-RTT in memory: accepted, rejected (server refuses, after a HelloRetryRequest,
replayed first flight, single-use ticket), and over the limit."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tessera import (
    ClientSession,
    EarlyDataRejected,
    FallbackReason,
    LocalProtocolError,
    ServerConnection,
)
from tessera.enums import AlertDescription, NamedGroup
from tessera.errors import UnexpectedMessage
from tessera.events import ApplicationData, HandshakeCompleted
from tessera.messages import extensions as X

from .helpers import ConnectionPair, Direction, MessageLog, World
from .test_tls13_support import (
    app_data,
    client13,
    client_hellos,
    expect_alert13,
    server13,
    server_hellos,
    tickets,
)

EARLY = b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n"


def ticket_for(world: World, server, **client_kw) -> ClientSession:  # type: ignore[no-untyped-def]
    pair = world.connect(client13(world, session_cache=None, **client_kw), server)
    return tickets(pair)[0]


def start_early(world: World, server, session: ClientSession, data: bytes = EARLY,  # type: ignore[no-untyped-def]
                **kw) -> ConnectionPair:  # fmt: skip
    client = kw.pop("client", None) or client13(world, session_cache=None)
    pair = world.pair(client, server, session=session, **kw)
    pair.client.start_handshake(early_data=data)
    return pair


def finish(pair: ConnectionPair) -> None:
    pair.pump()
    assert pair.client.handshake_complete, f"client stuck in {pair.client.state_name}"
    assert pair.server.handshake_complete, (
        f"server stuck in {pair.server.state_name}: the client's Finished was discarded "
        f"(skip budget left {pair.server._records.skip_budget})"
    )
    pair.client_events.extend(pair.client.events())


def test_tls13_early_data_accepted(world: World) -> None:
    server = server13(world, max_early_data_size=1024)
    ticket = ticket_for(world, server)
    assert ticket.state.max_early_data == 1024
    log = MessageLog()
    pair = start_early(world, server, ticket, tamper=log)
    finish(pair)
    early = [e for e in pair.server_events if isinstance(e, ApplicationData)]
    assert early and all(e.early for e in early)
    assert app_data(pair.server_events, early=True) == EARLY
    # The early data arrives before the handshake completes on the server.
    kinds = [type(e) for e in pair.server_events]
    assert kinds.index(ApplicationData) < kinds.index(HandshakeCompleted)
    for conn in (pair.client, pair.server):
        assert conn.info.early_data_accepted is True and conn.info.resumed_by == "psk"
    assert not any(isinstance(e, EarlyDataRejected) for e in pair.client_events)
    (ch,) = client_hellos(pair)
    assert ch.find(X.EarlyDataIndication) is not None
    assert log.names(Direction.C2S)[:3] == ["CLIENT_HELLO", "ChangeCipherSpec",
                                            "encrypted APPLICATION_DATA"]  # fmt: skip
    assert server.statistics["early_data_accepted"] == 1
    # After the handshake, ordinary (not early) data both ways.
    assert pair.send(Direction.C2S, b"late") == b"late"
    assert [e.early for e in pair.server_events if isinstance(e, ApplicationData)][-1] is False
    assert pair.send(Direction.S2C, b"reply") == b"reply"


def test_tls13_early_data_in_several_records(world: World) -> None:
    server = server13(world, max_early_data_size=40_000)
    ticket = ticket_for(world, server)
    data = bytes(range(256)) * 140  # 35,840 bytes: three records
    pair = start_early(world, server, ticket, data)
    finish(pair)
    assert app_data(pair.server_events, early=True) == data
    assert pair.server.info.early_data_accepted


def test_tls13_client_refuses_more_early_data_than_the_ticket_allows(world: World) -> None:
    server = server13(world, max_early_data_size=16)
    ticket = ticket_for(world, server)
    pair = world.pair(client13(world, session_cache=None), server, session=ticket)
    with pytest.raises(LocalProtocolError):
        pair.client.start_handshake(early_data=b"x" * 17)


def test_tls13_early_data_needs_a_ticket_that_allows_it(world: World) -> None:
    server = server13(world)  # max_early_data_size=0: tickets carry no early_data extension
    ticket = ticket_for(world, server)
    assert ticket.state.max_early_data == 0
    pair = world.pair(client13(world, session_cache=None), server, session=ticket)
    with pytest.raises(LocalProtocolError):
        pair.client.start_handshake(early_data=b"x")


def accepted_first_flight(world: World, server) -> tuple[ConnectionPair, bytes]:  # type: ignore[no-untyped-def]
    """A pair ready to replay a first flight (ClientHello + 0-RTT) that another connection of
    ``server`` has already accepted with its early data."""
    pair = start_early(world, server, ticket_for(world, server))
    first_flight = pair.client.data_to_send()
    original = ServerConnection(server)
    original.receive_data(first_flight)
    assert app_data(original.events(), early=True) == EARLY
    return pair, first_flight


def _rejected(pair: ConnectionPair) -> None:
    finish(pair)
    assert sum(isinstance(e, EarlyDataRejected) for e in pair.client_events) == 1
    assert app_data(pair.server_events, early=True) == b""
    for conn in (pair.client, pair.server):
        assert conn.info.early_data_accepted is False
    # The connection works; the client may now send the data again, as 1-RTT data.
    assert pair.send(Direction.C2S, EARLY) == EARLY
    assert pair.send(Direction.S2C, b"ok") == b"ok"


def test_tls13_early_data_rejected_by_server_setting(world: World) -> None:
    issuer = server13(world, max_early_data_size=1024)
    refuser = server13(world, max_early_data_size=0, ticket_keyring=issuer.ticket_keyring,
                       session_store=issuer.session_store)  # fmt: skip
    ticket = ticket_for(world, issuer)
    pair = start_early(world, refuser, ticket)
    _rejected(pair)
    assert pair.server.info.resumed_by == "psk"  # resumed, just without 0-RTT
    assert refuser.statistics["early_data_rejected"] == 1


def test_tls13_rejected_early_data_in_several_records_is_skipped(world: World) -> None:
    issuer = server13(world, max_early_data_size=40_000)
    refuser = server13(world, ticket_keyring=issuer.ticket_keyring,
                       session_store=issuer.session_store)  # fmt: skip
    pair = start_early(world, refuser, ticket_for(world, issuer), b"y" * 40_000)
    _rejected(pair)


def test_tls13_early_data_rejected_after_hello_retry_request(world: World) -> None:
    issuer = server13(world, max_early_data_size=1024)
    retrying = server13(world, max_early_data_size=1024, groups=(NamedGroup.secp256r1,),
                        ticket_keyring=issuer.ticket_keyring,
                        session_store=issuer.session_store)  # fmt: skip
    client = client13(world, session_cache=None, groups=(NamedGroup.x25519, NamedGroup.secp256r1),
                      key_share_groups=(NamedGroup.x25519,))  # fmt: skip
    ticket = tickets(world.connect(client, issuer))[0]
    pair = start_early(world, retrying, ticket, client=client)
    _rejected(pair)
    hrr, _ = server_hellos(pair)
    assert hrr.is_hello_retry_request
    ch1, ch2 = client_hellos(pair)
    assert ch1.find(X.EarlyDataIndication) is not None
    assert ch2.find(X.EarlyDataIndication) is None
    assert pair.server.info.resumed_by == "psk"


def test_tls13_early_data_replay_is_rejected(world: World) -> None:
    """The same first flight (ClientHello + 0-RTT) replayed to a second server sharing the
    ticket keys and the store: the strike register refuses the 0-RTT data there, the PSK still
    resumes, and the client completes the handshake with that second server."""
    server = server13(world, max_early_data_size=1024)
    pair, first_flight = accepted_first_flight(world, server)
    pair.inject(Direction.C2S, first_flight)  # the replay, to pair.server
    _rejected(pair)
    assert pair.server.info.resumed_by == "psk"
    assert server.statistics["early_data_accepted"] == 1
    assert server.statistics["early_data_rejected"] == 1


def test_tls13_early_data_replay_with_single_use_ticket(world: World) -> None:
    server = server13(world, max_early_data_size=1024, stateful_tickets=True, ticket_keyring=None)
    ticket = ticket_for(world, server)
    pair = start_early(world, server, ticket)
    first_flight = pair.client.data_to_send()
    original = ServerConnection(server)
    original.receive_data(first_flight)
    assert app_data(original.events(), early=True) == EARLY
    pair.inject(Direction.C2S, first_flight)
    _rejected(pair)
    # The ticket was taken by the first server: the replay got a full handshake.
    assert pair.server.info.resumed is False
    assert server.statistics.reason_count(FallbackReason.PSK_ALREADY_USED) == 1


def test_tls13_early_data_over_the_limit(world: World) -> None:
    """A client that sends more 0-RTT data than the ticket's max_early_data_size (it lies about
    its ticket's limit) gets unexpected_message."""
    server = server13(world, max_early_data_size=32)
    ticket = ticket_for(world, server)
    liar = replace(ticket, state=replace(ticket.state, max_early_data=1 << 16))
    pair = start_early(world, server, liar, b"z" * 33)
    assert expect_alert13(pair, UnexpectedMessage, AlertDescription.unexpected_message) == "server"


def test_tls13_early_data_exactly_at_the_limit(world: World) -> None:
    server = server13(world, max_early_data_size=32)
    pair = start_early(world, server, ticket_for(world, server), b"z" * 32)
    finish(pair)
    assert app_data(pair.server_events, early=True) == b"z" * 32


def test_tls13_early_data_needs_alpn_to_match(world: World) -> None:
    issuer = server13(world, max_early_data_size=1024, alpn_protocols=["h2"])
    other = server13(world, max_early_data_size=1024, alpn_protocols=["http/1.1", "h2"],
                     ticket_keyring=issuer.ticket_keyring,
                     session_store=issuer.session_store)  # fmt: skip
    ticket = ticket_for(world, issuer, alpn_protocols=["h2", "http/1.1"])
    client = client13(world, session_cache=None, alpn_protocols=["h2", "http/1.1"])
    pair = start_early(world, other, ticket, client=client)
    _rejected(pair)
    assert pair.client.info.alpn_protocol == "http/1.1"


def test_early_data_limit_says_what_the_offered_ticket_allows(world: World) -> None:
    """ClientConnection.early_data_limit: the offered ticket's max_early_data, 0 without a
    usable TLS 1.3 session (none, or one whose suite the client no longer offers)."""
    server = server13(world, max_early_data_size=1024)
    session = ticket_for(world, server)
    assert world.pair(client13(world, session_cache=None), server).client.early_data_limit == 0
    pair = world.pair(client13(world, session_cache=None), server, session=session)
    assert pair.client.early_data_limit == 1024
    other_suite = client13(world, session_cache=None, cipher_suites=["TLS_AES_256_GCM_SHA384"])
    assert world.pair(other_suite, server, session=session).client.early_data_limit == 0
    no_early = ticket_for(world, server13(world))
    assert world.pair(client13(world), server, session=no_early).client.early_data_limit == 0

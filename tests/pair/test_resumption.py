"""Session resumption that works: by session id (RFC 5246 §7.3) and by ticket (RFC 5077)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tessera import ClientAuth, ClientSession
from tessera.enums import HandshakeType
from tessera.events import SessionTicketReceived
from tessera.messages import ClientHello, NewSessionTicket12, ServerHello
from tessera.messages import extensions as X

from .helpers import (
    ALL_TLS12_SUITES,
    ConnectionPair,
    Direction,
    MessageLog,
    World,
    first_message,
    parse_records,
)

ABBREVIATED_S2C = ["SERVER_HELLO", "ChangeCipherSpec", "encrypted HANDSHAKE"]
ABBREVIATED_C2S = ["CLIENT_HELLO", "ChangeCipherSpec", "encrypted HANDSHAKE"]


def client_hello(pair: ConnectionPair) -> ClientHello:
    return first_message(pair, Direction.C2S, HandshakeType.CLIENT_HELLO).decode(ClientHello)


def server_hello(pair: ConnectionPair) -> ServerHello:
    return first_message(pair, Direction.S2C, HandshakeType.SERVER_HELLO).decode(ServerHello)


def tickets_received(pair: ConnectionPair) -> list[ClientSession]:
    return [e.session for e in pair.client_events if isinstance(e, SessionTicketReceived)]


def test_resume_by_session_id(world: World) -> None:
    server = world.server_config(ticket_keyring=None)
    client = world.client_config()
    first = world.connect(client, server)
    (session,) = tickets_received(first)
    assert session.ticket == b"" and session.session_id == first.server.info.session_id

    log = MessageLog()
    second = world.connect(client, server, tamper=log)
    for conn in (second.client, second.server):
        assert conn.info.resumed is True
        assert conn.info.resumed_by == "session_id"
        assert conn.info.session_id == first.server.info.session_id
        assert conn.info.cipher_suite == first.client.info.cipher_suite
        assert conn.info.extended_master_secret is True
    assert client_hello(second).session_id == session.session_id
    assert log.names(Direction.S2C) == ABBREVIATED_S2C
    assert log.names(Direction.C2S) == ABBREVIATED_C2S
    # The client still knows who it talks to.
    assert second.client.info.peer_certificates == first.client.info.peer_certificates
    assert second.send(Direction.C2S, b"resumed") == b"resumed"
    assert second.send(Direction.S2C, b"indeed") == b"indeed"
    snap = server.statistics.snapshot()
    assert snap["full_handshakes"] == 1
    assert snap["resumed"] == 1 and snap["resumed_session_id"] == 1 and snap["resumed_ticket"] == 0
    assert snap["sessions_cached"] == 1 and snap["tickets_issued"] == 0
    assert server.statistics.fallback_reasons() == {}


def test_resume_by_ticket(world: World) -> None:
    server = world.server_config(session_store=None)
    client = world.client_config()
    first = world.connect(client, server)
    assert first.server.info.session_id == b""  # no store: no session id (RFC 5077 §3.4)
    nst = first_message(first, Direction.S2C, HandshakeType.NEW_SESSION_TICKET).decode(
        NewSessionTicket12
    )
    assert nst.lifetime_hint == server.ticket_lifetime
    (session,) = tickets_received(first)
    assert session.ticket == nst.ticket and session.session_id == b""

    log = MessageLog()
    second = world.connect(client, server, tamper=log)
    for conn in (second.client, second.server):
        assert conn.info.resumed_by == "ticket"
    ch = client_hello(second)
    assert ch.find(X.SessionTicketExt) == X.SessionTicketExt(session.ticket)
    # RFC 5077 §3.4: the client makes up a session id, and the server echoes it to accept.
    assert len(ch.session_id) == 32
    assert server_hello(second).session_id == ch.session_id
    assert log.names(Direction.S2C) == ABBREVIATED_S2C
    assert second.send(Direction.C2S, b"x" * 40000) == b"x" * 40000
    snap = server.statistics.snapshot()
    assert (snap["full_handshakes"], snap["resumed"], snap["resumed_ticket"]) == (1, 1, 1)
    assert snap["tickets_issued"] == 1
    assert server.statistics.fallback_reasons() == {}


def test_ticket_is_preferred_to_session_id(world: World) -> None:
    store = world.store()
    server = world.server_config(session_store=store)
    by_id = world.connect(world.client_config(session_tickets=False), server).client.session
    by_ticket = world.connect(world.client_config(), server).client.session
    assert by_id.session_id and by_ticket.ticket
    both = replace(by_ticket, session_id=by_id.session_id)
    p = world.connect(world.client_config(), server, session=both)
    assert p.server.info.resumed_by == "ticket"
    # The client does not send the real session id next to a ticket (RFC 5077 §3.4).
    sid = client_hello(p).session_id
    assert sid != by_id.session_id and len(sid) == 32
    assert server_hello(p).session_id == sid


def test_fresh_randoms_give_fresh_keys(world: World) -> None:
    """Two abbreviated handshakes from one session: same master secret, new randoms, so new
    keys: the same first application record encrypts differently."""
    server = world.server_config()
    first = world.connect(world.client_config(), server)
    (session,) = tickets_received(first)
    masters, randoms, records = [], [], []
    for _ in range(2):
        lines: list[str] = []
        p = world.connect(world.client_config(keylog=lines.append), server, session=session)
        assert p.client.info.resumed_by == "ticket"
        masters.append(lines[0].split()[2])
        sh = server_hello(p)
        randoms.append((client_hello(p).random, sh.random))
        p.client.send_data(b"identical plaintext")
        records.append(parse_records(p.client.data_to_send())[0].fragment)
    assert masters[0] == masters[1]
    assert randoms[0][0] != randoms[1][0] and randoms[0][1] != randoms[1][1]
    # Same sequence number (1) and therefore the same explicit nonce, yet different bytes.
    assert records[0][:8] == records[1][:8]
    assert records[0][8:] != records[1][8:]


@pytest.mark.parametrize("by", ["session_id", "ticket"])
@pytest.mark.parametrize("suite", ALL_TLS12_SUITES, ids=lambda s: s.openssl_name)
def test_resume_every_suite(world: World, suite, by: str) -> None:  # type: ignore[no-untyped-def]
    server = (
        world.server_config(ticket_keyring=None)
        if by == "session_id"
        else world.server_config(session_store=None)
    )
    client = world.client_config(cipher_suites=suite.openssl_name)
    world.connect(client, server)
    p = world.connect(client, server)
    assert p.client.info.resumed_by == by == p.server.info.resumed_by
    assert p.client.info.cipher_suite == suite
    assert p.server.info.encrypt_then_mac is (not suite.is_aead)
    assert p.send(Direction.C2S, b"abc") == b"abc"
    assert p.send(Direction.S2C, b"def") == b"def"


def test_old_key_ticket_is_accepted_and_renewed(world: World) -> None:
    keyring = world.keyring(rotation_interval=3600, keep=2)
    server = world.server_config(ticket_keyring=keyring, session_store=None)
    client = world.client_config()
    first = world.connect(client, server)
    (old,) = tickets_received(first)
    old_key = keyring.encryption_key()
    assert old.ticket[:16] == old_key.name

    world.clock.advance(3601)
    log = MessageLog()
    second = world.connect(client, server, tamper=log)
    assert second.server.info.resumed_by == "ticket"
    new_key = keyring.encryption_key()
    assert new_key.name != old_key.name
    assert log.names(Direction.S2C) == [
        "SERVER_HELLO",
        "NEW_SESSION_TICKET",
        "ChangeCipherSpec",
        "encrypted HANDSHAKE",
    ]
    assert server_hello(second).find(X.SessionTicketExt) is not None
    (renewed,) = tickets_received(second)
    assert renewed.ticket != old.ticket
    assert renewed.ticket[:16] == new_key.name
    assert renewed.state.secret == old.state.secret
    assert server.statistics["tickets_issued"] == 2

    # The renewed ticket is under the current key: no further renewal.
    log = MessageLog()
    third = world.connect(client, server, tamper=log)
    assert third.client.info.resumed_by == "ticket"
    assert log.names(Direction.S2C) == ABBREVIATED_S2C
    assert tickets_received(third) == []


def test_resumption_keeps_session_when_no_new_ticket(world: World) -> None:
    cache = world.cache()
    client = world.client_config(session_cache=cache)
    server = world.server_config()
    world.connect(client, server)
    key = ("localhost", 443, "localhost")
    before = cache.get(key)
    world.connect(client, server)
    assert cache.count(key) == 1
    assert cache.get(key) == before


def test_server_tickets_off(world: World) -> None:
    server = world.server_config(ticket_keyring=None)
    first = world.connect(world.client_config(), server)
    assert server_hello(first).find(X.SessionTicketExt) is None
    assert tickets_received(first)[0].ticket == b""
    second = world.connect(first.client_config, server)
    assert second.server.info.resumed_by == "session_id"


class NoEncryptingKey:
    """A key source between keys (a fleet whose next key has not started): it opens nothing
    and seals nothing."""

    def encryption_key(self) -> None:
        return None

    def decryption_key(self, name: bytes) -> None:
        return None

    def decrypts_until(self, key: object) -> None:
        return None


def test_no_encrypting_key_gives_a_session_id_instead(world: World) -> None:
    """A client offering tickets to a server that can seal none now is promised no ticket and
    gets a session id, so it still resumes (by id)."""
    server = world.server_config(ticket_keyring=NoEncryptingKey())
    first = world.connect(world.client_config(), server)
    assert client_hello(first).find(X.SessionTicketExt) is not None
    assert server_hello(first).find(X.SessionTicketExt) is None
    assert first.server.info.session_id != b""
    (session,) = tickets_received(first)
    assert session.ticket == b"" and session.session_id == first.server.info.session_id
    second = world.connect(first.client_config, server)
    assert second.server.info.resumed_by == "session_id"
    assert server.statistics["tickets_issued"] == 0


def test_client_tickets_off(world: World) -> None:
    server = world.server_config()
    client = world.client_config(session_tickets=False)
    first = world.connect(client, server)
    assert client_hello(first).find(X.SessionTicketExt) is None
    assert server_hello(first).find(X.SessionTicketExt) is None
    assert server.statistics["tickets_issued"] == 0
    second = world.connect(client, server)
    assert second.client.info.resumed_by == "session_id"


def test_server_resumption_off(world: World) -> None:
    server = world.server_config(ticket_keyring=None, session_store=None)
    client = world.client_config()
    first = world.connect(client, server)
    assert first.server.info.session_id == b""
    assert tickets_received(first) == []
    assert first.client.session is None
    second = world.connect(client, server)
    assert second.client.info.resumed is False
    assert client_hello(second).session_id == b""
    assert server.statistics.snapshot()["full_handshakes"] == 2
    assert server.statistics.fallback_reasons() == {}


def test_client_without_cache(world: World) -> None:
    server = world.server_config()
    client = world.client_config(session_cache=None)
    first = world.connect(client, server)
    assert first.client.session is not None  # still available to save by hand
    second = world.connect(client, server)
    assert second.client.info.resumed is False
    # ... and the saved session resumes when passed explicitly.
    third = world.connect(client, server, session=first.client.session)
    assert third.client.info.resumed_by == "ticket"


def test_session_survives_pem_round_trip(world: World) -> None:
    server = world.server_config()
    first = world.connect(world.client_config(session_cache=None), server)
    saved = first.client.session.to_pem()
    p = world.connect(
        world.client_config(session_cache=None), server, session=ClientSession.from_pem(saved)
    )
    assert p.server.info.resumed_by == "ticket"


def test_resumption_keeps_alpn_and_client_certificate(world: World) -> None:
    server = world.server_config(client_auth=ClientAuth.REQUIRED, alpn_protocols=("h2",))
    client = world.client_config(certificate=world.certs.client, alpn_protocols=("h2",))
    world.connect(client, server)
    p = world.connect(client, server)
    assert p.server.info.resumed_by == "ticket"
    assert p.server.info.peer_certificates[0] == world.certs.client.leaf
    assert p.client.info.alpn_protocol == p.server.info.alpn_protocol == "h2"


def test_session_cache_keys_by_server_name(world: World) -> None:
    server = world.server_config(certificates=(world.certs.ecdsa, world.certs.alt))
    client = world.client_config()
    world.connect(client, server, server_name="localhost")
    p = world.connect(client, server, server_name="alt.example")
    assert p.client.info.resumed is False  # nothing cached for alt.example yet
    p = world.connect(client, server, server_name="localhost")
    assert p.client.info.resumed is True

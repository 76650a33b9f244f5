"""What a client can see of a server's resumption decisions (the facts the auditor reads):
the ServerHelloReceived event, the lifetime a NewSessionTicket announced, psk_ke offered
alone, and a ClientHello reproduced byte for byte from a fixed rng and clock."""

from __future__ import annotations

from dataclasses import replace

from tessera import ProtocolVersion
from tessera.connection import ClientConnection
from tessera.enums import ExtensionType, PskKeyExchangeMode
from tessera.events import ServerHelloReceived, SessionTicketReceived

from .helpers import ConnectionPair, World
from .test_tls13_support import client13, server13


def hellos(pair: ConnectionPair) -> list[ServerHelloReceived]:
    return [e for e in pair.client_events if isinstance(e, ServerHelloReceived)]


def received(pair: ConnectionPair) -> list[SessionTicketReceived]:
    return [e for e in pair.client_events if isinstance(e, SessionTicketReceived)]


def test_tls12_server_hello_shows_the_echo_and_the_ticket_promise(world: World) -> None:
    server = world.server_config(ticket_lifetime=4321)
    client = world.client_config()
    first = world.connect(client, server)
    (sh,) = hellos(first)
    assert sh.version is ProtocolVersion.TLS1_2 and not sh.hello_retry
    assert sh.offered_session_id == b""
    assert ExtensionType.session_ticket in sh.extensions
    assert ExtensionType.extended_master_secret in sh.extensions
    (ticket,) = received(first)
    assert ticket.lifetime_hint == 4321
    session = ticket.session
    second = world.connect(client, server, session=session)
    (sh2,) = hellos(second)
    assert second.client.info.resumed_by == "ticket"
    # RFC 5077 §3.4: the client sent a fresh id with the ticket; the server echoed it.
    assert len(sh2.offered_session_id) == 32 and sh2.session_id == sh2.offered_session_id


def test_tls12_unknown_ticket_shows_a_new_id_and_a_new_ticket(world: World) -> None:
    client = world.client_config()
    first = world.connect(client, world.server_config())
    other = world.server_config()  # other ticket keys, another cache
    second = world.connect(client, other, session=received(first)[0].session)
    (sh,) = hellos(second)
    assert not second.client.info.resumed
    assert sh.session_id != sh.offered_session_id
    assert len(received(second)) == 1  # ticket ignored, a new one issued


def test_tls12_session_id_only_has_no_lifetime_hint(world: World) -> None:
    client = world.client_config(session_tickets=False)
    pair = world.connect(client, world.server_config())
    (ev,) = received(pair)
    assert ev.lifetime_hint is None and ev.session.session_id and not ev.session.ticket
    (sh,) = hellos(pair)
    assert ExtensionType.session_ticket not in sh.extensions


def test_tls13_server_hello_shows_the_selected_psk(world: World) -> None:
    server = server13(world, ticket_lifetime=999)
    client = client13(world)
    first = world.connect(client, server)
    assert [t.lifetime_hint for t in received(first)] == [999, 999]
    (sh,) = hellos(first)
    assert ExtensionType.pre_shared_key not in sh.extensions
    second = world.connect(client, server, session=received(first)[0].session)
    (sh2,) = hellos(second)
    assert ExtensionType.pre_shared_key in sh2.extensions
    assert ExtensionType.key_share in sh2.extensions


def test_psk_ke_offered_alone(world: World) -> None:
    """A config naming psk_modes offers exactly those: psk_ke alone resumes with a psk_ke
    server (no key share) and falls back to a full handshake with one that lacks psk_ke."""
    client = client13(world, psk_ke=True, psk_modes=(PskKeyExchangeMode.psk_ke,))
    psk_ke_server = server13(world, psk_ke=True)
    first = world.connect(client, psk_ke_server)
    second = world.connect(client, psk_ke_server, session=received(first)[0].session)
    assert second.client.info.resumed_by == "psk" and second.client.info.group is None
    (sh,) = hellos(second)
    assert ExtensionType.key_share not in sh.extensions
    dhe_only = server13(world)
    first = world.connect(client, dhe_only)
    second = world.connect(client, dhe_only, session=received(first)[0].session)
    assert not second.client.info.resumed


def test_fixed_rng_and_clock_reproduce_the_client_hello(world: World) -> None:
    """The same rng output and clock give the same first flight, early data included: what
    the auditor's 0-RTT replay probe sends twice."""
    server = server13(world, max_early_data_size=100)
    client = client13(world)
    first = world.connect(client, server)
    session = received(first)[0].session
    fixed = b"\x07" * 64

    def flight() -> bytes:
        config = replace(client, rng=lambda n: fixed[:n], clock=lambda: session.state.created)
        conn = ClientConnection(config, "localhost", session=session)
        conn.start_handshake(early_data=b"GET / HTTP/1.0\r\n\r\n")
        return conn.data_to_send()

    assert flight() == flight()

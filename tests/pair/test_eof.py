"""``receive_data(b"")`` means the transport reached end of stream (as in h11).

Before the handshake completed it is a ``HandshakeTruncated`` error (and the connection refuses
further use); afterwards one ``ConnectionClosed`` event says the peer closed, with
``close_notify=False`` when no close_notify came first. After a close_notify, EOF adds nothing.
"""

from __future__ import annotations

import pytest

from tessera import ConnectionClosed, ConnectionClosedError, ProtocolVersion
from tessera.aio import AsyncMemoryStore
from tessera.errors import HandshakeTruncated, TLSError

from .helpers import Direction, World

TLS13 = ProtocolVersion.TLS1_3


def _versions(world: World, version: str) -> dict[str, object]:
    return {"max_version": TLS13} if version == "1.3" else {}


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("side", ["client", "server"])
def test_eof_after_close_notify_adds_nothing(world: World, version: str, side: str) -> None:
    kw = _versions(world, version)
    pair = world.connect(world.client_config(**kw), world.server_config(**kw))
    closer, other = (pair.server, pair.client) if side == "client" else (pair.client, pair.server)
    closer.close()
    other.receive_data(closer.data_to_send())
    assert other.events()[-1] == ConnectionClosed(close_notify=True)
    other.receive_data(b"")
    assert other.events() == []
    assert other.peer_closed and not other.failed


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("side", ["client", "server"])
def test_eof_without_close_notify_is_reported(world: World, version: str, side: str) -> None:
    kw = _versions(world, version)
    pair = world.connect(world.client_config(**kw), world.server_config(**kw))
    other = pair.client if side == "client" else pair.server
    sender = pair.server if side == "client" else pair.client
    sender.send_data(b"partial respon")
    other.receive_data(sender.data_to_send())
    other.events()
    other.receive_data(b"")
    assert other.events() == [ConnectionClosed(close_notify=False)]
    assert other.peer_closed and not other.failed
    other.receive_data(b"")  # a second EOF is not news
    assert other.events() == []
    other.send_data(b"the other direction still works")  # half closed, like TCP
    assert other.data_to_send()


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("stage", ["before any byte", "after the first flight"])
def test_eof_during_the_handshake_is_a_truncated_handshake(
    world: World, version: str, stage: str
) -> None:
    kw = _versions(world, version)
    pair = world.pair(world.client_config(**kw), world.server_config(**kw))
    pair.start()
    if stage == "after the first flight":
        pair.deliver(Direction.C2S)
        pair.intercept(Direction.S2C)  # the server's flight never arrives
        conn = pair.client
    else:
        conn = pair.server
    with pytest.raises(HandshakeTruncated, match="during the handshake") as info:
        conn.receive_data(b"")
    assert isinstance(info.value, ConnectionClosedError)
    assert conn.failed and not conn.handshake_complete
    with pytest.raises(ConnectionClosedError):
        conn.receive_data(b"\x16\x03\x03\x00\x01x")


def test_eof_in_the_middle_of_a_record_during_the_handshake(world: World) -> None:
    pair = world.pair()
    pair.start()
    flight = pair.client.data_to_send()
    pair.server.receive_data(flight[:20])
    with pytest.raises(HandshakeTruncated):
        pair.server.receive_data(b"")


def test_eof_while_awaiting_a_session_lookup(world: World) -> None:
    """A server paused on SessionLookupRequired whose client goes away: a truncated handshake;
    answering afterwards is refused (the front end drops the answer)."""
    store = world.store()
    client_config = world.client_config(session_tickets=False)
    # The session comes from a server asking the store itself; the next one awaits it.
    first = world.connect(client_config, world.server_config(session_store=store))
    server_config = world.server_config(async_session_store=AsyncMemoryStore(store))
    pair = world.pair(client_config, server_config, session=first.client.session)
    pair.start()
    pair.server.receive_data(pair.client.data_to_send())
    assert pair.server.awaiting_session
    with pytest.raises(HandshakeTruncated):
        pair.server.receive_data(b"")
    with pytest.raises(TLSError):
        pair.server.provide_session([None])

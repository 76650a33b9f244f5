"""Issue 13, item 3: 0-RTT anti-replay must survive a store filled with ordinary sessions, and
refuse early data (fail closed) when it cannot record a mark."""

from __future__ import annotations

from .helpers import Direction, World
from .test_tls13_early_data import _rejected, accepted_first_flight, start_early, ticket_for
from .test_tls13_support import server13


def test_replay_after_the_store_filled_with_sessions(world: World) -> None:
    """A 64-entry store, the original 0-RTT flight, then 100 TLS 1.2 handshakes that each put a
    session: the verbatim replay must still lose its early data."""
    server = server13(world, max_early_data_size=1024, session_store=world.store(64))
    pair, first_flight = accepted_first_flight(world, server)
    for _ in range(100):
        world.connect(world.client_config(session_cache=None, session_tickets=False), server)
    store = server.session_store
    assert store is not None and store.evictions > 0  # type: ignore[attr-defined]

    pair.inject(Direction.C2S, first_flight)  # the replay
    _rejected(pair)
    assert server.statistics["early_data_accepted"] == 1
    assert server.statistics["early_data_rejected"] == 1


def test_full_strike_register_refuses_early_data(world: World) -> None:
    """No room for a mark: early data is refused (the PSK still resumes)."""
    store = world.store(64)
    store.max_marks = 1
    server = server13(world, max_early_data_size=1024, session_store=store)
    assert store.add(b"someone else's mark", b"", 3600)
    ticket = ticket_for(world, server)
    pair = start_early(world, server, ticket)
    _rejected(pair)
    assert pair.server.info.resumed_by == "psk"
    assert store.marks_refused == 1

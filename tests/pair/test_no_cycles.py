"""A connection is freed by reference counting as soon as its owner drops it: nothing in it
points back at it (the renegotiation restart is a function, not a bound method), so a busy
server's connections never wait for the cyclic garbage collector — which would cost every
handshake a share of the collections, and keep each connection's keys in memory longer."""

from __future__ import annotations

import gc
import weakref

import pytest

from tessera import ProtocolVersion

from .helpers import World


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("resume", [False, True])
def test_connections_are_freed_without_the_garbage_collector(
    world: World, version: str, resume: bool
) -> None:
    kw = {"max_version": ProtocolVersion.TLS1_3} if version == "1.3" else {}
    server_config = world.server_config(**kw)
    client_config = world.client_config(**kw)
    first = world.connect(client_config, server_config)
    session = first.client.session if resume else None
    gc.collect()
    gc.disable()
    try:
        before = _handshake_objects()
        p = world.connect(client_config, server_config, session=session, address=None)
        assert p.server.info is not None and p.server.info.resumed == resume
        p.server.close()
        assert _handshake_objects() > before  # the count sees them while they live
        server, client = weakref.ref(p.server), weakref.ref(p.client)
        del p
        assert server() is None and client() is None
        assert _handshake_objects() == before  # contexts, states, records: all gone
    finally:
        gc.enable()


def _handshake_objects() -> int:
    """Live objects of tessera's connection, handshake and record modules."""
    prefixes = ("tessera.handshake", "tessera.record", "tessera.conn")
    return sum(
        1
        for o in gc.get_objects()
        if isinstance(module := type(o).__module__, str) and module.startswith(prefixes)
    )

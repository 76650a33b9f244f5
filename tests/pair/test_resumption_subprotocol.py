"""Resumption as a sub-protocol: the store contract (a spy counts every call), a store that
fails, external lookups answered by the caller (with 0-RTT records arriving before the answer),
the bound on PSK identities, and the decision every connection carries."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest

from tessera import ClientSession, FallbackReason, MemoryStore, ServerConnection
from tessera.crypto.key_exchange import KeyShare
from tessera.enums import ContentType, HandshakeType, NamedGroup, ProtocolVersion
from tessera.errors import LocalProtocolError, StoreError, StoreValueRejected, TLSError
from tessera.events import (
    Event,
    ResumptionDecided,
    SessionLookupRequired,
    SessionStoreUpdate,
)
from tessera.handshake.summary import MAX_PSK_IDENTITIES
from tessera.messages import ClientHello
from tessera.messages import extensions as X
from tessera.messages.base import encode_handshake
from tessera.session.resumption import EarlyDataRefusal, Mechanism, StoreLookup, StoreWrite

from .helpers import ConnectionPair, Direction, World
from .test_tls13_support import app_data, client13, server13, tickets

TLS12 = ProtocolVersion.TLS1_2


class SpyStore:
    """A MemoryStore that counts every call (rustls' tests/api.rs pins the store contract the
    same way): double lookups and lost single-use tickets show up as wrong counts."""

    def __init__(self, world: World) -> None:
        self.inner = world.store()
        self.calls: Counter[str] = Counter()
        self.down = False

    def _call(self, name: str, *args: Any) -> Any:
        self.calls[name] += 1
        if self.down:
            raise ConnectionError(f"store down ({name})")
        return getattr(self.inner, name)(*args)

    def put(self, key: bytes, value: bytes, ttl: float) -> None:
        self._call("put", key, value, ttl)

    def get(self, key: bytes) -> bytes | None:
        return self._call("get", key)  # type: ignore[no-any-return]

    def take(self, key: bytes) -> bytes | None:
        return self._call("take", key)  # type: ignore[no-any-return]

    def delete(self, key: bytes) -> None:
        self._call("delete", key)

    def add(self, key: bytes, value: bytes, ttl: float) -> bool:
        return self._call("add", key, value, ttl)  # type: ignore[no-any-return]

    def reset(self) -> None:
        self.calls.clear()


def decision(pair: ConnectionPair) -> Any:
    (d,) = [e.decision for e in pair.server_events if isinstance(e, ResumptionDecided)]
    assert pair.server.info is not None and pair.server.info.resumption is d
    return d


# -- the store contract, counted ---------------------------------------------------------------
def test_tls12_full_handshake_with_a_cache_is_one_put(world: World) -> None:
    spy = SpyStore(world)
    server = world.server_config(session_store=spy, ticket_keyring=None)
    world.connect(world.client_config(session_tickets=False), server)
    assert spy.calls == {"put": 1}


def test_tls12_session_id_resumption_is_one_get_and_no_put(world: World) -> None:
    spy = SpyStore(world)
    server = world.server_config(session_store=spy, ticket_keyring=None)
    client = world.client_config(session_tickets=False)
    world.connect(client, server)
    spy.reset()
    p = world.connect(client, server)
    assert p.server.info is not None and p.server.info.resumed_by == "session_id"
    assert spy.calls == {"get": 1}
    d = decision(p)
    assert d.resumed_by is Mechanism.SESSION_ID and d.kind == "session_id"


def test_tls12_ticket_resumption_never_touches_the_store(world: World) -> None:
    spy = SpyStore(world)
    server = world.server_config(session_store=spy)
    client = world.client_config()
    world.connect(client, server)
    assert spy.calls == {}  # a client that takes a ticket gets no cached id (RFC 5077 §3.4)
    p = world.connect(client, server)
    assert p.server.info is not None and p.server.info.resumed_by == "ticket"
    assert spy.calls == {}
    assert decision(p).key_name == p.client.offered_session.ticket[:16]  # type: ignore[union-attr]


def test_tls13_stateful_resumption_is_one_take_and_one_put(world: World) -> None:
    spy = SpyStore(world)
    server = server13(world, session_store=spy, ticket_keyring=None, stateful_tickets=True)
    client = client13(world)
    world.connect(client, server)
    assert spy.calls == {"put": 2}  # num_tickets=2
    spy.reset()
    p = world.connect(client, server)
    assert p.server.info is not None and p.server.info.resumed_by == "psk"
    assert spy.calls == {"take": 1, "put": 1}  # the ticket used, one fresh ticket


def test_tls13_hello_retry_request_keeps_a_single_use_ticket(world: World) -> None:
    """The HelloRetryRequest is decided before the store is asked: the ticket is taken once,
    after the second ClientHello, and the connection resumes."""
    spy = SpyStore(world)
    server = server13(
        world, session_store=spy, ticket_keyring=None, stateful_tickets=True,
        groups=(NamedGroup.secp256r1,),
    )  # fmt: skip
    client = client13(
        world,
        groups=(NamedGroup.x25519, NamedGroup.secp256r1),
        key_share_groups=(NamedGroup.x25519,),
    )
    world.connect(client, server)
    spy.reset()
    p = world.connect(client, server)
    assert p.server.info is not None and p.server.info.resumed_by == "psk"
    assert spy.calls["take"] == 1
    assert server.statistics.fallback_reasons() == {}


def test_tls13_stateless_0rtt_is_one_add(world: World) -> None:
    spy = SpyStore(world)
    server = server13(world, session_store=spy, max_early_data_size=1024)
    client = client13(world)
    first = world.connect(client, server)
    session = tickets(first)[0]
    spy.reset()
    p = world.pair(client, server, session=session)
    p.client.start_handshake(early_data=b"early")
    p.pump()
    assert app_data(p.server_events, early=True) == b"early"
    assert spy.calls == {"add": 1}
    assert decision(p).kind == "psk_0rtt"


# -- a store that fails --------------------------------------------------------------------------
def _run_guarded(pair: ConnectionPair) -> None:
    """Run the handshake; only TLSErrors may come out of the connections."""
    pair.start()
    try:
        pair.pump()
    except TLSError:
        raise
    except Exception as e:  # pragma: no cover - the failure this test exists to catch
        raise AssertionError(f"a non-TLS error escaped: {e!r}") from e


@pytest.mark.parametrize(
    "scenario", ["tls12-full", "tls12-id", "tls13-stateful", "tls13-0rtt", "tls12-fatal"]
)
def test_a_store_that_raises_costs_only_resumption(world: World, scenario: str) -> None:
    spy = SpyStore(world)
    tls13 = scenario.startswith("tls13")
    kw: dict[str, Any] = {"session_store": spy}
    if scenario == "tls13-stateful":
        kw.update(ticket_keyring=None, stateful_tickets=True)
    elif scenario == "tls13-0rtt":
        kw.update(max_early_data_size=1024)
    else:
        kw.update(ticket_keyring=None)
    server = server13(world, **kw) if tls13 else world.server_config(**kw)
    client = client13(world) if tls13 else world.client_config(session_tickets=False)
    first = world.connect(client, server)  # the store works here
    session = tickets(first)[0] if tls13 else first.client.session
    if scenario == "tls12-full":
        session = None  # nothing offered: only the session put after the handshake fails
    spy.down = True
    p = world.pair(client, server, session=session, address=None)  # no client cache
    if scenario == "tls13-0rtt":
        p.client.start_handshake(early_data=b"early")
        p.pump()
    elif scenario == "tls12-fatal":
        _run_guarded(p)  # a full handshake (its session put fails), then a fatal alert...
        with pytest.raises(TLSError):
            p.inject(Direction.C2S, bytes((ContentType.ALERT, 3, 3, 0, 2, 2, 40)))
        assert spy.calls["delete"] == 1  # ...whose delete fails too, quietly
    else:
        _run_guarded(p)
    assert p.server.handshake_complete and p.client.handshake_complete
    info = p.server.info
    assert info is not None
    stats = server.statistics
    assert stats["store_errors"] >= 1
    if scenario == "tls13-0rtt":
        # Stateless tickets need no store and resume; the strike register fails closed.
        assert info.resumed_by == "psk" and info.early_data_accepted is False
        assert stats["early_data_rejected"] == 1
        return
    assert not info.resumed
    if scenario not in ("tls12-full", "tls12-fatal"):
        assert stats.reason_count(FallbackReason.STORE_UNAVAILABLE) == 1


def test_0rtt_fails_closed_when_the_strike_register_is_down(world: World) -> None:
    spy = SpyStore(world)
    server = server13(world, session_store=spy, max_early_data_size=1024)
    client = client13(world)
    session = tickets(world.connect(client, server))[0]
    spy.down = True
    p = world.pair(client, server, session=session)
    p.client.start_handshake(early_data=b"early")
    p.pump()
    assert p.server.info is not None and p.server.info.resumed_by == "psk"
    assert p.server.info.early_data_accepted is False
    assert app_data(p.server_events, early=True) == b""
    d = decision(p)
    assert d.early_data_refusal is EarlyDataRefusal.STORE_UNAVAILABLE
    assert server.statistics["early_data_rejected"] == 1


# -- external lookups ------------------------------------------------------------------------------
def _external_pair(world: World, store: MemoryStore, **kw: Any) -> tuple[Any, Any, ClientSession]:
    server = server13(world, session_store=store, external_session_lookup=True, **kw)
    client = client13(world)
    p = world.pair(client, server)
    p.start()
    _pump_external(p, store)
    session = tickets(p)[0]
    return client, server, session


def _serve_events(server: ServerConnection, store: MemoryStore, events: list[Event]) -> None:
    for e in events:
        if isinstance(e, SessionStoreUpdate):
            for w in e.operations:
                if w.op == "put":
                    store.put(w.key, w.value, w.ttl)
                else:
                    store.delete(w.key)


def _answer(store: MemoryStore, ops: tuple[StoreLookup, ...]) -> list[Any]:
    out: list[Any] = []
    for op in ops:
        if op.op == "get":
            out.append(store.get(op.key))
        elif op.op == "take":
            out.append(store.take(op.key))
        else:
            out.append(store.add(op.key, op.value, op.ttl))
    return out


def _pump_external(p: ConnectionPair, store: MemoryStore) -> None:
    """Pump, answering every lookup the server asks for at once."""
    for _ in range(32):
        moved = p.deliver(Direction.C2S)
        _serve_events(p.server, store, p.server_events)
        lookups = [e for e in p.server_events if isinstance(e, SessionLookupRequired)]
        for e in lookups:
            p.server_events.remove(e)
            p.server.provide_session(_answer(store, e.operations))
            p.server_events.extend(p.server.events())
        moved = p.deliver(Direction.S2C) or moved
        if not moved:
            return


def test_external_lookup_pauses_and_buffers_0rtt_until_answered(world: World) -> None:
    store = world.store()
    client, server, session = _external_pair(world, store, max_early_data_size=1024)
    p = world.pair(client, server, session=session)
    p.client.start_handshake(early_data=b"GET /early")
    flight = p.client.data_to_send()  # ClientHello, CCS and the 0-RTT record, all at once
    p.server.receive_data(flight)
    events = p.server.events()
    (lookup,) = events
    assert isinstance(lookup, SessionLookupRequired)
    (op,) = lookup.operations
    assert op.op == "add" and op.key.startswith(b"0rtt:")
    assert p.server.awaiting_session
    assert p.server.data_to_send() == b""  # nothing sent while paused
    with pytest.raises(LocalProtocolError):
        p.server.send_data(b"too early")
    p.server.provide_session([store.add(op.key, op.value, op.ttl)])
    with pytest.raises(LocalProtocolError):
        p.server.provide_session([True])
    after = p.server.events()
    assert isinstance(after[0], ResumptionDecided) and after[0].decision.kind == "psk_0rtt"
    assert app_data(after, early=True) == b"GET /early"
    p.server_events.extend(after)
    p.sent[Direction.C2S].append(flight)
    _pump_external(p, store)
    assert p.client.info is not None and p.client.info.early_data_accepted
    assert p.server.info is not None and p.server.info.resumed_by == "psk"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (StoreError("redis: timed out after 50 ms"), FallbackReason.STORE_UNAVAILABLE),
        (StoreValueRejected("sealed under another fleet secret"),
         FallbackReason.STORE_VALUE_REJECTED),
    ],
    ids=["unavailable", "value-rejected"],
)  # fmt: skip
def test_external_lookup_answered_with_a_store_error_is_a_full_handshake(
    world: World, error: StoreError, reason: FallbackReason
) -> None:
    store = world.store()
    client, server, session = _external_pair(
        world, store, ticket_keyring=None, stateful_tickets=True
    )
    p = world.pair(client, server, session=session)
    p.start()
    p.server.receive_data(p.client.data_to_send())
    (lookup,) = p.server.events()
    assert isinstance(lookup, SessionLookupRequired)
    assert [o.op for o in lookup.operations] == ["take"]
    p.server.provide_session([error])
    events = p.server.events()
    d = next(e.decision for e in events if isinstance(e, ResumptionDecided))
    assert d.fallback is reason and not d.resumed
    p.server_events.extend(events)
    _pump_external(p, store)
    assert p.server.info is not None and p.server.info.resumed is False
    assert p.client.handshake_complete
    assert server.statistics.reason_count(reason) == 1


def test_external_mode_writes_arrive_as_events_before_the_tickets(world: World) -> None:
    store = world.store()
    server = server13(
        world, session_store=store, ticket_keyring=None, stateful_tickets=True,
        external_session_lookup=True,
    )  # fmt: skip
    p = world.pair(client13(world), server)
    p.start()
    p.pump()
    updates = [e for e in p.server_events if isinstance(e, SessionStoreUpdate)]
    assert [w.op for u in updates for w in u.operations] == ["put", "put"]
    assert len(store) == 0  # the connection wrote nothing itself
    assert all(
        isinstance(w, StoreWrite) and w.key.startswith(b"stk:")
        for u in updates
        for w in u.operations
    )


def test_provide_session_without_a_pending_lookup_is_refused(world: World) -> None:
    server = ServerConnection(server13(world))
    with pytest.raises(LocalProtocolError):
        server.provide_session([])


# -- bounds ----------------------------------------------------------------------------------------
def _records(payload: bytes) -> bytes:
    out = b""
    for i in range(0, len(payload), 1 << 14):
        chunk = payload[i : i + (1 << 14)]
        out += bytes((ContentType.HANDSHAKE, 3, 1)) + len(chunk).to_bytes(2, "big") + chunk
    return out


def test_a_thousand_psk_identities_cost_at_most_the_bound(world: World) -> None:
    spy = SpyStore(world)
    server = server13(world, session_store=spy, ticket_keyring=None, stateful_tickets=True)
    share = KeyShare(NamedGroup.x25519)
    # Short identities, so a thousand fit the ClientHello's 64 KiB extensions block.
    identities = tuple(X.PskIdentity(i.to_bytes(2, "big"), 0) for i in range(1000))
    ch = ClientHello(
        0x0303, os.urandom(32), os.urandom(32), (0x1301,), (0,),
        (
            X.ServerName("localhost"),
            X.SupportedVersionsOffer((ProtocolVersion.TLS1_3,)),
            X.SupportedGroups((NamedGroup.x25519,)),
            X.KeyShareOffer((X.KeyShareEntry(NamedGroup.x25519, share.public),)),
            X.SignatureAlgorithms((0x0403, 0x0804)),
            X.PskKeyExchangeModes((1,)),
            X.OfferedPsks(identities, tuple(bytes(32) for _ in identities)),
        ),
    )  # fmt: skip
    conn = ServerConnection(server)
    conn.receive_data(_records(encode_handshake(ch)))
    assert 1 <= spy.calls["take"] <= MAX_PSK_IDENTITIES
    out = conn.data_to_send()
    assert out[0] == ContentType.HANDSHAKE and out[5] == HandshakeType.SERVER_HELLO
    assert server.statistics.reason_count(FallbackReason.PSK_ALREADY_USED) == 1


# -- what a connection says about itself ---------------------------------------------------------------
def test_connection_info_says_why_a_session_did_not_resume(world: World) -> None:
    server = world.server_config(ticket_keyring=None)
    client = world.client_config(session_tickets=False)
    world.connect(client, server)
    other = world.server_config(ticket_keyring=None)  # a second server: its own cache
    p = world.connect(client, other)
    d = p.server.info.resumption  # type: ignore[union-attr]
    assert d.offered is Mechanism.SESSION_ID and d.fallback is FallbackReason.UNKNOWN_SESSION_ID
    assert d.describe() == "full handshake; session_id not resumed (unknown session id)"


def test_fresh_tls13_capable_clients_are_not_misses(world: World) -> None:
    """A TLS 1.3-capable client sends a random legacy_session_id even to a TLS 1.2 server; it
    is not an attempt to resume, so it is not counted as a miss."""
    server = world.server_config(ticket_keyring=None)
    for _ in range(4):
        world.connect(client13(world, session_cache=None), server)
    assert server.statistics["misses"] == 0
    assert server.statistics.fallback_reasons() == {}
    assert server.statistics["full_handshakes"] == 4


def test_resumption_is_on_by_default(world: World) -> None:
    """A ServerConfig with only certificates resumes, as OpenSSL and CPython's ssl do."""
    from tessera import ServerConfig

    server = ServerConfig(
        certificates=(world.certs.ecdsa,), cipher_suites=world.server_config().cipher_suites
    )
    assert server.session_store is not None and server.sealer is not None
    client = world.client_config()
    world.connect(client, server)
    assert world.connect(client, server).client.info.resumed_by == "ticket"  # type: ignore[union-attr]
    id_client = world.client_config(session_tickets=False)
    world.connect(id_client, server)
    assert world.connect(id_client, server).client.info.resumed_by == "session_id"  # type: ignore[union-attr]
    off = ServerConfig(certificates=(world.certs.ecdsa,), session_store=None, ticket_keyring=None)
    assert off.session_store is None and off.sealer is None

"""TLS 1.3 PSK resumption in memory: psk_dhe_ke and psk_ke, tickets per handshake, the
client's single use of tickets, stateful single-use tickets, and every reason a ticket falls
back to a full handshake (counted, never an error) -- except a bad binder, which is fatal."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tessera import ClientSession, FallbackReason, ProtocolVersion, TicketKeyring
from tessera.enums import AlertDescription, HandshakeType, NamedGroup
from tessera.errors import BadRecordMac, DecryptError, IllegalParameter, MissingExtension
from tessera.events import HandshakeCompleted
from tessera.messages import ClientHello
from tessera.messages import extensions as X
from tessera.messages.base import encode_handshake

from .helpers import (
    ConnectionPair,
    Direction,
    FakeClock,
    Message,
    MessageLog,
    World,
    on_messages,
    rewrite,
)
from .test_tls13_support import (
    AES128,
    AES256,
    CHACHA,
    client13,
    client_hellos,
    expect_alert13,
    nth_client_hello,
    offered_identity,
    on_hello_messages,
    server13,
    server_hellos,
    tickets,
    without,
)


def resume(
    world: World, client, server, session: ClientSession | None = None, **kw
) -> ConnectionPair:  # type: ignore[no-untyped-def]
    pair = world.connect(client, server, session=session, **kw)
    assert pair.client.info.version is ProtocolVersion.TLS1_3
    return pair


def assert_resumed(pair: ConnectionPair) -> None:
    for conn in (pair.client, pair.server):
        assert conn.info.resumed is True and conn.info.resumed_by == "psk"
    (sh,) = server_hellos(pair)
    assert sh.find(X.PreSharedKeySelected) == X.PreSharedKeySelected(0)
    assert pair.send(Direction.C2S, b"resumed") == b"resumed"
    assert pair.send(Direction.S2C, b"indeed") == b"indeed"


def assert_full(pair: ConnectionPair, offered: bool = True) -> None:
    for conn in (pair.client, pair.server):
        assert conn.info.resumed is False and conn.info.resumed_by is None
    (ch,) = client_hellos(pair)
    assert (ch.find(X.OfferedPsks) is not None) is offered
    (sh,) = server_hellos(pair)
    assert sh.find(X.PreSharedKeySelected) is None
    assert pair.send(Direction.C2S, b"full") == b"full"


# -- resumption that works -------------------------------------------------------------------
def test_tls13_psk_dhe_ke_resumption(world: World) -> None:
    server = server13(world)
    client = client13(world)
    first = resume(world, client, server)
    assert len(tickets(first)) == server.num_tickets == 2
    log = MessageLog()
    second = resume(world, client, server, tamper=log)
    assert_resumed(second)
    (ch,) = client_hellos(second)
    psks = ch.find(X.OfferedPsks)
    assert psks is not None and ch.extensions[-1] is psks
    assert ch.find(X.PskKeyExchangeModes).modes == (1,)
    (sh,) = server_hellos(second)
    assert sh.find(X.KeyShareSelected) is not None  # (EC)DHE with the PSK
    assert second.server.info.group == NamedGroup.x25519
    # No certificate in a resumed handshake, but the client still knows the server's chain.
    assert second.client.info.peer_certificates == first.client.info.peer_certificates
    assert second.client.info.cipher_suite == first.client.info.cipher_suite
    snap = server.statistics.snapshot()
    assert snap["full_handshakes"] == 1 and snap["resumed"] == 1 and snap["resumed_psk"] == 1
    assert server.statistics.fallback_reasons() == {}


def test_tls13_psk_ke_when_both_allow_it(world: World) -> None:
    server = server13(world, psk_ke=True)
    client = client13(world, psk_ke=True)
    resume(world, client, server)
    second = resume(world, client, server)
    assert_resumed(second)
    (ch,) = client_hellos(second)
    assert set(ch.find(X.PskKeyExchangeModes).modes) == {0, 1}
    (sh,) = server_hellos(second)
    assert sh.find(X.KeyShareSelected) is None  # no (EC)DHE at all
    for conn in (second.client, second.server):
        assert conn.info.group is None


@pytest.mark.parametrize(("client_ke", "server_ke"), [(True, False), (False, True)])
def test_tls13_psk_ke_needs_both_sides(world: World, client_ke: bool, server_ke: bool) -> None:
    server = server13(world, psk_ke=server_ke)
    client = client13(world, psk_ke=client_ke)
    resume(world, client, server)
    second = resume(world, client, server)
    assert_resumed(second)
    (sh,) = server_hellos(second)
    assert sh.find(X.KeyShareSelected) is not None


@pytest.mark.parametrize("suite", [AES128, AES256, CHACHA], ids=lambda s: s.name)
def test_tls13_resumption_per_suite(world: World, suite) -> None:  # type: ignore[no-untyped-def]
    server = server13(world, cipher_suites=(suite,))
    client = client13(world)
    resume(world, client, server)
    second = resume(world, client, server)
    assert_resumed(second)
    assert second.client.info.cipher_suite == suite


# -- tickets ------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_tickets", [0, 1, 3, 5])
def test_tls13_num_tickets_after_full_and_one_after_resumption(
    world: World, num_tickets: int
) -> None:
    server = server13(world, num_tickets=num_tickets)
    client = client13(world)
    first = resume(world, client, server)
    issued = tickets(first)
    assert len(issued) == num_tickets
    assert len({t.ticket for t in issued}) == num_tickets  # all different
    assert len({t.state.secret for t in issued}) == num_tickets  # one PSK per nonce
    if num_tickets == 0:
        return
    second = resume(world, client, server)
    assert_resumed(second)
    assert len(tickets(second)) == 1
    assert server.statistics["tickets_issued"] == num_tickets + 1


def test_tls13_ticket_contents(world: World) -> None:
    server = server13(world, ticket_lifetime=600, max_early_data_size=4096, alpn_protocols=["h2"])
    client = client13(world, alpn_protocols=["h2"])
    first = resume(world, client, server)
    t = tickets(first)[0]
    assert t.version == ProtocolVersion.TLS1_3 and t.session_id == b""
    assert t.state.lifetime == 600 and t.state.max_early_data == 4096
    assert t.state.server_name == "localhost" and t.state.alpn == b"h2"
    assert t.state.cipher_suite == first.client.info.cipher_suite.code
    assert first.client.session is tickets(first)[-1]


def test_tls13_client_uses_each_ticket_once(world: World) -> None:
    server = server13(world, num_tickets=2)
    client = client13(world)
    cache = client.session_cache
    first = resume(world, client, server)
    t1, t2 = tickets(first)
    key = ("localhost", 443, "localhost")
    assert cache.count(key) == 2
    second = resume(world, client, server)
    assert_resumed(second)
    # The newest ticket went first and is gone; the resumption brought one more.
    assert offered_identity(client_hellos(second)[0]) == t2.ticket
    (t3,) = tickets(second)
    assert cache.count(key) == 2
    third = resume(world, client, server)
    assert offered_identity(client_hellos(third)[0]) == t3.ticket
    fourth = resume(world, client, server)
    offered = [offered_identity(client_hellos(p)[0]) for p in (second, third, fourth)]
    assert len(set(offered)) == 3 and t1.ticket not in offered[:2]


def test_tls13_client_without_tickets_left_does_a_full_handshake(world: World) -> None:
    issuer = server13(world, num_tickets=1)
    keyring, store = issuer.ticket_keyring, issuer.session_store
    silent = server13(world, num_tickets=0, ticket_keyring=keyring, session_store=store)
    client = client13(world)
    resume(world, client, issuer)
    second = resume(world, client, silent)
    assert_resumed(second)
    third = resume(world, client, silent)
    assert_full(third, offered=False)


def test_tls13_reuse_tickets(world: World) -> None:
    issuer = server13(world, num_tickets=1)
    keyring, store = issuer.ticket_keyring, issuer.session_store
    silent = server13(world, num_tickets=0, ticket_keyring=keyring, session_store=store)
    client = client13(world, reuse_tickets=True)
    (t1,) = tickets(resume(world, client, issuer))
    for _ in range(3):
        again = resume(world, client, silent)
        assert_resumed(again)
        assert offered_identity(client_hellos(again)[0]) == t1.ticket
    assert silent.statistics["resumed_psk"] == 3


# -- stateful, single-use tickets -------------------------------------------------------------------
def test_tls13_stateful_ticket_is_single_use(world: World) -> None:
    server = server13(world, stateful_tickets=True, ticket_keyring=None)
    client = client13(world, session_cache=None)
    first = resume(world, client, server)
    ticket = tickets(first)[0]
    assert len(ticket.ticket) == 32  # an id into the store, not a sealed state
    second = resume(world, client, server, session=ticket)
    assert_resumed(second)
    replayed = resume(world, client, server, session=ticket)
    assert_full(replayed)
    assert server.statistics.reason_count(FallbackReason.PSK_ALREADY_USED) == 1
    snap = server.statistics.snapshot()
    assert snap["resumed_psk"] == 1 and snap["full_handshakes"] == 2


def test_tls13_stateful_tickets_each_work_once(world: World) -> None:
    server = server13(world, stateful_tickets=True, ticket_keyring=None, num_tickets=3)
    client = client13(world, session_cache=None)
    issued = tickets(resume(world, client, server))
    for t in issued:
        assert_resumed(resume(world, client, server, session=t))
    for t in issued:
        assert_full(resume(world, client, server, session=t))
    assert server.statistics.reason_count(FallbackReason.PSK_ALREADY_USED) == 3


# -- fallbacks: full handshake plus a counted reason --------------------------------------------------
def _ticket(world: World, server, **client_kw) -> ClientSession:  # type: ignore[no-untyped-def]
    pair = resume(world, client13(world, session_cache=None, **client_kw), server)
    return tickets(pair)[0]


def _fallback(world: World, server, session: ClientSession, reason: FallbackReason,  # type: ignore[no-untyped-def]
              client=None, server_name: str = "localhost") -> ConnectionPair:  # fmt: skip
    client = client if client is not None else client13(world, session_cache=None)
    pair = world.connect(client, server, session=session, server_name=server_name)
    assert_full(pair)
    assert server.statistics.reason_count(reason) == 1, server.statistics.fallback_reasons()
    assert sum(server.statistics.fallback_reasons().values()) == 1
    return pair


@pytest.mark.parametrize("skew", [+20.0, -20.0], ids=["client-ahead", "client-behind"])
def test_tls13_ticket_age_outside_skew_clock(world: World, skew: float) -> None:
    """The client's clock moves on but the server's does not (or the other way round): the
    reported ticket age is off by more than max_ticket_age_skew."""
    client_clock = FakeClock(world.clock.now)
    server = server13(world, max_ticket_age_skew=10.0)
    client = client13(world, session_cache=None, clock=client_clock)
    ticket = tickets(resume(world, client, server))[0]
    if skew > 0:
        client_clock.advance(skew)
    else:
        world.clock.advance(-skew)
    _fallback(world, server, ticket, FallbackReason.PSK_AGE_INVALID, client=client)


def test_tls13_ticket_age_within_skew(world: World) -> None:
    client_clock = FakeClock(world.clock.now)
    server = server13(world, max_ticket_age_skew=10.0)
    client = client13(world, session_cache=None, clock=client_clock)
    ticket = tickets(resume(world, client, server))[0]
    client_clock.advance(9.0)
    assert_resumed(resume(world, client, server, session=ticket))


def test_tls13_shared_clock_advance_keeps_ages_consistent(world: World) -> None:
    server = server13(world, max_ticket_age_skew=1.0, ticket_lifetime=7200)
    client = client13(world, session_cache=None)
    ticket = tickets(resume(world, client, server))[0]
    world.clock.advance(3600)  # an hour later on both sides: the ages agree
    assert_resumed(resume(world, client, server, session=ticket))


def test_tls13_ticket_age_tampered_obfuscation(world: World) -> None:
    """The client adds a wrong ticket_age_add (as if the obfuscated age were altered): the
    server sees an age an hour off and does a full handshake. (The age is part of the binder's
    input, so altering it on the wire would instead break the transcript.)"""
    server = server13(world)
    ticket = _ticket(world, server)
    wrong = replace(ticket, state=replace(ticket.state,
                                          ticket_age_add=(ticket.state.ticket_age_add + 3_600_000)
                                          & 0xFFFFFFFF))  # fmt: skip
    _fallback(world, server, wrong, FallbackReason.PSK_AGE_INVALID)


def test_tls13_expired_ticket(world: World) -> None:
    """Only the server's clock passes the lifetime (a client would not offer an expired one)."""
    client_clock = FakeClock(world.clock.now)
    server = server13(world, ticket_lifetime=100, max_ticket_age_skew=1000.0)
    client = client13(world, session_cache=None, clock=client_clock)
    ticket = tickets(resume(world, client, server))[0]
    world.clock.advance(101)
    _fallback(world, server, ticket, FallbackReason.TICKET_EXPIRED, client=client)
    assert server.statistics["timeouts"] == 1


def test_tls13_client_does_not_offer_an_expired_ticket(world: World) -> None:
    server = server13(world, ticket_lifetime=100)
    client = client13(world, session_cache=None)
    ticket = tickets(resume(world, client, server))[0]
    world.clock.advance(100)
    pair = world.connect(client, server, session=ticket)
    assert_full(pair, offered=False)


def test_tls13_unknown_ticket_key(world: World) -> None:
    server = server13(world)
    ticket = _ticket(world, server)
    other = server13(world, ticket_keyring=world.keyring())  # a new keyring: the key is unknown
    _fallback(world, other, ticket, FallbackReason.TICKET_UNKNOWN_KEY)
    assert other.statistics["ticket_failures"] == 1


def test_tls13_ticket_from_a_rotated_out_key(world: World) -> None:
    keyring = world.keyring(keep=0)
    server = server13(world, ticket_keyring=keyring)
    ticket = _ticket(world, server)
    keyring.rotate()  # keep=0: the old key is gone
    _fallback(world, server, ticket, FallbackReason.TICKET_UNKNOWN_KEY)


def test_tls13_ticket_for_another_server_name(world: World) -> None:
    """The client is made to offer a localhost ticket for alt.example (its state says
    alt.example); the server's sealed state says localhost."""
    certs = (world.certs.ecdsa, world.certs.alt)
    server = server13(world, certificates=certs)
    ticket = _ticket(world, server)
    moved = replace(ticket, state=replace(ticket.state, server_name="alt.example"))
    pair = _fallback(world, server, moved, FallbackReason.SNI_MISMATCH, server_name="alt.example")
    assert pair.client.info.peer_certificates[0] == world.certs.alt.leaf


def test_tls13_client_does_not_offer_a_ticket_for_another_name(world: World) -> None:
    server = server13(world, certificates=(world.certs.ecdsa, world.certs.alt))
    ticket = _ticket(world, server)
    pair = world.connect(client13(world, session_cache=None), server, session=ticket,
                         server_name="alt.example")  # fmt: skip
    assert_full(pair, offered=False)


def test_tls13_suite_with_a_different_hash(world: World) -> None:
    """A ticket from TLS_AES_256_GCM_SHA384 offered to a server that picks a SHA-256 suite."""
    server = server13(world)  # prefers TLS_AES_128_GCM_SHA256
    ticket = _ticket(world, server, cipher_suites=(AES256,))
    assert ticket.cipher_suite == AES256.code
    pair = _fallback(world, server, ticket, FallbackReason.CIPHER_MISMATCH)
    assert pair.client.info.cipher_suite == AES128


def test_tls13_same_hash_other_suite_resumes(world: World) -> None:
    server = server13(world)
    ticket = _ticket(world, server, cipher_suites=(CHACHA,))
    pair = resume(world, client13(world, session_cache=None), server, session=ticket)
    assert_resumed(pair)
    assert pair.client.info.cipher_suite == AES128  # the server's choice, same hash


def test_tls13_tls12_session_is_not_a_psk(world: World) -> None:
    server = server13(world)
    tls12 = world.connect(world.client_config(session_cache=None), world.server_config())
    session = tls12.client.session
    assert session is not None and session.version == ProtocolVersion.TLS1_2
    pair = world.connect(client13(world, session_cache=None), server, session=session)
    (ch,) = client_hellos(pair)
    assert ch.find(X.OfferedPsks) is None


# -- a bad binder is fatal -----------------------------------------------------------------------------
def _flip_binder(ch_msg: Message) -> Message:
    raw = bytearray(ch_msg.raw)
    raw[-1] ^= 0x80  # the last byte of the last binder
    return Message(raw[0], bytes(raw[4:]))


def test_tls13_altered_binder_is_decrypt_error(world: World) -> None:
    server = server13(world)
    ticket = _ticket(world, server)
    pair = world.pair(client13(world, session_cache=None), server, session=ticket,
                      tamper=on_messages(rewrite(Direction.C2S, HandshakeType.CLIENT_HELLO,
                                                 _flip_binder)))  # fmt: skip
    pair.start()
    side = expect_alert13(pair, DecryptError, AlertDescription.decrypt_error)
    assert side == "server"
    assert server.statistics["resumed"] == 0


def test_tls13_altered_identity_is_a_fallback_not_an_error(world: World) -> None:
    """A ticket that does not open is skipped before any binder is checked, but the altered
    hello no longer matches the client's transcript: the handshake keys differ and the client
    cannot open the server's flight."""
    server = server13(world)
    ticket = _ticket(world, server)

    def flip_identity(ch: ClientHello) -> ClientHello:
        psks = ch.find(X.OfferedPsks)
        assert psks is not None
        ident = psks.identities[0]
        raw = bytearray(ident.identity)
        raw[20] ^= 1  # inside the IV: the key name still matches, the MAC does not
        bad = replace(ident, identity=bytes(raw))
        return replace(ch, extensions=(*ch.extensions[:-1], X.OfferedPsks((bad,), psks.binders)))

    pair = world.pair(client13(world, session_cache=None), server, session=ticket,
                      tamper=on_hello_messages(nth_client_hello(0, flip_identity)))  # fmt: skip
    pair.start()
    assert expect_alert13(pair, BadRecordMac, AlertDescription.bad_record_mac) == "client"
    assert server.statistics.reason_count(FallbackReason.TICKET_MAC_FAILED) == 1


def test_tls13_pre_shared_key_not_last(world: World) -> None:
    server = server13(world)
    ticket = _ticket(world, server)

    def move_psk(ch: ClientHello) -> bytes:
        psks = ch.find(X.OfferedPsks)
        others = [e for e in ch.extensions if e is not psks]
        return encode_handshake(replace(ch, extensions=(*others[:-1], psks, others[-1])))

    pair = world.pair(client13(world, session_cache=None), server, session=ticket,
                      tamper=on_hello_messages(nth_client_hello(0, move_psk)))  # fmt: skip
    pair.start()
    assert expect_alert13(pair, IllegalParameter, AlertDescription.illegal_parameter) == "server"


def test_tls13_psk_without_psk_key_exchange_modes(world: World) -> None:
    server = server13(world)
    ticket = _ticket(world, server)
    pair = world.pair(
        client13(world, session_cache=None), server, session=ticket,
        tamper=on_hello_messages(nth_client_hello(0, lambda ch: without(ch, X.PskKeyExchangeModes))),
    )  # fmt: skip
    pair.start()
    assert expect_alert13(pair, MissingExtension, AlertDescription.missing_extension) == "server"


def test_tls13_resumption_after_hello_retry_request(world: World) -> None:
    """The binder of the second ClientHello covers message_hash(CH1) | HRR."""
    server = server13(world, groups=(NamedGroup.secp256r1,))
    client = client13(world, session_cache=None, groups=(NamedGroup.x25519, NamedGroup.secp256r1),
                      key_share_groups=(NamedGroup.x25519,))  # fmt: skip
    ticket = tickets(resume(world, client, server))[0]
    pair = resume(world, client, server, session=ticket)
    assert len(client_hellos(pair)) == 2
    ch1, ch2 = client_hellos(pair)
    assert offered_identity(ch1) == offered_identity(ch2) == ticket.ticket
    assert ch1.find(X.OfferedPsks).binders != ch2.find(X.OfferedPsks).binders
    hrr, sh = server_hellos(pair)
    assert hrr.is_hello_retry_request and sh.find(X.PreSharedKeySelected) is not None
    for conn in (pair.client, pair.server):
        assert conn.info.resumed_by == "psk" and conn.info.group == NamedGroup.secp256r1
    assert pair.send(Direction.C2S, b"after retry") == b"after retry"


def test_tls13_resumed_handshake_completes_once(world: World) -> None:
    server = server13(world)
    client = client13(world)
    resume(world, client, server)
    second = resume(world, client, server)
    assert sum(isinstance(e, HandshakeCompleted) for e in second.client_events) == 1
    assert sum(isinstance(e, HandshakeCompleted) for e in second.server_events) == 1


def test_tls13_keyring_rotation_still_opens_older_tickets(world: World) -> None:
    keyring = TicketKeyring(clock=world.clock, rng=world.rng, keep=2)
    server = server13(world, ticket_keyring=keyring)
    ticket = _ticket(world, server)
    keyring.rotate()
    assert_resumed(resume(world, client13(world, session_cache=None), server, session=ticket))

"""Resumption that must not happen. A failed resumption is not an error: it is a full handshake
plus a counted reason (DESIGN.md). The one deliberate exception is RFC 7627 §5.3: a client that
resumes an extended-master-secret session without offering EMS is refused with handshake_failure.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tessera import AlertReceived, ClientAuth, ClientSession, ServerConfig
from tessera.enums import AlertDescription, ContentType
from tessera.errors import BadRecordMac, HandshakeFailure
from tessera.events import SessionTicketReceived
from tessera.session.resumption import session_id_key
from tessera.session.stats import FallbackReason

from .helpers import (
    ConnectionPair,
    Direction,
    MessageLog,
    World,
    assert_fatal_alert_last,
    flip_bit,
    parse_records,
)

CACHE_KEY = ("localhost", 443, "localhost")


def tickets_received(pair: ConnectionPair) -> list[ClientSession]:
    return [e.session for e in pair.client_events if isinstance(e, SessionTicketReceived)]


def assert_full(pair: ConnectionPair, log: MessageLog | None = None) -> None:
    """Both sides completed a full (not resumed) handshake and can talk."""
    assert pair.client.info.resumed is False
    assert pair.server.info.resumed is False
    assert pair.server.info.resumed_by is None
    if log is not None:
        assert "CERTIFICATE" in log.names(Direction.S2C)
    assert pair.send(Direction.C2S, b"after fallback") == b"after fallback"


def assert_reason(server: ServerConfig, reason: FallbackReason, **counters: int) -> None:
    stats = server.statistics
    assert stats.fallback_reasons() == {reason.value: 1}
    assert stats.reason_count(reason) == 1
    snap = stats.snapshot()
    for name, value in counters.items():
        assert snap[name] == value, (name, snap)


def ticket_session(world: World, server: ServerConfig) -> ClientSession:
    first = world.connect(world.client_config(session_cache=None), server)
    session = first.client.session
    assert session is not None and session.ticket
    return session


def resume_with(
    world: World, server: ServerConfig, session: ClientSession, **client_kw: object
) -> tuple[ConnectionPair, MessageLog]:
    log = MessageLog()
    p = world.connect(
        world.client_config(session_cache=None, **client_kw), server, session=session, tamper=log
    )
    return p, log


# -- tickets --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("mac", FallbackReason.TICKET_MAC_FAILED),  # the last byte: inside the HMAC
        ("ciphertext", FallbackReason.TICKET_MAC_FAILED),  # after name and IV
        ("iv", FallbackReason.TICKET_MAC_FAILED),
        ("key_name", FallbackReason.TICKET_UNKNOWN_KEY),
    ],
)
def test_damaged_ticket(world: World, where: str, reason: FallbackReason) -> None:
    server = world.server_config(session_store=None)
    session = ticket_session(world, server)
    index = {"mac": len(session.ticket) - 1, "ciphertext": 40, "iv": 20, "key_name": 3}[where]
    bad = replace(session, ticket=flip_bit(session.ticket, index))
    p, log = resume_with(world, server, bad)
    assert_full(p, log)
    assert_reason(server, reason, ticket_failures=1, full_handshakes=2, resumed=0)
    # A full handshake with a ticket-capable client ends with a fresh, good ticket.
    (fresh,) = tickets_received(p)
    assert fresh.ticket[:16] == server.ticket_keyring.encryption_key().name
    assert server.statistics["tickets_issued"] == 2
    again, _ = resume_with(world, server, fresh)
    assert again.server.info.resumed_by == "ticket"


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t[:-1],  # not a whole number of blocks
        lambda t: t[:-15],
        lambda t: t[:64],  # name, IV and MAC but no ciphertext
        lambda t: t[:16],
        lambda t: t + bytes(16 * 1024),  # longer than any ticket we make
    ],
    ids=["minus1", "minus15", "no-ciphertext", "name-only", "huge"],
)
def test_malformed_ticket(world: World, change) -> None:  # type: ignore[no-untyped-def]
    server = world.server_config(session_store=None)
    session = ticket_session(world, server)
    p, log = resume_with(world, server, replace(session, ticket=change(session.ticket)))
    assert_full(p, log)
    assert_reason(server, FallbackReason.TICKET_MALFORMED, ticket_failures=1)


def test_ticket_from_another_server(world: World) -> None:
    server = world.server_config(session_store=None)
    session = ticket_session(world, server)
    other = world.server_config(session_store=None)  # its own keyring
    p, log = resume_with(world, other, session)
    assert_full(p, log)
    assert_reason(other, FallbackReason.TICKET_UNKNOWN_KEY, ticket_failures=1)
    assert tickets_received(p)[0].ticket[:16] == other.ticket_keyring.encryption_key().name


def test_ticket_with_garbage_state(world: World) -> None:
    """A ticket that opens (right key, right MAC) but holds no valid session."""
    from tessera.session.sealer import Rfc5077Sealer

    server = world.server_config(session_store=None)
    session = ticket_session(world, server)
    junk = Rfc5077Sealer(server.ticket_keyring).seal(b"\x01not a session", b"\x00" * 16)
    p, log = resume_with(world, server, replace(session, ticket=junk))
    assert_full(p, log)
    assert_reason(server, FallbackReason.TICKET_MALFORMED, ticket_failures=1)


def test_expired_ticket(world: World) -> None:
    server = world.server_config(session_store=None, ticket_lifetime=600)
    session = ticket_session(world, server)
    world.clock.advance(599)
    ok, _ = resume_with(world, server, session)
    assert ok.server.info.resumed_by == "ticket"
    world.clock.advance(2)
    p, log = resume_with(world, server, session)
    assert_full(p, log)
    assert_reason(server, FallbackReason.TICKET_EXPIRED, timeouts=1, resumed=1)


def test_key_rotated_past_kept_window(world: World) -> None:
    keyring = world.keyring(rotation_interval=3600, keep=1)
    server = world.server_config(session_store=None, ticket_keyring=keyring, ticket_lifetime=86400)
    session = ticket_session(world, server)
    world.clock.advance(3601)
    # One rotation later the ticket's key only decrypts: accepted (and renewed).
    ok, _ = resume_with(world, server, session)
    assert ok.server.info.resumed_by == "ticket"
    assert tickets_received(ok)
    world.clock.advance(3601)
    # Two rotations later the key is past keep=1 and erased: the same ticket no longer opens.
    p, log = resume_with(world, server, session)
    assert_full(p, log)
    assert_reason(server, FallbackReason.TICKET_UNKNOWN_KEY, ticket_failures=1, resumed=1)
    (fresh,) = tickets_received(p)
    assert fresh.ticket[:16] == keyring.encryption_key().name


# -- session ids ----------------------------------------------------------------------------------
def id_session(world: World, server: ServerConfig) -> ClientSession:
    first = world.connect(world.client_config(session_cache=None), server)
    session = first.client.session
    assert session is not None and session.session_id and not session.ticket
    return session


def test_expired_session(world: World) -> None:
    store = world.store()
    server = world.server_config(ticket_keyring=None, session_store=store, session_timeout=100)
    session = id_session(world, server)
    world.clock.advance(101)
    assert (
        store.get(session_id_key(session.session_id)) is not None
    )  # kept a while to report "expired"
    p, log = resume_with(world, server, session)
    assert_full(p, log)
    assert_reason(server, FallbackReason.SESSION_EXPIRED, timeouts=1, misses=0)
    assert store.get(session_id_key(session.session_id)) is None  # and dropped


def test_long_gone_session_is_unknown(world: World) -> None:
    server = world.server_config(ticket_keyring=None, session_timeout=100)
    session = id_session(world, server)
    world.clock.advance(100 + 3600)
    p, log = resume_with(world, server, session)
    assert_full(p, log)
    assert_reason(server, FallbackReason.UNKNOWN_SESSION_ID, misses=1)


def test_unknown_session_id(world: World) -> None:
    server = world.server_config(ticket_keyring=None)
    session = id_session(world, server)
    p, log = resume_with(world, server, replace(session, session_id=bytes(32)))
    assert_full(p, log)
    assert_reason(server, FallbackReason.UNKNOWN_SESSION_ID, misses=1)


def test_corrupt_session_in_store(world: World) -> None:
    store = world.store()
    server = world.server_config(ticket_keyring=None, session_store=store)
    session = id_session(world, server)
    store.put(session_id_key(session.session_id), b"\x01garbage", 100)
    p, log = resume_with(world, server, session)
    assert_full(p, log)
    # A corrupt entry is not an unknown id: its own reason, no miss, and it is deleted.
    assert_reason(server, FallbackReason.SESSION_CORRUPT)
    assert store.get(session_id_key(session.session_id)) is None


def test_evicted_session(world: World) -> None:
    store = world.store(max_entries=1)
    server = world.server_config(ticket_keyring=None, session_store=store)
    session = id_session(world, server)
    id_session(world, server)  # a second session pushes the first one out
    assert store.evictions == 1
    p, log = resume_with(world, server, session)
    assert_full(p, log)
    assert_reason(server, FallbackReason.UNKNOWN_SESSION_ID, misses=1)


def test_statistics_count_store_evictions(world: World) -> None:
    """SessionStats documents an ``evictions`` counter: "sessions dropped because the cache was
    full". Evicting a session from the server's store must show up in it."""
    store = world.store(max_entries=1)
    server = world.server_config(ticket_keyring=None, session_store=store)
    id_session(world, server)
    id_session(world, server)
    assert store.evictions == 1
    assert server.statistics.snapshot()["evictions"] == 1


# -- mismatches -----------------------------------------------------------------------------------
@pytest.mark.parametrize("by", ["ticket", "session_id"])
def test_suite_no_longer_offered(world: World, by: str) -> None:
    server = (
        world.server_config(session_store=None)
        if by == "ticket"
        else world.server_config(ticket_keyring=None)
    )
    first = world.connect(
        world.client_config(session_cache=None, cipher_suites="ECDHE-ECDSA-AES128-GCM-SHA256"),
        server,
    )
    p, log = resume_with(
        world, server, first.client.session, cipher_suites="ECDHE-ECDSA-CHACHA20-POLY1305"
    )
    assert_full(p, log)
    assert p.client.info.cipher_suite.openssl_name == "ECDHE-ECDSA-CHACHA20-POLY1305"
    assert_reason(server, FallbackReason.CIPHER_MISMATCH)


def test_suite_no_longer_enabled_on_server(world: World) -> None:
    from tessera.crypto.suites import parse_cipher_list

    store, keyring = world.store(), world.keyring()
    server = world.server_config(session_store=store, ticket_keyring=keyring)
    offer = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256"
    first = world.connect(world.client_config(session_cache=None, cipher_suites=offer), server)
    assert first.client.info.cipher_suite.openssl_name == "ECDHE-ECDSA-AES128-GCM-SHA256"
    stricter = world.server_config(
        session_store=store,
        ticket_keyring=keyring,
        cipher_suites=parse_cipher_list("ECDHE-ECDSA-AES128-SHA"),
    )
    log = MessageLog()
    p = world.connect(
        world.client_config(session_cache=None, cipher_suites=offer),
        stricter,
        session=first.client.session,
        tamper=log,
    )
    assert_full(p, log)
    assert_reason(stricter, FallbackReason.CIPHER_MISMATCH)


@pytest.mark.parametrize("by", ["ticket", "session_id"])
def test_different_sni(world: World, by: str) -> None:
    server = (
        world.server_config(session_store=None, certificates=(world.certs.ecdsa, world.certs.alt))
        if by == "ticket"
        else world.server_config(
            ticket_keyring=None, certificates=(world.certs.ecdsa, world.certs.alt)
        )
    )
    first = world.connect(world.client_config(session_cache=None), server, server_name="localhost")
    log = MessageLog()
    p = world.connect(
        world.client_config(session_cache=None),
        server,
        server_name="alt.example",
        session=first.client.session,
        tamper=log,
    )
    assert_full(p, log)
    assert p.client.info.peer_certificates[0] == world.certs.alt.leaf
    assert_reason(server, FallbackReason.SNI_MISMATCH)


def test_client_certificate_now_required(world: World) -> None:
    store, keyring = world.store(), world.keyring()
    lax = world.server_config(session_store=store, ticket_keyring=keyring)
    session = ticket_session(world, lax)
    strict = world.server_config(
        session_store=store, ticket_keyring=keyring, client_auth=ClientAuth.REQUIRED
    )
    p, log = resume_with(world, strict, session, certificate=world.certs.client)
    assert_full(p, log)
    assert p.server.info.peer_certificates[0] == world.certs.client.leaf
    assert_reason(strict, FallbackReason.CLIENT_CERT_MISMATCH)


@pytest.mark.parametrize("by", ["ticket", "session_id"])
def test_ems_session_resumed_with_ems_offer_is_full_handshake(world: World, by: str) -> None:
    """RFC 7627 §5.3: the original session did not use EMS, the new ClientHello offers it: the
    server must not resume; it falls back to a full handshake (which then uses EMS)."""
    server = (
        world.server_config(session_store=None)
        if by == "ticket"
        else world.server_config(ticket_keyring=None)
    )
    first = world.connect(
        world.client_config(session_cache=None, extended_master_secret=False), server
    )
    assert first.client.session.state.extended_master_secret is False
    p, log = resume_with(world, server, first.client.session, extended_master_secret=True)
    assert_full(p, log)
    assert p.client.info.extended_master_secret is True
    assert_reason(server, FallbackReason.EMS_MISMATCH)


@pytest.mark.parametrize("by", ["ticket", "session_id"])
def test_ems_session_resumed_without_ems_offer_is_refused(world: World, by: str) -> None:
    """RFC 7627 §5.3: the original session used EMS and the new ClientHello does not offer it:
    the server MUST abort (handshake_failure), on purpose not a fallback."""
    server = (
        world.server_config(session_store=None)
        if by == "ticket"
        else world.server_config(ticket_keyring=None)
    )
    cache = world.cache()
    world.connect(world.client_config(session_cache=cache), server)
    assert cache.count(CACHE_KEY) == 1
    p = world.pair(world.client_config(session_cache=cache, extended_master_secret=False), server)
    p.start()
    with pytest.raises(HandshakeFailure):
        p.pump()
    data = p.server.data_to_send()
    assert parse_records(data) and len(parse_records(data)) == 1  # only the alert
    assert_fatal_alert_last(data, AlertDescription.handshake_failure)
    with pytest.raises(AlertReceived) as err:
        p.client.receive_data(data)
    assert err.value.alert is AlertDescription.handshake_failure
    assert server.statistics.fallback_reasons() == {FallbackReason.EMS_MISMATCH.value: 1}
    assert cache.count(CACHE_KEY) == 0  # the client forgets a session that ended in an alert


# -- fatal alerts end sessions ------------------------------------------------------------------
def _corrupt_next_record(pair: ConnectionPair, direction: Direction) -> None:
    """Send one application record in ``direction`` with a flipped bit in its last byte."""
    sender = pair.client if direction is Direction.C2S else pair.server
    sender.send_data(b"will be damaged")
    (rec,) = pair.intercept(direction)
    assert rec.content_type == ContentType.APPLICATION_DATA
    rec.fragment = flip_bit(rec.fragment, len(rec.fragment) - 1)
    pair.inject(direction, rec.to_bytes())


def test_store_forgets_session_after_fatal_alert(world: World) -> None:
    store = world.store()
    server = world.server_config(ticket_keyring=None, session_store=store)
    p = world.connect(world.client_config(session_cache=None), server)
    session = p.client.session
    assert store.get(session_id_key(session.session_id)) is not None
    with pytest.raises(BadRecordMac):
        _corrupt_next_record(p, Direction.C2S)
    assert store.get(session_id_key(session.session_id)) is None
    q, log = resume_with(world, server, session)
    assert_full(q, log)
    assert_reason(server, FallbackReason.UNKNOWN_SESSION_ID, misses=1)


def test_store_forgets_resumed_session_after_fatal_alert(world: World) -> None:
    store = world.store()
    server = world.server_config(ticket_keyring=None, session_store=store)
    session = id_session(world, server)
    p, _ = resume_with(world, server, session)
    assert p.server.info.resumed_by == "session_id"
    with pytest.raises(BadRecordMac):
        _corrupt_next_record(p, Direction.C2S)
    assert store.get(session_id_key(session.session_id)) is None


def test_store_forgets_session_when_peer_sends_fatal_alert(world: World) -> None:
    store = world.store()
    server = world.server_config(ticket_keyring=None, session_store=store)
    p = world.connect(world.client_config(session_cache=None), server)
    sid = p.server.info.session_id
    with pytest.raises(BadRecordMac):
        _corrupt_next_record(p, Direction.S2C)  # the client fails and sends bad_record_mac
    with pytest.raises(AlertReceived) as err:
        p.deliver(Direction.C2S)
    assert err.value.alert is AlertDescription.bad_record_mac
    assert store.get(session_id_key(sid)) is None


def test_client_forgets_session_after_fatal_alert(world: World) -> None:
    cache = world.cache()
    server = world.server_config()
    p = world.connect(world.client_config(session_cache=cache), server)
    assert cache.count(CACHE_KEY) == 1
    with pytest.raises(BadRecordMac):
        _corrupt_next_record(p, Direction.S2C)
    assert cache.count(CACHE_KEY) == 0
    q = world.connect(world.client_config(session_cache=cache), server)
    assert q.client.info.resumed is False


def test_client_forgets_session_when_server_sends_fatal_alert(world: World) -> None:
    cache = world.cache()
    server = world.server_config()
    p = world.connect(world.client_config(session_cache=cache), server)
    with pytest.raises(BadRecordMac):
        _corrupt_next_record(p, Direction.C2S)
    with pytest.raises(AlertReceived):
        p.deliver(Direction.S2C)
    assert cache.count(CACHE_KEY) == 0


def test_close_notify_keeps_sessions(world: World) -> None:
    cache, store = world.cache(), world.store()
    server = world.server_config(session_store=store, ticket_keyring=None)
    p = world.connect(world.client_config(session_cache=cache), server)
    p.client.close()
    p.server.close()
    p.pump()
    assert cache.count(CACHE_KEY) == 1
    assert store.get(session_id_key(p.server.info.session_id)) is not None

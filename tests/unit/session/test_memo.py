"""Decoded sessions remembered by their bytes: bounded, never past their lifetime, and (for
tickets) cleared with the key that opened them."""

from __future__ import annotations

from tessera import TicketKey, TicketKeyring
from tessera.enums import ProtocolVersion
from tessera.session.memo import SessionMemo
from tessera.session.model import ServerSession
from tessera.session.sealer import Rfc5077Sealer
from tessera.session.stats import FallbackReason

NOW = 1_700_000_000.0


def session(created: float = NOW, lifetime: int = 300) -> ServerSession:
    return ServerSession(ProtocolVersion.TLS1_2, 0xC02B, bytes(48), True, created, lifetime)


def test_a_session_is_not_returned_past_its_lifetime() -> None:
    memo = SessionMemo()
    s = session()
    memo.put(b"k", s.to_bytes(), s, NOW)
    assert memo.get(b"k", NOW + 299) == (s.to_bytes(), s)
    assert memo.get(b"k", NOW + 300) is None
    assert len(memo) == 0  # dropped on the way
    memo.put(b"old", b"", session(created=NOW - 400), NOW)  # expired already: not kept
    assert len(memo) == 0


def test_bounded_oldest_first_and_expired_heads_go() -> None:
    memo = SessionMemo(max_entries=3)
    for i in range(5):
        memo.put(bytes((i,)), b"", session(), NOW)
    assert len(memo) == 3 and memo.get(b"\x00", NOW) is None and memo.get(b"\x04", NOW)
    short = SessionMemo()
    short.put(b"a", b"", session(lifetime=10), NOW)
    short.put(b"b", b"", session(lifetime=300), NOW + 20)  # "a" expired: pruned at the head
    assert len(short) == 1


class Clock:
    now = NOW

    def __call__(self) -> float:
        return self.now


def test_a_ticket_opened_once_is_not_unsealed_again_and_dies_with_its_key() -> None:
    clock = Clock()
    first = TicketKey.generate(NOW)
    ring = TicketKeyring([first], clock=clock)
    sealer = Rfc5077Sealer(ring, clock)
    s = session()
    ticket = sealer.seal(s.to_bytes(), bytes(16))
    assert ticket is not None
    opened = sealer.open(ticket)
    assert not isinstance(opened, FallbackReason) and opened.session == s
    assert len(first.opened) == 1
    again = sealer.open(ticket)
    assert not isinstance(again, FallbackReason) and again.session is opened.session
    # Another ticket under the same key with one flipped MAC byte: still checked.
    bad = ticket[:-1] + bytes((ticket[-1] ^ 1,))
    assert sealer.open(bad) is FallbackReason.TICKET_MAC_FAILED
    # The key rotates out: what it opened is forgotten, and its tickets are unknown.
    ring.install([TicketKey.generate(NOW)])
    assert len(first.opened) == 0
    assert sealer.open(ticket) is FallbackReason.TICKET_UNKNOWN_KEY


def test_a_remembered_ticket_still_expires() -> None:
    clock = Clock()
    ring = TicketKeyring([TicketKey.generate(NOW)], clock=clock)
    sealer = Rfc5077Sealer(ring, clock)
    ticket = sealer.seal(session(lifetime=60).to_bytes(), bytes(16))
    assert ticket is not None
    sealer.open(ticket)
    clock.now = NOW + 61
    opened = sealer.open(ticket)  # decoded again (not from the memo); the resolver refuses it
    assert not isinstance(opened, FallbackReason) and opened.session is not None
    assert opened.session.expired(clock.now)

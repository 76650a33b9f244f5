"""The fleet key schedule, pure: publish before use, one encrypting key, lifetimes enforced by
the clock and never stretched, and the keyring as a TicketKeySource."""

from __future__ import annotations

import pytest

from tessera.errors import ConfigError
from tessera.fleet.keyring import FleetKeyring
from tessera.fleet.keys import FleetKey, KeyPolicy, KeySet, KeyState
from tessera.session.sealer import Rfc5077Sealer
from tessera.session.stats import FallbackReason

POLICY = KeyPolicy(rotation=60.0, decrypt_for=120.0, refresh=5.0)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_policy_limits_and_lead() -> None:
    assert POLICY.lead == 10.0  # two refresh intervals
    assert KeyPolicy(refresh=1.0, lead=30.0).lead == 30.0
    with pytest.raises(ConfigError, match="1 h"):
        KeyPolicy(rotation=3601)
    with pytest.raises(ConfigError, match="7200"):
        KeyPolicy(decrypt_for=7201)


def test_record_round_trip() -> None:
    k = FleetKey.mint(1000.0, 1010.0, POLICY)
    back = FleetKey.from_bytes(k.to_bytes())
    assert back.key.to_bytes() == k.key.to_bytes()
    assert (back.created, back.encrypts_from, back.encrypts_until, back.erased_at) == (
        1000.0, 1010.0, 1070.0, 1190.0,
    )  # fmt: skip
    assert k.key.hmac_key.hex() not in repr(k)


def test_publish_before_use_and_schedule() -> None:
    now = 1000.0
    empty = KeySet()
    assert empty.rotation_due(now, POLICY)
    first = FleetKey.mint(now, empty.next_start(now, POLICY), POLICY)
    assert first.encrypts_from == now + POLICY.lead  # decrypt-only everywhere for the lead
    ks = KeySet.of([first])
    assert ks.encrypting(now) is None
    assert first.state(now, None) is KeyState.PUBLISHED
    assert ks.encrypting(now + 10) is first
    assert not ks.rotation_due(now + 10, POLICY)
    # the next key is due ``lead`` before the first stops, and starts exactly then
    due_at = first.encrypts_until - POLICY.lead
    assert not ks.rotation_due(due_at - 0.1, POLICY) and ks.rotation_due(due_at, POLICY)
    second = FleetKey.mint(due_at, ks.next_start(due_at, POLICY), POLICY)
    assert second.encrypts_from == first.encrypts_until
    ks = ks.merged([second])
    assert ks.encrypting(first.encrypts_until - 0.001) is first
    assert ks.encrypting(first.encrypts_until) is second
    assert ks.decrypting(first.name, first.erased_at - 0.001) is first
    assert ks.decrypting(first.name, first.erased_at) is None  # erased on time


def test_no_stretching_after_a_gap() -> None:
    """A source down past a key's end: no key encrypts (no tickets); a key minted late starts
    ``lead`` after minting, the old one is not extended."""
    first = FleetKey.mint(1000.0, 1000.0, POLICY)
    ks = KeySet.of([first])
    late = first.encrypts_until + 30
    assert ks.encrypting(late) is None
    second = FleetKey.mint(late, ks.next_start(late, POLICY), POLICY)
    assert second.encrypts_from == late + POLICY.lead
    assert ks.merged([second]).encrypting(late + 1) is None


def test_keyring_as_a_ticket_key_source() -> None:
    clock = Clock(1000.0)
    kr = FleetKeyring(POLICY, clock=clock)
    assert kr.encryption_key() is None  # nothing: issue no tickets
    first = FleetKey.mint(1000.0, 1000.0, POLICY)
    kr.install(KeySet.of([first]))
    sealer = Rfc5077Sealer(kr)
    ticket = sealer.seal(b"state" * 10, bytes(16))
    assert ticket is not None
    opened = sealer.open(ticket)
    assert not isinstance(opened, FallbackReason) and opened.key_is_current
    assert sealer.lifetime(7200, clock.now) == 180  # never beyond the key's erasure
    second = FleetKey.mint(1050.0, first.encrypts_until, POLICY)
    kr.install(KeySet.of([second]))  # a source that forgot ``first`` cannot take it away
    clock.now = first.encrypts_until + 1
    assert kr.encryption_key() is second.key
    opened = sealer.open(ticket)
    assert not isinstance(opened, FallbackReason) and not opened.key_is_current  # renew
    clock.now = first.erased_at
    assert sealer.open(ticket) is FallbackReason.TICKET_UNKNOWN_KEY
    clock.now = second.erased_at
    assert kr.encryption_key() is None and kr.describe() == []

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


def test_policy_limits_lead_and_horizon() -> None:
    assert POLICY.lead == 10.0  # two refresh intervals
    assert POLICY.horizon == 20.0  # and two more for a late refresh
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


def test_an_empty_fleet_encrypts_at_once() -> None:
    now = 1000.0
    (first,) = KeySet().due_keys(now, POLICY)
    assert first.encrypts_from == now  # no node can hold another key: no lead needed
    assert KeySet.of([first]).encrypting(now) is first
    short = KeyPolicy(rotation=4.0, decrypt_for=8.0, refresh=5.0)  # rotation < horizon
    keys = KeySet().due_keys(now, short)
    starts = [k.encrypts_from for k in keys]
    assert starts == [now + 4 * i for i in range(len(keys))]  # on the grid, from now
    assert keys[-1].encrypts_until - now > short.horizon


def test_next_key_published_a_lead_ahead_on_the_grid() -> None:
    now = 1000.0
    (first,) = KeySet().due_keys(now, POLICY)
    ks = KeySet.of([first])
    assert ks.due_keys(first.encrypts_until - POLICY.horizon - 0.1, POLICY) == []
    due_at = first.encrypts_until - POLICY.horizon
    (second,) = ks.due_keys(due_at, POLICY)
    assert second.encrypts_from == first.encrypts_until  # exactly the grid
    assert second.encrypts_from - second.created == POLICY.horizon >= POLICY.lead
    assert second.state(due_at, first) is KeyState.PUBLISHED
    ks = ks.merged([second])
    assert ks.encrypting(first.encrypts_until - 0.001) is first
    assert ks.encrypting(first.encrypts_until) is second
    assert ks.decrypting(first.name, first.erased_at - 0.001) is first
    assert ks.decrypting(first.name, first.erased_at) is None  # erased on time


@pytest.mark.parametrize("phase", [0.0, 0.37, 2.5, 4.99])
def test_refreshes_on_a_grid_leave_no_gap(phase: float) -> None:
    """Refreshes every ``refresh`` seconds at any phase, some up to a whole interval late (a
    slow Redis, a busy node): some key always encrypts, and every key after the first is
    published at least ``lead`` before it starts."""
    policy = KeyPolicy(rotation=12.0, decrypt_for=24.0, refresh=5.0)
    ks = KeySet()
    minted: list[FleetKey] = []
    t = 1000.0 + phase
    late = 0
    while t < 1400.0:
        now = t + (policy.refresh if late % 3 == 2 else 0.0)  # every third refresh is late
        late += 1
        due = ks.due_keys(now, policy)
        minted += due
        ks = ks.live(now).merged(due)
        t += policy.refresh
    _first, *rest = minted
    assert len(minted) > 30
    for k in rest:
        assert k.encrypts_from - k.created >= policy.lead, k
    everything = KeySet.of(minted)
    probe = 1000.0 + phase
    while probe < 1390.0:
        assert everything.encrypting(probe) is not None, probe
        probe += 0.25


def test_no_stretching_after_a_gap() -> None:
    """A source down past a key's end: no key encrypts (no tickets); a key minted late starts
    ``lead`` after minting, the old one is not extended."""
    first = FleetKey.mint(1000.0, 1000.0, POLICY)
    ks = KeySet.of([first])
    late = first.encrypts_until + 30
    assert ks.encrypting(late) is None
    (second,) = ks.due_keys(late, POLICY)
    assert second.encrypts_from == late + POLICY.lead
    assert ks.merged([second]).encrypting(late + 1) is None


def test_a_key_forced_between_keeps_the_schedule_whole() -> None:
    """``tessera keys rotate``: a key starting a lead from now, inside the current key's time.
    It takes over at its start; the grid goes on from its end; no key is minted for a slot
    already covered."""
    now = 1000.0
    (first,) = KeySet().due_keys(now, POLICY)
    forced = FleetKey.mint(now + 5, now + 5 + POLICY.lead, POLICY)
    ks = KeySet.of([first, forced])
    assert ks.first_gap(now) == forced.encrypts_until
    assert ks.due_keys(now + 5, POLICY) == []
    assert ks.encrypting(forced.encrypts_from - 0.001) is first
    assert ks.encrypting(forced.encrypts_from) is forced
    (nxt,) = ks.due_keys(forced.encrypts_until - POLICY.horizon, POLICY)
    assert nxt.encrypts_from == forced.encrypts_until


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

"""Which keys the servers fed by ``tessera keys sync`` hold at a moment — pure, no I/O.

The fleet keyring already says which key encrypts now (:meth:`.KeySet.encrypting`: the key that
started last, if it has not stopped). A server fed through a file gets one more rule on top:

*a key that has not been published for at least the lead time is never its encrypting key*
(the lead is the agent's, twice its refresh interval, as for the nodes). So every server of the
fleet — tessera nodes and servers fed by other agents — holds a key before anyone issues a
ticket under it, whoever minted it and however short a lead ``keys rotate --lead`` was given.
And an expired key (past its encrypting window) never encrypts either: when no fleet key may
encrypt (a new fleet's first key is too fresh; Redis has been away so long that the last key
stopped), the server encrypts with a *local* key — random, never shared, never written
anywhere else — so its tickets resume on that server only, and nothing fails.

Roles, in the order a server with few slots keeps them:

* **encrypting** — the fleet key that encrypts now, or the local key;
* **next** — the published key that encrypts next (it must be everywhere before it starts);
* **decrypt-only** — keys that stopped encrypting and are not yet erased, newest first;
* later keys published ahead of the next one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...session.keyring import TicketKey
from ..keys import FleetKey, KeySet


@dataclass(frozen=True, slots=True)
class KeyView:
    """The keys a synced server should hold now."""

    encrypting: TicketKey
    fleet_key: FleetKey | None  # the fleet key that encrypts; None: ``encrypting`` is local
    upcoming: tuple[FleetKey, ...] = ()  # published, not yet encrypting here, soonest first
    retired: tuple[FleetKey, ...] = ()  # stopped encrypting, not yet erased, newest first

    @property
    def local(self) -> bool:
        return self.fleet_key is None

    @property
    def next_key(self) -> TicketKey | None:
        return self.upcoming[0].key if self.upcoming else None

    def decrypt_only(self) -> tuple[TicketKey, ...]:
        """Every key to hold besides the encrypting one, the most needed first: the next key,
        then the decrypt-only keys newest first, then keys published further ahead."""
        keys = (*self.upcoming[:1], *self.retired, *self.upcoming[1:])
        return tuple(k.key for k in keys)

    def names(self) -> tuple[bytes, ...]:
        """The key names in role order (what changes when the view changes)."""
        return (self.encrypting.name, *(k.name for k in self.decrypt_only()))


def may_encrypt(key: FleetKey, now: float, lead: float) -> bool:
    """Whether a key the fleet schedule makes encrypting now has been published long enough."""
    return now >= key.created + lead


def key_view(snap: KeySet, now: float, lead: float, local: TicketKey) -> KeyView:
    """The view of ``snap`` at ``now``; ``local`` encrypts when no fleet key may.

    The encrypting key is the fleet's (:meth:`.KeySet.encrypting`) if it was published at
    least ``lead`` ago; if it is too fresh (a ``keys rotate`` with a shorter lead), the key it
    replaces goes on encrypting while its own window lasts; else the local key encrypts."""
    live = [k for k in snap.keys if now < k.erased_at]
    scheduled = enc = snap.encrypting(now)
    if scheduled is not None and not may_encrypt(scheduled, now, lead):
        earlier = [
            k
            for k in live
            if k.encrypts_from <= now < k.encrypts_until
            and k.encrypts_from <= scheduled.encrypts_from
            and k is not scheduled
            and may_encrypt(k, now, lead)
        ]
        enc = max(earlier, key=lambda k: (k.encrypts_from, k.created), default=None)
    too_fresh = scheduled if scheduled is not enc else None
    upcoming = [k for k in live if k is not enc and (k.encrypts_from > now or k is too_fresh)]
    retired = [k for k in live if k is not enc and k.encrypts_from <= now and k is not too_fresh]
    upcoming.sort(key=lambda k: (max(k.encrypts_from, k.created + lead), k.created))
    retired.sort(key=lambda k: (k.encrypts_from, k.created), reverse=True)
    if enc is None:
        return KeyView(local, None, tuple(upcoming), tuple(retired))
    return KeyView(enc.key, enc, tuple(upcoming), tuple(retired))


def next_change(snap: KeySet, now: float, lead: float) -> float | None:
    """The next moment the view of ``snap`` changes by the clock alone (a key starts or stops
    encrypting, becomes old enough to encrypt here, or is erased); None if never."""
    times = [
        t
        for k in snap.keys
        for t in (k.encrypts_from, k.encrypts_until, k.erased_at, k.created + lead)
        if t > now
    ]
    return min(times, default=None)

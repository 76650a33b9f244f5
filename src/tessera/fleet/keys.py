"""Fleet ticket keys: when each key encrypts, decrypts and is erased — pure, no I/O.

Every key carries its schedule, fixed when it is minted and never changed (a lifetime is never
stretched)::

    created ── lead ──> encrypts_from ── rotation ──> encrypts_until ── decrypt_for ──> erased_at
            published,                  encrypting                    decrypt-only
            decrypt-only

At any moment the encrypting key is the one that started last, if it has not stopped.

*A grid with no gaps.* Keys encrypt on a fixed grid of absolute times: each key starts exactly
when the one before it stops (the grid is anchored at the fleet's first key). The next key is
minted a *horizon* ahead of need — as soon as the schedule would run out within ``lead`` plus
two refresh intervals — so whichever refresh comes first after that (one is due every refresh
interval) mints it, and it is still published a full ``lead`` before it starts: every node holds
it before any node encrypts with it (*publish before use*), and the current key never stops
without a successor. Where a gap cannot be avoided (the source was down past a key's end) the
new key starts ``lead`` after it is minted, never sooner, and no tickets are issued meanwhile.

*An empty fleet starts at once*: with no key anywhere no node can hold another, so the first
key encrypts from the moment it is minted (and the keys minted with it follow on the grid).
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from ..errors import ConfigError
from ..session.keyring import KeyFileFormat, TicketKey

MAX_ENCRYPT = 3600.0  # a key encrypts for at most 1 h
MAX_DECRYPT = 7200.0  # and decrypts for at most 2 h more
_TIMES = struct.Struct(">dddd")
KEY_RECORD = _TIMES.size + 80
_MAX_MINTS = 64  # keys minted at once at most (a rotation 64 times shorter than the horizon)


class KeyState(Enum):
    PUBLISHED = "published (decrypt-only, not yet encrypting)"
    ENCRYPTING = "encrypting"
    DECRYPT_ONLY = "decrypt-only"
    ERASED = "erased"


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """How long keys encrypt and decrypt, and how far ahead they are published."""

    rotation: float = MAX_ENCRYPT  # seconds a key encrypts
    decrypt_for: float = MAX_DECRYPT  # seconds it still decrypts after that
    refresh: float = 5.0  # seconds between a node's refreshes (the timer)
    lead: float = 0.0  # seconds between minting and encrypting; at least 2 * refresh

    def __post_init__(self) -> None:
        if not 0 < self.rotation <= MAX_ENCRYPT:
            raise ConfigError(f"a fleet ticket key encrypts for 0..{MAX_ENCRYPT:g} s (1 h)")
        if not 0 <= self.decrypt_for <= MAX_DECRYPT:
            raise ConfigError(f"a fleet ticket key decrypts for at most {MAX_DECRYPT:g} s more")
        if self.refresh <= 0:
            raise ConfigError("the keyring refresh interval must be positive")
        object.__setattr__(self, "lead", max(self.lead, 2 * self.refresh))

    @property
    def horizon(self) -> float:
        """How far ahead keys are minted: the schedule always covers this long from now (the
        lead, plus two refresh intervals for a refresh that comes late)."""
        return self.lead + 2 * self.refresh


@dataclass(frozen=True, slots=True)
class FleetKey:
    key: TicketKey
    created: float
    encrypts_from: float
    encrypts_until: float
    erased_at: float

    @property
    def name(self) -> bytes:
        return self.key.name

    def state(self, now: float, encrypting: FleetKey | None) -> KeyState:
        if now >= self.erased_at:
            return KeyState.ERASED
        if encrypting is self:
            return KeyState.ENCRYPTING
        if now < self.encrypts_from:
            return KeyState.PUBLISHED
        return KeyState.DECRYPT_ONLY

    def to_bytes(self) -> bytes:
        """The schedule and the key material: only ever sealed, or sent down a private pipe."""
        times = _TIMES.pack(self.created, self.encrypts_from, self.encrypts_until, self.erased_at)
        return times + self.key.to_bytes(KeyFileFormat.NATIVE)

    @classmethod
    def from_bytes(cls, raw: bytes) -> FleetKey:
        if len(raw) != KEY_RECORD:
            raise ValueError(f"a fleet key record is {KEY_RECORD} bytes, not {len(raw)}")
        created, start, until, erased = _TIMES.unpack_from(raw)
        key = TicketKey.from_bytes(raw[_TIMES.size :], KeyFileFormat.NATIVE, created)
        return cls(key, created, start, until, erased)

    @classmethod
    def mint(cls, now: float, start: float, policy: KeyPolicy,
             rng: Callable[[int], bytes] = os.urandom) -> FleetKey:  # fmt: skip
        until = start + policy.rotation
        return cls(TicketKey.generate(now, 80, rng), now, start, until, until + policy.decrypt_for)


@dataclass(frozen=True, slots=True)
class KeySet:
    """An immutable snapshot of a fleet's keys, ordered by the time each starts encrypting."""

    keys: tuple[FleetKey, ...] = ()
    by_name: dict[bytes, FleetKey] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.keys, key=lambda k: (k.encrypts_from, k.created)))
        object.__setattr__(self, "keys", ordered)
        object.__setattr__(self, "by_name", {k.name: k for k in ordered})

    @classmethod
    def of(cls, keys: Iterable[FleetKey]) -> KeySet:
        return cls(tuple(keys))

    def live(self, now: float) -> KeySet:
        """Without erased keys."""
        return KeySet.of(k for k in self.keys if now < k.erased_at)

    def merged(self, other: Iterable[FleetKey]) -> KeySet:
        """This set plus ``other``'s keys it lacks (a key's record never changes)."""
        extra = [k for k in other if k.name not in self.by_name]
        return KeySet.of((*self.keys, *extra)) if extra else self

    def encrypting(self, now: float) -> FleetKey | None:
        """The key that started encrypting last, if it has not stopped."""
        for k in reversed(self.keys):
            if k.encrypts_from <= now:
                return k if now < k.encrypts_until and now < k.erased_at else None
        return None

    def decrypting(self, name: bytes, now: float) -> FleetKey | None:
        k = self.by_name.get(name)
        return k if k is not None and now < k.erased_at else None

    def latest(self) -> FleetKey | None:
        return self.keys[-1] if self.keys else None

    def first_gap(self, now: float) -> float:
        """The first instant from ``now`` on when no key would encrypt (keys in order of
        start: each one encrypts from its start until it stops or the next one starts)."""
        t = now
        keys = self.keys
        for i, k in enumerate(keys):
            nxt = keys[i + 1].encrypts_from if i + 1 < len(keys) else math.inf
            if nxt <= t:
                continue  # followed by another key before t
            if k.encrypts_from > t:
                return t  # nothing encrypts until k starts
            end = min(k.encrypts_until, k.erased_at)
            if end < nxt:
                return max(t, end)
            t = nxt
        return t

    def next_start(self, now: float, policy: KeyPolicy, immediate: bool = False) -> float | None:
        """When a key minted now must start encrypting, or None while the schedule covers the
        horizon: at once for an empty fleet; else at the first gap (the grid), never sooner than
        ``lead`` from now unless ``immediate`` (keys minted together with an empty fleet's
        first key, which no node can have yet either)."""
        if not self.keys:
            return now
        gap = self.first_gap(now)
        if not immediate and gap < now + policy.lead:
            gap = self.first_gap(now + policy.lead)  # the earliest a key minted now may start
        return None if gap - now > policy.horizon else gap

    def due_keys(self, now: float, policy: KeyPolicy,
                 rng: Callable[[int], bytes] = os.urandom) -> list[FleetKey]:  # fmt: skip
        """The keys to mint now so the schedule covers the horizon (usually none or one; more
        when rotations are shorter than the horizon)."""
        minted: list[FleetKey] = []
        current = self.live(now)
        empty = not current.keys
        for _ in range(_MAX_MINTS):
            start = current.next_start(now, policy, immediate=empty)
            if start is None:
                break
            key = FleetKey.mint(now, start, policy, rng)
            minted.append(key)
            current = current.merged([key])
        return minted

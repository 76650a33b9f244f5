"""The key-name census (``--watch``): which ticket key each address issues under, over time.

Every ``interval`` seconds each address gets one full handshake (TLS 1.3, or TLS 1.2 with a
ticket when it issues no TLS 1.3 tickets) and the key names of its tickets are noted. A key
seen for the first time after another one is a rotation; the estimated rotation period is the
median time between rotations, good to one probe interval (a rotation is seen at the first
probe after it). A key that comes back after another one means several keys are in use at
once: servers behind one address that do not share ticket keys.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .classify import Mechanism
from .keynames import KeyNames, KeyNameStatus, analyse, label
from .mechanisms import Step, config_for
from .probe import Endpoint, Handshake, TicketSeen, handshake

DAY = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # seconds since the watch began
    address: str
    version: str | None
    tickets: tuple[TicketSeen, ...] = field(repr=False)
    error: str | None

    @property
    def prefix(self) -> bytes | None:
        """The newest key this sample showed (its last ticket's prefix)."""
        return self.tickets[-1].prefix if self.tickets else None


@dataclass(frozen=True, slots=True)
class KeySighting:
    name: bytes
    first_seen: float
    last_seen: float
    samples: int


@dataclass(frozen=True, slots=True)
class AddressCensus:
    address: str
    key_names: KeyNames
    keys: tuple[KeySighting, ...]
    rotations: tuple[float, ...]  # when each new key was first seen (after the first key)
    period_s: float | None  # estimated rotation period (two rotations or more)
    period_at_least_s: float | None  # the longest time one key was seen in use
    alternating: bool  # a key came back after another: several keys at once
    samples: int
    failures: int


@dataclass(frozen=True, slots=True)
class Census:
    duration_s: float
    interval_s: float
    rounds: int
    addresses: tuple[AddressCensus, ...]
    shared: tuple[tuple[bytes, tuple[str, ...]], ...]  # key name -> addresses that used it
    samples: tuple[Sample, ...] = field(repr=False)
    warnings: tuple[str, ...] = ()


def sample(endpoint: Endpoint, at: float, timeout: float) -> Sample:
    """One full handshake's tickets: TLS 1.3 first, TLS 1.2 when that gave none."""
    hs: Handshake | None = None
    for mechanism in (Mechanism.PSK, Mechanism.TICKET):
        hs = handshake(endpoint, config_for(mechanism), timeout=timeout)
        if hs.ok and hs.tickets:
            break
    assert hs is not None
    return Sample(at, endpoint.label, hs.version, hs.tickets, hs.error)


def watch(
    endpoints: Sequence[Endpoint],
    duration: float,
    interval: float,
    timeout: float,
    step: Step,
    backends: Sequence[str] = (),
    sleep: Callable[[float], None] = time.sleep,
    samples: list[Sample] | None = None,
) -> Census:
    """Sample every endpoint every ``interval`` seconds for ``duration`` seconds; ``backends``
    (labels) are the addresses expected to share keys. Samples are appended to ``samples`` as
    they are taken (so an interrupted watch keeps them: :func:`summarise` what is there)."""
    start = time.monotonic()
    samples = [] if samples is None else samples
    rounds = planned_rounds(duration, interval)
    for k in range(rounds):
        wait = start + k * interval - time.monotonic()
        if wait > 0:
            sleep(wait)
        at = round(time.monotonic() - start, 3)
        for endpoint in endpoints:
            samples.append(sample(endpoint, at, timeout))
        step(f"census round {k + 1} of {rounds}")
    return summarise(samples, duration, interval, rounds, [e.label for e in endpoints], backends)


def planned_rounds(duration: float, interval: float) -> int:
    """Rounds at 0, interval, ... up to duration."""
    return int(duration // interval + 1e-9) + 1


def summarise(
    samples: Sequence[Sample],
    duration: float,
    interval: float,
    rounds: int,
    order: Sequence[str],
    backends: Sequence[str] = (),
) -> Census:
    per = [_address(a, [s for s in samples if s.address == a]) for a in order]
    owners: dict[bytes, list[str]] = {}
    for c in per:
        for k in c.keys:
            owners.setdefault(k.name, []).append(c.address)
    shared = tuple((name, tuple(addrs)) for name, addrs in owners.items())
    return Census(
        duration,
        interval,
        rounds,
        tuple(per),
        shared,
        tuple(samples),
        tuple(_warnings(per, samples, backends)),
    )


def _address(address: str, samples: Sequence[Sample]) -> AddressCensus:
    tickets = [t for s in samples for t in s.tickets]
    names = analyse(tickets)
    failures = sum(1 for s in samples if s.error)
    if names.status is not KeyNameStatus.KEY_NAME:
        return AddressCensus(address, names, (), (), None, None, False, len(samples), failures)
    first: dict[bytes, float] = {}
    last: dict[bytes, float] = {}
    count: dict[bytes, int] = {}
    rotations: list[float] = []
    alternating = False
    previous: bytes | None = None
    for s in samples:
        for p in dict.fromkeys(t.prefix for t in s.tickets):  # a rotation may split a sample
            if p not in first:
                if first:
                    rotations.append(s.at)
                first[p] = s.at
            elif p != previous:
                alternating = True
            last[p] = s.at
            count[p] = count.get(p, 0) + 1
            previous = p
    keys = tuple(KeySighting(p, first[p], last[p], count[p]) for p in first)
    period = None
    if len(rotations) >= 2 and not alternating:
        gaps = [b - a for a, b in itertools.pairwise(rotations)]
        period = round(statistics.median(gaps), 3)
    at_least = round(max(k.last_seen - k.first_seen for k in keys), 3)
    return AddressCensus(
        address,
        names,
        keys,
        tuple(rotations),
        period,
        at_least,
        alternating,
        len(samples),
        failures,
    )


def _warnings(
    per: Sequence[AddressCensus], samples: Sequence[Sample], backends: Sequence[str]
) -> list[str]:
    out = []
    for c in per:
        if c.alternating:
            out.append(
                f"{c.address}: {len(c.keys)} ticket keys in use at once (they alternate): "
                "the servers behind this address do not share ticket keys"
            )
        if c.keys and not c.rotations and (c.period_at_least_s or 0) > DAY:
            out.append(f"{c.address}: the same ticket key for more than 24 h")
        elif any(k.last_seen - k.first_seen > DAY for k in c.keys):
            out.append(f"{c.address}: a ticket key stayed in use for more than 24 h")
    latest: dict[str, bytes] = {}
    for s in samples:
        if s.prefix is not None:
            latest[s.address] = s.prefix
    named = [c.address for c in per if c.keys and not c.alternating and c.address in backends]
    current = {latest[a] for a in named if a in latest}
    if len(named) > 1 and len(current) > 1:
        out.append(
            "backends use different ticket keys at the end of the watch: "
            + ", ".join(f"{a} {label(latest[a])}" for a in named if a in latest)
        )
    return out

"""The audit: every mechanism on every address, the cross-backend matrix, key names (and the
census when watching), warnings and the checks that decide the exit code."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .census import Census, watch
from .checks import Check, evaluate
from .classify import Mechanism
from .keynames import KeyNames, KeyNameStatus, analyse, label
from .matrix import MATRIX_MECHANISMS, Cell, cross
from .mechanisms import MechanismResult, Step, probe_early_data, probe_mechanism, refine_psk_ke
from .probe import Endpoint

ALL_MECHANISMS = tuple(Mechanism)


@dataclass(frozen=True, slots=True)
class AuditOptions:
    targets: tuple[Endpoint, ...] = ()
    backends: tuple[Endpoint, ...] = ()
    attempts: int = 3
    expect: tuple[str, ...] = ("any",)
    mechanisms: tuple[Mechanism, ...] = ALL_MECHANISMS
    watch_s: float | None = None
    interval_s: float = 60.0
    timeout: float = 10.0

    @property
    def endpoints(self) -> tuple[tuple[Endpoint, str], ...]:
        return tuple((e, "target") for e in self.targets) + tuple(
            (e, "backend") for e in self.backends
        )

    def steps(self) -> int:
        """How many progress steps the audit takes (for the progress bar)."""
        n = len(self.endpoints) * len(self.mechanisms)
        if len(self.backends) > 1:
            n += len(self.backends) ** 2 * len(self.matrix_mechanisms())
        if self.watch_s is not None:
            n += int(self.watch_s // self.interval_s) + 1
        return n

    def matrix_mechanisms(self) -> tuple[Mechanism, ...]:
        return tuple(m for m in MATRIX_MECHANISMS if m in self.mechanisms)


@dataclass(frozen=True, slots=True)
class AddressReport:
    endpoint: Endpoint
    role: str  # "target" or "backend"
    mechanisms: tuple[MechanismResult, ...]
    key_names: KeyNames
    # For a target with backends: each of its key names and the backends that issue it.
    key_owners: tuple[tuple[bytes, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    options: AuditOptions
    started: float
    duration_s: float
    addresses: tuple[AddressReport, ...]
    matrix: tuple[Cell, ...]
    census: Census | None
    warnings: tuple[str, ...]
    checks: tuple[Check, ...] = field(default=())

    @property
    def failed_checks(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed_checks else 0


def probe_address(
    endpoint: Endpoint, role: str, options: AuditOptions, step: Step
) -> AddressReport:
    results: dict[Mechanism, MechanismResult] = {}
    for m in options.mechanisms:
        step(f"{endpoint.label}: {m.title}")
        if m is Mechanism.EARLY_DATA:
            results[m] = probe_early_data(endpoint, options.attempts, options.timeout)
        else:
            results[m] = probe_mechanism(m, endpoint, options.attempts, options.timeout)
    refine_psk_ke(results)
    tickets = [t for r in results.values() for h in r.handshakes for t in h.tickets]
    return AddressReport(endpoint, role, tuple(results.values()), analyse(tickets))


def audit(options: AuditOptions, step: Step = lambda _: None) -> Report:
    started = time.time()
    t0 = time.monotonic()
    addresses = [probe_address(e, role, options, step) for e, role in options.endpoints]
    matrix: list[Cell] = []
    if len(options.backends) > 1:
        matrix = cross(options.backends, options.timeout, step, options.matrix_mechanisms())
    addresses = _attribute(addresses)
    census = None
    if options.watch_s is not None:
        census = watch(
            [e for e, _ in options.endpoints],
            options.watch_s,
            options.interval_s,
            options.timeout,
            step,
            [b.label for b in options.backends],
        )
    warnings = _key_warnings(addresses) + _replay_warnings(addresses)
    if census is not None:
        warnings += list(census.warnings)
    checks = evaluate(options.expect, [(a.endpoint.label, a.mechanisms) for a in addresses], matrix)
    return Report(
        options,
        started,
        round(time.monotonic() - t0, 3),
        tuple(addresses),
        tuple(matrix),
        census,
        tuple(warnings),
        tuple(checks),
    )


def _attribute(addresses: Sequence[AddressReport]) -> list[AddressReport]:
    """For each target, which backends issue the key names it showed."""
    owners: dict[bytes, list[str]] = {}
    for a in addresses:
        if a.role == "backend":
            for name in a.key_names.names:
                owners.setdefault(name, []).append(a.endpoint.label)
    out = []
    for a in addresses:
        if a.role == "target" and owners:
            found = tuple((n, tuple(owners.get(n, ()))) for n in a.key_names.names)
            out.append(AddressReport(a.endpoint, a.role, a.mechanisms, a.key_names, found))
        else:
            out.append(a)
    return out


def _key_warnings(addresses: Sequence[AddressReport]) -> list[str]:
    out = []
    named = [
        a for a in addresses if a.role == "backend" and a.key_names.status is KeyNameStatus.KEY_NAME
    ]
    if len(named) > 1:
        sets = [set(a.key_names.names) for a in named]
        if not set.intersection(*sets):
            out.append(
                "backends use different ticket keys (a ticket from one cannot resume at "
                "another): "
                + ", ".join(
                    f"{a.endpoint.label} {' '.join(label(n) for n in a.key_names.names)}"
                    for a in named
                )
            )
    for a in addresses:
        names = a.key_names
        if a.role != "target" or names.status is not KeyNameStatus.KEY_NAME or len(names.names) < 2:
            continue
        if a.key_owners:
            whose = ", ".join(
                f"{label(n)} from {' and '.join(b) if b else 'no audited backend'}"
                for n, b in a.key_owners
            )
            out.append(f"{a.endpoint.label} issues tickets under {len(names.names)} keys: {whose}")
        else:
            out.append(
                f"{a.endpoint.label} issued tickets under {len(names.names)} keys within "
                "seconds: the servers behind it may not share ticket keys (or a key rotated "
                "during the audit)"
            )
    return out


def _replay_warnings(addresses: Sequence[AddressReport]) -> list[str]:
    return [
        f"{a.endpoint.label}: 0-RTT replay accepted — {r.replay.evidence}"
        for a in addresses
        for r in a.mechanisms
        if r.replay is not None and r.replay.replay_accepted
    ]

"""The audit: a first contact with every address (can it be audited, which server is it), every
mechanism on every reachable address, the cross-backend matrix, key names (and the census when
watching), warnings, and the checks — with remedies — that decide the exit code.

What is gathered is kept as it is gathered: a run interrupted (Ctrl-C, or ``stop`` set by the
caller) still reports every address, cell and census sample it finished.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .census import DAY, Census, Sample, planned_rounds, summarise, watch
from .checks import Check, Status, evaluate
from .classify import Mechanism
from .identify import Contact, ServerKind, first_contact
from .keynames import KeyNames, KeyNameStatus, analyse, label
from .matrix import MATRIX_MECHANISMS, Cell, cross, refine
from .mechanisms import MechanismResult, Step, probe_early_data, probe_mechanism, refine_psk_ke
from .probe import Endpoint, TicketSeen
from .remedy import Fix, remedy

ALL_MECHANISMS = tuple(Mechanism)
EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE, EXIT_INTERRUPTED = 0, 1, 3, 130  # 2: usage (click)


class AuditInterrupted(Exception):
    """The caller asked the audit to stop (its ``stop`` event was set)."""


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
    server_type: ServerKind | None = None  # --server-type: skip identification
    name: str | None = None  # the service's name (default: its first target, or its backends)

    @property
    def endpoints(self) -> tuple[tuple[Endpoint, str], ...]:
        return tuple((e, "target") for e in self.targets) + tuple(
            (e, "backend") for e in self.backends
        )

    @property
    def service(self) -> str:
        """The service's name: what a metric's ``target`` label and a summary row say."""
        if self.name:
            return self.name
        if self.targets:
            return self.targets[0].label
        return ",".join(b.label for b in self.backends)

    def steps(self) -> int:
        """How many progress steps the audit takes (for the progress bar)."""
        n = len(self.endpoints) * (len(self.mechanisms) + 1)
        if len(self.backends) > 1:
            n += len(self.backends) ** 2 * len(self.matrix_mechanisms())
        if self.watch_s is not None:
            n += planned_rounds(self.watch_s, self.interval_s)
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
    contact: Contact | None = None

    @property
    def reachable(self) -> bool:
        return self.contact is None or self.contact.reachable

    @property
    def kind(self) -> ServerKind:
        return self.contact.identity.kind if self.contact else ServerKind.GENERIC


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
    interrupted: bool = False

    @property
    def failed_checks(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status is Status.FAILED)

    @property
    def warned_checks(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status is Status.WARNING)

    @property
    def errors(self) -> tuple[str, ...]:
        """One message per address that could not be audited."""
        return tuple(
            a.contact.error for a in self.addresses if a.contact and a.contact.error is not None
        )

    @property
    def exit_code(self) -> int:
        """130 interrupted, 3 an address could not be audited, 1 a check failed, else 0."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.errors:
            return EXIT_UNREACHABLE
        return EXIT_FAILED if self.failed_checks else EXIT_OK


@dataclass
class _Gathered:
    """What an audit has found so far."""

    addresses: list[AddressReport] = field(default_factory=list)
    matrix: list[Cell] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    current: tuple[Endpoint, str, Contact, dict[Mechanism, MechanismResult]] | None = None


def probe_address(
    endpoint: Endpoint,
    role: str,
    options: AuditOptions,
    step: Step,
    contact: Contact | None = None,
    results: dict[Mechanism, MechanismResult] | None = None,
) -> AddressReport:
    """Every mechanism at one address (results land in ``results`` as they are found)."""
    results = {} if results is None else results
    for m in options.mechanisms:
        step(f"{endpoint.label}: {m.title}")
        if m is Mechanism.EARLY_DATA:
            results[m] = probe_early_data(endpoint, options.attempts, options.timeout)
        else:
            results[m] = probe_mechanism(m, endpoint, options.attempts, options.timeout)
    return _address(endpoint, role, contact, results)


def _address(
    endpoint: Endpoint,
    role: str,
    contact: Contact | None,
    results: dict[Mechanism, MechanismResult],
) -> AddressReport:
    refine_psk_ke(results)
    tickets = [t for r in results.values() for h in r.handshakes for t in h.tickets]
    return AddressReport(endpoint, role, tuple(results.values()), analyse(tickets), (), contact)


def audit(
    options: AuditOptions, step: Step = lambda _: None, stop: threading.Event | None = None
) -> Report:
    """The whole audit. Ctrl-C (in the thread that runs it) or ``stop`` ends it early with what
    was gathered (``Report.interrupted``)."""
    started = time.time()
    t0 = time.monotonic()

    def checked_step(what: str) -> None:
        if stop is not None and stop.is_set():
            raise AuditInterrupted
        step(what)

    got = _Gathered()
    interrupted = False
    try:
        _gather(options, checked_step, got)
    except (KeyboardInterrupt, AuditInterrupted):
        interrupted = True
        if got.current is not None:  # the address being probed: what it finished
            endpoint, role, contact, results = got.current
            got.addresses.append(_address(endpoint, role, contact, results))
    return _report(options, got, started, time.monotonic() - t0, interrupted)


def _gather(options: AuditOptions, step: Step, got: _Gathered) -> None:
    for endpoint, role in options.endpoints:
        step(f"{endpoint.label}: first contact")
        contact = first_contact(endpoint, options.timeout, options.server_type)
        if not contact.reachable:
            got.addresses.append(AddressReport(endpoint, role, (), analyse([]), contact=contact))
            continue
        results: dict[Mechanism, MechanismResult] = {}
        got.current = (endpoint, role, contact, results)
        done = probe_address(endpoint, role, options, step, contact, results)
        got.current = None
        got.addresses.append(done)
    reachable = [a.endpoint for a in got.addresses if a.role == "backend" and a.reachable]
    if len(reachable) > 1:
        cross(reachable, options.timeout, step, options.matrix_mechanisms(), got.matrix)
    if options.watch_s is not None:
        watch(
            [a.endpoint for a in got.addresses if a.reachable],
            options.watch_s,
            options.interval_s,
            options.timeout,
            step,
            [b.label for b in options.backends],
            samples=got.samples,
        )


def _report(
    options: AuditOptions, got: _Gathered, started: float, took: float, interrupted: bool
) -> Report:
    addresses = _attribute(_with_matrix_tickets(got.addresses, got.matrix))
    names = {a.endpoint.label: a.key_names for a in addresses if a.role == "backend"}
    matrix = [refine(c, names.get(c.target)) for c in got.matrix]
    census = None
    if options.watch_s is not None and got.samples:
        rounds = len({s.at for s in got.samples})
        order = [a.endpoint.label for a in addresses if a.reachable]
        backends = [b.label for b in options.backends]
        census = summarise(
            got.samples, options.watch_s, options.interval_s, rounds, order, backends
        )
    warnings = _key_warnings(addresses) + _replay_warnings(addresses)
    if census is not None:
        warnings += list(census.warnings)
    kinds = {a.endpoint.label: a.kind for a in addresses}
    reachable = [a for a in addresses if a.reachable]
    checks = evaluate(
        options.expect, [(a.endpoint.label, a.mechanisms) for a in reachable], matrix, kinds
    )
    checks += _key_checks(addresses, census)
    return Report(
        options,
        started,
        round(took, 3),
        tuple(addresses),
        tuple(matrix),
        census,
        tuple(warnings),
        tuple(checks),
        interrupted,
    )


def _with_matrix_tickets(
    addresses: Sequence[AddressReport], matrix: Sequence[Cell]
) -> list[AddressReport]:
    """Each backend's key names judged on its own tickets and those it issued in the matrix."""
    extra: dict[str, list[TicketSeen]] = {}
    for c in matrix:
        for where, ticket in c.tickets:
            extra.setdefault(where, []).append(ticket)
    out = []
    for a in addresses:
        more = extra.get(a.endpoint.label) if a.role == "backend" else None
        if more:
            own = [t for r in a.mechanisms for h in r.handshakes for t in h.tickets]
            out.append(replace(a, key_names=analyse([*own, *more])))
        else:
            out.append(a)
    return out


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
            out.append(
                AddressReport(a.endpoint, a.role, a.mechanisms, a.key_names, found, a.contact)
            )
        else:
            out.append(a)
    return out


def _named_backends(addresses: Sequence[AddressReport]) -> list[AddressReport]:
    return [
        a for a in addresses if a.role == "backend" and a.key_names.status is KeyNameStatus.KEY_NAME
    ]


def _backends_differ(addresses: Sequence[AddressReport]) -> bool:
    named = _named_backends(addresses)
    return len(named) > 1 and not set.intersection(*(set(a.key_names.names) for a in named))


def _several_keys(a: AddressReport) -> bool:
    names = a.key_names
    return a.role == "target" and names.status is KeyNameStatus.KEY_NAME and len(names.names) > 1


def _key_warnings(addresses: Sequence[AddressReport]) -> list[str]:
    out = []
    if _backends_differ(addresses):
        groups: dict[tuple[bytes, ...], list[str]] = {}
        for a in _named_backends(addresses):
            groups.setdefault(a.key_names.names, []).append(a.endpoint.label)
        out.append(
            "backends use different ticket keys (a ticket from one cannot resume at another): "
            + "; ".join(
                f"{' '.join(label(n) for n in names)} at {' and '.join(where)}"
                for names, where in groups.items()
            )
        )
    for a in addresses:
        if not _several_keys(a):
            continue
        names = a.key_names
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


def _key_checks(addresses: Sequence[AddressReport], census: Census | None) -> list[Check]:
    """Warnings with what to change: keys not shared behind a target, keys never rotated."""
    out = []
    kinds = {a.endpoint.label: a.kind for a in addresses}
    for a in addresses:
        if _several_keys(a):
            out.append(
                Check(
                    f"{a.endpoint.label} ticket keys",
                    Status.WARNING,
                    f"tickets under {len(a.key_names.names)} keys at one address: the servers "
                    "behind it do not share ticket keys (or a key rotated during the audit)",
                    (remedy(Fix.SHARE_TICKET_KEYS, a.kind),),
                )
            )
    if census is not None:
        for c in census.addresses:
            if any(k.last_seen - k.first_seen > DAY for k in c.keys):
                kind = kinds.get(c.address, ServerKind.GENERIC)
                out.append(
                    Check(
                        f"{c.address} key rotation",
                        Status.WARNING,
                        "a ticket key stayed in use for more than 24 h",
                        (remedy(Fix.ROTATE_KEYS, kind),),
                    )
                )
    return out


def _replay_warnings(addresses: Sequence[AddressReport]) -> list[str]:
    return [
        f"{a.endpoint.label}: 0-RTT replay accepted — {r.replay.evidence}"
        for a in addresses
        for r in a.mechanisms
        if r.replay is not None and r.replay.replay_accepted
    ]

"""What must hold for ``tessera check`` to exit 0 (``--expect``), and what merely deserves a
warning; each check that is not passed carries what to change (:mod:`.remedy`).

``--expect id,ticket,psk`` requires those mechanisms to resume N of N times on every audited
address and, with several backends, across every pair of backends. The default, ``any``,
requires each address to resume by at least one mechanism, and tickets and TLS 1.3 PSKs that
resume on two backends alone to resume across them too (unshared ticket keys fail it). Session
ids are kept in per-host caches by most servers: one that resumes on each backend but not
across is a warning under ``any`` (a failure only with ``--expect id``). ``none`` requires
nothing. A 0-RTT replay that the server accepts always fails. A mechanism a server offers but
does not resume every time (id, ticket or PSK) is a warning when nothing requires it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from .classify import Mechanism
from .identify import ServerKind
from .matrix import Cell
from .mechanisms import MechanismResult
from .remedy import Fix, fix_for, remedy

EXPECTABLE = {m.value: m for m in Mechanism}
KEYWORDS = ("any", "none")
# Mechanisms whose partial failure is worth a warning when nothing requires them (psk_ke and
# 0-RTT are off by choice in most servers).
WARNED = (Mechanism.SESSION_ID, Mechanism.TICKET, Mechanism.PSK)


class Status(Enum):
    PASSED = "passed"
    FAILED = "failed"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    remedies: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """Not failed (a warning does not fail the run)."""
        return self.status is not Status.FAILED


def parse_expect(text: str, keywords: Sequence[str] = KEYWORDS) -> tuple[str, ...]:
    """``id,ticket,psk`` -> ("id", "ticket", "psk"); raises ValueError naming a bad word."""
    words = tuple(dict.fromkeys(w.strip().lower() for w in text.split(",") if w.strip()))
    bad = [w for w in words if w not in EXPECTABLE and w not in keywords]
    if bad or not words:
        choices = ", ".join([*EXPECTABLE, *keywords])
        raise ValueError(f"unknown mechanism {', '.join(bad) or '(none given)'}; use {choices}")
    return words


def contradiction(expect: Sequence[str], probed: Sequence[Mechanism]) -> str | None:
    """Why ``--expect`` and ``--mechanisms`` cannot both hold, or None."""
    if "none" in expect and len(expect) > 1:
        return "--expect none cannot be combined with other expectations"
    missing = [w for w in expect if w in EXPECTABLE and EXPECTABLE[w] not in probed]
    if missing:
        return (
            f"--expect {','.join(missing)} needs --mechanisms to include "
            f"{' and '.join(missing)} (it is not probed)"
        )
    return None


def _detail(r: MechanismResult | None) -> str:
    if r is None:
        return "not probed"
    text = f"{r.resumed}/{r.attempts} resumed"
    if r.reason is not None:
        text += f" ({r.reason.text}: {r.evidence})"
    return text


Kinds = Mapping[str, ServerKind]


def _remedies(fixes: Sequence[Fix | None], kind: ServerKind) -> tuple[str, ...]:
    return tuple(remedy(f, kind) for f in dict.fromkeys(fixes) if f is not None)


def evaluate(
    expect: Sequence[str],
    addresses: Sequence[tuple[str, Sequence[MechanismResult]]],
    matrix: Sequence[Cell],
    kinds: Kinds | None = None,
) -> list[Check]:
    """The checks, passed, failed or warned, for the audited addresses (label, results) and
    matrix; ``kinds`` (address -> server software) tailors the remedies."""
    kinds = kinds or {}
    wanted = [EXPECTABLE[w] for w in expect if w in EXPECTABLE]
    checks: list[Check] = []
    for address, results in addresses:
        kind = kinds.get(address, ServerKind.GENERIC)
        checks += _address_checks(address, results, expect, wanted, kind)
    passing = {(a, r.mechanism): r.passed for a, results in addresses for r in results}
    checks += _matrix_checks(matrix, expect, wanted, passing, kinds.get)
    return checks


def _address_checks(
    address: str,
    results: Sequence[MechanismResult],
    expect: Sequence[str],
    wanted: Sequence[Mechanism],
    kind: ServerKind,
) -> list[Check]:
    checks: list[Check] = []
    by = {r.mechanism: r for r in results}
    for r in results:
        if r.replay is not None and r.replay.replay_accepted:
            checks.append(
                Check(
                    f"{address} 0rtt replay",
                    Status.FAILED,
                    r.replay.evidence,
                    _remedies([Fix.REPLAY], kind),
                )
            )
    if "any" in expect:
        ok = [r.mechanism.value for r in results if r.passed]
        if ok:
            checks.append(Check(f"{address} resumes", Status.PASSED, f"resumes by {', '.join(ok)}"))
        else:
            detail = (
                "no mechanism resumed N/N ("
                + ", ".join(
                    f"{r.mechanism.value} {r.resumed}/{r.attempts}"
                    if r.supported
                    else f"{r.mechanism.value} {r.verdict}"
                    for r in results
                )
                + "; the reasons are above)"
            )
            fixes = [fix_for(r.mechanism, r.reason) for r in results if r.mechanism in WARNED]
            checks.append(
                Check(f"{address} resumes", Status.FAILED, detail, _remedies(fixes, kind))
            )
    for m in wanted:
        found = by.get(m)
        good = found is not None and found.passed
        fix = fix_for(m, found.reason) if found is not None and not good else None
        checks.append(
            Check(
                f"{address} {m.value}",
                Status.PASSED if good else Status.FAILED,
                _detail(found),
                _remedies([fix], kind),
            )
        )
    if any(c.status is Status.FAILED and c.name == f"{address} resumes" for c in checks):
        return checks  # its remedies cover every mechanism
    for r in results:
        if r.mechanism in wanted or r.mechanism not in WARNED or not r.supported or r.passed:
            continue
        checks.append(
            Check(
                f"{address} {r.mechanism.value}",
                Status.WARNING,
                f"issued but {_detail(r)}",
                _remedies([fix_for(r.mechanism, r.reason)], kind),
            )
        )
    return checks


def _matrix_checks(
    matrix: Sequence[Cell],
    expect: Sequence[str],
    wanted: Sequence[Mechanism],
    passing: Mapping[tuple[str, Mechanism], bool],
    kind_of: Callable[[str], ServerKind | None],
) -> list[Check]:
    checks: list[Check] = []
    per_host: dict[Mechanism, list[Cell]] = {}
    for c in matrix:
        if c.source == c.target:
            continue
        on_both = passing.get((c.source, c.mechanism), False) and passing.get(
            (c.target, c.mechanism), False
        )
        required = c.mechanism in wanted or ("any" in expect and on_both)
        if not required:
            continue
        detail = c.outcome.evidence
        if c.outcome.reason:
            detail = f"{c.outcome.reason.text}: {detail}"
        name = f"{c.mechanism.value} {c.source} → {c.target}"
        if c.resumed:
            checks.append(Check(name, Status.PASSED, detail))
            continue
        if c.mechanism is Mechanism.SESSION_ID and c.mechanism not in wanted:
            per_host.setdefault(c.mechanism, []).append(c)
            continue
        kind = kind_of(c.target) or ServerKind.GENERIC
        fixes = [fix_for(c.mechanism, c.outcome.reason, across=True)]
        checks.append(Check(name, Status.FAILED, detail, _remedies(fixes, kind)))
    for m, cells in per_host.items():
        pairs = ", ".join(f"{c.source} → {c.target}" for c in cells)
        kinds = {kind_of(c.target) for c in cells}
        one = kinds.pop() if len(kinds) == 1 else None
        checks.append(
            Check(
                f"{m.value} across backends",
                Status.WARNING,
                f"session ids resume on each backend alone, not across ({pairs}): the session "
                "caches are per host, so a client resumes by id only when it lands on the same "
                "backend again; under --expect any this is a warning, --expect ticket,psk says "
                "tickets alone must resume everywhere",
                _remedies([Fix.SHARED_CACHE], one or ServerKind.GENERIC),
            )
        )
    return checks

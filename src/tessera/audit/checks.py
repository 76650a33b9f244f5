"""What must hold for ``tessera check`` to exit 0 (``--expect``).

``--expect id,ticket,psk`` requires those mechanisms to resume N of N times on every audited
address and, with several backends, across every pair of backends. The default, ``any``,
requires each address to resume by at least one mechanism, and each mechanism that resumes on
two backends alone to resume across them too (unshared caches or ticket keys fail it).
``none`` requires nothing. A 0-RTT replay that the server accepts always fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .classify import Mechanism
from .matrix import Cell
from .mechanisms import MechanismResult

EXPECTABLE = {m.value: m for m in Mechanism}
KEYWORDS = ("any", "none")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    passed: bool
    detail: str


def parse_expect(text: str) -> tuple[str, ...]:
    """``id,ticket,psk`` -> ("id", "ticket", "psk"); raises ValueError naming a bad word."""
    words = tuple(w.strip().lower() for w in text.split(",") if w.strip())
    bad = [w for w in words if w not in EXPECTABLE and w not in KEYWORDS]
    if bad or not words:
        choices = ", ".join([*EXPECTABLE, *KEYWORDS])
        raise ValueError(f"unknown mechanism {', '.join(bad) or '(none given)'}; use {choices}")
    return words


def _detail(r: MechanismResult | None) -> str:
    if r is None:
        return "not probed"
    text = f"{r.resumed}/{r.attempts} resumed"
    if r.reason is not None:
        text += f" ({r.reason.text}: {r.evidence})"
    return text


def evaluate(
    expect: Sequence[str],
    addresses: Sequence[tuple[str, Sequence[MechanismResult]]],
    matrix: Sequence[Cell],
) -> list[Check]:
    """The checks, passed or not, for the audited addresses (label, results) and matrix."""
    checks: list[Check] = []
    wanted = [EXPECTABLE[w] for w in expect if w in EXPECTABLE]
    passing: dict[tuple[str, Mechanism], bool] = {}
    for address, results in addresses:
        by = {r.mechanism: r for r in results}
        for r in results:
            passing[(address, r.mechanism)] = r.passed
            if r.replay is not None and r.replay.replay_accepted:
                checks.append(Check(f"{address} 0rtt replay", False, r.replay.evidence))
        if "any" in expect:
            ok = [r.mechanism.value for r in results if r.passed]
            detail = f"resumes by {', '.join(ok)}" if ok else "no mechanism resumed N/N: "
            if not ok:
                detail += "; ".join(f"{r.mechanism.value} {_detail(r)}" for r in results)
            checks.append(Check(f"{address} resumes", bool(ok), detail))
        for m in wanted:
            found = by.get(m)
            checks.append(
                Check(f"{address} {m.value}", found is not None and found.passed, _detail(found))
            )
    for c in matrix:
        if c.source == c.target:
            continue
        required = c.mechanism in wanted or (
            "any" in expect
            and passing.get((c.source, c.mechanism), False)
            and passing.get((c.target, c.mechanism), False)
        )
        if required:
            checks.append(
                Check(
                    f"{c.mechanism.value} {c.source} → {c.target}",
                    c.resumed,
                    c.outcome.reason.text + ": " + c.outcome.evidence
                    if c.outcome.reason
                    else c.outcome.evidence,
                )
            )
    return checks

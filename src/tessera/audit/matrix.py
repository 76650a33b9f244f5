"""The cross-backend matrix: a session or ticket from backend X offered to every backend Y.

Behind a load balancer, a client's next connection may land anywhere; it resumes only if that
backend can open what another one issued (a shared session cache, shared ticket keys). Each
cell is one fresh full handshake at X and one resumption attempt at Y.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .classify import Mechanism, Outcome, Reason, classify
from .keynames import KeyNames, KeyNameStatus, label
from .mechanisms import Step, config_for, nothing_issued, resumable
from .probe import KEY_NAME_LEN, Endpoint, TicketSeen, handshake

MATRIX_MECHANISMS = (Mechanism.SESSION_ID, Mechanism.TICKET, Mechanism.PSK)


@dataclass(frozen=True, slots=True)
class Cell:
    mechanism: Mechanism
    source: str  # where the session was obtained
    target: str  # where it was offered
    issued: bool  # the source gave something to resume with
    outcome: Outcome
    offered_key: bytes | None = None  # the offered ticket's first 16 bytes (tickets, PSKs)
    # Tickets the cell's two connections brought, by the address that issued them (more
    # evidence for each backend's key names).
    tickets: tuple[tuple[str, TicketSeen], ...] = field(default=(), repr=False)

    @property
    def resumed(self) -> bool:
        return self.outcome.resumed


def cell(mechanism: Mechanism, source: Endpoint, target: Endpoint, timeout: float) -> Cell:
    config = config_for(mechanism)
    full = handshake(source, config, timeout=timeout)
    if not full.ok:
        failed = Outcome(False, Reason.CONNECTION_FAILED, f"at {source.label}: {full.error}")
        return Cell(mechanism, source.label, target.label, False, failed)
    sessions = resumable(mechanism, full)
    if not sessions:
        reason, evidence = nothing_issued(mechanism, [full])
        return Cell(
            mechanism,
            source.label,
            target.label,
            False,
            Outcome(False, reason, f"at {source.label}: {evidence}"),
        )
    offered = sessions[-1]
    attempt = handshake(target, config, offered, timeout=timeout)
    key = offered.ticket[:KEY_NAME_LEN] if offered.ticket else None
    outcome = classify(mechanism, offered, attempt)
    seen = tuple((source.label, t) for t in full.tickets) + tuple(
        (target.label, t) for t in attempt.tickets
    )
    return Cell(mechanism, source.label, target.label, True, outcome, key, seen)


def cross(
    backends: Sequence[Endpoint],
    timeout: float,
    step: Step,
    mechanisms: Sequence[Mechanism] = MATRIX_MECHANISMS,
    cells: list[Cell] | None = None,
) -> list[Cell]:
    """Every cell, appended to ``cells`` as it is done (so an interrupted run keeps them)."""
    cells = [] if cells is None else cells
    for mechanism in mechanisms:
        for source in backends:
            for target in backends:
                step(f"matrix {mechanism.value}: {source.label} → {target.label}")
                cells.append(cell(mechanism, source, target, timeout))
    return cells


def refine(c: Cell, names: KeyNames | None) -> Cell:
    """A ticket refused at a backend whose key names are known (``names``, from its own
    tickets) and do not include the offered ticket's: the key is unknown there."""
    reason = c.outcome.reason
    if (
        reason not in (Reason.TICKET_REISSUED, Reason.TICKET_IGNORED)
        or c.offered_key is None
        or names is None
        or names.status is not KeyNameStatus.KEY_NAME
        or c.offered_key in names.names
    ):
        return c
    theirs = ", ".join(label(n) for n in names.names)
    evidence = (
        f"{c.outcome.evidence}; our ticket's key name {label(c.offered_key)} (from {c.source}) "
        f"is not one {c.target} issues under ({theirs})"
    )
    outcome = Outcome(False, Reason.TICKET_KEY_UNKNOWN, evidence)
    return Cell(c.mechanism, c.source, c.target, c.issued, outcome, c.offered_key, c.tickets)


def cells_needed(backends: int, mechanisms: int = len(MATRIX_MECHANISMS)) -> int:
    return backends * backends * mechanisms

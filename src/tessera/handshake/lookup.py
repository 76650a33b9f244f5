"""Driving a resumption resolution from a handshake state, pausing for the store if needed.

A resolution (see :mod:`tessera.session.resumption.decide`) returns a decision or a
:class:`~tessera.session.resumption.Pending`. :func:`drive` turns the latter into
:class:`AwaitSessionLookup`, a state that accepts no message and holds the rest of the work as
named objects (never a closure): the resolution's continuation, and what the handshake does with
the decision (an :class:`AfterDecision`). The connection answers it — inline for a synchronous
store, or by emitting ``SessionLookupRequired`` and waiting for ``provide_session`` — and the
handshake goes on. Writes whose result decides what the client receives (a single-use ticket)
pause the same way, with their own :class:`StoreAnswered` continuation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..frozen import quick_init
from ..session.resumption import (
    Continuation,
    LookupAnswer,
    Outcome,
    Pending,
    ResumptionDecision,
    inline,
)
from ..session.resumption.operations import StoreLookup
from .context import ServerContext, ServerState


class StoreAnswered(Protocol):
    """What the handshake does once the store answered."""

    def resume(self, ctx: ServerContext, answers: tuple[LookupAnswer, ...]) -> ServerState: ...


class AfterDecision(Protocol):
    """What the handshake does with the resumption decision."""

    def decided(self, ctx: ServerContext, d: ResumptionDecision) -> ServerState: ...


class AwaitSessionLookup(ServerState):
    """The server waits for the answers to ``operations``; nothing is read meanwhile."""

    __slots__ = ("handshake_done", "operations", "then")

    def __init__(
        self,
        operations: tuple[StoreLookup, ...],
        then: StoreAnswered,
        handshake_done: bool = False,  # the handshake completed (the writes of its tickets)
    ) -> None:
        self.operations = operations
        self.then = then
        self.handshake_done = handshake_done

    def provide(self, ctx: ServerContext, answers: tuple[LookupAnswer, ...]) -> ServerState:
        return self.then.resume(ctx, answers)

    def __repr__(self) -> str:
        ops = ", ".join(op.op for op in self.operations)
        return f"AwaitSessionLookup({ops}; then {self.then!r})"


@quick_init
@dataclass(frozen=True, slots=True)
class Resolving:
    """The resolution goes on with the store's answers, then the handshake with its decision."""

    resolution: Continuation
    after: AfterDecision

    def resume(self, ctx: ServerContext, answers: tuple[LookupAnswer, ...]) -> ServerState:
        return drive(ctx, self.resolution.answer(answers), self.after)


def ask(
    ctx: ServerContext,
    operations: tuple[StoreLookup, ...],
    then: StoreAnswered,
    handshake_done: bool = False,
) -> ServerState:
    """Put ``operations`` to the store: a synchronous one answers on the spot (failures
    reported); for an async one the handshake waits in :class:`AwaitSessionLookup`."""
    store = ctx.config.session_store
    if store is None:
        return AwaitSessionLookup(operations, then, handshake_done)
    answers = inline.answer(store, operations)
    ctx.report_failures(operations, answers)
    return then.resume(ctx, answers)


def drive(ctx: ServerContext, outcome: Outcome, after: AfterDecision) -> ServerState:
    """Ask the store (see :func:`ask`) until there is a decision; report it and go on."""
    if isinstance(outcome, Pending):
        return ask(ctx, outcome.operations, Resolving(outcome.then, after))
    ctx.decided(outcome)
    return after.decided(ctx, outcome)

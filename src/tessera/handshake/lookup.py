"""Driving a resumption resolution from a handshake state, pausing for the store if needed.

A resolution (see :mod:`tessera.session.resumption`) yields store lookups and finally returns a
decision. :func:`drive` runs it: when it needs the store, the handshake moves to
:class:`AwaitSessionLookup`, a state that accepts no message and holds the rest of the work;
the connection answers it (inline, for a synchronous store) or emits ``SessionLookupRequired``
and waits for ``provide_session``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..session.resumption import LookupAnswer, Resolution, ResumptionDecision, StoreLookup
from .context import ServerContext, State


class AwaitSessionLookup(State):
    """The server waits for the answers to ``operations``; nothing is read meanwhile."""

    def __init__(
        self,
        operations: tuple[StoreLookup, ...],
        resume: Callable[[tuple[LookupAnswer, ...]], State],
    ) -> None:
        self.operations = operations
        self._resume = resume

    def provide(self, answers: tuple[LookupAnswer, ...]) -> State:
        return self._resume(answers)


def drive(
    ctx: ServerContext,
    resolution: Resolution,
    then: Callable[[ResumptionDecision], State],
    answers: tuple[LookupAnswer, ...] | None = None,
) -> State:
    """Run ``resolution`` until it needs the store (an :class:`AwaitSessionLookup`) or decides
    (report the decision, then ``then(decision)``)."""
    try:
        lookups = next(resolution) if answers is None else resolution.send(answers)
    except StopIteration as done:
        decision: ResumptionDecision = done.value
        ctx.decided(decision)
        return then(decision)
    return AwaitSessionLookup(lookups, lambda a: drive(ctx, resolution, then, a))

"""The inline adapter: a synchronous store answers a connection's store operations on the spot.

With ``ServerConfig(session_store=...)`` (a :class:`~tessera.session.store.SessionStore`) a
server connection answers its own ``StoreLookup``s and performs its ``StoreWrite``s through these
two functions, inside ``receive_data``. Whatever the store raises (``ConnectionError`` from
redis-py when Redis is down, a timeout, a bug) becomes an answer meaning "unavailable" — a full
handshake, or no ticket, counted — and never escapes to the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..store import SessionStore
from .operations import LookupAnswer, StoreLookup, StoreWrite

# Told about every store operation that raised (the connection's one reporter).
StoreFailureReporter = Callable[[StoreLookup | StoreWrite, BaseException], None]


def answer_one(store: SessionStore, op: StoreLookup) -> LookupAnswer:
    try:
        if op.op == "get":
            return store.get(op.key)
        if op.op == "take":
            return store.take(op.key)
        if op.op == "add":
            return bool(store.add(op.key, op.value, op.ttl))
        store.put(op.key, op.value, op.ttl)
    except Exception as e:  # any store failure is "unavailable", never a failed connection
        return e
    return True


def answer(store: SessionStore, lookups: Sequence[StoreLookup]) -> tuple[LookupAnswer, ...]:
    """Ask ``store`` each lookup, in order; an exception it raised is the answer."""
    if len(lookups) == 1:  # the usual case (a session id, a ticket): no generator
        return (answer_one(store, lookups[0]),)
    return tuple([answer_one(store, op) for op in lookups])


def apply(store: SessionStore, writes: Sequence[StoreWrite], report: StoreFailureReporter) -> None:
    """Perform ``writes`` on ``store``; a write that raises is reported and skipped."""
    for op in writes:
        try:
            if op.op == "put":
                store.put(op.key, op.value, op.ttl)
            else:
                store.delete(op.key)
        except Exception as e:
            report(op, e)

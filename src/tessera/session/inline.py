"""The inline adapter: a synchronous store answers a connection's lookups on the spot.

With ``external_session_lookup=False`` (the default) a server connection answers its own
``StoreLookup``s and performs its ``StoreWrite``s through these two functions, inside
``receive_data``. Whatever the store raises (``ConnectionError`` from redis-py when Redis is
down, a timeout, a bug) becomes an answer meaning "unavailable" — a full handshake, counted —
and never escapes to the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .resumption import LookupAnswer, StoreLookup, StoreWrite


def answer(store: Any, lookups: Sequence[StoreLookup]) -> tuple[LookupAnswer, ...]:
    """Ask ``store`` (a :class:`~tessera.session.store.SessionStore`) each lookup, in order."""
    out: list[LookupAnswer] = []
    for op in lookups:
        try:
            if op.op == "get":
                out.append(store.get(op.key))
            elif op.op == "take":
                out.append(store.take(op.key))
            else:
                out.append(bool(store.add(op.key, op.value, op.ttl)))
        except Exception as e:  # any store failure is "unavailable", never a failed connection
            out.append(e)
    return tuple(out)


def apply(
    store: Any, writes: Sequence[StoreWrite], on_error: Callable[[StoreWrite, Exception], None]
) -> None:
    """Perform ``writes`` on ``store``; a write that raises is reported and skipped."""
    for op in writes:
        try:
            if op.op == "put":
                store.put(op.key, op.value, op.ttl)
            else:
                store.delete(op.key)
        except Exception as e:
            on_error(op, e)

"""The awaited adapter: an async store answers a connection's lookups without blocking the loop.

The asyncio counterpart of :mod:`tessera.session.inline`. A front end that received
``SessionLookupRequired`` awaits :func:`answer` and passes the result to ``provide_session``;
for ``SessionStoreUpdate`` it awaits :func:`apply` before sending ``data_to_send()``. Whatever
the store raises, or a lookup that takes longer than ``timeout``, becomes an answer meaning
"unavailable" (a full handshake, counted) and never escapes to the caller.

An async store is any object with ``async`` ``get``/``take``/``add``/``put``/``delete`` (the
:class:`AsyncSessionStore` protocol). :class:`AsyncMemoryStore` adapts a synchronous in-memory
store (:class:`~tessera.session.store.MemoryStore`): its answers never wait, so front ends call
it directly instead of scheduling a task (see :func:`immediate`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError, StoreError
from . import inline
from .resumption import LookupAnswer, StoreLookup, StoreWrite
from .store import MemoryStore

DEFAULT_LOOKUP_TIMEOUT = 2.0  # seconds; a slower store means a full handshake, not a stall


@runtime_checkable
class AsyncSessionStore(Protocol):
    async def put(self, key: bytes, value: bytes, ttl: float) -> None: ...

    async def get(self, key: bytes) -> bytes | None: ...

    async def take(self, key: bytes) -> bytes | None: ...

    async def delete(self, key: bytes) -> None: ...

    async def add(self, key: bytes, value: bytes, ttl: float) -> bool: ...


class AsyncMemoryStore:
    """An async face over a synchronous store that never blocks (an in-memory one): each
    method calls the store on the spot. ``sync`` is that store."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.sync = store if store is not None else MemoryStore()

    async def put(self, key: bytes, value: bytes, ttl: float) -> None:
        self.sync.put(key, value, ttl)

    async def get(self, key: bytes) -> bytes | None:
        return self.sync.get(key)

    async def take(self, key: bytes) -> bytes | None:
        return self.sync.take(key)

    async def delete(self, key: bytes) -> None:
        self.sync.delete(key)

    async def add(self, key: bytes, value: bytes, ttl: float) -> bool:
        return self.sync.add(key, value, ttl)


def as_async_store(store: object) -> AsyncSessionStore | AsyncMemoryStore:
    """The store a front end awaits: an async store as it is, a :class:`MemoryStore` adapted.
    Any other synchronous store would block the event loop, so it is refused."""
    if isinstance(store, MemoryStore):
        return AsyncMemoryStore(store)
    if isinstance(store, AsyncMemoryStore):
        return store
    methods = ("get", "take", "add", "put", "delete")
    if all(inspect.iscoroutinefunction(getattr(store, m, None)) for m in methods):
        return store  # type: ignore[return-value]
    raise ConfigError(
        f"session_store {type(store).__name__} is not an async store: with asyncio, give "
        "ServerConfig(external_session_lookup=True, session_store=...) an object with async "
        "get/take/add/put/delete (or a MemoryStore, which never blocks)"
    )


def immediate(store: object) -> Any:
    """The synchronous store behind an adapter whose answers never wait, else None."""
    return store.sync if isinstance(store, AsyncMemoryStore) else None


async def _one(store: Any, op: StoreLookup) -> LookupAnswer:
    if op.op == "get":
        return await store.get(op.key)  # type: ignore[no-any-return]
    if op.op == "take":
        return await store.take(op.key)  # type: ignore[no-any-return]
    return bool(await store.add(op.key, op.value, op.ttl))


async def answer(
    store: Any, lookups: Sequence[StoreLookup], timeout: float = DEFAULT_LOOKUP_TIMEOUT
) -> tuple[LookupAnswer, ...]:
    """Await each lookup in order (each bounded by ``timeout`` seconds)."""
    sync = immediate(store)
    if sync is not None:
        return inline.answer(sync, lookups)
    out: list[LookupAnswer] = []
    for op in lookups:
        try:
            out.append(await asyncio.wait_for(_one(store, op), timeout))
        except TimeoutError:
            out.append(StoreError(f"the session store did not answer {op.op} within {timeout} s"))
        except Exception as e:  # any store failure is "unavailable", never a failed connection
            out.append(e)
    return tuple(out)


async def apply(
    store: Any,
    writes: Sequence[StoreWrite],
    on_error: Callable[[StoreWrite, Exception], None],
    timeout: float = DEFAULT_LOOKUP_TIMEOUT,
) -> None:
    """Await ``writes`` in order; a write that raises or times out is reported and skipped."""
    sync = immediate(store)
    if sync is not None:
        inline.apply(sync, writes, on_error)
        return
    for op in writes:
        try:
            if op.op == "put":
                await asyncio.wait_for(store.put(op.key, op.value, op.ttl), timeout)
            else:
                await asyncio.wait_for(store.delete(op.key), timeout)
        except TimeoutError:
            on_error(op, StoreError(f"the session store did not {op.op} within {timeout} s"))
        except Exception as e:
            on_error(op, e)

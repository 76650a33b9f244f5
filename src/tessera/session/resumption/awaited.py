"""The awaited adapter: an async store answers a connection's store operations without
blocking the event loop.

The asyncio counterpart of :mod:`.inline`, for ``ServerConfig(async_session_store=...)``. A front
end that received ``SessionLookupRequired`` awaits :func:`answer` and passes the result to
``provide_session``; for ``SessionStoreUpdate`` it awaits :func:`apply` before sending
``data_to_send()``. Whatever the store raises, or an operation that takes longer than
``timeout``, becomes an answer meaning "unavailable" (a full handshake, counted) and never
escapes to the caller.

An async store is any object with ``async`` ``get``/``take``/``add``/``put``/``delete`` (the
:class:`AsyncSessionStore` protocol). :class:`AsyncMemoryStore` adapts a synchronous in-memory
store (:class:`~tessera.session.store.MemoryStore`): its answers never wait, so front ends call
it directly instead of scheduling a task (see :func:`immediate`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ...errors import ConfigError, StoreError
from ..store import MemoryStore, SessionStore
from . import inline
from .inline import StoreFailureReporter
from .operations import LookupAnswer, StoreLookup, StoreWrite

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

    def __init__(self, store: SessionStore | None = None) -> None:
        self.sync: SessionStore = store if store is not None else MemoryStore()

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


async def close_store(store: object, timeout: float = DEFAULT_LOOKUP_TIMEOUT) -> str | None:
    """Close an async store's connections (its ``async close()``, when it has one) while the
    event loop still runs: redis.asyncio left to the garbage collector closes its TLS
    connections after the loop has gone. Bounded by ``timeout``; returns what went wrong, if
    anything (never raises: a server that stops must not fail on its store)."""
    close = getattr(store, "close", None)
    if close is None or not inspect.iscoroutinefunction(close):
        return None
    try:
        await asyncio.wait_for(close(), timeout)
    except TimeoutError:
        return f"no answer in {timeout:g} s"
    except Exception as e:  # whatever the store raises
        return f"{type(e).__name__}: {e}"
    return None


def check_async_store(store: object) -> AsyncSessionStore:
    """``store`` if it has the five async methods, else a ConfigError saying what to give."""
    methods = ("get", "take", "add", "put", "delete")
    if isinstance(store, AsyncSessionStore) and all(
        inspect.iscoroutinefunction(getattr(store, m, None)) for m in methods
    ):
        return store
    raise ConfigError(
        f"async_session_store {type(store).__name__} is not an async store: give "
        "ServerConfig(async_session_store=...) an object with async get/take/add/put/delete "
        "(tessera.aio.AsyncMemoryStore wraps a MemoryStore), or a synchronous store as "
        "session_store"
    )


def immediate(store: AsyncSessionStore | None) -> SessionStore | None:
    """The synchronous store behind an adapter whose answers never wait, else None."""
    return store.sync if isinstance(store, AsyncMemoryStore) else None


async def _one(store: AsyncSessionStore, op: StoreLookup) -> LookupAnswer:
    if op.op == "get":
        return await store.get(op.key)
    if op.op == "take":
        return await store.take(op.key)
    if op.op == "add":
        return bool(await store.add(op.key, op.value, op.ttl))
    await store.put(op.key, op.value, op.ttl)
    return True


async def answer(
    store: AsyncSessionStore, lookups: Sequence[StoreLookup],
    timeout: float = DEFAULT_LOOKUP_TIMEOUT,
) -> tuple[LookupAnswer, ...]:  # fmt: skip
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
    store: AsyncSessionStore,
    writes: Sequence[StoreWrite],
    report: StoreFailureReporter,
    timeout: float = DEFAULT_LOOKUP_TIMEOUT,
) -> None:
    """Await ``writes`` in order; a write that raises or times out is reported and skipped."""
    sync = immediate(store)
    if sync is not None:
        inline.apply(sync, writes, report)
        return
    for op in writes:
        try:
            if op.op == "put":
                await asyncio.wait_for(store.put(op.key, op.value, op.ttl), timeout)
            else:
                await asyncio.wait_for(store.delete(op.key), timeout)
        except TimeoutError:
            report(op, StoreError(f"the session store did not {op.op} within {timeout} s"))
        except Exception as e:
            report(op, e)

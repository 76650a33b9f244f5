"""Shared pieces of the asyncio tests: configs over the test PKI, an echo server, stores."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from conftest import Pki
from tessera import ClientConfig, MemoryStore, ProtocolVersion, ServerConfig, aio

TLS12 = ProtocolVersion.TLS1_2
TLS13 = ProtocolVersion.TLS1_3
VERSIONS = {"1.2": TLS12, "1.3": TLS13}
HOST = "127.0.0.1"


def server_config(pki: Pki, version: str | None = None, **kw: Any) -> ServerConfig:
    kw.setdefault("certificates", (pki.ecdsa,))
    if version is not None:
        kw.setdefault("max_version", VERSIONS[version])
        kw.setdefault("min_version", VERSIONS[version])
    return ServerConfig(**kw)


def client_config(pki: Pki, version: str | None = None, **kw: Any) -> ClientConfig:
    kw.setdefault("cafile", pki.ca_file)
    if version is not None:
        kw.setdefault("max_version", VERSIONS[version])
        kw.setdefault("min_version", VERSIONS[version])
    return ClientConfig(**kw)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo until the client closes, then close (close_notify)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def serving(config: ServerConfig, handler: Any = echo, **kw: Any) -> AsyncIterator[int]:
    """A tessera asyncio server on a free loopback port (yields the port), always closed."""
    server = await aio.start_server(handler, HOST, 0, config=config, **kw)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def roundtrip(port: int, config: ClientConfig, payload: bytes = b"ping", **kw: Any) -> Any:
    """Connect, send ``payload``, read it back, close; the writer (for get_extra_info)."""
    kw.setdefault("server_hostname", "localhost")
    reader, writer = await aio.open_connection(HOST, port, config=config, **kw)
    writer.write(payload)
    await writer.drain()
    got = await reader.readexactly(len(payload))
    assert got == payload
    writer.close()
    await writer.wait_closed()
    return writer


class SlowStore:
    """An async store over a MemoryStore whose lookups (get/take/add) take ``delay`` seconds;
    writes are immediate. ``answered`` holds the loop time of each answered lookup."""

    def __init__(self, delay: float = 0.1, fail: bool = False) -> None:
        self.inner = MemoryStore()
        self.delay = delay
        self.fail = fail
        self.calls: Counter[str] = Counter()
        self.answered: list[float] = []

    async def _lookup(self, name: str, *args: Any) -> Any:
        self.calls[name] += 1
        await asyncio.sleep(self.delay)
        self.answered.append(time.monotonic())
        if self.fail:
            raise ConnectionError(f"store down ({name})")
        return getattr(self.inner, name)(*args)

    async def get(self, key: bytes) -> bytes | None:
        return await self._lookup("get", key)  # type: ignore[no-any-return]

    async def take(self, key: bytes) -> bytes | None:
        return await self._lookup("take", key)  # type: ignore[no-any-return]

    async def add(self, key: bytes, value: bytes, ttl: float) -> bool:
        return await self._lookup("add", key, value, ttl)  # type: ignore[no-any-return]

    async def put(self, key: bytes, value: bytes, ttl: float) -> None:
        self.calls["put"] += 1
        if self.fail:
            raise ConnectionError("store down (put)")
        self.inner.put(key, value, ttl)

    async def delete(self, key: bytes) -> None:
        self.calls["delete"] += 1
        self.inner.delete(key)

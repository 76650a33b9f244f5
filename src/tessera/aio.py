"""tessera for asyncio: streams, servers and TLS over any transport, like asyncio's own.

::

    reader, writer = await tessera.aio.open_connection("127.0.0.1", 8443, config=ClientConfig())
    server = await tessera.aio.start_server(handle, "127.0.0.1", 8443, config=server_config)
    tls_transport = await tessera.aio.start_tls(transport, protocol, config, server_side=True)

The same shapes as ``asyncio.open_connection``/``start_server``/``loop.create_connection``/
``loop.create_server``/``loop.start_tls``, with a tessera config where asyncio takes an
``SSLContext``. ``get_extra_info`` on the transport (``writer.get_extra_info``) answers
``"connection_info"`` (a :class:`~tessera.events.ConnectionInfo`), ``"peercert"``,
``"ssl_object"`` (``version()``, ``cipher()``, ``getpeercert()``...), ``"session"`` (a client's
session to resume next time), ``"resumed"``, ``"resumption"`` (a server's
:class:`~tessera.session.resumption.ResumptionDecision`), ``"resumption_reason"`` (one line: how
it resumed, or why not), ``"alpn_protocol"``, ``"early_data"``, ``"close_notify"`` (how the peer
closed: True, False for a bare end of stream, None while open) and the lower transport's keys
(``"peername"``, ``"socket"``...).

Server session stores: with the default ``ServerConfig`` (an in-memory ``MemoryStore`` asked
inline, which never blocks) nothing is needed. Every other store must be awaited: set
``ServerConfig(async_session_store=store)`` with an async store (any object with ``async
get/take/add/put/delete``); lookups then run in a task while other connections go on.
Certificate and CA files are read once, in a worker thread, before the first connection
(``prepare_client``/``prepare_server``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from .config import ClientAuth, ClientConfig, ServerConfig
from .connection import ClientConnection, ServerConnection
from .errors import ConfigError
from .io.aio import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_SHUTDOWN_TIMEOUT,
    AwaitedStore,
    HandshakeErrorHook,
    Limits,
    TLSProtocol,
    TLSTransport,
    log,
)
from .session.model import ClientSession
from .session.resumption import awaited
from .session.resumption.awaited import AsyncMemoryStore, AsyncSessionStore
from .session.store import MemoryStore

__all__ = [
    "AsyncMemoryStore",
    "AsyncSessionStore",
    "TLSProtocol",
    "TLSTransport",
    "create_connection",
    "create_server",
    "open_connection",
    "prepare_client",
    "prepare_server",
    "start_server",
    "start_tls",
]

ClientConnectedCallback = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None
]
_STREAM_LIMIT = 2**16  # asyncio's default StreamReader limit


# -- configuration, once per config and off the loop thread -----------------------------------
async def prepare_client(config: ClientConfig) -> ClientConfig:
    """Load the trust store (``cafile`` or the system's) in a worker thread, once per config,
    so no handshake reads files on the event loop."""
    if config.verify and not config.trust_store_loaded:
        await asyncio.get_running_loop().run_in_executor(None, config.trust_store)
    return config


async def prepare_server(config: ServerConfig) -> AwaitedStore | None:
    """Load ``client_cafile`` in a worker thread (once per config) and return the store to
    await, or None when the connection asks its store inline. Raises ConfigError for a
    synchronous store other than MemoryStore (it would block the loop)."""
    if config.client_auth is not ClientAuth.NONE and not config.client_trust_store_loaded:

        def load() -> None:
            config.client_trust_store()
            config.client_ca_names()

        await asyncio.get_running_loop().run_in_executor(None, load)
    store = config.session_store
    if store is not None and not isinstance(store, MemoryStore):
        raise ConfigError(
            f"session_store {type(store).__name__} would be called on the event loop thread: "
            "give ServerConfig(async_session_store=...) an async store (any object with async "
            "get/take/add/put/delete), or use a MemoryStore"
        )
    return config.async_session_store  # None: a MemoryStore asked inline (it never blocks)


def _with_alpn(config: ClientConfig, alpn: Sequence[str | bytes] | None) -> ClientConfig:
    if alpn is None:
        return config
    protocols = tuple(p.encode() if isinstance(p, str) else bytes(p) for p in alpn)
    return dataclasses.replace(config, alpn_protocols=protocols)


# -- clients ----------------------------------------------------------------------------------
async def create_connection(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: str | None = None,
    port: int | None = None,
    *,
    config: ClientConfig,
    server_hostname: str | None = None,
    session: ClientSession | None = None,
    alpn: Sequence[str | bytes] | None = None,
    early_data: bytes | None = None,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    idle_timeout: float | None = None,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    **kwargs: Any,
) -> tuple[TLSTransport, asyncio.BaseProtocol]:
    """``loop.create_connection(..., ssl=...)`` with tessera: connect, complete the handshake,
    then hand the protocol its transport. ``kwargs`` go to ``loop.create_connection`` (``sock``,
    ``local_addr``, ``happy_eyeballs_delay``...).

    ``session`` resumes a session (from ``get_extra_info("session")`` of an earlier
    connection). ``early_data`` is sent as TLS 1.3 0-RTT data when that session allows it, else
    (or when the server refuses it) as ordinary data right after the handshake: either way it
    is the first data of the stream."""
    loop = asyncio.get_running_loop()
    config = await prepare_client(_with_alpn(config, alpn))
    name = server_hostname if server_hostname is not None else host
    address = (host, port) if host is not None and port is not None else None
    conn = ClientConnection(config, name, address=address, session=session)
    app = protocol_factory()
    waiter: asyncio.Future[None] = loop.create_future()
    limits = Limits(
        handshake_timeout=handshake_timeout,
        idle_timeout=idle_timeout,
        shutdown_timeout=shutdown_timeout,
    )
    tls = TLSProtocol(conn, app, waiter, limits, early_data=early_data)
    kwargs.setdefault("ssl", None)
    if kwargs["ssl"] is not None:
        raise ConfigError("pass config=, not ssl=: tessera does the TLS here")
    if host is None and port is None:  # sock=...
        transport, _ = await loop.create_connection(lambda: tls, **kwargs)
    elif host is None or port is None:
        raise ValueError("give both host and port (or sock=)")
    else:
        transport, _ = await loop.create_connection(lambda: tls, host, port, **kwargs)
    try:
        await waiter
    except BaseException:
        transport.abort()
        raise
    return tls.app_transport, app


async def open_connection(
    host: str | None = None,
    port: int | None = None,
    *,
    config: ClientConfig,
    limit: int = _STREAM_LIMIT,
    **kwargs: Any,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` over TLS: a (reader, writer) pair once the handshake
    completed. Takes :func:`create_connection`'s keywords (``server_hostname``, ``session``,
    ``alpn``, ``early_data``, timeouts)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(lambda: protocol, host, port, config=config, **kwargs)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


# -- servers ----------------------------------------------------------------------------------
class _Admission:
    """Counts open connections; refuses (closes at once) those beyond ``max_connections``."""

    def __init__(self, max_connections: int | None) -> None:
        if max_connections is not None and max_connections < 1:
            raise ValueError("max_connections must be at least 1 (or None)")
        self.max_connections = max_connections
        self.open = 0
        self.refused = 0


class _CountedTLSProtocol(TLSProtocol):
    _admitted = False

    def __init__(self, admission: _Admission, conn: ServerConnection,
                 app_protocol: asyncio.BaseProtocol, limits: Limits) -> None:  # fmt: skip
        super().__init__(conn, app_protocol, None, limits)
        self._admission = admission

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        adm = self._admission
        if adm.max_connections is not None and adm.open >= adm.max_connections:
            adm.refused += 1
            log.warning("refused a connection: %d open (max_connections)", adm.open)
            self._lost = True
            cast(asyncio.Transport, transport).abort()
            return
        adm.open += 1
        self._admitted = True
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._admitted:
            self._admission.open -= 1
            self._admitted = False
            super().connection_lost(exc)


async def create_server(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: str | Sequence[str] | None = None,
    port: int | None = None,
    *,
    config: ServerConfig,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    idle_timeout: float | None = None,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    lookup_timeout: float = awaited.DEFAULT_LOOKUP_TIMEOUT,
    max_connections: int | None = None,
    on_handshake_error: HandshakeErrorHook | None = None,
    **kwargs: Any,
) -> asyncio.Server:
    """``loop.create_server(..., ssl=...)`` with tessera. Each accepted connection does its
    handshake, then ``protocol_factory()``'s protocol gets the TLS transport. Handshake failures
    are logged (logger ``tessera.aio``) and told to ``on_handshake_error(peer, error)`` when the
    peer sent anything at all; they never reach the server. ``max_connections`` bounds the
    connections open at once (more are closed on arrival); ``idle_timeout`` closes connections
    with no traffic either way for that long. ``kwargs`` go to ``loop.create_server``."""
    loop = asyncio.get_running_loop()
    store = await prepare_server(config)
    limits = Limits(
        handshake_timeout=handshake_timeout,
        idle_timeout=idle_timeout,
        shutdown_timeout=shutdown_timeout,
        store=store,
        lookup_timeout=lookup_timeout,
        on_handshake_error=on_handshake_error,
    )
    admission = _Admission(max_connections)

    def factory() -> TLSProtocol:
        return _CountedTLSProtocol(admission, ServerConnection(config), protocol_factory(), limits)

    kwargs.setdefault("ssl", None)
    if kwargs["ssl"] is not None:
        raise ConfigError("pass config=, not ssl=: tessera does the TLS here")
    return await loop.create_server(factory, host, port, **kwargs)


async def start_server(
    client_connected_cb: ClientConnectedCallback,
    host: str | Sequence[str] | None = None,
    port: int | None = None,
    *,
    config: ServerConfig,
    limit: int = _STREAM_LIMIT,
    **kwargs: Any,
) -> asyncio.Server:
    """``asyncio.start_server`` over TLS: ``client_connected_cb(reader, writer)`` runs for each
    connection whose handshake completed. Takes :func:`create_server`'s keywords."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.StreamReaderProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return await create_server(factory, host, port, config=config, **kwargs)


# -- TLS over an existing transport -----------------------------------------------------------
async def start_tls(
    transport: asyncio.BaseTransport,
    protocol: asyncio.BaseProtocol,
    config: ClientConfig | ServerConfig,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    session: ClientSession | None = None,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    idle_timeout: float | None = None,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
) -> TLSTransport:
    """``loop.start_tls`` with tessera: run a TLS handshake over ``transport`` (any transport
    with ``set_protocol``/``pause_reading``/``resume_reading`` — TCP, a pipe, or another TLS
    transport) and return the new transport to use with ``protocol``, which keeps its place
    (its ``connection_made`` is not called again)."""
    loop = asyncio.get_running_loop()
    conn: ClientConnection | ServerConnection
    store = None
    if server_side:
        if not isinstance(config, ServerConfig):
            raise ConfigError("start_tls(server_side=True) needs a ServerConfig")
        store = await prepare_server(config)
        conn = ServerConnection(config)
    else:
        if not isinstance(config, ClientConfig):
            raise ConfigError("start_tls(server_side=False) needs a ClientConfig")
        await prepare_client(config)
        conn = ClientConnection(config, server_hostname, session=session)
    waiter: asyncio.Future[None] = loop.create_future()
    limits = Limits(
        handshake_timeout=handshake_timeout,
        idle_timeout=idle_timeout,
        shutdown_timeout=shutdown_timeout,
        store=store,
    )
    tls = TLSProtocol(conn, protocol, waiter, limits, call_connection_made=False)
    lower = cast(asyncio.Transport, transport)  # (uvloop's: no subclass of it)
    lower.pause_reading()
    lower.set_protocol(tls)
    made = loop.call_soon(tls.connection_made, lower)
    resumed = loop.call_soon(lower.resume_reading)
    try:
        await waiter
    except BaseException:
        transport.close()
        made.cancel()
        resumed.cancel()
        raise
    return tls.app_transport

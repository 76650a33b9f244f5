"""Relaying one client: plaintext between a TLS transport and a TCP connection to the backend.

:class:`Relay` is the application protocol on the client's TLS transport (it gets it once the
handshake completed); it opens the backend connection, sends the PROXY v2 header when asked,
then copies bytes both ways. Back-pressure passes through: when the backend's write buffer is
full the client is not read, and when the client's is full the backend is not read, so memory
per connection stays bounded by the transports' buffer limits. An end of stream from either
side is passed on (the client's as a TCP half-close to the backend, the backend's as
close_notify to the client).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, cast

from ..addresses import describe_os_error
from . import proxy_protocol

if TYPE_CHECKING:
    from .server import Backend

# Client data kept while the backend connection is being made, before the client is paused.
PENDING_LIMIT = 64 * 1024


class Relay(asyncio.Protocol):
    """Client side: the protocol above the TLS transport."""

    def __init__(self, backend: Backend) -> None:
        self.backend_info = backend
        self.tls: asyncio.Transport | None = None
        self.backend: asyncio.Transport | None = None
        self._pending: list[bytes] = []  # client data that came before the backend connected
        self._pending_size = 0
        self._connecting: asyncio.Task[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None  # connecting to the backend
        self._timed_out = False
        self._client_full = False  # the client's write buffer is over its limit
        self.client_eof = False
        self.bytes_in = 0  # plaintext from the client
        self.bytes_out = 0  # plaintext to the client
        self.error: str | None = None

    # -- the client's TLS transport ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tls = cast(asyncio.Transport, transport)  # a TLSTransport
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_task(self._connect())
        timeout = self.backend_info.settings.backend_timeout
        self._deadline = loop.call_later(timeout, self._backend_timed_out)

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self.backend is not None:
            self.backend.write(data)
            return
        self._pending.append(data)  # (a request sent with the handshake: usually all of it)
        self._pending_size += len(data)
        if self._pending_size > PENDING_LIMIT and self.tls is not None:
            self.tls.pause_reading()  # until the backend is connected

    def eof_received(self) -> bool:
        """The client finished sending (close_notify or end of stream): half-close the backend
        and keep the client open for the rest of the answer."""
        self.client_eof = True
        backend = self.backend
        if backend is not None and not backend.is_closing() and backend.can_write_eof():
            backend.write_eof()
        return True

    def pause_writing(self) -> None:
        self._client_full = True
        if self.backend is not None:
            self.backend.pause_reading()

    def resume_writing(self) -> None:
        self._client_full = False
        if self.backend is not None and not self.backend.is_closing():
            self.backend.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._deadline is not None:
            self._deadline.cancel()
        backend = self.backend
        if backend is not None and not backend.is_closing():
            backend.close()  # what the client sent still reaches the backend

    # -- the backend -------------------------------------------------------------------------
    async def _connect(self) -> None:
        tls = self.tls
        assert tls is not None
        settings = self.backend_info.settings
        host, port = settings.backend
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_connection(lambda: _Backend(self), host, port)
        except asyncio.CancelledError:
            if not self._timed_out:
                raise  # the client left
            self._unreachable("timed out")
            return
        except OSError as e:
            self._unreachable(describe_os_error(e))
            return
        finally:
            self._connecting = None  # (its result holds the backend's protocol: a cycle)
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
        if tls.is_closing():
            transport.close()
            return
        # (duck-typed: uvloop's transports are not asyncio.Transport subclasses)
        self.backend = transport
        if settings.proxy_protocol:
            self.backend.write(self._proxy_header(tls))
        for data in self._pending:
            self.backend.write(data)
        self._pending, self._pending_size = [], 0
        if self._client_full:
            self.backend.pause_reading()
        if self.client_eof:
            if self.backend.can_write_eof():
                self.backend.write_eof()
        else:
            tls.resume_reading()  # (if it was paused)

    def _backend_timed_out(self) -> None:
        self._timed_out = True
        if self._connecting is not None:
            self._connecting.cancel()

    def _unreachable(self, why: str) -> None:
        host, port = self.backend_info.settings.backend
        self.error = f"backend {host}:{port} unreachable: {why}"
        self.backend_info.failed(self.error)
        if self.tls is not None:
            self.tls.close()

    def _proxy_header(self, tls: asyncio.Transport) -> bytes:
        info = tls.get_extra_info("connection_info")
        facts = None
        if info is not None:
            facts = proxy_protocol.TlsFacts(
                info.version.label, info.cipher_suite.openssl_name, info.server_name,
                info.alpn_protocol,
            )  # fmt: skip
        peer = _address(tls.get_extra_info("peername"))
        local = _address(tls.get_extra_info("sockname"))
        return proxy_protocol.header(peer, local, facts)

    def backend_data(self, data: bytes) -> None:
        self.bytes_out += len(data)
        if self.tls is not None:
            self.tls.write(data)

    def backend_closed(self, exc: Exception | None) -> None:
        """The backend ended (its end of stream, or lost): close the client with close_notify
        once what the backend sent is written."""
        self.backend = None
        if exc is not None and self.error is None:
            self.error = f"backend connection lost: {exc}"
        if self.tls is not None and not self.tls.is_closing():
            self.tls.close()


class _Backend(asyncio.Protocol):
    """Backend side: plaintext over TCP."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.relay.backend_data(data)

    def eof_received(self) -> bool:
        return False  # asyncio closes the transport; connection_lost closes the client

    def pause_writing(self) -> None:
        tls = self.relay.tls
        if tls is not None:
            tls.pause_reading()

    def resume_writing(self) -> None:
        tls = self.relay.tls
        if tls is not None and not self.relay.client_eof and not tls.is_closing():
            tls.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.backend_closed(exc)


def _address(value: object) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        with contextlib.suppress(ValueError, TypeError):
            return str(value[0]), int(value[1])
    return None

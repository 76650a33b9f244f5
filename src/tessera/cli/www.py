"""What ``tessera serve`` does with a connection once its handshake completed: echo (the
default), or ``--www``: answer an HTTP request with a status page (and, under
``--client-cert-path``, ask for a client certificate first). Application protocols on the
engine's TLS transport; the log line and the page format the one renderer of a connection
(:mod:`tessera.observe.render`)."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable
from dataclasses import dataclass

from ..config import ServerConfig
from ..errors import TLSError
from ..events import ConnectionInfo
from ..fleet.cli import status_lines
from ..io.aio import TLSTransport
from ..observe.logs import handshake_line, peer_address
from ..observe.render import connection_fields, rows, session_line
from ..session.resumption import awaited
from ..session.store import MemoryStore
from . import secure_path

MAX_REQUEST = 16 * 1024
Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Site:
    """What every connection of one server shares."""

    config: Callable[[], ServerConfig]  # the current configuration (swapped on SIGHUP)
    log: Log | None  # None: no line per connection (--quiet)
    say: Log  # lines that are always printed
    client_cert_paths: tuple[str, ...] = ()
    handshake_timeout: float = 10.0


# The page's rows: the renderer's fields, in this order.
PAGE_FIELDS = ("protocol", "cipher", "session_id", "resumed", "resumption",
               "extended_master_secret", "group", "server_name", "alpn", "early_data")  # fmt: skip


def info_rows(info: ConnectionInfo) -> list[tuple[str, str]]:
    """The handshake's outcome as (field, value) rows for the page."""
    return rows(connection_fields(info), PAGE_FIELDS)


def www_page(info: ConnectionInfo, config: ServerConfig,
             status: str = "200 ok", notes: tuple[str, ...] = ()) -> bytes:  # fmt: skip
    """The HTTP/1.0 answer: the connection, the server's resumption statistics, the fleet."""
    stats = config.statistics
    body = ["<html><head><title>tessera</title></head><body><pre>"]
    if notes:
        body += [*(html.escape(n) for n in notes), ""]
    body += [html.escape(session_line(info)), ""]
    body += [f"{html.escape(k)}: {html.escape(v)}" for k, v in info_rows(info)]
    body += ["", "Session statistics:"]
    body += [f"  {k}: {v}" for k, v in stats.snapshot().items()]
    store = config.session_store
    if store is None:
        store = awaited.immediate(config.async_session_store)
    if isinstance(store, MemoryStore):
        body += [f"  cache_entries: {len(store)}", f"  cache_evictions: {store.evictions}"]
    reasons = stats.fallback_reasons()
    body += ["", "Resumption fallbacks (why a full handshake was done):"]
    body += [f"  {html.escape(k)}: {v}" for k, v in sorted(reasons.items())] or ["  (none)"]
    body += [html.escape(line) for line in status_lines(config)]
    body += ["</pre></body></html>", ""]
    text = "\n".join(body).encode()
    head = (
        f"HTTP/1.0 {status}\r\nContent-Type: text/html\r\n"
        f"Content-Length: {len(text)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + text


def _announce(site: Site, transport: TLSTransport) -> ConnectionInfo:
    info = transport.tls.conn.info
    assert info is not None
    if site.log is not None:
        site.log(handshake_line(peer_address(transport.get_extra_info("peername")), info))
    return info


class Echo(asyncio.Protocol):
    """Sends back what it receives; closes (close_notify) when the client does."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.transport: TLSTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, TLSTransport)
        self.transport = transport
        _announce(self.site, transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def eof_received(self) -> bool:
        return False  # close (our close_notify)

    def pause_writing(self) -> None:  # the client reads less than it sends: wait for it
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()


class Www(asyncio.StreamReaderProtocol):
    """``--www``: one HTTP request, one status page, then close."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.reader = asyncio.StreamReader(limit=MAX_REQUEST)
        super().__init__(self.reader, self._serve)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = writer.transport
        assert isinstance(transport, TLSTransport)
        info = _announce(self.site, transport)
        try:
            request = await _read_request(reader)
            if request is not None:
                await self._answer(transport, info, reader, writer, request)
            await writer.drain()
        except (TLSError, OSError) as e:
            self.site.say(f"{transport.get_extra_info('peername')}: {e}")
        finally:
            writer.close()

    async def _answer(self, transport: TLSTransport, info: ConnectionInfo,
                      reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      request: bytes) -> None:  # fmt: skip
        site, tls = self.site, transport.tls
        method, path = secure_path.request_target(request)
        if secure_path.protected_prefix(path, site.client_cert_paths) is None:
            writer.write(www_page(info, site.config()))
            return
        head, _, rest = request.partition(b"\r\n\r\n" if b"\r\n\r\n" in request else b"\n\n")
        body = await secure_path.read_body(reader, head, rest)
        outcome = (
            body
            if isinstance(body, secure_path.Outcome)
            else await secure_path.authenticate(tls, method, path, body, site.handshake_timeout)
        )
        site.say(outcome.log)
        current = tls.conn.info or info
        writer.write(www_page(current, site.config(), outcome.status, outcome.lines))
        if outcome.linger:
            await writer.drain()
            await secure_path.linger(reader)


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """The request head (and what came with it), or None when the client sent none."""
    buf = b""
    while b"\r\n\r\n" not in buf and b"\n\n" not in buf:
        chunk = await reader.read(4096)
        if not chunk:
            return None
        buf += chunk
        if len(buf) > MAX_REQUEST:
            return None
    return buf

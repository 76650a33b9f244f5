"""Blocking sockets: one pump loop around a sans-I/O connection.

::

    with TLSSocket.connect(("example.com", 443), ClientConfig()) as s:
        s.sendall(b"GET / HTTP/1.0\\r\\nHost: example.com\\r\\n\\r\\n")
        print(s.recv(65536))

All waiting happens here; every protocol decision is the connection's. A peer that stops
sending in the middle of the handshake is cut off after ``handshake_timeout`` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ..config import ClientConfig, ServerConfig
from ..connection import ClientConnection, ServerConnection
from ..errors import (
    AlertError,
    ConnectionClosedError,
    HandshakeTimeout,
    LocalProtocolError,
    TLSError,
)
from ..events import (
    ApplicationData,
    ConnectionClosed,
    ConnectionInfo,
    EarlyDataRejected,
    HandshakeCompleted,
    SessionTicketReceived,
)
from ..session.model import ClientSession

log = logging.getLogger("tessera")
_IOV_MAX = 512  # buffers per sendmsg() call (Linux allows 1024)
RECV_SIZE = 1 << 16  # below malloc's mmap threshold: no page faults per connection


def set_receive_timeout(sock: socket.socket, seconds: float) -> None:
    """Set the kernel receive timeout (SO_RCVTIMEO); accepted sockets inherit it."""
    whole = int(seconds)
    usec = max(int((seconds - whole) * 1e6), 0 if whole else 1)  # 0/0 would mean "none"
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", whole, usec))


class TLSSocket:
    def __init__(
        self,
        sock: socket.socket,
        conn: ClientConnection | ServerConnection,
        handshake_timeout: float | None = 30.0,
        kernel_timeout_set: bool = False,
    ) -> None:
        self.sock = sock
        # SO_RCVTIMEO already carries the handshake timeout (inherited from a listening socket).
        self._kernel_timeout = kernel_timeout_set
        self.conn = conn
        self.handshake_timeout = handshake_timeout
        self._app: deque[bytes] = deque()
        self._eof = False
        self._closed = False
        self.bytes_received = 0  # from the network, records included
        self._buf = bytearray(RECV_SIZE)
        self._view = memoryview(self._buf)
        self.early_data: list[bytes] = []  # 0-RTT data a server received (replayable!)
        self.early_data_rejected = False
        self.sessions: list[ClientSession] = []

    # -- construction --------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        address: tuple[str, int],
        config: ClientConfig,
        server_name: str | None = None,
        *,
        session: ClientSession | None = None,
        timeout: float | None = 30.0,
        early_data: bytes | None = None,
    ) -> TLSSocket:
        """Open a TCP connection and complete the handshake."""
        tls = cls.open(address, config, server_name, session=session, timeout=timeout)
        try:
            tls.do_handshake(early_data=early_data)
        except BaseException:
            tls.sock.close()
            raise
        return tls

    @classmethod
    def open(
        cls,
        address: tuple[str, int],
        config: ClientConfig,
        server_name: str | None = None,
        *,
        session: ClientSession | None = None,
        timeout: float | None = 30.0,
    ) -> TLSSocket:
        """Open a TCP connection with a client connection on it, before the handshake (for
        callers that look at ``conn`` first, e.g. at ``conn.early_data_limit``); then call
        :meth:`do_handshake`."""
        sock = socket.create_connection(address, timeout=timeout)
        sock.settimeout(None)  # blocking from now on; do_handshake bounds the handshake
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        name = server_name if server_name is not None else address[0]
        try:
            conn = ClientConnection(config, name, address=address, session=session)
        except BaseException:
            sock.close()
            raise
        return cls(sock, conn, timeout)

    @classmethod
    def wrap_server(
        cls,
        sock: socket.socket,
        config: ServerConfig,
        handshake_timeout: float | None = 30.0,
        kernel_timeout_set: bool = False,
    ) -> TLSSocket:
        return cls(sock, ServerConnection(config), handshake_timeout, kernel_timeout_set)

    # -- the pump ------------------------------------------------------------------------
    def _flush(self) -> None:
        records = self.conn.records_to_send()
        if len(records) > 4:
            self._send_vectored(records)
        elif records:  # a handshake flight, a small write: one small buffer
            self.sock.sendall(records[0] if len(records) == 1 else b"".join(records))

    def _send_vectored(self, records: list[bytes]) -> None:
        """sendall() for many records without joining them: joining a megabyte of records
        costs a fresh large buffer (page faults) on every call."""
        sock = self.sock
        if not hasattr(sock, "sendmsg"):  # e.g. Windows
            sock.sendall(b"".join(records))
            return
        parts: list[bytes | memoryview] = list(records)
        i = 0
        while i < len(parts):
            sent = sock.sendmsg(parts[i : i + _IOV_MAX])
            while sent:
                n = len(parts[i])
                if sent >= n:
                    sent -= n
                    i += 1
                else:
                    parts[i] = memoryview(parts[i])[sent:]
                    sent = 0

    def _pump(self) -> bool:
        """Read once from the socket and process it; False at end of stream."""
        try:
            n = self.sock.recv_into(self._buf)
        except BlockingIOError:
            # The kernel receive timeout (the handshake's) ran out: fatal during the
            # handshake, only a wake-up afterwards.
            if self.conn.handshake_complete:
                return True
            raise TimeoutError from None
        except OSError as e:
            raise ConnectionClosedError(f"the connection broke: {e}") from e
        if not n:
            self._eof = True
            return False
        self.bytes_received += n
        try:
            self.conn.receive_data(self._view[:n])
        except AlertError:
            with contextlib.suppress(OSError):
                self._flush()
            self._abort()
            raise
        self._take_events()
        self._flush()
        return True

    def _take_events(self) -> None:
        for ev in self.conn.events():
            if isinstance(ev, ApplicationData):
                if ev.early:
                    self.early_data.append(ev.data)
                self._app.append(ev.data)
            elif isinstance(ev, ConnectionClosed):
                self._eof = True
            elif isinstance(ev, SessionTicketReceived):
                self.sessions.append(ev.session)
            elif isinstance(ev, EarlyDataRejected):
                self.early_data_rejected = True
            elif isinstance(ev, HandshakeCompleted):
                pass

    def do_handshake(self, early_data: bytes | None = None) -> ConnectionInfo:
        conn = self.conn
        if isinstance(conn, ClientConnection) and conn._state is None:
            conn.start_handshake(early_data or None)
        timeout = self.handshake_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        # A blocking socket gets a kernel receive timeout (SO_RCVTIMEO), set once and kept: no
        # poll() before every read. A socket with its own Python timeout keeps that instead.
        if timeout is not None and not self._kernel_timeout and self.sock.gettimeout() is None:
            set_receive_timeout(self.sock, timeout)
            self._kernel_timeout = True
        try:
            self._flush()
            while not conn.handshake_complete:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError
                if not self._pump():
                    raise ConnectionClosedError(
                        f"the peer closed the connection during the handshake ({conn.state_name})"
                    )
        except TimeoutError:
            self._abort()
            raise HandshakeTimeout(
                f"no progress from the peer within {self.handshake_timeout} s "
                f"(waiting in {conn.state_name})"
            ) from None
        except (ConnectionClosedError, OSError):
            self._abort()
            raise
        info = conn.info
        assert info is not None
        return info

    # -- data ----------------------------------------------------------------------------
    def sendall(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionClosedError("the socket is closed")
        self.conn.send_data(data)
        self._flush()

    send = sendall
    write = sendall

    def recv(self, bufsize: int = 65536) -> bytes:
        """Up to ``bufsize`` bytes of application data; b"" once the peer has closed."""
        while not self._app:
            if self._eof or self._closed:
                return b""
            self._pump()
        app = self._app
        chunk = app.popleft()
        if len(chunk) > bufsize:
            app.appendleft(chunk[bufsize:])
            return chunk[:bufsize]
        if not app or len(chunk) + len(app[0]) > bufsize:
            return chunk
        parts = [chunk]
        size = len(chunk)
        while app and size + len(app[0]) <= bufsize:
            nxt = app.popleft()
            parts.append(nxt)
            size += len(nxt)
        return b"".join(parts)

    read = recv

    def recv_exactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.recv(n - len(out))
            if not chunk:
                raise ConnectionClosedError(f"the peer closed after {len(out)} of {n} bytes")
            out += chunk
        return bytes(out)

    def pending(self) -> int:
        """Bytes of application data received and decrypted, not yet read."""
        return sum(len(c) for c in self._app)

    def receive_some(self) -> bool:
        """Read once from the socket (blocking only if nothing is there) and process what came:
        application data becomes ``pending()``, tickets land in ``sessions``. For callers that
        select() on ``sock``: unlike ``recv``, this never waits for application data that a
        readable socket did not bring. False once the peer has closed."""
        if self._eof or self._closed:
            return False
        return self._pump() and not self._eof

    # -- closing -------------------------------------------------------------------------
    def close(self) -> None:
        """Send close_notify (if the connection is healthy) and close the socket."""
        if self._closed:
            return
        with contextlib.suppress(TLSError, OSError):
            if not self.conn.failed:
                self.conn.close()
                self._flush()
        self._abort()

    def _abort(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> TLSSocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- information ---------------------------------------------------------------------
    @property
    def info(self) -> ConnectionInfo:
        info = self.conn.info
        if info is None:
            raise LocalProtocolError("the handshake has not completed")
        return info

    @property
    def session(self) -> ClientSession | None:
        if isinstance(self.conn, ClientConnection):
            return self.conn.session
        return None

    @property
    def peer_closed(self) -> bool:
        return self._eof

    def fileno(self) -> int:
        return self.sock.fileno()


class TLSServer:
    """A threaded TCP server that runs ``handler(tls_socket)`` for each completed handshake.

    Handshake failures are logged and counted, never raised out of the accept loop;
    ``on_handshake_error(peer_address, error)`` also hears of each one from a peer that sent
    anything at all (a port probe that connects and closes is not a TLS failure).
    """

    def __init__(
        self,
        address: tuple[str, int],
        config: ServerConfig,
        handler: Callable[[TLSSocket], None],
        *,
        handshake_timeout: float = 10.0,
        threaded: bool = True,
        backlog: int = 128,
        on_handshake_error: Callable[[Any, TLSError | OSError], None] | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.config = config
        self.on_handshake_error = on_handshake_error
        self.handler = handler
        self.handshake_timeout = handshake_timeout
        self.threaded = threaded
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # workers of one supervisor share the port (tessera.fleet.supervisor)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.sock.bind(address)
        self.sock.listen(backlog)
        set_receive_timeout(self.sock, handshake_timeout)  # inherited by accepted sockets
        self._stop = threading.Event()
        self.handshake_failures = 0

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return host, port

    def serve_forever(self) -> None:
        self.sock.settimeout(0.25)
        while not self._stop.is_set():
            try:
                client, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                raise
            client.settimeout(None)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.threaded:
                threading.Thread(target=self._serve_one, args=(client, peer), daemon=True).start()
            else:
                self._serve_one(client, peer)

    def _serve_one(self, client: socket.socket, peer: Any = None) -> None:
        tls = TLSSocket.wrap_server(client, self.config, self.handshake_timeout, True)
        try:
            tls.do_handshake()
        except (TLSError, OSError) as e:
            self.handshake_failures += 1
            log.info("handshake failed: %s", e)
            tls.close()
            if self.on_handshake_error is not None and tls.bytes_received:
                self.on_handshake_error(peer, e)
            return
        try:
            self.handler(tls)
        except (TLSError, OSError) as e:
            log.info("connection ended with an error: %s", e)
        finally:
            tls.close()

    def shutdown(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.close()

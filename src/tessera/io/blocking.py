"""Blocking sockets: one pump loop around a sans-I/O connection.

::

    with TLSSocket.connect(("example.com", 443), ClientConfig()) as s:
        s.sendall(b"GET / HTTP/1.0\\r\\nHost: example.com\\r\\n\\r\\n")
        print(s.recv(65536))

All waiting happens here; every protocol decision is the connection's. A peer that stops
sending in the middle of the handshake is cut off after ``handshake_timeout`` seconds; a server
connection whose peer then does nothing for ``idle_timeout`` seconds is cut too.
"""

from __future__ import annotations

import contextlib
import logging
import math
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import ClientConfig, ServerConfig
from ..connection import ClientConnection, ServerConnection
from ..errors import (
    AlertError,
    ConfigError,
    ConnectionClosedError,
    HandshakeTimeout,
    IdleTimeout,
    LocalProtocolError,
    TLSError,
)
from ..events import (
    ConnectionInfo,
    Event,
    SessionTicketReceived,
)
from ..session.model import ClientSession
from .listen import ACCEPT_CONNECTION_ERRORS, ACCEPT_RESOURCE_ERRORS, listening_socket, next_backoff
from .pool import ThreadPool
from .pump import EventHandler, Reauthentication, pump_events
from .sslcompat import SocketDelegate, SSLInfo

if TYPE_CHECKING:
    from .stdlib import TLSContext

log = logging.getLogger("tessera")
_IOV_MAX = 512  # buffers per sendmsg() call (Linux allows 1024)
RECV_SIZE = 1 << 16  # below malloc's mmap threshold: no page faults per connection
# Sessions (TLS 1.3 tickets) a client socket keeps, newest last: a server that sends thousands
# of tickets cannot make it hoard them.
MAX_SESSIONS_KEPT = 8


def _set_timeout_option(sock: socket.socket, option: int, seconds: float) -> None:
    whole = int(seconds)
    usec = max(int((seconds - whole) * 1e6), 0 if whole else 1)  # 0/0 would mean "none"
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", whole, usec))


def set_receive_timeout(sock: socket.socket, seconds: float) -> None:
    """Set the kernel receive timeout (SO_RCVTIMEO); accepted sockets inherit it."""
    _set_timeout_option(sock, socket.SO_RCVTIMEO, seconds)


def set_send_timeout(sock: socket.socket, seconds: float) -> None:
    """Set the kernel send timeout (SO_SNDTIMEO): a write to a peer that reads nothing fails
    after ``seconds`` instead of blocking forever; accepted sockets inherit it."""
    _set_timeout_option(sock, socket.SO_SNDTIMEO, seconds)


class TLSSocket(SSLInfo, SocketDelegate, EventHandler):
    """A TLS connection over a blocking socket, usable where an ``ssl.SSLSocket`` is: ``recv``,
    ``recv_into``, ``send`` (returns a count), ``sendall``, ``makefile``, ``shutdown``,
    ``unwrap``, ``settimeout``/``setblocking`` (non-blocking: ``recv`` raises BlockingIOError
    while no record is complete), ``getpeername``, ``fileno``; and ``version()``,
    ``cipher()``, ``selected_alpn_protocol()``, ``getpeercert()``, ``session``,
    ``session_reused`` as ``ssl`` answers them. A bare end of stream (no close_notify) reads as
    end of file, as with ``suppress_ragged_eofs=True``; ``close_notify_received`` tells which.
    A server socket from :func:`~tessera.io.stdlib.wrap_socket` does its handshake on first use.
    """

    # Set by the standard-library compatible parts (class defaults keep __init__ unchanged).
    _io_refs = 0
    _close_requested = False
    _ragged_eof = False
    _pending_out = b""  # non-blocking mode: records the kernel did not take yet
    context: TLSContext | None = None  # the TLSContext that made this socket, if any
    on_probe: Callable[[], None] | None = None  # told of a peer that closed before any byte

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
        self.sessions: deque[ClientSession] = deque(maxlen=MAX_SESSIONS_KEPT)
        # Renegotiations and post-handshake authentications that ended (RenegotiationCompleted,
        # RenegotiationDeclined, PostHandshakeAuthCompleted), newest last, for the caller to
        # report; ``reauthentications`` counts them all.
        self.handshake_notices: deque[Event] = deque(maxlen=MAX_SESSIONS_KEPT)
        self.reauthentications = 0
        # Set by a server after the handshake (see TLSServer): seconds without progress from
        # the peer before the connection is cut with IdleTimeout.
        self.idle_timeout: float | None = None
        self._idle_since = 0.0

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
        try:
            if self._pending_out or (records and self.sock.gettimeout() == 0.0):
                self._flush_nonblocking(records)
            elif len(records) > 4:
                self._send_vectored(records)
            elif records:  # a handshake flight, a small write: one small buffer
                self.sock.sendall(records[0] if len(records) == 1 else b"".join(records))
        except BlockingIOError:  # SO_SNDTIMEO ran out: the peer reads nothing
            if self.idle_timeout is None or self.sock.gettimeout() == 0.0:
                raise
            self._abort()
            raise IdleTimeout(
                f"the peer read nothing for {self.idle_timeout} s; connection closed"
            ) from None

    def _flush_nonblocking(self, records: list[bytes]) -> None:
        """Send what the kernel takes now; keep the rest for the next send/recv."""
        data = self._pending_out + b"".join(records)
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        self._pending_out = data[sent:]

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
            if self.sock.gettimeout() == 0.0:
                raise  # non-blocking mode: nothing to read now (as ssl's SSLWantReadError)
            # The kernel receive timeout (the handshake's) ran out: fatal during the
            # handshake, only a wake-up (and an idle check) afterwards.
            if self.conn.handshake_complete:
                self._check_idle()
                return True
            raise TimeoutError from None
        except TimeoutError:
            raise  # the socket's own timeout (settimeout): socket.timeout, as ssl raises
        except OSError as e:
            raise ConnectionClosedError(f"the connection broke: {e}") from e
        if not n:
            self._ragged_eof = not self.conn.peer_closed
            self._eof = True
            self.conn.receive_data(b"")  # end of stream: HandshakeTruncated if too early
            self._take_events()
            return False
        self.bytes_received += n
        try:
            self.conn.receive_data(self._view[:n])
        except AlertError:
            with contextlib.suppress(OSError):
                self._flush()
            self._abort()
            raise
        if self._take_events():
            self._idle_since = time.monotonic()
        elif self.idle_timeout is not None:
            self._check_idle()  # bytes that complete nothing (a trickle) are no progress
        self._flush()
        return True

    def set_idle_timeout(self, seconds: float | None) -> None:
        """After the handshake: cut the connection with IdleTimeout when the peer sends nothing
        usable for ``seconds`` while we wait for it (None: wait forever). The socket must wake
        up in time to notice (a kernel or socket timeout of at most ``seconds``)."""
        self.idle_timeout = seconds
        self._idle_since = time.monotonic()

    def _check_idle(self) -> None:
        idle = self.idle_timeout
        if idle is not None and time.monotonic() - self._idle_since > idle:
            raise IdleTimeout(f"the peer sent nothing usable for {idle} s; connection closed")

    def _take_events(self) -> bool:
        """Hand the connection's events to this socket (the one pump); False if none."""
        return pump_events(self.conn, self)

    # what this socket does with each event (for recv, sessions, handshake_notices)
    def on_application_data(self, data: bytes, early: bool) -> None:
        if early:
            self.early_data.append(data)
        self._app.append(data)

    def on_peer_closed(self, close_notify: bool) -> None:
        self._eof = True

    def on_session_ticket(self, event: SessionTicketReceived) -> None:
        self.sessions.append(event.session)

    def on_early_data_rejected(self) -> None:
        self.early_data_rejected = True

    def on_reauthenticated(self, event: Reauthentication) -> None:
        self.handshake_notices.append(event)
        self.reauthentications += 1

    def _handshake_on_first_use(self) -> bool:
        """The handshake of a server socket from ``wrap_socket``, run by its first read or
        write. False when the peer closed (or reset: HAProxy's checks do) before sending a
        byte, as a load balancer's TCP health check does: not an error, only counted
        (``on_probe``)."""
        try:
            self.do_handshake()
        except ConnectionClosedError:
            if self.bytes_received:
                raise
            self._eof = True
            self._abort()
            if self.on_probe is not None:
                self.on_probe()
            return False
        return True

    def do_handshake(self, early_data: bytes | None = None) -> ConnectionInfo:
        conn = self.conn
        if isinstance(conn, ClientConnection) and not conn.handshake_started:
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

    # -- renegotiation and post-handshake authentication ---------------------------------
    def request_client_certificate(
        self, timeout: float | None = 30.0, *, required: bool = False
    ) -> ConnectionInfo:
        """Server: ask the client for a certificate on the open connection (TLS 1.2: a
        renegotiation whose resumption is refused; TLS 1.3: post-handshake authentication)
        and wait until it answers. Returns the new ``info``: its ``peer_certificates`` are
        empty when the client sent none or declined (then the last ``handshake_notices`` entry
        is a RenegotiationDeclined). Application data arriving meanwhile is kept for ``recv``.
        Raises LocalProtocolError (saying why) when the client cannot be asked, HandshakeTimeout
        when it does not answer in ``timeout`` seconds."""
        conn = self.conn
        if not isinstance(conn, ServerConnection):
            raise LocalProtocolError("request_client_certificate() is for a server connection")
        conn.request_client_certificate(required=required)
        return self._await_reauthentication(timeout, "the request for a client certificate")

    def renegotiate(self, timeout: float | None = 30.0) -> ConnectionInfo:
        """Client, TLS 1.2: renegotiate (client-initiated, RFC 5746) and wait until it ends.
        Returns the new ``info`` (unchanged if the server declined: see
        ``handshake_notices``)."""
        conn = self.conn
        if not isinstance(conn, ClientConnection):
            raise LocalProtocolError("renegotiate() is for a client connection")
        conn.renegotiate()
        return self._await_reauthentication(timeout, "the renegotiation")

    def _await_reauthentication(self, timeout: float | None, what: str) -> ConnectionInfo:
        deadline = None if timeout is None else time.monotonic() + timeout
        before = self.reauthentications
        self._flush()
        while self.reauthentications == before:
            if self._eof or self._closed:
                raise ConnectionClosedError(f"the peer closed the connection during {what}")
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise HandshakeTimeout(f"no answer from the peer to {what} within {timeout} s")
            if self.wait_readable(left) and not self._pump():
                raise ConnectionClosedError(f"the peer closed the connection during {what}")
        return self.info

    def wait_readable(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (None: no limit) for the socket to become readable
        (poll(), so descriptors above FD_SETSIZE work too)."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(None if timeout is None else max(0, math.ceil(timeout * 1000))))

    # -- data ----------------------------------------------------------------------------
    def sendall(self, data: bytes | bytearray | memoryview, flags: int = 0) -> None:
        if self._closed:
            raise ConnectionClosedError("the socket is closed")
        if flags:
            raise ValueError("non-zero flags not allowed in calls to sendall() on TLSSocket")
        if self.conn.info is None and not self._handshake_on_first_use():
            raise ConnectionClosedError("the peer closed the connection before sending anything")
        self.conn.send_data(data if isinstance(data, bytes) else bytes(data))
        self._flush()

    write = sendall

    def send(self, data: bytes | bytearray | memoryview, flags: int = 0) -> int:
        """Send ``data``; returns how many bytes were taken (all of them). In non-blocking mode
        output the kernel did not take waits here: while it does, ``send`` raises
        BlockingIOError and takes nothing (``send(b"")`` pushes it on, returning 0)."""
        if self._pending_out:
            self._flush()
            if self._pending_out:
                raise BlockingIOError(11, "the socket's send buffer is full")
        self.sendall(data, flags)
        return len(data)

    def recv(self, bufsize: int = 65536, flags: int = 0) -> bytes:
        """Up to ``bufsize`` bytes of application data; b"" once the peer has closed."""
        if flags:
            raise ValueError("non-zero flags not allowed in calls to recv() on TLSSocket")
        if self.conn.info is None and not self._closed and not self._handshake_on_first_use():
            return b""  # a bare TCP probe (a health check): an end of file, as ssl reads it
        if self._pending_out:
            self._flush()
        self._idle_since = time.monotonic()  # the wait for the peer starts now
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

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, flags: int = 0) -> int:
        """Read up to ``nbytes`` (default: the buffer's size) into ``buffer``; 0 at the end."""
        view = memoryview(buffer).cast("B")
        if not (nbytes or len(view)):
            return 0
        data = self.recv(nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data)

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
        self._idle_since = time.monotonic()
        return self._pump() and not self._eof

    # -- the standard library's socket surface --------------------------------------------
    def makefile(
        self,
        mode: str = "r",
        buffering: int | None = None,
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> Any:
        """A file object over the connection, as ``socket.makefile`` (the socket stays open
        until every file made from it is closed)."""
        make: Any = socket.socket.makefile  # socket's own, over this object's recv_into/send
        return make(self, mode, buffering, encoding=encoding, errors=errors, newline=newline)

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._close_requested:
            self.close()

    def shutdown(self, how: int) -> None:
        """``SHUT_WR``/``SHUT_RDWR`` send close_notify first, then shut the TCP side down."""
        conn = self.conn
        if how in (socket.SHUT_WR, socket.SHUT_RDWR) and conn.info is not None:
            with contextlib.suppress(TLSError, OSError):
                if not conn.closed:
                    conn.close()
                    self._flush()
        self.sock.shutdown(how)

    def unwrap(self) -> socket.socket:
        """Send close_notify, read until the peer's, and return the plain socket (which stays
        open). A peer that ends the stream without close_notify raises ConnectionClosedError."""
        conn = self.conn
        if not conn.closed:
            conn.close()
            self._flush()
        while not conn.peer_closed:
            self._app.clear()
            if not self._pump():
                break
        if self._ragged_eof or not conn.peer_closed:
            raise ConnectionClosedError("the peer closed without close_notify")
        self._closed = True
        return self.sock

    @property
    def close_notify_received(self) -> bool | None:
        """True once the peer sent close_notify, False when its stream ended without one (the
        data may be truncated), None while it has not closed."""
        if self._ragged_eof:
            return False
        return True if self.conn.peer_closed else None

    @property
    def session(self) -> ClientSession | None:
        """A client's latest resumable session; settable before the handshake starts."""
        if isinstance(self.conn, ClientConnection):
            return self.conn.session
        return None

    @session.setter
    def session(self, value: ClientSession | None) -> None:
        conn = self.conn
        if not isinstance(conn, ClientConnection) or conn.handshake_started:
            raise ValueError("a session can only be set on a client before its handshake")
        conn.offered_session = value

    # -- closing -------------------------------------------------------------------------
    def close(self) -> None:
        """Send close_notify (if the connection is healthy) and close the socket; with files
        from ``makefile`` still open, once the last of them is closed."""
        self._close_requested = True
        if self._closed or self._io_refs > 0:
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

    # -- information ---------------------------------------------------------------------
    @property
    def info(self) -> ConnectionInfo:
        info = self.conn.info
        if info is None:
            raise LocalProtocolError("the handshake has not completed")
        return info

    @property
    def peer_closed(self) -> bool:
        return self._eof


class TLSServer:
    """A TCP server that runs ``handler(tls_socket)`` for each completed handshake, each
    connection on a thread of a bounded pool of long-lived threads (``threaded=False``: one
    connection at a time, on the thread of ``serve_forever``).

    Handshake failures are logged and counted, never raised out of the accept loop;
    ``on_handshake_error(peer_address, error)`` also hears of each one from a peer that sent
    anything at all (a port probe that connects and closes is not a TLS failure).

    Limits, so that no client can pin unbounded threads or stop the server:

    * ``handshake_timeout``: seconds a client may take to complete the handshake;
    * ``idle_timeout`` (None: none): after the handshake, a connection whose peer sends nothing
      usable (no complete record; a trickle of bytes does not count) while the handler waits for
      it, or reads nothing while the handler writes, for that many seconds is cut
      (:class:`~tessera.errors.IdleTimeout`);
    * ``max_connections`` (None: no cap): connections served at once, and so the threads of the
      pool (started as needed, ended after a minute without work); further clients wait in
      the listen queue (``backlog``) until one ends;
    * ``accept()`` failing for want of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) is
      logged and retried with a back-off (5 ms doubling to 1 s), so the server serves again as
      soon as load drops; a connection that died in the queue (ECONNABORTED...) is skipped.
    """

    def __init__(
        self,
        address: tuple[str, int],
        config: ServerConfig,
        handler: Callable[[TLSSocket], None],
        *,
        handshake_timeout: float = 10.0,
        idle_timeout: float | None = 300.0,
        max_connections: int | None = 1000,
        threaded: bool = True,
        backlog: int = 128,
        on_handshake_error: Callable[[object, TLSError | OSError], None] | None = None,
        reuse_port: bool = False,
    ) -> None:
        if idle_timeout is not None and idle_timeout <= 0:
            raise ConfigError("idle_timeout must be positive (or None for no idle timeout)")
        if max_connections is not None and max_connections < 1:
            raise ConfigError("max_connections must be at least 1 (or None for no cap)")
        self.config = config
        self.on_handshake_error = on_handshake_error
        self.handler = handler
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.threaded = threaded
        self.sock = listening_socket(address, reuse_port, backlog)
        set_receive_timeout(self.sock, handshake_timeout)  # inherited by accepted sockets
        # Writes to a peer that reads nothing fail after the idle timeout (or the handshake's).
        set_send_timeout(self.sock, idle_timeout or handshake_timeout)
        self._stop = threading.Event()
        self._slots = threading.Semaphore(max_connections) if max_connections else None
        self.pool: ThreadPool[tuple[socket.socket, object]] = ThreadPool(
            self._serve_one, max_connections, name="tessera-connection"
        )
        self._count_lock = threading.Lock()
        self.active_connections = 0
        self.handshake_failures = 0
        self.accept_failures = 0  # accept() calls that failed and were retried

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return host, port

    def serve_forever(self) -> None:
        self.sock.settimeout(0.25)
        backoff = 0.0
        while not self._stop.is_set():
            if not self._take_slot():
                break
            try:
                client, peer = self.sock.accept()
            except TimeoutError:
                self._release_slot()
                continue
            except OSError as e:
                self._release_slot()
                if self._stop.is_set():
                    break
                if e.errno in ACCEPT_CONNECTION_ERRORS:
                    continue
                if e.errno not in ACCEPT_RESOURCE_ERRORS:
                    raise
                backoff = self._back_off(e, backoff)
                continue
            if backoff:
                log.warning("accept() works again after %d failure(s)", self.accept_failures)
                backoff = 0.0
            self._start(client, peer)

    def _back_off(self, error: OSError, delay: float) -> float:
        """Wait before the next accept(); the longer the longer it keeps failing."""
        self.accept_failures += 1
        if not delay:
            log.warning(
                "accept() failed: %s; retrying with a back-off. Connections wait in the listen "
                "queue meanwhile: raise the descriptor limit (ulimit -n) or lower "
                "max_connections (--max-connections)",
                error,
            )
        delay = next_backoff(delay)
        self._stop.wait(delay)
        return delay

    def _take_slot(self) -> bool:
        """Wait for a free connection slot (excess clients wait in the listen queue); False if
        the server stops meanwhile."""
        if self._slots is not None:
            while not self._slots.acquire(timeout=0.25):
                if self._stop.is_set():
                    return False
        with self._count_lock:
            self.active_connections += 1
        return True

    def _release_slot(self) -> None:
        with self._count_lock:
            self.active_connections -= 1
        if self._slots is not None:
            self._slots.release()

    def _start(self, client: socket.socket, peer: object) -> None:
        try:
            client.settimeout(None)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.threaded:
                self.pool.submit((client, peer))
                return
        except (OSError, RuntimeError) as e:  # the peer left already; no thread to be had
            log.warning("cannot serve a connection from %s: %s", peer, e)
            client.close()
            self._release_slot()
            return
        self._serve_one((client, peer))

    def _serve_one(self, accepted: tuple[socket.socket, object]) -> None:
        client, peer = accepted
        try:
            self._serve_tls(client, peer)
        finally:
            self._release_slot()

    def _serve_tls(self, client: socket.socket, peer: object) -> None:
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
        idle = self.idle_timeout
        if idle is not None:
            tls.set_idle_timeout(idle)
            if idle < self.handshake_timeout:  # wake up in time to notice
                set_receive_timeout(client, idle)
        try:
            self.handler(tls)
        except IdleTimeout as e:
            log.info("%s", e)
        except (TLSError, OSError) as e:
            log.info("connection ended with an error: %s", e)
        finally:
            tls.close()

    def shutdown(self) -> None:
        """Stop accepting; connections being served finish, the idle threads end."""
        self._stop.set()
        self.pool.close()
        with contextlib.suppress(OSError):
            self.sock.close()

"""One probe connection: tessera's client over a socket, with everything it saw kept as
evidence (the server's hello, tickets, 0-RTT outcome) and the round trips and time it took.

The events go through the one pump's dispatcher (:mod:`tessera.io.pump`); the loop is the
blocking front end's, plus what an auditor needs and ``TLSSocket`` does not
keep: the events one by one, the number of times the client had to wait for the server
(round trips), and the first flight's bytes (for the 0-RTT replay probe). After the handshake
the client sends close_notify and reads until the server closes, so TLS 1.3 tickets, which
arrive after the handshake, are all collected (bounded by ``ticket_wait``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..config import ClientConfig
from ..connection import ClientConnection
from ..crypto.suites import BY_CODE
from ..enums import NamedGroup
from ..errors import TLSError
from ..events import Event, ServerHelloReceived, SessionTicketReceived
from ..io.pump import EventHandler, dispatch
from ..session.model import ClientSession
from ..session.resumption import Mechanism

KEY_NAME_LEN = 16  # RFC 5077 §4: key_name[16] | iv[16] | encrypted_state | mac[32]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An address to probe and the server name to send (None: no SNI)."""

    host: str
    port: int
    sni: str | None = None

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TicketSeen:
    """A ticket (TLS 1.2 NewSessionTicket or TLS 1.3 ticket) as the client received it."""

    session: ClientSession = field(repr=False)
    lifetime_hint: int | None
    connection: int  # which probe connection brought it (tickets of one connection share it)
    received: float  # time.time() when it arrived

    @property
    def ticket(self) -> bytes:
        return self.session.ticket

    @property
    def max_early_data(self) -> int:
        return self.session.state.max_early_data

    @property
    def prefix(self) -> bytes:
        """The first 16 bytes: the key name, if the ticket has the RFC 5077 layout."""
        return self.ticket[:KEY_NAME_LEN]


@dataclass(frozen=True, slots=True)
class Handshake:
    """What one probe connection showed."""

    endpoint: Endpoint
    error: str | None = None
    version: str | None = None
    cipher_suite: int | None = None
    resumed_by: Mechanism | None = None  # how the server resumed it (core vocabulary)
    hello: ServerHelloReceived | None = None  # the ServerHello (not a HelloRetryRequest)
    hello_retry: bool = False
    extended_master_secret: bool | None = None
    group: int | None = None
    early_data: str = "not sent"  # "accepted" or "rejected" when sent
    tickets: tuple[TicketSeen, ...] = ()
    session: ClientSession | None = field(default=None, repr=False)  # the newest given
    round_trips: int = 0  # times the client waited for the server before the handshake ended
    connect_ms: float = 0.0  # TCP connect
    handshake_ms: float = 0.0  # first ClientHello byte to handshake complete
    first_flight: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def resumed(self) -> bool:
        return self.resumed_by is not None

    @property
    def suite_name(self) -> str | None:
        if self.cipher_suite is None:
            return None
        suite = BY_CODE.get(self.cipher_suite)
        return suite.openssl_name if suite else f"0x{self.cipher_suite:04x}"

    @property
    def group_name(self) -> str | None:
        if self.group is None:
            return None
        try:
            return NamedGroup(self.group).name
        except ValueError:
            return f"0x{self.group:04x}"


class _Counter:
    """Numbers probe connections so that tickets can be grouped by the connection."""

    value = 0

    @classmethod
    def next(cls) -> int:
        cls.value += 1
        return cls.value


@dataclass
class _Seen(EventHandler):
    """The evidence a probe keeps, from the events of the one pump (:mod:`tessera.io.pump`)."""

    hello: ServerHelloReceived | None = None
    hello_retry: bool = False
    early_rejected: bool = False
    tickets: list[TicketSeen] = field(default_factory=list)
    session: ClientSession | None = None
    connection: int = 0  # the probe connection the events come from

    def take(self, events: list[Event], connection: int) -> None:
        self.connection = connection
        for ev in events:
            dispatch(ev, self)

    def on_server_hello(self, event: ServerHelloReceived) -> None:
        if event.hello_retry:
            self.hello_retry = True
        else:
            self.hello = event

    def on_session_ticket(self, event: SessionTicketReceived) -> None:
        self.session = event.session
        if event.session.ticket:
            seen = TicketSeen(event.session, event.lifetime_hint, self.connection, time.time())
            self.tickets.append(seen)

    def on_early_data_rejected(self) -> None:
        self.early_rejected = True


def handshake(
    endpoint: Endpoint,
    config: ClientConfig,
    session: ClientSession | None = None,
    *,
    early_data: bytes | None = None,
    timeout: float = 10.0,
    ticket_wait: float = 2.0,
) -> Handshake:
    """Connect, handshake (offering ``session``), collect tickets, close. Never raises for
    anything the network or the server does: the error is part of the evidence."""
    number = _Counter.next()
    seen = _Seen()
    t0 = time.perf_counter()
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except OSError as e:
        return Handshake(endpoint, error=f"TCP connect failed: {e}")
    t1 = time.perf_counter()
    conn = ClientConnection(config, endpoint.sni, session=session)
    try:
        with sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.start_handshake(early_data)
            first = conn.data_to_send()
            sock.sendall(first)
            waits = _complete(sock, conn, seen, number, timeout)
            t2 = time.perf_counter()
            _collect_tickets(sock, conn, seen, number, ticket_wait)
    except (TLSError, OSError) as e:
        seen.take(conn.events(), number)
        hello = seen.hello
        return Handshake(
            endpoint,
            error=_describe(e),
            version=hello.version.label if hello else None,
            cipher_suite=hello.cipher_suite if hello else None,
            hello=hello,
            hello_retry=seen.hello_retry,
            connect_ms=(t1 - t0) * 1000,
        )
    info = conn.info
    assert info is not None
    outcome = "not sent"
    if early_data is not None:
        outcome = "accepted" if info.early_data_accepted else "rejected"
    return Handshake(
        endpoint,
        version=info.version.label,
        cipher_suite=info.cipher_suite.code,
        resumed_by=info.resumed_by,
        hello=seen.hello,
        hello_retry=seen.hello_retry,
        extended_master_secret=info.extended_master_secret,
        group=info.group,
        early_data=outcome,
        tickets=tuple(seen.tickets),
        session=seen.session or conn.session,
        round_trips=waits,
        connect_ms=(t1 - t0) * 1000,
        handshake_ms=(t2 - t1) * 1000,
        first_flight=first,
    )


def _complete(
    sock: socket.socket, conn: ClientConnection, seen: _Seen, number: int, timeout: float
) -> int:
    """Run the handshake; returns the round trips: the times the client had sent something
    and then had to wait for the server's answer."""
    deadline = time.monotonic() + timeout
    waits = 0
    waiting_for_answer = True  # the ClientHello went out
    while not conn.handshake_complete:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            raise TimeoutError(f"no answer within {timeout:g} s ({conn.state_name})") from None
        if not data:
            raise ConnectionResetError(f"the server closed the connection ({conn.state_name})")
        if waiting_for_answer:
            waits += 1
            waiting_for_answer = False
        try:
            conn.receive_data(data)
        finally:
            seen.take(conn.events(), number)
            out = conn.data_to_send()
            if out:
                with contextlib.suppress(OSError):
                    sock.sendall(out)
        if out and not conn.handshake_complete:
            waiting_for_answer = True
    return waits


def _collect_tickets(
    sock: socket.socket, conn: ClientConnection, seen: _Seen, number: int, wait: float
) -> None:
    """Send close_notify and read until the server closes (or ``wait`` runs out): TLS 1.3
    tickets come after the handshake, and OpenSSL keeps a TLS 1.2 session in its cache only
    when the connection ends cleanly."""
    conn.close()
    with contextlib.suppress(OSError):
        sock.sendall(conn.data_to_send())
    deadline = time.monotonic() + wait
    while not conn.peer_closed and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except (TimeoutError, OSError):
            return
        if not data:
            return
        try:
            conn.receive_data(data)
        except TLSError:
            return  # a broken close after the handshake is no resumption evidence
        finally:
            seen.take(conn.events(), number)


def _describe(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, TLSError):
        return f"{type(e).__name__}: {text}"
    return text


# -- reproducible first flights (the 0-RTT replay probe) ------------------------------------
class RecordingRng:
    """os.urandom that remembers what it gave; :meth:`again` gives the same bytes, in order,
    to a second connection (once the first has drawn them)."""

    def __init__(self) -> None:
        self.given: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        data = os.urandom(n)
        self.given.append(data)
        return data

    def again(self) -> Callable[[int], bytes]:
        position = 0

        def draw(n: int) -> bytes:
            nonlocal position
            if position < len(self.given) and len(self.given[position]) == n:
                position += 1
                return self.given[position - 1]
            return os.urandom(n)  # another sequence: the flights differ (and the probe says so)

        return draw


def replay_configs(config: ClientConfig, now: float) -> tuple[ClientConfig, ClientConfig]:
    """Two configs whose ClientHellos for the same session are byte for byte the same: the
    second draws the first's random bytes again, both read the same clock, and the only key
    share is X25519 (drawn from the rng)."""
    rng = RecordingRng()
    first = replace(config, rng=rng, clock=lambda: now, key_share_groups=(NamedGroup.x25519,))
    return first, replace(first, rng=rng.again())

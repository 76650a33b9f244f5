"""A client and a server talking in memory, in the style of h11's ``tests/helpers.py``.

:class:`ConnectionPair` moves the bytes each side queues in ``data_to_send()`` to the other side's
``receive_data()``. On the way every flight passes through an optional **tamper hook**, so tests
can observe, rewrite, drop or inject records or handshake messages without any fault injection in
product code:

* a record-level hook gets ``(direction, records)`` and returns the records (or raw ``bytes``) to
  deliver; each :class:`Record` knows whether it is protected (it follows a ChangeCipherSpec sent
  in that direction);
* :func:`on_messages` adapts a message-level function ``(direction, message) -> replacement`` to a
  record-level hook: plaintext handshake records of a flight are reassembled into messages, the
  function may return the message, a new one, several (injection) or ``None`` (drop), and the
  result is framed into records again.

Time and randomness are fixed: :class:`FakeClock` is passed as ``clock=`` everywhere (configs,
keyrings, stores, the client cache) and :class:`CountingRng` is a deterministic byte stream that
still gives fresh values on every call (so randoms of two handshakes differ, reproducibly).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from tessera import (
    AlertReceived,
    ClientConfig,
    ClientConnection,
    ClientSessionCache,
    MemoryStore,
    ServerConfig,
    ServerConnection,
    TicketKeyring,
)
from tessera.certs import CertifiedKey
from tessera.crypto.key_exchange import DEFAULT_GROUPS, SUPPORTED_GROUPS
from tessera.crypto.suites import ALL_SUITES, parse_cipher_list
from tessera.enums import AlertDescription, AlertLevel, ContentType, HandshakeType, ProtocolVersion
from tessera.events import ApplicationData, Event, HandshakeCompleted
from tessera.messages.base import HandshakeMessage, encode_handshake

MAX_FRAGMENT = 1 << 14
TLS12 = ProtocolVersion.TLS1_2
ALL_TLS12_SUITES = tuple(s for s in ALL_SUITES if not s.is_tls13)
ALL_TLS12_CIPHER_LIST = ":".join(s.openssl_name for s in ALL_TLS12_SUITES)
ALL_GROUPS = tuple(DEFAULT_GROUPS) + tuple(
    sorted(g for g in SUPPORTED_GROUPS if g not in DEFAULT_GROUPS)
)


# -- time and randomness ---------------------------------------------------------------------
class FakeClock:
    """A clock that moves only when told to. Starts at the real time (generated certificates
    are valid from an hour ago), truncated to whole seconds."""

    def __init__(self, start: float | None = None) -> None:
        self.now = float(int(time.time()) if start is None else start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingRng:
    """Deterministic randomness: SHA-256(seed | counter) blocks. Every call returns new bytes."""

    def __init__(self, seed: bytes = b"tessera tests") -> None:
        self.seed = seed
        self.counter = 0
        self.calls: list[int] = []

    def __call__(self, n: int) -> bytes:
        self.calls.append(n)
        out = bytearray()
        while len(out) < n:
            self.counter += 1
            out += hashlib.sha256(self.seed + self.counter.to_bytes(8, "big")).digest()
        return bytes(out[:n])


# -- records and messages --------------------------------------------------------------------
class Direction(Enum):
    C2S = "client->server"
    S2C = "server->client"


@dataclass
class Record:
    content_type: int
    fragment: bytes
    version: int = 0x0303
    encrypted: bool = False

    def to_bytes(self) -> bytes:
        n = len(self.fragment)
        return (
            bytes((self.content_type, self.version >> 8, self.version & 0xFF, n >> 8, n & 0xFF))
            + self.fragment
        )


def record(content_type: int, fragment: bytes, version: int = 0x0303) -> bytes:
    """The bytes of one record."""
    return Record(content_type, fragment, version).to_bytes()


def parse_records(data: bytes) -> list[Record]:
    """Split whole records (what a connection's ``data_to_send()`` returns)."""
    out = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 5:
            raise AssertionError(f"{len(data) - pos} stray byte(s) after the last record")
        n = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if len(data) < pos + 5 + n:
            raise AssertionError("a truncated record in data_to_send()")
        version = int.from_bytes(data[pos + 1 : pos + 3], "big")
        out.append(Record(data[pos], data[pos + 5 : pos + 5 + n], version))
        pos += 5 + n
    return out


@dataclass(frozen=True)
class Message:
    """One handshake message: type and body (``raw`` adds the 4-byte header)."""

    msg_type: int
    body: bytes

    @property
    def raw(self) -> bytes:
        return bytes((self.msg_type,)) + len(self.body).to_bytes(3, "big") + self.body

    @classmethod
    def of(cls, msg: HandshakeMessage) -> Message:
        raw = encode_handshake(msg)
        return cls(raw[0], raw[4:])

    def decode(self, cls: Any) -> Any:
        from tessera.messages.base import decode_message

        return decode_message(cls, self.body)

    @property
    def name(self) -> str:
        try:
            return HandshakeType(self.msg_type).name
        except ValueError:
            return f"type {self.msg_type}"


def split_messages(data: bytes) -> tuple[list[Message], bytes]:
    """Whole handshake messages in ``data`` and the bytes of an incomplete last one."""
    out = []
    pos = 0
    while len(data) - pos >= 4:
        n = int.from_bytes(data[pos + 1 : pos + 4], "big")
        if len(data) - pos - 4 < n:
            break
        out.append(Message(data[pos], data[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    return out, data[pos:]


def frame(
    content_type: int, data: bytes, version: int = 0x0303, size: int = MAX_FRAGMENT
) -> list[Record]:
    """``data`` as records of at most ``size`` bytes."""
    return [Record(content_type, data[i : i + size], version) for i in range(0, len(data), size)]


RecordTamper = Callable[[Direction, list[Record]], Sequence[Record | bytes]]
MessageFn = Callable[[Direction, Message], Message | Sequence[Message] | None]


def on_messages(fn: MessageFn) -> RecordTamper:
    """Adapt a handshake-message-level function to a record-level tamper hook.

    Consecutive plaintext handshake records are joined and split into messages; ``fn`` returns
    the message (unchanged or rewritten), a list of messages (to inject) or None (to drop).
    """

    def hook(direction: Direction, records: list[Record]) -> list[Record | bytes]:
        out: list[Record | bytes] = []
        group: list[Record] = []

        def flush() -> None:
            if not group:
                return
            version = group[0].version
            msgs, rest = split_messages(b"".join(r.fragment for r in group))
            data = bytearray()
            for m in msgs:
                res = fn(direction, m)
                if res is None:
                    continue
                for new in [res] if isinstance(res, Message) else res:
                    data += new.raw
            data += rest
            out.extend(frame(ContentType.HANDSHAKE, bytes(data), version))
            group.clear()

        for r in records:
            if r.content_type == ContentType.HANDSHAKE and not r.encrypted:
                group.append(r)
            else:
                flush()
                out.append(r)
        flush()
        return out

    return hook


def chain(*hooks: RecordTamper) -> RecordTamper:
    def hook(direction: Direction, records: list[Record]) -> list[Record | bytes]:
        current: list[Record | bytes] = list(records)
        for h in hooks:
            recs = [r for r in current if isinstance(r, Record)]
            if len(recs) != len(current):
                raise AssertionError("chain() cannot pass raw bytes to a later hook")
            current = list(h(direction, recs))
        return current

    return hook


class MessageLog:
    """A tamper hook that only observes, in wire order: plaintext handshake messages by type
    name, ``"ChangeCipherSpec"``, plaintext ``"ALERT"`` and protected records as
    ``"encrypted <content type>"``."""

    def __init__(self) -> None:
        self.seen: list[tuple[Direction, str]] = []
        self._partial = {Direction.C2S: b"", Direction.S2C: b""}

    def __call__(self, direction: Direction, records: list[Record]) -> Sequence[Record | bytes]:
        for r in records:
            if r.encrypted:
                self.seen.append((direction, f"encrypted {ContentType(r.content_type).name}"))
            elif r.content_type == ContentType.HANDSHAKE:
                msgs, rest = split_messages(self._partial[direction] + r.fragment)
                self._partial[direction] = rest
                self.seen.extend((direction, m.name) for m in msgs)
            else:
                self.seen.append((direction, _PLAIN_NAMES.get(r.content_type, "?")))
        return records

    def names(self, direction: Direction) -> list[str]:
        return [name for d, name in self.seen if d is direction]

    def clear(self) -> None:
        self.seen.clear()


_PLAIN_NAMES = {
    ContentType.CHANGE_CIPHER_SPEC: "ChangeCipherSpec",
    ContentType.ALERT: "ALERT",
    ContentType.APPLICATION_DATA: "APPLICATION_DATA",
}


def drop(direction: Direction, *types: int) -> MessageFn:
    """Drop handshake messages of the given types going in ``direction``."""

    def fn(d: Direction, msg: Message) -> Message | None:
        return None if d is direction and msg.msg_type in types else msg

    return fn


def rewrite(direction: Direction, msg_type: int, change: Callable[[Message], Any]) -> MessageFn:
    """Replace messages of ``msg_type`` going in ``direction`` with ``change(msg)``."""

    def fn(d: Direction, msg: Message) -> Any:
        if d is direction and msg.msg_type == msg_type:
            return change(msg)
        return msg

    return fn


# -- the pair ------------------------------------------------------------------------------------
Chunker = Callable[[bytes], Iterable[bytes]]


class Conn(Protocol):
    def receive_data(self, data: bytes) -> None: ...
    def data_to_send(self) -> bytes: ...
    def events(self) -> list[Event]: ...


class ConnectionPair:
    """A ``ClientConnection`` and a ``ServerConnection`` wired together in memory."""

    def __init__(
        self,
        client_config: ClientConfig,
        server_config: ServerConfig,
        server_name: str | None = "localhost",
        *,
        address: tuple[str, int] | None = ("localhost", 443),
        session: Any = None,
        tamper: RecordTamper | None = None,
        chunker: Chunker | None = None,
    ) -> None:
        self.client = ClientConnection(client_config, server_name, address=address, session=session)
        self.server = ServerConnection(server_config)
        self.server_config = server_config
        self.client_config = client_config
        self.tamper = tamper
        self.chunker = chunker
        self.client_events: list[Event] = []
        self.server_events: list[Event] = []
        # Wire bytes each side produced (before tampering), per flight.
        self.sent: dict[Direction, list[bytes]] = {Direction.C2S: [], Direction.S2C: []}
        self._ccs_sent = {Direction.C2S: False, Direction.S2C: False}

    # -- plumbing ------------------------------------------------------------------------
    def _ends(self, direction: Direction) -> tuple[Any, Any, list[Event]]:
        if direction is Direction.C2S:
            return self.client, self.server, self.server_events
        return self.server, self.client, self.client_events

    def intercept(self, direction: Direction) -> list[Record]:
        """Take what the sender queued, as records marked protected or not (no delivery)."""
        sender, _, _ = self._ends(direction)
        data = sender.data_to_send()
        if not data:
            return []
        self.sent[direction].append(data)
        records = parse_records(data)
        for r in records:
            r.encrypted = self._ccs_sent[direction]
            if r.content_type == ContentType.CHANGE_CIPHER_SPEC and not r.encrypted:
                self._ccs_sent[direction] = True
        return records

    def inject(self, direction: Direction, data: bytes) -> None:
        """Deliver raw bytes to the receiving side (through the chunker, not the tamper hook)."""
        _, receiver, events = self._ends(direction)
        chunks = self.chunker(data) if self.chunker is not None else (data,)
        try:
            for chunk in chunks:
                receiver.receive_data(chunk)
        finally:
            events.extend(receiver.events())

    def deliver(self, direction: Direction) -> bool:
        """Move one flight; False when the sender had nothing to send."""
        records = self.intercept(direction)
        if not records:
            return False
        out: Sequence[Record | bytes] = records
        if self.tamper is not None:
            out = self.tamper(direction, records)
        data = b"".join(r if isinstance(r, bytes) else r.to_bytes() for r in out)
        if data:
            self.inject(direction, data)
        return True

    def pump(self, max_rounds: int = 64) -> None:
        """Deliver in both directions until neither side has anything to send."""
        for _ in range(max_rounds):
            moved = self.deliver(Direction.C2S)
            moved = self.deliver(Direction.S2C) or moved
            if not moved:
                return
        raise AssertionError("the connections never went quiet")

    # -- conveniences --------------------------------------------------------------------
    def start(self) -> None:
        self.client.start_handshake()

    def handshake(self) -> None:
        """Run the handshake to completion; fails the test if it does not complete."""
        self.start()
        self.pump()
        assert self.client.handshake_complete, f"client stuck in {self.client.state_name}"
        assert self.server.handshake_complete, f"server stuck in {self.server.state_name}"

    def send(self, direction: Direction, data: bytes) -> bytes:
        """Send application data and return what the other side received."""
        sender, _, events = self._ends(direction)
        before = len(events)
        sender.send_data(data)
        self.deliver(direction)
        return b"".join(e.data for e in events[before:] if isinstance(e, ApplicationData))

    def completed(self, side: str) -> HandshakeCompleted:
        events = self.client_events if side == "client" else self.server_events
        done = [e for e in events if isinstance(e, HandshakeCompleted)]
        assert len(done) == 1, events
        return done[0]


# -- alerts ----------------------------------------------------------------------------------
def plaintext_alert(data: bytes) -> tuple[int, int]:
    """(level, description) of the last record of ``data``, which must be a plaintext alert."""
    last = parse_records(data)[-1]
    assert last.content_type == ContentType.ALERT, f"last record is {last.content_type}"
    assert len(last.fragment) == 2, "the last record is not a plaintext alert"
    return last.fragment[0], last.fragment[1]


def assert_fatal_alert_last(
    data: bytes, expected: AlertDescription, peer: Conn | None = None
) -> None:
    """The last record of ``data`` is the fatal ``expected`` alert.

    A plaintext alert is read directly. A protected one is checked by handing ``data`` to the
    ``peer``, which must decrypt it and report exactly that alert (and nothing after it)."""
    records = parse_records(data)
    assert records, "nothing was queued: the fatal alert is missing"
    last = records[-1]
    assert last.content_type == ContentType.ALERT, f"last record has type {last.content_type}"
    if len(last.fragment) == 2:
        assert last.fragment == bytes((AlertLevel.FATAL, expected)), last.fragment
        return
    assert peer is not None, "a protected alert needs the peer to decrypt it"
    try:
        peer.receive_data(data)
    except AlertReceived as e:
        assert e.alert is expected, e
    else:
        raise AssertionError("the peer did not see a fatal alert")


def seal_with_seq(
    conn: ClientConnection | ServerConnection, content_type: int, data: bytes, seq: int
) -> bytes:
    """A record protected with ``conn``'s current write keys at sequence number ``seq``
    (used to inject or replace a protected record without disturbing the sender's state)."""
    prot: Any = conn._records.write
    saved = prot.seq
    prot.seq = seq
    try:
        return bytes(prot.seal(content_type, data))
    finally:
        prot.seq = saved


def write_seq(conn: ClientConnection | ServerConnection) -> int:
    return int(conn._records.write.seq)  # type: ignore[attr-defined]


# -- a world of configurations -----------------------------------------------------------------
@dataclass(frozen=True)
class Certs:
    ca_file: Path
    ecdsa: CertifiedKey  # localhost, 127.0.0.1 (P-256)
    rsa: CertifiedKey  # localhost, 127.0.0.1 (RSA-2048)
    client: CertifiedKey  # clientAuth leaf
    alt: CertifiedKey  # alt.example (P-256)
    ca: CertifiedKey


_DEFAULT: Any = object()


@dataclass
class World:
    """Shared clock and rng, and configs that use them; every default can be overridden."""

    certs: Certs
    clock: FakeClock = field(default_factory=FakeClock)
    rng: CountingRng = field(default_factory=CountingRng)

    def store(self, max_entries: int = 1000) -> MemoryStore:
        return MemoryStore(max_entries, clock=self.clock)

    def keyring(self, **kw: Any) -> TicketKeyring:
        kw.setdefault("clock", self.clock)
        kw.setdefault("rng", self.rng)
        return TicketKeyring(**kw)

    def cache(self) -> ClientSessionCache:
        return ClientSessionCache(clock=self.clock)

    def server_config(
        self,
        *,
        session_store: Any = _DEFAULT,
        ticket_keyring: Any = _DEFAULT,
        **kw: Any,
    ) -> ServerConfig:
        kw.setdefault("certificates", (self.certs.ecdsa, self.certs.rsa))
        kw.setdefault("cipher_suites", parse_cipher_list(ALL_TLS12_CIPHER_LIST))
        kw.setdefault("groups", ALL_GROUPS)
        kw.setdefault("max_version", TLS12)
        kw.setdefault("clock", self.clock)
        kw.setdefault("rng", self.rng)
        kw.setdefault("client_cafile", self.certs.ca_file)
        if session_store is _DEFAULT:  # an async store replaces the default one
            session_store = None if "async_session_store" in kw else self.store()
        return ServerConfig(
            session_store=session_store,
            ticket_keyring=self.keyring() if ticket_keyring is _DEFAULT else ticket_keyring,
            **kw,
        )

    def client_config(self, *, session_cache: Any = _DEFAULT, **kw: Any) -> ClientConfig:
        kw.setdefault("cafile", self.certs.ca_file)
        kw.setdefault("max_version", TLS12)
        kw.setdefault("clock", self.clock)
        kw.setdefault("rng", self.rng)
        if isinstance(kw.get("cipher_suites"), str):
            kw["cipher_suites"] = parse_cipher_list(kw["cipher_suites"])
        return ClientConfig(
            session_cache=self.cache() if session_cache is _DEFAULT else session_cache, **kw
        )

    def pair(
        self,
        client_config: ClientConfig | None = None,
        server_config: ServerConfig | None = None,
        server_name: str | None = "localhost",
        **kw: Any,
    ) -> ConnectionPair:
        return ConnectionPair(
            client_config if client_config is not None else self.client_config(),
            server_config if server_config is not None else self.server_config(),
            server_name,
            **kw,
        )

    def connect(
        self, client_config: ClientConfig, server_config: ServerConfig, **kw: Any
    ) -> ConnectionPair:
        """A completed handshake."""
        p = self.pair(client_config, server_config, **kw)
        p.handshake()
        return p


def with_fragment(rec: Record, fragment: bytes) -> Record:
    return replace(rec, fragment=fragment)


def flip_bit(data: bytes, index: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[index] ^= 1 << bit
    return bytes(b)


def plaintext_messages(pair: ConnectionPair, direction: Direction) -> list[Message]:
    """The plaintext handshake messages a side sent (as sent, before any tampering)."""
    data = b""
    for flight in pair.sent[direction]:
        for r in parse_records(flight):
            if r.content_type == ContentType.CHANGE_CIPHER_SPEC:
                return split_messages(data)[0]
            if r.content_type == ContentType.HANDSHAKE:
                data += r.fragment
    return split_messages(data)[0]


def first_message(pair: ConnectionPair, direction: Direction, msg_type: int) -> Message:
    for m in plaintext_messages(pair, direction):
        if m.msg_type == msg_type:
            return m
    raise AssertionError(f"no {HandshakeType(msg_type).name} was sent {direction.value}")


def assert_refuses_further_use(conn: ClientConnection | ServerConnection) -> None:
    """After an error a connection raises ConnectionClosedError and queues nothing more."""
    from tessera import ConnectionClosedError

    assert conn.failed and conn.closed
    try:
        conn.receive_data(b"\x17\x03\x03\x00\x01x")
    except ConnectionClosedError:
        pass
    else:
        raise AssertionError("receive_data() after an error did not raise")
    try:
        conn.send_data(b"more")
    except ConnectionClosedError:
        pass
    else:
        raise AssertionError("send_data() after an error did not raise")
    conn.close()
    assert conn.data_to_send() == b""


def expect_failure(
    conn: ClientConnection | ServerConnection,
    data: bytes,
    error: type[Exception],
    alert: AlertDescription,
) -> Exception:
    """Feed ``data``; it must raise ``error`` carrying ``alert``, with that fatal alert the last
    record queued (checked when it is a plaintext one), and the connection then refuses use."""
    from tessera import RemoteProtocolError

    try:
        conn.receive_data(data)
    except Exception as e:
        err = e
    else:
        raise AssertionError(f"no error; expected {error.__name__}")
    assert type(err) is error, f"{type(err).__name__}: {err}"
    assert isinstance(err, RemoteProtocolError)
    assert err.alert is alert, err
    assert err.__cause__ is None or not isinstance(err.__cause__, IndexError | ValueError), err
    out = conn.data_to_send()
    last = parse_records(out)[-1]
    assert last.content_type == ContentType.ALERT
    if len(last.fragment) == 2:
        assert last.fragment == bytes((AlertLevel.FATAL, alert))
    assert_refuses_further_use(conn)
    return err


def expect_pair_failure(
    pair: ConnectionPair, error: type[Exception], alert: AlertDescription
) -> str:
    """Pump until a side fails with ``error``/``alert``; the fatal alert is the last record that
    side queued (read directly when plaintext; when protected, the peer must decrypt it and
    report exactly that alert). Returns the side that failed ("client" or "server")."""
    from tessera import RemoteProtocolError

    try:
        pair.pump()
    except Exception as e:
        err = e
    else:
        raise AssertionError(f"no error; expected {error.__name__}")
    assert type(err) is error, f"{type(err).__name__}: {err}"
    assert isinstance(err, RemoteProtocolError)
    assert err.alert is alert, err
    failed = [name for name, c in (("client", pair.client), ("server", pair.server)) if c.failed]
    assert len(failed) == 1, failed
    conn, peer = (pair.client, pair.server) if failed[0] == "client" else (pair.server, pair.client)
    data = conn.data_to_send()
    last = parse_records(data)[-1]
    assert last.content_type == ContentType.ALERT
    assert_refuses_further_use(conn)
    if len(last.fragment) == 2:
        assert last.fragment == bytes((AlertLevel.FATAL, alert)), last.fragment
        return failed[0]
    # A protected alert: the peer must decrypt it and report exactly that alert.
    try:
        peer.receive_data(data)
    except AlertReceived as e:
        assert e.alert is alert, e
    else:
        raise AssertionError("the peer did not receive the fatal alert")
    assert_refuses_further_use(peer)
    return failed[0]

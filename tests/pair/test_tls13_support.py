"""Helpers for the TLS 1.3 pair tests (no tests here): configs that enable TLS 1.3, a key log
that lets a tamper hook open and reseal protected handshake records, and message rewriting that
also reaches the second ClientHello (which follows the client's compatibility ChangeCipherSpec,
so :class:`~tests.pair.helpers.ConnectionPair` marks it "protected").

Built on tests/pair/helpers.py, which stays untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from tessera import ClientSession, ProtocolVersion
from tessera.crypto.key_schedule import traffic_keys
from tessera.crypto.suites import BY_CODE, CipherSuite
from tessera.enums import ContentType, HandshakeType
from tessera.events import ApplicationData, Event, KeyUpdated, SessionTicketReceived
from tessera.messages import ClientHello, ServerHello
from tessera.messages import extensions as X
from tessera.record.protection import AEAD13

from .helpers import (
    ConnectionPair,
    Direction,
    Message,
    MessageFn,
    Record,
    RecordTamper,
    World,
    chain,
    on_messages,
    plaintext_messages,
    split_messages,
)

TLS13 = ProtocolVersion.TLS1_3
TLS12 = ProtocolVersion.TLS1_2
AES128 = BY_CODE[0x1301]
AES256 = BY_CODE[0x1302]
CHACHA = BY_CODE[0x1303]


# -- configurations ---------------------------------------------------------------------------
def server13(world: World, **kw: Any) -> Any:
    kw.setdefault("max_version", TLS13)
    return world.server_config(**kw)


def client13(world: World, **kw: Any) -> Any:
    kw.setdefault("max_version", TLS13)
    return world.client_config(**kw)


# -- key log ----------------------------------------------------------------------------------
class KeyLog:
    """A ``keylog=`` callback keeping every secret by label (latest connection last)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, bytes, bytes]] = []

    def __call__(self, line: str) -> None:
        label, random, secret = line.split()
        self.lines.append((label, bytes.fromhex(random), bytes.fromhex(secret)))

    def secret(self, label: str) -> bytes:
        for name, _, value in reversed(self.lines):
            if name == label:
                return value
        raise AssertionError(f"no {label} logged")

    def aead(self, label: str, suite: CipherSuite = AES128) -> AEAD13:
        return AEAD13(suite, *traffic_keys(suite, self.secret(label)))


# -- records and messages ------------------------------------------------------------------------
def unmark(direction: Direction, records: list[Record]) -> list[Record]:
    """TLS 1.3 protects records as application_data, so a handshake-type record is plaintext,
    even after a compatibility ChangeCipherSpec."""
    for r in records:
        if r.content_type == ContentType.HANDSHAKE:
            r.encrypted = False
    return records


def on_hello_messages(fn: MessageFn) -> RecordTamper:
    """Like ``on_messages`` but also sees plaintext handshake messages after a CCS."""
    return chain(unmark, on_messages(fn))


def nth_client_hello(n: int, change: Callable[[ClientHello], ClientHello | bytes]) -> MessageFn:
    """Rewrite the ``n``-th ClientHello (0: the first, 1: after a HelloRetryRequest).
    ``change`` returns a new ClientHello, or raw message bytes (header included)."""
    seen = [0]

    def fn(d: Direction, msg: Message) -> Message:
        if d is not Direction.C2S or msg.msg_type != HandshakeType.CLIENT_HELLO:
            return msg
        index = seen[0]
        seen[0] += 1
        if index != n:
            return msg
        new = change(msg.decode(ClientHello))
        if isinstance(new, bytes):
            return Message(new[0], new[4:])
        return Message.of(new)

    return fn


def without(ch: ClientHello, *types: type) -> ClientHello:
    return replace(ch, extensions=tuple(e for e in ch.extensions if type(e) not in types))


def hellos(pair: ConnectionPair, direction: Direction, msg_type: int) -> list[Message]:
    """Plaintext handshake messages of one type a side sent, across all its flights (the
    helpers' ``plaintext_messages`` stops at the first ChangeCipherSpec)."""
    out: list[Message] = []
    from .helpers import parse_records

    data = b""
    for flight in pair.sent[direction]:
        for r in parse_records(flight):
            if r.content_type == ContentType.HANDSHAKE:
                data += r.fragment
    msgs, _ = split_messages(data)
    out.extend(m for m in msgs if m.msg_type == msg_type)
    return out


def client_hellos(pair: ConnectionPair) -> list[ClientHello]:
    return [m.decode(ClientHello) for m in hellos(pair, Direction.C2S, HandshakeType.CLIENT_HELLO)]


def server_hellos(pair: ConnectionPair) -> list[ServerHello]:
    return [m.decode(ServerHello) for m in hellos(pair, Direction.S2C, HandshakeType.SERVER_HELLO)]


def offered_identity(ch: ClientHello) -> bytes | None:
    psks = ch.find(X.OfferedPsks)
    return psks.identities[0].identity if psks is not None else None


def tickets(pair: ConnectionPair) -> list[ClientSession]:
    return [e.session for e in pair.client_events if isinstance(e, SessionTicketReceived)]


def app_data(events: Sequence[Event], early: bool | None = None) -> bytes:
    return b"".join(
        e.data
        for e in events
        if isinstance(e, ApplicationData) and (early is None or e.early is early)
    )


def key_updates(events: Sequence[Event]) -> list[str]:
    return [e.initiator for e in events if isinstance(e, KeyUpdated)]


def protected_record(conn: Any, inner: bytes, seq: int | None = None) -> bytes:
    """A TLS 1.3 record whose decrypted body is exactly ``inner`` (content type and padding
    included), under ``conn``'s current write keys, at ``seq`` (default: the next one)."""
    prot = conn._records.write
    assert isinstance(prot, AEAD13)
    n = prot.seq if seq is None else seq
    nonce = (prot._iv_int ^ n).to_bytes(12, "big")
    hdr = bytes((ContentType.APPLICATION_DATA, 3, 3)) + (len(inner) + 16).to_bytes(2, "big")
    return hdr + prot._aead.encrypt(nonce, inner, hdr)


def reseal_flight(
    opener: AEAD13, sealer: AEAD13, change: Callable[[list[Message]], list[Message]]
) -> RecordTamper:
    """A hook for one direction's handshake epoch: open the protected records of the first
    flight that has any with ``opener``, rewrite their handshake messages with ``change`` and
    seal them again (one record) with ``sealer``."""
    done = [False]

    def hook(direction: Direction, records: list[Record]) -> list[Record]:
        protected = [r for r in records if r.content_type == ContentType.APPLICATION_DATA]
        if done[0] or not protected:
            return records
        done[0] = True
        data = b""
        for r in protected:
            ctype, plain = opener.open(r.content_type, r.fragment)
            assert ctype == ContentType.HANDSHAKE
            data += plain
        msgs, rest = split_messages(data)
        assert rest == b""
        new = b"".join(m.raw for m in change(msgs))
        wire = sealer.seal(ContentType.HANDSHAKE, new)
        out = [r for r in records if r.content_type != ContentType.APPLICATION_DATA]
        out.append(Record(wire[0], wire[5:], 0x0303, True))
        return out

    return hook


def only(direction: Direction, hook: RecordTamper) -> RecordTamper:
    def h(d: Direction, records: list[Record]) -> Sequence[Record | bytes]:
        return hook(d, records) if d is direction else records

    return h


def first_flight_names(pair: ConnectionPair, direction: Direction) -> list[str]:
    return [m.name for m in plaintext_messages(pair, direction)]


# -- failures -------------------------------------------------------------------------------------
def expect_alert13(pair: ConnectionPair, error: type[Exception], alert: Any) -> str:
    """Pump until one side fails with ``error`` carrying ``alert``; return "client"/"server".

    Like the helpers' ``expect_pair_failure`` but for TLS 1.3, where a protected alert travels
    in a record of outer type application_data: the failed side's last record must be either a
    plaintext fatal alert or a protected record that the peer opens as exactly that alert."""
    from tessera import AlertError, AlertReceived, RemoteProtocolError

    from .helpers import assert_refuses_further_use, parse_records

    try:
        pair.pump()
    except Exception as e:
        err = e
    else:
        raise AssertionError(f"no error; expected {error.__name__}")
    assert type(err) is error, f"{type(err).__name__}: {err}"
    assert isinstance(err, RemoteProtocolError) and isinstance(err, AlertError)
    assert err.alert is alert, err
    failed = [n for n, c in (("client", pair.client), ("server", pair.server)) if c.failed]
    assert len(failed) == 1, failed
    conn, peer = (pair.client, pair.server) if failed[0] == "client" else (pair.server, pair.client)
    data = conn.data_to_send()
    assert data, "the fatal alert was not queued"
    last = parse_records(data)[-1]
    assert_refuses_further_use(conn)
    if last.content_type == ContentType.ALERT and len(last.fragment) == 2:
        assert last.fragment == bytes((2, alert)), last.fragment
        return failed[0]
    assert last.content_type == ContentType.APPLICATION_DATA, last.content_type
    try:
        peer.receive_data(data)
    except AlertReceived as e:
        assert e.alert is alert, e
    else:
        raise AssertionError("the peer did not read the protected fatal alert")
    return failed[0]


def expect_conn_alert13(conn: Any, data: bytes, error: type[Exception], alert: Any,
                        peer: Any = None) -> Exception:  # fmt: skip
    """Feed ``data`` to ``conn``: it must raise ``error``/``alert`` with the alert queued (read
    by ``peer`` when it is protected)."""
    from tessera import AlertError, AlertReceived, RemoteProtocolError

    from .helpers import assert_refuses_further_use, parse_records

    try:
        conn.receive_data(data)
    except Exception as e:
        err = e
    else:
        raise AssertionError(f"no error; expected {error.__name__}")
    assert type(err) is error, f"{type(err).__name__}: {err}"
    assert isinstance(err, RemoteProtocolError) and isinstance(err, AlertError)
    assert err.alert is alert, err
    out = conn.data_to_send()
    assert out, "the fatal alert was not queued"
    last = parse_records(out)[-1]
    if last.content_type == ContentType.ALERT and len(last.fragment) == 2:
        assert last.fragment == bytes((2, alert))
    else:
        assert last.content_type == ContentType.APPLICATION_DATA
        if peer is not None:
            try:
                peer.receive_data(out)
            except AlertReceived as e:
                assert e.alert is alert, e
            else:
                raise AssertionError("the peer did not read the protected fatal alert")
    assert_refuses_further_use(conn)
    return err

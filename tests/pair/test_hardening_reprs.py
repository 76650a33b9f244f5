"""No secret in any repr (issue 13, item 8).

Handshakes run in memory one record at a time (TLS 1.2 and 1.3, full, resumed, with client
certificates, HelloRetryRequest and 0-RTT; protected TLS 1.3 flights are resealed one message
per record). After every record every object reachable from the
two connections and their events is found by walking attributes (``__dict__``, ``__slots__``,
containers), not by naming classes, so states added later are covered too. The repr of each
object whose class tessera defines must not show a secret known so far: the key log's secrets
(TLS 1.2 master secret, every TLS 1.3 traffic secret), the keys and IVs derived from them, and
the resumption secrets of the sessions handed out.
"""

from __future__ import annotations

import contextlib
import types
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from tessera import ClientAuth, ClientSession
from tessera.crypto.key_schedule import KeySchedule
from tessera.crypto.suites import BY_CODE
from tessera.enums import ContentType, NamedGroup
from tessera.errors import BadRecordMac
from tessera.events import SessionTicketReceived

from .helpers import ConnectionPair, Direction, Record, World, split_messages
from .test_tls13_support import KeyLog, client13, server13

TLS13_SUITES = (BY_CODE[0x1301], BY_CODE[0x1302], BY_CODE[0x1303])
_LEAVES = (bytes, bytearray, memoryview, str, int, float, complex, bool, type(None))
_OPAQUE = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
           type)  # fmt: skip


def reachable(*roots: object) -> Iterator[object]:
    """Every object reachable from ``roots`` through attributes and containers (cycles once).
    Objects of other libraries (cryptography keys, locks) are not entered."""
    seen: set[int] = set()
    todo: deque[object] = deque(roots)
    while todo:
        obj = todo.popleft()
        if id(obj) in seen or (isinstance(obj, _LEAVES) and type(obj).__module__ == "builtins"):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, _OPAQUE):
            continue
        if isinstance(obj, dict):
            todo.extend(obj.keys())
            todo.extend(obj.values())
            continue
        if isinstance(obj, list | tuple | set | frozenset | deque):
            todo.extend(obj)
            continue
        if not type(obj).__module__.startswith("tessera"):
            continue
        todo.extend(vars(obj).values() if hasattr(obj, "__dict__") else ())
        for cls in type(obj).__mro__:
            for name in getattr(cls, "__slots__", ()):
                value = getattr(obj, name, None)
                if value is not None:
                    todo.append(value)


def forms(secret: bytes) -> list[str]:
    """How ``secret`` could show in a repr: hex (either case) or a bytes literal."""
    return [secret.hex(), secret.hex().upper(), repr(secret)[2:-1]]


class Secrets:
    def __init__(self) -> None:
        self.keylog = KeyLog()
        self.extra: list[bytes] = []

    def known(self, pair: ConnectionPair) -> list[bytes]:
        out = list(self.extra)
        for label, _, secret in self.keylog.lines:
            out.append(secret)
            if label != "CLIENT_RANDOM":  # TLS 1.3: the keys and IVs made from it too
                for suite in TLS13_SUITES:
                    if suite.hash_len == len(secret):
                        out.extend(KeySchedule(suite).traffic_keys(secret))
        for ev in pair.client_events:
            if isinstance(ev, SessionTicketReceived):
                out.append(ev.session.state.secret)
        for conn in (pair.client, pair.server):
            info_session = getattr(conn, "session", None)
            if isinstance(info_session, ClientSession):
                out.append(info_session.state.secret)
        return [s for s in out if len(s) >= 16]


def scan(pair: ConnectionPair, secrets: Secrets, where: str) -> int:
    known = [(s, forms(s)) for s in secrets.known(pair)]
    roots = (pair.client, pair.server, pair.client_events, pair.server_events)
    checked = 0
    for obj in reachable(*roots):
        if not type(obj).__module__.startswith("tessera"):
            continue
        text = repr(obj)
        checked += 1
        for secret, shapes in known:
            assert not any(s in text for s in shapes), (
                f"{where}: repr of {type(obj).__qualname__} shows secret {secret.hex()[:16]}...:"
                f"\n{text[:500]}"
            )
    return checked


class OneMessagePerRecord:
    """A tamper hook that reseals each side's protected TLS 1.3 handshake flight as one record
    per message, so the scan also sees the states between two messages of one flight."""

    LABELS: ClassVar[dict[Direction, str]] = {
        Direction.S2C: "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        Direction.C2S: "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    }

    def __init__(self, secrets: Secrets) -> None:
        self.keylog = secrets.keylog
        self.split: set[Direction] = set()

    def __call__(self, d: Direction, records: list[Record]) -> list[Record]:
        label = self.LABELS[d]
        if d in self.split or all(name != label for name, _, _ in self.keylog.lines):
            return records
        for suite in TLS13_SUITES:
            opener = self.keylog.aead(label, suite)
            opened: list[tuple[int, bytes]] = []
            for i, r in enumerate(records):
                if r.content_type != ContentType.APPLICATION_DATA:
                    continue
                with contextlib.suppress(BadRecordMac):  # 0-RTT data, or another suite
                    opened.append((i, opener.open(r.content_type, r.fragment)[1]))
            if opened:
                self.split.add(d)
                return self._reseal(records, opened, self.keylog.aead(label, suite))
        return records

    @staticmethod
    def _reseal(
        records: list[Record], opened: list[tuple[int, bytes]], sealer: Any
    ) -> list[Record]:
        msgs, rest = split_messages(b"".join(plain for _, plain in opened))
        assert rest == b""
        wire = [sealer.seal(ContentType.HANDSHAKE, m.raw) for m in msgs]
        split = [Record(w[0], w[5:], 0x0303, True) for w in wire]
        first, skip = opened[0][0], {i for i, _ in opened}
        after = [r for i, r in enumerate(records) if i > first and i not in skip]
        return [*records[:first], *split, *after]


def run_scanned(pair: ConnectionPair, secrets: Secrets, early: bytes | None = None) -> int:
    """Start, then deliver one record at a time, scanning after each; objects checked."""
    pair.client.start_handshake(early_data=early)
    checked = scan(pair, secrets, "after the ClientHello")
    for step in range(40):
        moved = False
        for d in (Direction.C2S, Direction.S2C):
            records = pair.intercept(d)
            if pair.tamper is not None:
                records = list(pair.tamper(d, records))  # type: ignore[arg-type]
            for i, r in enumerate(records):
                moved = True
                pair.inject(d, r.to_bytes())
                checked += scan(pair, secrets, f"flight {step} {d.value}, record {i}")
        if not moved:
            break
    assert pair.client.handshake_complete and pair.server.handshake_complete
    pair.send(Direction.C2S, b"ping")
    pair.send(Direction.S2C, b"pong")
    pair.client_events.extend(pair.client.events())
    return checked + scan(pair, secrets, "after application data")


Scenario = Callable[[World, Secrets], tuple[ConnectionPair, bytes | None]]


def tls12_full(world: World, s: Secrets) -> tuple[ConnectionPair, bytes | None]:
    client = world.client_config(keylog=s.keylog, certificate=world.certs.client)
    server = world.server_config(keylog=s.keylog, client_auth=ClientAuth.REQUIRED)
    return world.pair(client, server), None


def tls12_resumed(ticket: bool) -> Scenario:
    def build(world: World, s: Secrets) -> tuple[ConnectionPair, bytes | None]:
        server = world.server_config(keylog=s.keylog)
        client = world.client_config(keylog=s.keylog, session_tickets=ticket)
        first = world.connect(client, server)
        session = first.client.session
        assert session is not None
        s.extra.append(session.state.secret)
        return world.pair(client, server, session=session), None

    return build


def tls13_full(world: World, s: Secrets) -> tuple[ConnectionPair, bytes | None]:
    client = client13(world, keylog=s.keylog, certificate=world.certs.client)
    server = server13(world, keylog=s.keylog, client_auth=ClientAuth.REQUIRED)
    return world.pair(client, server), None


def tls13_retry(world: World, s: Secrets) -> tuple[ConnectionPair, bytes | None]:
    client = client13(world, keylog=s.keylog, groups=(NamedGroup.x25519, NamedGroup.secp256r1),
                      key_share_groups=(NamedGroup.x25519,))  # fmt: skip
    server = server13(world, keylog=s.keylog, groups=(NamedGroup.secp256r1,))
    return world.pair(client, server), None


def tls13_resumed(early: bool) -> Scenario:
    def build(world: World, s: Secrets) -> tuple[ConnectionPair, bytes | None]:
        server = server13(world, keylog=s.keylog, max_early_data_size=1024 if early else 0)
        client = client13(world, keylog=s.keylog, session_cache=None)
        first = world.connect(client, server)
        tickets = [e.session for e in first.client_events if isinstance(e, SessionTicketReceived)]
        s.extra.extend(t.state.secret for t in tickets)
        pair = world.pair(client, server, session=tickets[0])
        return pair, b"GET / HTTP/1.0\r\n\r\n" if early else None

    return build


SCENARIOS: dict[str, Scenario] = {
    "tls12-full-client-auth": tls12_full,
    "tls12-resumed-session-id": tls12_resumed(ticket=False),
    "tls12-resumed-ticket": tls12_resumed(ticket=True),
    "tls13-full-client-auth": tls13_full,
    "tls13-hello-retry": tls13_retry,
    "tls13-resumed": tls13_resumed(early=False),
    "tls13-resumed-0rtt": tls13_resumed(early=True),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_no_secret_in_any_repr(world: World, name: str) -> None:
    secrets = Secrets()
    pair, early = SCENARIOS[name](world, secrets)
    splitter = OneMessagePerRecord(secrets)
    pair.tamper = splitter
    checked = run_scanned(pair, secrets, early)
    assert len(secrets.keylog.lines) >= 1 and checked > 50
    if name.startswith("tls13"):
        assert splitter.split == {Direction.S2C, Direction.C2S}


def test_the_walk_finds_objects_that_hold_secrets(world: World) -> None:
    """The scan is not vacuous: a value planted deep in a state is found and its repr checked."""
    secrets = Secrets()
    pair, _ = tls13_full(world, secrets)
    pair.client.start_handshake()
    pair.deliver(Direction.C2S)
    pair.deliver(Direction.S2C)
    planted = b"\x01" * 32

    class Holder:  # a leaky class defined in tessera's name space
        __module__ = "tessera.fake"

        def __init__(self) -> None:
            self.secret = planted

        def __repr__(self) -> str:
            return f"Holder({self.secret!r})"

    # The handshake's objects have __slots__: plant into a container one of them holds.
    target = next(
        value
        for o in reachable(pair.client)
        if type(o).__module__.startswith("tessera.handshake")
        for cls in type(o).__mro__
        for name in getattr(cls, "__slots__", ())
        if isinstance(value := getattr(o, name, None), dict | set)
    )
    if isinstance(target, dict):
        target["leak"] = [Holder()]
    else:
        target.add(Holder())
    secrets.extra.append(planted)
    with pytest.raises(AssertionError, match=r"repr of .*Holder shows secret"):
        scan(pair, secrets, "planted")

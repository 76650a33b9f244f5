"""What every handshake state shares, and the base class of states.

A context belongs to ONE handshake and holds only what every state of it shares: the
configuration, the I/O port, the event queue and the transcript, plus what a renegotiation
carries from the handshake before (``carry``) and, once complete, the handshake's ``info``.
Everything negotiated lives in frozen records (:mod:`.negotiated`) and secrets in the states
that need them. A TLS 1.2 renegotiation is a fresh context on the same connection; the
connection makes it (``restart`` is the connection's, injected, so no state imports the state
that starts a handshake).
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, NoReturn, Protocol, TypeVar

from ..config import ClientConfig, ServerConfig
from ..crypto.transcript import Transcript
from ..enums import ClientAuth, HandshakeType, ProtocolVersion
from ..errors import DecodeError, DecryptError, UnexpectedMessage
from ..events import (
    ConnectionInfo,
    Event,
    HandshakeCompleted,
    RenegotiationCompleted,
    ResumptionDecided,
    SessionStoreUpdate,
)
from ..messages.base import HandshakeMessage, encode_handshake
from ..observe.facts import Fact, StoreFailed
from ..session.resumption import inline
from ..session.resumption.operations import LookupAnswer, StoreLookup, StoreWrite
from .carry import Renegotiation, RenegotiationLimits
from .negotiated import Negotiated12, Negotiated13, connection_info
from .port import HandshakePort

if TYPE_CHECKING:
    from ..session.model import ClientSession
    from ..session.resumption import ResumptionDecision
    from .traffic13 import Keys13

C = TypeVar("C", ClientConfig, ServerConfig)
CacheKey = tuple[str, int, str | None]


class HandshakeContext(Generic[C]):
    __slots__ = ("carry", "config", "events", "info", "port", "transcript")

    def __init__(
        self,
        config: C,
        port: HandshakePort,
        events: deque[Event],
        carry: Renegotiation | None = None,
    ) -> None:
        self.config: C = config
        self.port = port
        self.events = events
        self.transcript = Transcript()
        # Set when this handshake is a renegotiation: what it carries from the one before.
        self.carry = carry
        self.info: ConnectionInfo | None = None  # once the handshake completed

    @property
    def versions(self) -> tuple[ProtocolVersion, ...]:
        """The versions this handshake may negotiate: a renegotiation keeps TLS 1.2 (RFC 8446
        §4.1.2: a TLS 1.2 connection is never renegotiated into TLS 1.3)."""
        if self.carry is not None:
            return (ProtocolVersion.TLS1_2,)
        return self.config.versions

    # -- sending -------------------------------------------------------------------------
    def send(self, msg: HandshakeMessage) -> bytes:
        """Encode ``msg``, add it to the transcript and queue it; returns the bytes."""
        raw = encode_handshake(msg)
        self.transcript.add(raw)
        self.port.send(raw)
        return raw

    def send_encoded(self, raw: bytes) -> None:
        """Like :meth:`send` for a message already encoded (with its handshake header)."""
        self.transcript.add(raw)
        self.port.send(raw)

    def send_untranscribed(self, msg: HandshakeMessage) -> bytes:
        """Queue a message that is not part of the transcript (post-handshake messages);
        returns its bytes."""
        raw = encode_handshake(msg)
        self.port.send(raw)
        return raw

    # -- secrets, time, randomness -------------------------------------------------------
    def keylog(self, label: str, client_random: bytes, secret: bytes) -> None:
        cb = self.config.keylog
        if cb is not None:
            cb(f"{label} {client_random.hex()} {secret.hex()}")

    def rng(self, n: int) -> bytes:
        return self.config.rng(n)

    def now(self) -> float:
        return self.config.clock()

    # -- completion ----------------------------------------------------------------------
    def complete(
        self,
        n: Negotiated12 | Negotiated13,
        started: float | None,
        resumption: ResumptionDecision | None = None,
    ) -> ConnectionInfo:
        elapsed = None if started is None else max(0.0, self.now() - started)
        info = connection_info(n, resumption, elapsed)
        self.info = info
        carry = self.carry
        if carry is None:
            self.events.append(HandshakeCompleted(info))
        else:
            self.events.append(
                RenegotiationCompleted(info, carry.initiator, self.session_was_offered())
            )
        return info

    def session_was_offered(self) -> bool:
        """Whether the client offered a session to resume in this handshake."""
        raise NotImplementedError


class ClientRestart(Protocol):
    """Start a renegotiation handshake (a new context, ``ctx.successor``): the connection's,
    injected so that no state imports the state that starts a handshake."""

    def __call__(self, ctx: ClientContext, carry: Renegotiation) -> State[ClientContext]: ...


class ServerRestart(Protocol):
    """Answer a renegotiation ClientHello with a new handshake context (``ctx.successor``)."""

    def __call__(
        self, ctx: ServerContext, carry: Renegotiation, body: bytes, raw: bytes
    ) -> State[ServerContext]: ...


class ClientContext(HandshakeContext[ClientConfig]):
    __slots__ = (
        "cache_key", "latest_session", "offered_session", "restart", "server_name", "successor",
    )  # fmt: skip

    def __init__(
        self,
        config: ClientConfig,
        port: HandshakePort,
        events: deque[Event],
        server_name: str | None,
        restart: ClientRestart,
        carry: Renegotiation | None = None,
    ) -> None:
        super().__init__(config, port, events, carry)
        # The name sent in SNI and checked in the certificate (and part of the cache key).
        self.server_name = server_name
        self.restart = restart
        # A renegotiation this handshake's state just started; the connection adopts it.
        self.successor: ClientContext | None = None
        self.offered_session: ClientSession | None = None
        self.latest_session: ClientSession | None = None
        self.cache_key: CacheKey | None = None

    def new_session(self, session: ClientSession) -> None:
        """Keep a session the server gave us, in the cache if there is one."""
        cache = self.config.session_cache
        if cache is not None and self.cache_key is not None:
            cache.put(self.cache_key, session)
        self.latest_session = session

    def forget_session(self) -> None:
        cache = self.config.session_cache
        if cache is not None and self.cache_key is not None:
            cache.forget(self.cache_key)

    def current_session(self) -> ClientSession | None:
        """The session this (completed) handshake established or resumed."""
        if self.latest_session is not None:
            return self.latest_session
        info = self.info
        return self.offered_session if info is not None and info.resumed else None

    def session_was_offered(self) -> bool:
        return self.offered_session is not None

    def next_handshake(self, carry: Renegotiation) -> ClientContext:
        """A fresh context for a renegotiation on this connection, offering this handshake's
        session for resumption (as OpenSSL clients do)."""
        new = ClientContext(
            self.config, self.port, self.events, self.server_name, self.restart, carry
        )
        new.cache_key = self.cache_key
        session = self.current_session()
        if session is not None and session.version == ProtocolVersion.TLS1_2:
            new.offered_session = session
        self.successor = new
        return new


class ServerContext(HandshakeContext[ServerConfig]):
    __slots__ = ("cached_session_id", "decision", "limits", "restart", "successor")

    def __init__(
        self,
        config: ServerConfig,
        port: HandshakePort,
        events: deque[Event],
        restart: ServerRestart,
        carry: Renegotiation | None = None,
        limits: RenegotiationLimits | None = None,
    ) -> None:
        super().__init__(config, port, events, carry)
        self.restart = restart
        self.successor: ServerContext | None = None  # a renegotiation just started
        # Per connection, carried from handshake to handshake: client renegotiation refusals.
        self.limits = limits if limits is not None else RenegotiationLimits()
        # The id this connection's TLS 1.2 session is stored under (to forget it on a fatal
        # alert), once it is in the store.
        self.cached_session_id = b""
        self.decision: ResumptionDecision | None = None  # this handshake's

    def session_was_offered(self) -> bool:
        return self.decision is not None and self.decision.offered is not None

    def next_handshake(self, carry: Renegotiation) -> ServerContext:
        """A fresh context for a renegotiation on this connection."""
        new = ServerContext(self.config, self.port, self.events, self.restart, carry, self.limits)
        new.cached_session_id = self.cached_session_id
        self.successor = new
        return new

    @property
    def client_auth(self) -> ClientAuth:
        """What this handshake asks of the client (a renegotiation may ask more)."""
        carry = self.carry
        if carry is not None and carry.client_auth is not None:
            return carry.client_auth
        return self.config.client_auth

    # -- resumption: facts for observers, writes for the store ---------------------------
    def observe(self, fact: Fact) -> None:
        self.config.observer_guard.report(fact)

    def decided(self, decision: ResumptionDecision) -> None:
        self.decision = decision
        self.observe(decision)
        self.events.append(ResumptionDecided(decision))
        if decision.writes:
            self.store_write(*decision.writes)

    def store_write(self, *writes: StoreWrite) -> None:
        """Write to the session store: now, through the inline adapter, or as a
        SessionStoreUpdate event ahead of the records that depend on it."""
        config = self.config
        if config.async_session_store is not None:
            self.events.append(SessionStoreUpdate(writes))
        elif config.session_store is not None:
            inline.apply(config.session_store, writes, self.store_failed)

    def store_failed(self, op: StoreWrite | StoreLookup, error: BaseException) -> None:
        self.observe(StoreFailed(op.op, f"{type(error).__name__}: {error}"))

    def report_failures(
        self, operations: Sequence[StoreLookup], answers: Sequence[LookupAnswer]
    ) -> None:
        """Tell the observers about every answer that is an exception the store raised."""
        for op, answer in zip(operations, answers, strict=True):
            if isinstance(answer, BaseException):
                self.store_failed(op, answer)

    def complete(
        self,
        n: Negotiated12 | Negotiated13,
        started: float | None,
        resumption: ResumptionDecision | None = None,
    ) -> ConnectionInfo:
        info = super().complete(n, started, resumption)
        last = self.events[-1]  # the event just queued
        if isinstance(last, HandshakeCompleted):
            self.observe(last)
        else:
            assert isinstance(last, RenegotiationCompleted)
            self.observe(HandshakeCompleted(info))
            self.observe(last)
        return info


X = TypeVar("X", ClientContext, ServerContext)


class State(Generic[X]):
    """One point of the handshake: the messages valid here and what each leads to."""

    __slots__ = ()
    accepts_application_data = False
    handshake_done = False
    # TLS 1.2: the peer's ChangeCipherSpec has been read, its Finished has not (no application
    # data may come in between, even in a renegotiation).
    after_ccs = False
    early = False  # application data now is TLS 1.3 0-RTT data
    ignores_ccs = False  # TLS 1.3: a ChangeCipherSpec record here is dropped
    tls13 = False  # the connection speaks TLS 1.3 (alerts are all fatal but user_canceled)
    # A TLS 1.2 client negotiating: a HelloRequest now is ignored (RFC 5246 §7.4.1.1).
    ignores_hello_request = False

    def count(self, n: int) -> None:
        """Account for ``n`` bytes of early data (states that accept it enforce a limit)."""

    def handle(self, ctx: X, msg_type: int, body: bytes, raw: bytes) -> State[X]:
        unexpected(self, msg_type)

    def handle_ccs(self, ctx: X) -> State[X]:
        raise UnexpectedMessage(f"unexpected ChangeCipherSpec while in {type(self).__name__}")

    def keys13(self) -> Keys13 | None:
        """The TLS 1.3 application traffic keys, once the connection is open (KeyUpdate)."""
        return None

    def __repr__(self) -> str:
        return type(self).__name__


def unexpected(state: object, msg_type: int) -> NoReturn:
    try:
        name = HandshakeType(msg_type).name
    except ValueError:
        name = f"type {msg_type}"
    raise UnexpectedMessage(f"unexpected handshake message {name} while in {state!r}")


def require(state: object, msg_type: int, expected: int) -> None:
    if msg_type != expected:
        unexpected(state, msg_type)


def verify_finished(received: bytes, expected: bytes) -> None:
    """Compare Finished verify_data in constant time; a mismatch is decrypt_error."""
    if len(received) != len(expected):
        raise DecodeError(f"Finished verify_data is {len(received)} bytes, not {len(expected)}")
    if not hmac.compare_digest(received, expected):
        raise DecryptError(
            "the peer's Finished does not match the handshake (different keys or a modified "
            "handshake)"
        )


# Either role's context (the functions both roles share take it).
AnyContext = ClientContext | ServerContext
ServerState = State[ServerContext]
ClientState = State[ClientContext]

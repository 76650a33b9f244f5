"""What every handshake state shares, and the base class of states.

A context belongs to ONE handshake: it owns the transcript, the randoms and what has been
negotiated so far; states hold only what is valid at their point of the flow. States send
through the context, which puts handshake messages in the transcript and frames them under the
current write protection. What belongs to the connection — the record layer, the handshake
reassembler, the event queue and the configuration — is shared: a TLS 1.2 renegotiation starts
a fresh context (:meth:`HandshakeContext.next_handshake`) on the same connection, carrying only
what RFC 5746 needs from the handshake before (see :mod:`.renegotiation`).
"""

from __future__ import annotations

import hmac
from collections import deque
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

from cryptography import x509

from ..config import ClientConfig, ServerConfig
from ..crypto.suites import CipherSuite
from ..crypto.transcript import Transcript
from ..enums import AlertDescription, AlertLevel, ContentType, HandshakeType, ProtocolVersion
from ..errors import DecodeError, DecryptError, InternalError, UnexpectedMessage
from ..events import (
    ConnectionInfo,
    Event,
    HandshakeCompleted,
    RenegotiationCompleted,
    ResumptionDecided,
    SessionStoreUpdate,
)
from ..messages import Finished, decode_message
from ..messages.base import HandshakeMessage, encode_handshake
from ..record.layer import HandshakeReassembler, RecordLayer
from ..record.protection import RecordProtection
from ..session import inline
from ..session.observer import StoreFailed
from .keys12 import finished_data
from .renegotiation import Renegotiation, RenegotiationLimits

if TYPE_CHECKING:
    from ..session.model import ClientSession, ServerSession
    from ..session.resumption import ResumptionDecision, StoreLookup, StoreWrite

C = TypeVar("C", ClientConfig, ServerConfig)


class HandshakeContext(Generic[C]):
    is_client: bool

    def __init__(
        self,
        config: C,
        records: RecordLayer,
        reassembler: HandshakeReassembler,
        events: deque[Event],
    ) -> None:
        self.config: C = config
        self.records = records
        self.reassembler = reassembler
        self.events = events
        self.transcript = Transcript()
        self._pending: list[bytes] = []
        self.client_random = b""
        self.server_random = b""
        self.session_id = b""
        self.version: ProtocolVersion | None = None
        self.suite: CipherSuite | None = None
        self.group: int | None = None
        self.server_name: str | None = None
        self.alpn: bytes | None = None
        self.peer_chain: tuple[x509.Certificate, ...] = ()
        self.peer_chain_der: tuple[bytes, ...] = ()
        self.ems = False
        self.etm = False
        self.secure_renegotiation = False
        self.signature_scheme: int | None = None
        self.master_secret = b""
        self.client_verify_data = b""
        self.server_verify_data = b""
        self.resumed_by: str | None = None
        self.early_data_accepted = False
        self.resumption: ResumptionDecision | None = None  # the server's decision
        self.started: float | None = None  # when the handshake began (config clock)
        self.info: ConnectionInfo | None = None
        # Post-handshake (TLS 1.3) secrets and the session to resume, set by the states.
        self.secrets: dict[str, Any] = {}
        # Set when this handshake is a renegotiation: what it carries from the one before.
        self.renegotiation: Renegotiation | None = None
        # The context of a renegotiation this handshake's state just started; the connection
        # adopts it after the transition.
        self.successor: HandshakeContext[C] | None = None

    @property
    def versions(self) -> tuple[ProtocolVersion, ...]:
        """The versions this handshake may negotiate: a renegotiation keeps TLS 1.2 (RFC 8446
        §4.1.2: a TLS 1.2 connection is never renegotiated into TLS 1.3)."""
        if self.renegotiation is not None:
            return (ProtocolVersion.TLS1_2,)
        return self.config.versions

    # -- sending -------------------------------------------------------------------------
    def send(self, msg: HandshakeMessage) -> bytes:
        """Encode ``msg``, add it to the transcript and queue it; returns the bytes."""
        raw = encode_handshake(msg)
        self.transcript.add(raw)
        self._pending.append(raw)
        return raw

    def send_encoded(self, raw: bytes) -> None:
        """Like :meth:`send` for a message already encoded (with its handshake header)."""
        self.transcript.add(raw)
        self._pending.append(raw)

    def send_untranscribed(self, msg: HandshakeMessage) -> bytes:
        """Queue a message that is not part of the transcript (post-handshake messages);
        returns its bytes."""
        raw = encode_handshake(msg)
        self._pending.append(raw)
        return raw

    def flush(self) -> None:
        """Frame queued handshake messages into records under the current write keys."""
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending.clear()
            self.records.write_records(ContentType.HANDSHAKE, data)

    def send_ccs(self) -> None:
        self.flush()
        self.records.write_records(ContentType.CHANGE_CIPHER_SPEC, b"\x01")

    def send_alert(self, level: AlertLevel, description: AlertDescription) -> None:
        self.flush()
        self.records.write_records(ContentType.ALERT, bytes((level, description)))

    def set_write_protection(self, protection: RecordProtection) -> None:
        self.flush()
        self.records.write = protection

    def set_read_protection(self, protection: RecordProtection) -> None:
        if self.reassembler.pending:
            raise UnexpectedMessage("a handshake message spans a change of keys")
        self.records.read = protection

    # -- secrets -------------------------------------------------------------------------
    def keylog(self, label: str, secret: bytes) -> None:
        cb = self.config.keylog
        if cb is not None:
            cb(f"{label} {self.client_random.hex()} {secret.hex()}")

    def rng(self, n: int) -> bytes:
        return self.config.rng(n)

    def now(self) -> float:
        return self.config.clock()

    # -- completion ----------------------------------------------------------------------
    def complete(self) -> ConnectionInfo:
        assert self.version is not None and self.suite is not None
        alpn = self.alpn.decode("latin-1") if self.alpn is not None else None
        info = ConnectionInfo(
            version=self.version,
            cipher_suite=self.suite,
            group=self.group,
            server_name=self.server_name,
            alpn_protocol=alpn,
            peer_certificates=self.peer_chain,
            session_id=self.session_id,
            extended_master_secret=self.ems,
            encrypt_then_mac=self.etm,
            resumed=self.resumed_by is not None,
            secure_renegotiation=self.secure_renegotiation,
            signature_scheme=self.signature_scheme,
            resumed_by=self.resumed_by,
            early_data_accepted=self.early_data_accepted,
            resumption=self.resumption,
            handshake_time=None if self.started is None else max(0.0, self.now() - self.started),
        )
        self.info = info
        reneg = self.renegotiation
        if reneg is None:
            self.events.append(HandshakeCompleted(info))
        else:
            self.events.append(
                RenegotiationCompleted(info, reneg.initiator, self.session_was_offered())
            )
        return info

    def session_was_offered(self) -> bool:
        """Whether the client offered a session to resume in this handshake."""
        raise NotImplementedError


class ClientContext(HandshakeContext[ClientConfig]):
    is_client = True

    def __init__(
        self,
        config: ClientConfig,
        records: RecordLayer,
        reassembler: HandshakeReassembler,
        events: deque[Event],
        server_name: str | None,
        port: int | None,
    ) -> None:
        super().__init__(config, records, reassembler, events)
        self.server_name = server_name
        self.port = port
        # The name used for the session cache and certificate checks.
        self.sni = server_name
        self.offered_session: ClientSession | None = None
        self.latest_session: ClientSession | None = None
        self.cache_key: tuple[str, int, str | None] | None = None

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
        return self.offered_session if self.resumed_by is not None else None

    def session_was_offered(self) -> bool:
        return self.offered_session is not None

    def next_handshake(self, renegotiation: Renegotiation) -> ClientContext:
        """A fresh context for a renegotiation on this connection, offering this handshake's
        session for resumption (as OpenSSL clients do)."""
        new = ClientContext(
            self.config, self.records, self.reassembler, self.events, self.sni, self.port
        )
        new.cache_key = self.cache_key
        new.renegotiation = renegotiation
        session = self.current_session()
        if session is not None and session.version == ProtocolVersion.TLS1_2:
            new.offered_session = session
        self.successor = new
        return new


class ServerContext(HandshakeContext[ServerConfig]):
    is_client = False

    def __init__(
        self,
        config: ServerConfig,
        records: RecordLayer,
        reassembler: HandshakeReassembler,
        events: deque[Event],
    ) -> None:
        super().__init__(config, records, reassembler, events)
        self.session: ServerSession | None = None
        # The id this connection's TLS 1.2 session is stored under (to forget it on a fatal
        # alert), once it is in the store.
        self.cached_session_id = b""
        # What this handshake asks of the client (a renegotiation may ask more than the config).
        self.client_auth = config.client_auth
        # TLS 1.3: the client offered post_handshake_auth (RFC 8446 §4.6.2).
        self.post_handshake_auth = False
        # Per connection, carried from handshake to handshake: client renegotiation refusals.
        self.limits = RenegotiationLimits()

    def session_was_offered(self) -> bool:
        return self.resumption is not None and self.resumption.offered is not None

    def next_handshake(self, renegotiation: Renegotiation) -> ServerContext:
        """A fresh context for a renegotiation on this connection."""
        new = ServerContext(self.config, self.records, self.reassembler, self.events)
        new.cached_session_id = self.cached_session_id
        new.limits = self.limits
        new.renegotiation = renegotiation
        if renegotiation.client_auth is not None:
            new.client_auth = renegotiation.client_auth
        self.successor = new
        return new

    # -- resumption: facts for observers, writes for the store ---------------------------
    def observe(self, fact: object) -> None:
        for observer in self.config.all_observers:
            observer.observe(fact)

    def decided(self, decision: ResumptionDecision) -> None:
        self.resumption = decision
        self.observe(decision)
        self.events.append(ResumptionDecided(decision))
        if decision.writes:
            self.store_write(*decision.writes)

    def store_write(self, *writes: StoreWrite) -> None:
        """Write to the session store: now, through the inline adapter, or as a
        SessionStoreUpdate event ahead of the records that depend on it."""
        config = self.config
        if config.external_session_lookup:
            self.events.append(SessionStoreUpdate(writes))
        elif config.session_store is not None:
            inline.apply(config.session_store, writes, self.store_failed)

    def verified_client_chain(self, chain_der: tuple[bytes, ...]) -> tuple[x509.Certificate, ...]:
        """The client's certificate chain, parsed and validated against ``client_cafile``."""
        from ..crypto.x509 import parse_chain, utc_clock, verify_client_chain

        chain = parse_chain(chain_der)
        verify_client_chain(chain, self.config.client_trust_store(), utc_clock(self.config.clock))
        return tuple(chain)

    def store_failed(self, op: StoreWrite | StoreLookup, error: BaseException) -> None:
        self.observe(StoreFailed(op.op, f"{type(error).__name__}: {error}"))

    def complete(self) -> ConnectionInfo:
        info = super().complete()
        reneg = self.renegotiation
        if reneg is None:
            self.observe(self.events[-1])  # the HandshakeCompleted just queued
        else:
            self.observe(HandshakeCompleted(info))
            self.observe(self.events[-1])  # the RenegotiationCompleted just queued
        return info


class State:
    """One point of the handshake: the messages valid here and what each leads to."""

    accepts_application_data = False
    handshake_done = False
    # TLS 1.2: the peer's ChangeCipherSpec has been read, its Finished has not (no application
    # data may come in between, even in a renegotiation).
    after_ccs = False
    early = False  # application data now is TLS 1.3 0-RTT data
    ignores_ccs = False  # TLS 1.3: a ChangeCipherSpec record here is dropped

    def count(self, n: int) -> None:
        """Account for ``n`` bytes of early data (states that accept it enforce a limit)."""

    def handle(self, ctx: Any, msg_type: int, body: bytes, raw: bytes) -> State:
        unexpected(self, msg_type)

    def handle_ccs(self, ctx: Any) -> State:
        raise UnexpectedMessage(f"unexpected ChangeCipherSpec while in {type(self).__name__}")

    def __repr__(self) -> str:
        return type(self).__name__


def unexpected(state: State, msg_type: int) -> NoReturn:
    try:
        name = HandshakeType(msg_type).name
    except ValueError:
        name = f"type {msg_type}"
    raise UnexpectedMessage(f"unexpected handshake message {name} while in {state!r}")


def require(state: State, msg_type: int, expected: int) -> None:
    if msg_type != expected:
        unexpected(state, msg_type)


class Failed(State):
    """Terminal: the connection has failed; nothing more is processed."""

    def handle(self, ctx: Any, msg_type: int, body: bytes, raw: bytes) -> State:
        raise InternalError("the connection has already failed")


def check_finished12(ctx: HandshakeContext, body: bytes, raw: bytes, from_client: bool) -> bytes:  # type: ignore[type-arg]
    """Verify the peer's TLS 1.2 Finished, add it to the transcript; returns its verify_data."""
    assert ctx.suite is not None
    expected = finished_data(ctx.suite, ctx.master_secret, from_client, ctx.transcript.digest())
    verify_finished(decode_message(Finished, body).verify_data, expected)
    ctx.transcript.add(raw)
    if from_client:
        ctx.client_verify_data = expected
    else:
        ctx.server_verify_data = expected
    return expected


def verify_finished(received: bytes, expected: bytes) -> None:
    """Compare Finished verify_data in constant time; a mismatch is decrypt_error."""
    if len(received) != len(expected):
        raise DecodeError(f"Finished verify_data is {len(received)} bytes, not {len(expected)}")
    if not hmac.compare_digest(received, expected):
        raise DecryptError(
            "the peer's Finished does not match the handshake (different keys or a modified "
            "handshake)"
        )

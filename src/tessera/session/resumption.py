"""Resumption as a sub-protocol: plan, ask the store, decide. Pure: no I/O, no clock of its own.

The server's handshake states hand a ClientHello summary to :func:`resolve12` or
:func:`resolve13`. Each is a generator that unseals tickets inline (CPU work) and *yields* the
store operations it needs (a session id to get, a single-use ticket to take, a 0-RTT mark to
add); whoever drives it sends back the answers — the connection itself for a synchronous store,
the caller through ``SessionLookupRequired`` / ``provide_session`` otherwise. It finally returns
a frozen :class:`ResumptionDecision`: the session or none, how it resumed or why it did not,
whether to renew the ticket, the PSK index, early data, and the store writes to make.

An answer may be an exception (the store is down, or timed out): that is a full handshake with
the reason "session store unavailable", never a failed connection.

:func:`unusable` is the one copy of "can this session be resumed here", shared by the TLS 1.2
server, the TLS 1.3 server and the client.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Generator
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Literal, NamedTuple

from ..config import ClientAuth
from ..crypto.suites import BY_CODE
from ..enums import ProtocolVersion, PskKeyExchangeMode
from ..errors import StoreValueRejected
from .model import ServerSession, SessionDecodeError
from .stats import FallbackReason

if TYPE_CHECKING:
    from ..config import ServerConfig
    from ..crypto.suites import CipherSuite
    from ..handshake.summary import HelloSummary
    from .sealer import TicketSealer

# Store keys are namespaced by what they hold, so one store (and one Redis) serves all three.
SESSION_ID_PREFIX = b"sid:"
STATEFUL_TICKET_PREFIX = b"stk:"
EARLY_DATA_MARK_PREFIX = b"0rtt:"
MAX_STORE_KEY = 255


def session_id_key(session_id: bytes) -> bytes:
    return SESSION_ID_PREFIX + session_id


def stateful_ticket_key(identity: bytes) -> bytes:
    return STATEFUL_TICKET_PREFIX + identity


def early_data_mark_key(identity: bytes) -> bytes:
    return EARLY_DATA_MARK_PREFIX + hashlib.sha256(identity).digest()[:24]


# -- store operations -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StoreLookup:
    """A store operation whose answer the decision needs: ``get`` and ``take`` answer bytes or
    None, ``add`` answers True (stored) or False (already present)."""

    op: Literal["get", "take", "add"]
    key: bytes
    value: bytes = field(default=b"", repr=False)
    ttl: float = 0.0


@dataclass(frozen=True, slots=True)
class StoreWrite:
    """A store operation nobody waits for: ``put`` or ``delete``."""

    op: Literal["put", "delete"]
    key: bytes
    value: bytes = field(default=b"", repr=False)
    ttl: float = 0.0


# What the store said: bytes/None (get, take), bool (add), or the exception it raised.
LookupAnswer = bytes | bool | None | BaseException
Resolution = Generator[tuple[StoreLookup, ...], tuple[LookupAnswer, ...], "ResumptionDecision"]


class Mechanism(Enum):
    """How a session was offered or resumed (the values are ``ConnectionInfo.resumed_by``)."""

    SESSION_ID = "session_id"
    TICKET = "ticket"
    PSK = "psk"


class EarlyDataRefusal(Enum):
    """Why 0-RTT data offered by the client was not accepted."""

    NOT_RESUMED = "no resumption"
    HELLO_RETRY = "HelloRetryRequest"
    NOT_FIRST_PSK = "not the first PSK offered"
    DISABLED = "0-RTT disabled on this server"
    TICKET_FORBIDS = "the ticket does not allow 0-RTT"
    PARAMETERS_CHANGED = "cipher suite or ALPN differs from the ticket's"
    NO_REPLAY_PROTECTION = "no store for the anti-replay register"
    REPLAY = "replay: the ticket was already used for 0-RTT"
    STORE_UNAVAILABLE = "anti-replay register unavailable"


class ResumptionDecision(NamedTuple):
    """What the server decided about resuming one ClientHello (immutable: a named tuple, built
    once per ClientHello — cheaper than a frozen dataclass on this hot path)."""

    version: ProtocolVersion
    offered: Mechanism | None = None  # what the client tried to resume with, if anything
    resumed_by: Mechanism | None = None
    session: ServerSession | None = None  # (left out of the repr)
    fallback: FallbackReason | None = None  # why an offered session did not resume
    renew_ticket: bool = False  # the ticket opened under an older key: issue a fresh one
    key_name: bytes | None = None  # the ticket key the ticket was sealed under
    psk_index: int | None = None
    psk_dhe: bool = True  # TLS 1.3: psk_dhe_ke (False: psk_ke, no fresh key exchange)
    early_data_offered: bool = False
    early_data_accepted: bool = False
    early_data_refusal: EarlyDataRefusal | None = None
    writes: tuple[StoreWrite, ...] = ()
    abort: str | None = None  # the handshake must fail (RFC 7627 §5.3), with this reason

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={value!r}"
            for name, value in zip(self._fields, self, strict=True)
            if name != "session" and value != self._field_defaults.get(name, ...)
        )
        return f"ResumptionDecision({shown})"

    @property
    def resumed(self) -> bool:
        return self.resumed_by is not None

    @property
    def kind(self) -> str:
        """``full``, ``session_id``, ``ticket``, ``psk`` or ``psk_0rtt``."""
        if self.resumed_by is None:
            return "full"
        if self.early_data_accepted:
            return "psk_0rtt"
        return self.resumed_by.value

    def describe(self) -> str:
        """One line for logs and status pages."""
        if self.resumed_by is not None:
            text = f"resumed by {self.resumed_by.value}"
            return text + (" with 0-RTT" if self.early_data_accepted else "")
        if self.fallback is not None and self.offered is not None:
            return f"full handshake; {self.offered.value} not resumed ({self.fallback.value})"
        return "full handshake; nothing offered to resume"


# -- "can this session be resumed here" -----------------------------------------------------
def unusable(
    s: ServerSession,
    *,
    version: int,
    now: float,
    server_name: str | None,
    suites: Collection[int],
    expired_reason: FallbackReason = FallbackReason.SESSION_EXPIRED,
    ems: bool | None = None,
    age_ms: int | None = None,
    age_skew: float = 10.0,
    client_certificate_required: bool = False,
) -> FallbackReason | None:
    """Why ``s`` cannot be resumed here, or None if it can: ``suites`` are the session cipher
    suites acceptable on this connection; ``ems`` (TLS 1.2) the EMS flag the session must
    have; ``age_ms`` (TLS 1.3 server) the client's view of the ticket age, which must be
    within ``age_skew`` seconds of the server's."""
    if s.version != version:
        return FallbackReason.VERSION_MISMATCH
    if s.expired(now):
        return expired_reason
    if s.cipher_suite not in suites:
        return FallbackReason.CIPHER_MISMATCH
    if s.server_name != server_name:
        return FallbackReason.SNI_MISMATCH
    if ems is not None and s.extended_master_secret != ems:
        return FallbackReason.EMS_MISMATCH
    if age_ms is not None and abs(age_ms - (now - s.created) * 1000) > age_skew * 1000:
        return FallbackReason.PSK_AGE_INVALID
    if client_certificate_required and not s.peer_chain:
        return FallbackReason.CLIENT_CERT_MISMATCH
    return None


def _decode(state: bytes) -> ServerSession | None:
    try:
        return ServerSession.from_bytes(state)
    except SessionDecodeError:
        return None


def _failed(answer: LookupAnswer) -> bool:
    return isinstance(answer, BaseException)


def _store_failure(answer: LookupAnswer) -> FallbackReason:
    """Why a lookup that did not answer bytes or None failed: a value the store rejected
    (sealed under another secret, altered), or no usable answer at all."""
    if isinstance(answer, StoreValueRejected):
        return FallbackReason.STORE_VALUE_REJECTED
    return FallbackReason.STORE_UNAVAILABLE


def _fallback12(
    offered: Mechanism | None = None,
    reason: FallbackReason | None = None,
    writes: tuple[StoreWrite, ...] = (),
    key_name: bytes | None = None,
) -> ResumptionDecision:
    return ResumptionDecision(
        ProtocolVersion.TLS1_2, offered=offered, fallback=reason, writes=writes, key_name=key_name
    )


def _fallback13(
    pc: Psk13Context, offered: Mechanism | None = None, reason: FallbackReason | None = None
) -> ResumptionDecision:
    early = pc.early_data_offered
    return ResumptionDecision(
        ProtocolVersion.TLS1_3, offered=offered, fallback=reason, early_data_offered=early,
        early_data_refusal=EarlyDataRefusal.NOT_RESUMED if early else None,
    )  # fmt: skip


# -- TLS 1.2 --------------------------------------------------------------------------------
def resolve12(
    config: ServerConfig,
    hello: HelloSummary,
    now: float,
    *,
    client_auth: ClientAuth | None = None,
    refuse: bool = False,
) -> Resolution:
    """Session id (one store ``get``) or RFC 5077 ticket (unsealed inline).

    ``client_auth`` is what this handshake asks of the client (default: the config's);
    ``refuse``: a renegotiation that must be a full handshake (to ask for a certificate) —
    whatever the client offers is declined, unopened, with the reason "resumption refused in
    renegotiation"."""
    if refuse:
        offered = _offered12(hello)
        return _fallback12(offered, FallbackReason.REFUSED_IN_RENEGOTIATION if offered else None)
    sealer = config.sealer
    if hello.ticket and sealer is not None:
        return _ticket12(config, hello, now, sealer, client_auth)
    if not hello.session_id:
        return _fallback12()
    by = Mechanism.SESSION_ID
    if config.session_store is None:
        if hello.offers_tls13 or hello.ticket is not None:
            return _fallback12()  # a compatibility id, not an attempt to resume
        return _fallback12(by, FallbackReason.RESUMPTION_DISABLED)
    key = session_id_key(hello.session_id)
    (answer,) = yield (StoreLookup("get", key),)
    if _failed(answer) or not isinstance(answer, bytes | None):
        return _fallback12(by, _store_failure(answer))
    if answer is None:
        if hello.offers_tls13:
            # A TLS 1.3 client sends a random legacy_session_id (RFC 8446 §D.4) even when it
            # resumes nothing; an unknown one is not counted as a miss.
            return _fallback12()
        return _fallback12(by, FallbackReason.UNKNOWN_SESSION_ID)
    session = _decode(answer)
    if session is None:
        return _fallback12(by, FallbackReason.SESSION_CORRUPT, (StoreWrite("delete", key),))
    return _check12(config, hello, now, session, by, None, False, client_auth)


def _offered12(hello: HelloSummary) -> Mechanism | None:
    """What a TLS 1.2 ClientHello offers to resume, without looking it up."""
    if hello.ticket:
        return Mechanism.TICKET
    if hello.session_id and not hello.offers_tls13:
        return Mechanism.SESSION_ID
    return None


def _ticket12(
    config: ServerConfig,
    hello: HelloSummary,
    now: float,
    sealer: TicketSealer,
    client_auth: ClientAuth | None,
) -> ResumptionDecision:
    assert hello.ticket
    opened = sealer.open(hello.ticket)
    if isinstance(opened, FallbackReason):
        return _fallback12(Mechanism.TICKET, opened)
    session = _decode(opened.state)
    if session is None:
        return _fallback12(
            Mechanism.TICKET, FallbackReason.TICKET_MALFORMED, key_name=opened.key_name
        )
    return _check12(
        config, hello, now, session, Mechanism.TICKET, opened.key_name,
        not opened.key_is_current, client_auth,
    )  # fmt: skip


def _check12(config: ServerConfig, hello: HelloSummary, now: float, session: ServerSession,
             by: Mechanism, key_name: bytes | None, renew: bool,
             client_auth: ClientAuth | None) -> ResumptionDecision:  # fmt: skip
    ems = hello.ems and config.extended_master_secret
    auth = config.client_auth if client_auth is None else client_auth
    offered = hello.hello.cipher_suites
    enabled = config.suite_codes_for(ProtocolVersion.TLS1_2)
    # The session's suite must be offered now and enabled here.
    suites = enabled if session.cipher_suite in offered else ()
    reason = unusable(
        session,
        version=ProtocolVersion.TLS1_2,
        now=now,
        server_name=hello.server_name,
        suites=suites,
        expired_reason=(
            FallbackReason.TICKET_EXPIRED if by is Mechanism.TICKET
            else FallbackReason.SESSION_EXPIRED
        ),
        ems=ems,
        client_certificate_required=auth is ClientAuth.REQUIRED,
    )  # fmt: skip
    if reason is None:
        return ResumptionDecision(
            ProtocolVersion.TLS1_2,
            offered=by,
            resumed_by=by,
            session=session,
            renew_ticket=renew,
            key_name=key_name,
        )
    writes: tuple[StoreWrite, ...] = ()
    if reason is FallbackReason.SESSION_EXPIRED and by is Mechanism.SESSION_ID:
        writes = (StoreWrite("delete", session_id_key(hello.session_id)),)
    abort = None
    if reason is FallbackReason.EMS_MISMATCH and session.extended_master_secret:
        abort = (
            "the client resumes an extended-master-secret session without offering "
            "extended_master_secret (RFC 7627 §5.3)"
        )
    return ResumptionDecision(
        ProtocolVersion.TLS1_2, offered=by, fallback=reason, key_name=key_name, writes=writes,
        abort=abort,
    )  # fmt: skip


# -- TLS 1.3 --------------------------------------------------------------------------------
# Called with (identity index, session) once a PSK is otherwise acceptable; raises the fatal
# decrypt_error when the binder is wrong (RFC 8446 §4.2.11).
BinderCheck = Callable[[int, ServerSession], None]


class Psk13Context(NamedTuple):
    """What the TLS 1.3 state knows when it asks for a PSK decision."""

    server_name: str | None
    alpn: bytes | None
    suite: CipherSuite
    now: float
    retried: bool  # this is the ClientHello after a HelloRetryRequest
    early_data_offered: bool  # by this ClientHello or the first one


def psk_modes(config: ServerConfig, hello: HelloSummary) -> tuple[bool, bool]:
    """(psk_dhe_ke usable, psk_ke usable). A server configured with psk_ke prefers it (no
    fresh key exchange: cheaper, but no forward secrecy for the resumed connection)."""
    modes = hello.psk_modes or ()
    ke_only = PskKeyExchangeMode.psk_ke in modes and config.psk_ke
    dhe = PskKeyExchangeMode.psk_dhe_ke in modes and not ke_only
    return dhe, ke_only


def resolve13(
    config: ServerConfig, hello: HelloSummary, pc: Psk13Context, check_binder: BinderCheck
) -> Resolution:
    """The first acceptable PSK among the first few offered, its binder checked."""
    if hello.psks is None:
        return _fallback13(pc)
    offered = Mechanism.PSK
    if not config.stateful_tickets and config.sealer is None:
        return _fallback13(pc, offered, FallbackReason.RESUMPTION_DISABLED)
    dhe, ke_only = psk_modes(config, hello)
    if not dhe and not ke_only:
        return _fallback13(pc, offered, FallbackReason.PSK_MODE_UNSUPPORTED)
    first_reason: FallbackReason | None = None
    for index, ident in enumerate(hello.psk_identities):
        found = yield from _open13(config, ident.identity)
        if isinstance(found, FallbackReason):
            first_reason = first_reason or found
            if found is FallbackReason.STORE_UNAVAILABLE:
                break  # the next take would fail the same way
            continue
        session, key_name, single_use = found
        reason = _unusable13(config, pc, session, ident.obfuscated_ticket_age)
        if reason is not None:
            first_reason = first_reason or reason
            continue
        check_binder(index, session)
        accepted, refusal = yield from _early_data(
            config, pc, index, session, ident.identity, single_use
        )
        return ResumptionDecision(
            ProtocolVersion.TLS1_3, offered=offered, resumed_by=offered, session=session,
            key_name=key_name,
            psk_index=index, psk_dhe=dhe, early_data_offered=pc.early_data_offered,
            early_data_accepted=accepted, early_data_refusal=refusal,
        )  # fmt: skip
    return _fallback13(pc, offered, first_reason or FallbackReason.UNKNOWN_SESSION_ID)


def _unusable13(
    config: ServerConfig, pc: Psk13Context, session: ServerSession, obfuscated_age: int
) -> FallbackReason | None:
    resumed = BY_CODE.get(session.cipher_suite)
    same_hash = resumed is not None and resumed.prf_hash == pc.suite.prf_hash
    return unusable(
        session,
        version=ProtocolVersion.TLS1_3,
        now=pc.now,
        server_name=pc.server_name,
        suites=(session.cipher_suite,) if same_hash else (),
        expired_reason=FallbackReason.TICKET_EXPIRED,
        age_ms=(obfuscated_age - session.ticket_age_add) & 0xFFFFFFFF,
        age_skew=config.max_ticket_age_skew,
        client_certificate_required=config.client_auth is ClientAuth.REQUIRED,
    )


def _open13(
    config: ServerConfig, identity: bytes
) -> Generator[
    tuple[StoreLookup, ...],
    tuple[LookupAnswer, ...],
    tuple[ServerSession, bytes | None, bool] | FallbackReason,
]:
    """(session, ticket key name, single use) for one identity, or why it cannot be used."""
    if config.stateful_tickets:
        key = stateful_ticket_key(identity)
        if len(key) > MAX_STORE_KEY:
            return FallbackReason.UNKNOWN_SESSION_ID
        (answer,) = yield (StoreLookup("take", key),)
        if _failed(answer) or not isinstance(answer, bytes | None):
            return _store_failure(answer)
        if answer is None:
            return FallbackReason.PSK_ALREADY_USED
        state, key_name, single_use = answer, None, True
    else:
        assert config.sealer is not None
        opened = config.sealer.open(identity)
        if isinstance(opened, FallbackReason):
            return opened
        state, key_name, single_use = opened.state, opened.key_name, False
    session = _decode(state)
    if session is None:
        return FallbackReason.TICKET_MALFORMED
    return session, key_name, single_use


def _early_data(
    config: ServerConfig, pc: Psk13Context, index: int,
    session: ServerSession, identity: bytes, single_use: bool,
) -> Generator[tuple[StoreLookup, ...], tuple[LookupAnswer, ...],
               tuple[bool, EarlyDataRefusal | None]]:  # fmt: skip
    """Accept 0-RTT? Anti-replay (RFC 8446 §8): the ticket age was checked already; the ticket
    must be single-use, or be seen for the first time by the store's strike register. When the
    mark cannot be recorded, early data is refused (fail closed)."""
    if not pc.early_data_offered:
        return False, None
    refusal: EarlyDataRefusal | None = None
    if pc.retried:
        refusal = EarlyDataRefusal.HELLO_RETRY
    elif index != 0:
        refusal = EarlyDataRefusal.NOT_FIRST_PSK
    elif config.max_early_data_size <= 0:
        refusal = EarlyDataRefusal.DISABLED
    elif session.max_early_data <= 0:
        refusal = EarlyDataRefusal.TICKET_FORBIDS
    elif session.cipher_suite != pc.suite.code or session.alpn != pc.alpn:
        refusal = EarlyDataRefusal.PARAMETERS_CHANGED
    if refusal is not None:
        return False, refusal
    if single_use:
        return True, None
    if config.session_store is None:
        return False, EarlyDataRefusal.NO_REPLAY_PROTECTION
    # A replay passes the ticket-age check for at most 2 x the skew after the original (the
    # client's age is frozen in the ClientHello while the server's advances), so the mark only
    # needs to outlive that window (RFC 8446 §8.2), not the ticket: a much smaller register.
    ttl = 2 * config.max_ticket_age_skew + 1.0
    (answer,) = yield (StoreLookup("add", early_data_mark_key(identity), b"", ttl),)
    if answer is True:
        return True, None
    if answer is False:
        return False, EarlyDataRefusal.REPLAY
    return False, EarlyDataRefusal.STORE_UNAVAILABLE

"""The pure resolvers: from a ClientHello summary to a :class:`ResumptionDecision`.

:func:`resolve12` and :func:`resolve13` unseal tickets inline (CPU work) and return either the
decision, or a :class:`Pending`: the store operations they need (a session id to get, a
single-use ticket to take, a 0-RTT mark to add) and a *named* continuation that takes the
answers and goes on (:class:`SessionIdAnswer`, :class:`SingleUseTicketAnswer`,
:class:`StrikeMarkAnswer`). Nothing here reads a clock, a store or the network: the caller
passes ``now`` and answers the operations (the connection itself for a synchronous store, the
front end for an async one). An answer may be an exception (the store is down or timed out):
that is a full handshake with the reason "session store unavailable", never a failed
connection.

The decision also says what the client will be given to resume with later: how many tickets,
and (TLS 1.2) whether its session is cached under a fresh session id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from ...crypto.suites import BY_CODE
from ...enums import ClientAuth, ProtocolVersion, PskKeyExchangeMode
from ...errors import StoreValueRejected
from ...frozen import quick_init
from ..model import ServerSession, SessionDecodeError
from .decision import ResumptionDecision, unusable
from .hello import HelloSummary
from .operations import (
    MAX_STORE_KEY,
    LookupAnswer,
    StoreLookup,
    StoreWrite,
    early_data_mark_key,
    failed,
    session_id_key,
    stateful_ticket_key,
)
from .vocabulary import EarlyDataRefusal, FallbackReason, Mechanism

if TYPE_CHECKING:
    from ...config import ServerConfig
    from ...crypto.suites import CipherSuite
    from ..sealer import Opened, TicketSealer


class Continuation(Protocol):
    """What a resolution does with the answers to its store operations."""

    def answer(self, answers: tuple[LookupAnswer, ...]) -> Outcome: ...


@quick_init
@dataclass(frozen=True, slots=True)
class Pending:
    """The resolution waits for the store: answer ``operations`` (in order) and pass the answers
    to ``then.answer``."""

    operations: tuple[StoreLookup, ...]
    then: Continuation


Outcome = ResumptionDecision | Pending


def _store_failure(answer: LookupAnswer) -> FallbackReason:
    """Why a lookup that did not answer bytes or None failed: a value the store rejected
    (sealed under another fleet secret, altered), or no usable answer at all."""
    if isinstance(answer, StoreValueRejected):
        return FallbackReason.STORE_VALUE_REJECTED
    return FallbackReason.STORE_UNAVAILABLE


def _decode(state: bytes) -> ServerSession | None:
    try:
        return ServerSession.from_bytes(state)
    except SessionDecodeError:
        return None


def _opened_session(opened: Opened) -> ServerSession | None:
    """The session in an opened ticket (decoded by the sealer already, when it can)."""
    return opened.session if opened.session is not None else _decode(opened.state)


# -- TLS 1.2 --------------------------------------------------------------------------------
def _can_seal(config: ServerConfig, hello: HelloSummary, now: float) -> bool:
    """Whether a ticket can be promised: the client asks for one, and a key encrypts now (a
    fleet between keys has none: it promises no ticket, and gives a session id instead)."""
    sealer = config.sealer
    return hello.ticket is not None and sealer is not None and sealer.lifetime(1, now) > 0


def _issued12(config: ServerConfig, hello: HelloSummary, now: float) -> tuple[int, bool]:
    """(tickets, session id cached) for a full TLS 1.2 handshake: a ticket when the client asks
    for one and one can be sealed; else a session id when there is a store. A client that takes
    a ticket resumes with it, so (like OpenSSL, RFC 5077 §3.4) it gets no session id."""
    if _can_seal(config, hello, now):
        return 1, False
    return 0, config.has_session_store


def _full12(
    config: ServerConfig, hello: HelloSummary, now: float, offered: Mechanism | None = None,
    reason: FallbackReason | None = None, writes: tuple[StoreWrite, ...] = (),
    key_name: bytes | None = None, abort: str | None = None,
) -> ResumptionDecision:  # fmt: skip
    tickets, cached = _issued12(config, hello, now)
    return ResumptionDecision(
        ProtocolVersion.TLS1_2, offered=offered, fallback=reason, writes=writes,
        key_name=key_name, abort=abort, tickets=tickets, session_id_cached=cached,
    )  # fmt: skip


def resolve12(
    config: ServerConfig,
    hello: HelloSummary,
    now: float,
    *,
    client_auth: ClientAuth | None = None,
    refuse: bool = False,
) -> Outcome:
    """Session id (one store ``get``) or RFC 5077 ticket (unsealed inline).

    ``client_auth`` is what this handshake asks of the client (default: the config's);
    ``refuse``: a renegotiation that must be a full handshake (to ask for a certificate) —
    whatever the client offers is declined, unopened, with the reason "resumption refused in
    renegotiation"."""
    if refuse:
        offered = _offered12(hello)
        why = FallbackReason.REFUSED_IN_RENEGOTIATION if offered else None
        return _full12(config, hello, now, offered, why)
    sealer = config.sealer
    if hello.ticket and sealer is not None:
        return _ticket12(config, hello, now, sealer, client_auth)
    if not hello.session_id:
        return _full12(config, hello, now)
    if not config.has_session_store:
        if hello.offers_tls13 or hello.ticket is not None:
            return _full12(config, hello, now)  # a compatibility id, not an attempt to resume
        return _full12(config, hello, now, Mechanism.SESSION_ID, FallbackReason.RESUMPTION_DISABLED)
    lookup = StoreLookup("get", session_id_key(hello.session_id))
    return Pending((lookup,), SessionIdAnswer(config, hello, now, client_auth))


@quick_init
@dataclass(frozen=True, slots=True)
class SessionIdAnswer:
    """TLS 1.2: waiting for the session cached under the offered session id."""

    config: ServerConfig = field(repr=False)
    hello: HelloSummary
    now: float
    client_auth: ClientAuth | None

    def answer(self, answers: tuple[LookupAnswer, ...]) -> Outcome:
        (found,) = answers
        config, hello = self.config, self.hello
        by = Mechanism.SESSION_ID
        if failed(found) or not isinstance(found, bytes | None):
            return _full12(config, hello, self.now, by, _store_failure(found))
        if found is None:
            if hello.offers_tls13:
                # A TLS 1.3 client sends a random legacy_session_id (RFC 8446 §D.4) even when
                # it resumes nothing; an unknown one is not counted as a miss.
                return _full12(config, hello, self.now)
            return _full12(config, hello, self.now, by, FallbackReason.UNKNOWN_SESSION_ID)
        memo = config.decoded_sessions
        known = memo.get(found, self.now)
        session = known[1] if known is not None else _decode(found)
        if session is None:
            delete = StoreWrite("delete", session_id_key(hello.session_id))
            return _full12(config, hello, self.now, by, FallbackReason.SESSION_CORRUPT, (delete,))
        if known is None:
            memo.put(found, found, session, self.now)
        return _check12(config, hello, self.now, session, by, None, False, self.client_auth)


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
        return _full12(config, hello, now, Mechanism.TICKET, opened)
    session = _opened_session(opened)
    if session is None:
        return _full12(
            config, hello, now, Mechanism.TICKET, FallbackReason.TICKET_MALFORMED,
            key_name=opened.key_name,
        )  # fmt: skip
    return _check12(
        config, hello, now, session, Mechanism.TICKET, opened.key_name,
        not opened.key_is_current, client_auth,
    )  # fmt: skip


def _check12(config: ServerConfig, hello: HelloSummary, now: float, session: ServerSession,
             by: Mechanism, key_name: bytes | None, renew: bool,
             client_auth: ClientAuth | None) -> ResumptionDecision:  # fmt: skip
    ems = hello.ems and config.extended_master_secret
    auth = config.client_auth if client_auth is None else client_auth
    # The session's suite must be offered now and enabled here.
    suites = (
        config.suite_codes_for(ProtocolVersion.TLS1_2)
        if session.cipher_suite in hello.hello.cipher_suites
        else ()
    )
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
        tickets = 1 if renew and _can_seal(config, hello, now) else 0
        return ResumptionDecision(
            ProtocolVersion.TLS1_2, offered=by, resumed_by=by, session=session,
            renew_ticket=renew, key_name=key_name, tickets=tickets,
        )  # fmt: skip
    writes: tuple[StoreWrite, ...] = ()
    if reason is FallbackReason.SESSION_EXPIRED and by is Mechanism.SESSION_ID:
        writes = (StoreWrite("delete", session_id_key(hello.session_id)),)
    abort = None
    if reason is FallbackReason.EMS_MISMATCH and session.extended_master_secret:
        abort = (
            "the client resumes an extended-master-secret session without offering "
            "extended_master_secret (RFC 7627 §5.3)"
        )
    return _full12(config, hello, now, by, reason, writes, key_name, abort)


# -- TLS 1.3 --------------------------------------------------------------------------------
class BinderCheck(Protocol):
    """Called with (identity index, session) once a PSK is otherwise acceptable; raises the
    fatal decrypt_error when the binder is wrong (RFC 8446 §4.2.11)."""

    def __call__(self, index: int, session: ServerSession) -> None: ...


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


def tickets13(config: ServerConfig, resumed: bool) -> int:
    """NewSessionTickets after a TLS 1.3 handshake: ``num_tickets`` after a full one, one after
    a resumption (as OpenSSL), none when nothing can make them."""
    if (not config.has_session_store) if config.stateful_tickets else (config.sealer is None):
        return 0
    return min(config.num_tickets, 1) if resumed else config.num_tickets


def _full13(
    config: ServerConfig, pc: Psk13Context, offered: Mechanism | None = None,
    reason: FallbackReason | None = None,
) -> ResumptionDecision:  # fmt: skip
    early = pc.early_data_offered
    return ResumptionDecision(
        ProtocolVersion.TLS1_3, offered=offered, fallback=reason, early_data_offered=early,
        early_data_refusal=EarlyDataRefusal.NOT_RESUMED if early else None,
        tickets=tickets13(config, False),
    )  # fmt: skip


def resolve13(
    config: ServerConfig, hello: HelloSummary, pc: Psk13Context, check_binder: BinderCheck
) -> Outcome:
    """The first acceptable PSK among the first few offered, its binder checked."""
    if hello.psks is None:
        return _full13(config, pc)
    offered = Mechanism.PSK
    if not config.stateful_tickets and config.sealer is None:
        return _full13(config, pc, offered, FallbackReason.RESUMPTION_DISABLED)
    dhe, ke_only = psk_modes(config, hello)
    if not dhe and not ke_only:
        return _full13(config, pc, offered, FallbackReason.PSK_MODE_UNSUPPORTED)
    return _Scan13(config, hello, pc, check_binder, dhe).scan(0, None)


@quick_init
@dataclass(frozen=True, slots=True)
class _Scan13:
    """Going through the offered identities in order."""

    config: ServerConfig = field(repr=False)
    hello: HelloSummary
    pc: Psk13Context
    check_binder: BinderCheck = field(repr=False)
    dhe: bool

    def scan(self, start: int, first_reason: FallbackReason | None) -> Outcome:
        config = self.config
        identities = self.hello.psk_identities
        for index in range(start, len(identities)):
            identity = identities[index].identity
            if config.stateful_tickets:
                key = stateful_ticket_key(identity)
                if len(key) > MAX_STORE_KEY:
                    first_reason = first_reason or FallbackReason.UNKNOWN_SESSION_ID
                    continue
                return Pending(
                    (StoreLookup("take", key),), SingleUseTicketAnswer(self, index, first_reason)
                )
            assert config.sealer is not None
            opened = config.sealer.open(identity)
            if isinstance(opened, FallbackReason):
                first_reason = first_reason or opened
                continue
            session = _opened_session(opened)
            if session is None:
                first_reason = first_reason or FallbackReason.TICKET_MALFORMED
                continue
            outcome = self.accept(index, session, opened.key_name, single_use=False)
            if isinstance(outcome, FallbackReason):
                first_reason = first_reason or outcome
                continue
            return outcome
        return self.fallback(first_reason or FallbackReason.UNKNOWN_SESSION_ID)

    def fallback(self, reason: FallbackReason) -> ResumptionDecision:
        return _full13(self.config, self.pc, Mechanism.PSK, reason)

    def accept(
        self, index: int, session: ServerSession, key_name: bytes | None, single_use: bool
    ) -> Outcome | FallbackReason:
        """The decision for a session that opened, or why it cannot resume here."""
        config, pc = self.config, self.pc
        ident = self.hello.psk_identities[index]
        reason = _unusable13(config, pc, session, ident.obfuscated_ticket_age)
        if reason is not None:
            return reason
        self.check_binder(index, session)
        chosen = _Chosen(self, index, session, key_name)
        if not pc.early_data_offered:
            return chosen.decide(False, None)
        refusal = _early_refusal(config, pc, index, session)
        if refusal is not None:
            return chosen.decide(False, refusal)
        if single_use:
            return chosen.decide(True, None)
        if not config.has_session_store:
            return chosen.decide(False, EarlyDataRefusal.NO_REPLAY_PROTECTION)
        # A replay passes the ticket-age check for at most 2 x the skew after the original (the
        # client's age is frozen in the ClientHello while the server's advances), so the mark
        # only needs to outlive that window (RFC 8446 §8.2), not the ticket: a much smaller
        # register. When the mark cannot be recorded, early data is refused (fail closed).
        ttl = 2 * config.max_ticket_age_skew + 1.0
        mark = StoreLookup("add", early_data_mark_key(ident.identity), b"", ttl)
        return Pending((mark,), StrikeMarkAnswer(chosen))


@quick_init
@dataclass(frozen=True, slots=True)
class _Chosen:
    """The PSK that resumes (its binder verified)."""

    scan: _Scan13
    index: int
    session: ServerSession = field(repr=False)
    key_name: bytes | None

    def decide(self, accepted: bool, refusal: EarlyDataRefusal | None) -> ResumptionDecision:
        scan = self.scan
        return ResumptionDecision(
            ProtocolVersion.TLS1_3, offered=Mechanism.PSK, resumed_by=Mechanism.PSK,
            session=self.session, key_name=self.key_name, psk_index=self.index,
            psk_dhe=scan.dhe, early_data_offered=scan.pc.early_data_offered,
            early_data_accepted=accepted, early_data_refusal=refusal,
            tickets=tickets13(scan.config, True),
        )  # fmt: skip


@quick_init
@dataclass(frozen=True, slots=True)
class SingleUseTicketAnswer:
    """TLS 1.3 stateful tickets: waiting for the ``take`` of identity ``index``."""

    scan: _Scan13
    index: int
    first_reason: FallbackReason | None

    def answer(self, answers: tuple[LookupAnswer, ...]) -> Outcome:
        (found,) = answers
        first = self.first_reason
        if failed(found) or not isinstance(found, bytes | None):
            # The next take would fail the same way: stop here.
            return self.scan.fallback(first or _store_failure(found))
        if found is None:
            return self.scan.scan(self.index + 1, first or FallbackReason.PSK_ALREADY_USED)
        session = _decode(found)
        if session is None:
            return self.scan.scan(self.index + 1, first or FallbackReason.TICKET_MALFORMED)
        outcome = self.scan.accept(self.index, session, None, single_use=True)
        if isinstance(outcome, FallbackReason):
            return self.scan.scan(self.index + 1, first or outcome)
        return outcome


@quick_init
@dataclass(frozen=True, slots=True)
class StrikeMarkAnswer:
    """0-RTT anti-replay: waiting for the strike register's ``add`` (True: first use)."""

    chosen: _Chosen

    def answer(self, answers: tuple[LookupAnswer, ...]) -> Outcome:
        (stored,) = answers
        if stored is True:
            return self.chosen.decide(True, None)
        if stored is False:
            return self.chosen.decide(False, EarlyDataRefusal.REPLAY)
        return self.chosen.decide(False, EarlyDataRefusal.STORE_UNAVAILABLE)


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


def _early_refusal(
    config: ServerConfig, pc: Psk13Context, index: int, session: ServerSession
) -> EarlyDataRefusal | None:
    """Why offered 0-RTT data cannot be accepted with this PSK, before anti-replay (RFC 8446
    §8: the ticket age was checked already)."""
    if pc.retried:
        return EarlyDataRefusal.HELLO_RETRY
    if index != 0:
        return EarlyDataRefusal.NOT_FIRST_PSK
    if config.max_early_data_size <= 0:
        return EarlyDataRefusal.DISABLED
    if session.max_early_data <= 0:
        return EarlyDataRefusal.TICKET_FORBIDS
    if session.cipher_suite != pc.suite.code or session.alpn != pc.alpn:
        return EarlyDataRefusal.PARAMETERS_CHANGED
    return None

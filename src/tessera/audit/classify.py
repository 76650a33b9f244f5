"""Why a resumption attempt did not resume, from what the client saw (never guessed).

A TLS 1.2 server resumes by echoing the session id the client sent (RFC 5246 §7.4.1.3; with a
ticket, the random id the client sent along, RFC 5077 §3.4); a TLS 1.3 server by selecting the
offered PSK in its ServerHello (RFC 8446 §4.2.11). When it does not, what else it did tells
why: another cipher suite or version means the session could not fit; a different extended
master secret state means RFC 7627 forbade it; a new ticket means it could not use ours, and
the tickets themselves say more: a ticket too short to carry a session is an id into the
server's cache (which did not have it); a new ticket under the same 16-byte key name as ours
means the server could open ours and refused the session itself (another session context or
certificate, as with two Node.js servers whose default ``sessionIdContext`` differs). Whether a
ticket's key was unknown is decided later, where the key names an address issues are known
(:func:`tessera.audit.auditor.refine_key_reasons`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..crypto.suites import BY_CODE
from ..enums import ExtensionType, ProtocolVersion
from ..session.model import ClientSession
from .keynames import MIN_RFC5077_LEN, label
from .probe import KEY_NAME_LEN, Handshake


class Mechanism(Enum):
    """What is being resumed, named as in ``--expect``."""

    SESSION_ID = "id"  # TLS 1.2 session id (server cache)
    TICKET = "ticket"  # TLS 1.2 RFC 5077 ticket
    PSK = "psk"  # TLS 1.3 PSK, psk_dhe_ke
    PSK_KE = "psk_ke"  # TLS 1.3 PSK, psk_ke (no fresh (EC)DHE)
    EARLY_DATA = "0rtt"  # TLS 1.3 0-RTT data on a PSK

    @property
    def title(self) -> str:
        return _TITLES[self]

    @property
    def tls13(self) -> bool:
        return self in (Mechanism.PSK, Mechanism.PSK_KE, Mechanism.EARLY_DATA)


_TITLES = {
    Mechanism.SESSION_ID: "TLS 1.2 session id",
    Mechanism.TICKET: "TLS 1.2 ticket",
    Mechanism.PSK: "TLS 1.3 PSK (psk_dhe_ke)",
    Mechanism.PSK_KE: "TLS 1.3 PSK (psk_ke)",
    Mechanism.EARLY_DATA: "TLS 1.3 0-RTT",
}


class Reason(Enum):
    """Why there was no resumption; the value is the JSON code."""

    NO_SESSION_ID_ISSUED = "no_session_id_issued"
    NO_TICKET_ISSUED = "no_ticket_issued"
    TICKET_REISSUED = "ticket_ignored_new_issued"
    TICKET_IGNORED = "ticket_ignored"
    TICKET_KEY_UNKNOWN = "ticket_key_unknown"
    SESSION_REFUSED = "session_refused_same_key"
    STATEFUL_TICKET_UNKNOWN = "stateful_ticket_unknown"
    SESSION_ID_UNKNOWN = "session_id_unknown"
    VERSION_OR_SUITE_CHANGED = "version_or_suite_changed"
    EMS_MISMATCH = "ems_mismatch"
    SNI_MISMATCH = "sni_mismatch"
    PSK_MODE_REFUSED = "psk_mode_refused"
    EARLY_DATA_REFUSED = "early_data_refused"
    VERSION_NOT_ENABLED = "version_not_enabled"
    CONNECTION_FAILED = "connection_failed"

    @property
    def text(self) -> str:
        return _TEXTS[self]


_TEXTS = {
    Reason.NO_SESSION_ID_ISSUED: "no session id issued",
    Reason.NO_TICKET_ISSUED: "no ticket issued",
    Reason.TICKET_REISSUED: "ticket ignored and a new one issued (unknown key, expired or used)",
    Reason.TICKET_IGNORED: "ticket ignored, no new ticket",
    Reason.TICKET_KEY_UNKNOWN: "ticket key unknown here",
    Reason.SESSION_REFUSED: "ticket key known, session refused (another session context?)",
    Reason.STATEFUL_TICKET_UNKNOWN: "stateful ticket not in the session cache",
    Reason.SESSION_ID_UNKNOWN: "session id unknown",
    Reason.VERSION_OR_SUITE_CHANGED: "version or suite changed",
    Reason.EMS_MISMATCH: "extended master secret mismatch",
    Reason.SNI_MISMATCH: "SNI mismatch",
    Reason.PSK_MODE_REFUSED: "PSK mode not accepted",
    Reason.EARLY_DATA_REFUSED: "0-RTT refused",
    Reason.VERSION_NOT_ENABLED: "version not enabled",
    Reason.CONNECTION_FAILED: "connection failed",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """One resumption attempt: resumed, or the reason it did not, with the evidence."""

    resumed: bool
    reason: Reason | None
    evidence: str


def short(data: bytes, n: int = 8) -> str:
    """The first ``n`` bytes in hex, with an ellipsis when there is more."""
    return data[:n].hex() + ("…" if len(data) > n else "")


def _suite(code: int) -> str:
    suite = BY_CODE.get(code)
    return suite.openssl_name if suite else f"0x{code:04x}"


def failed(mechanism: Mechanism, hs: Handshake) -> tuple[Reason, str]:
    """Why a full handshake (offering only the mechanism's version) failed: a protocol_version
    alert (RFC 8446 §6.2, RFC 5246 §7.2.2) means the server does not speak that version."""
    error = hs.error or ""
    if error.startswith("AlertReceived: protocol_version"):
        version = "TLS 1.3" if mechanism.tls13 else "TLS 1.2"
        return Reason.VERSION_NOT_ENABLED, f"{version} not enabled: the server answered {error}"
    return Reason.CONNECTION_FAILED, error


def classify(mechanism: Mechanism, offered: ClientSession, hs: Handshake) -> Outcome:
    """The outcome of offering ``offered`` in the connection ``hs``."""
    if not hs.ok:
        mismatch = _mismatch(offered, hs) if hs.hello is not None else None
        if mismatch is not None:  # e.g. a resumption with another EMS state, refused
            return Outcome(False, mismatch.reason, f"{mismatch.evidence}; then: {hs.error}")
        return Outcome(False, Reason.CONNECTION_FAILED, hs.error or "")
    if hs.resumed:
        how = f"resumed by {hs.resumed_by}"
        if hs.tickets:
            how += f"; {len(hs.tickets)} new ticket(s)"
        return Outcome(True, None, how)
    mismatch = _mismatch(offered, hs)
    if mismatch is not None:
        return mismatch
    new_tickets = len(hs.tickets)
    if mechanism.tls13:
        said = "the ServerHello has no pre_shared_key"
        if hs.hello_retry:
            said += " (after a HelloRetryRequest)"
        if new_tickets:
            said += f"; {new_tickets} new ticket(s) issued"
        return _ticket_not_used(offered, hs, said)
    hello = hs.hello
    assert hello is not None
    echo = f"we sent session id {short(hello.offered_session_id)}, the server answered " + (
        f"with {short(hello.session_id)}" if hello.session_id else "with an empty one"
    )
    if mechanism is Mechanism.TICKET:
        if new_tickets:
            echo += f" and sent a new ticket ({len(hs.tickets[-1].ticket)} bytes)"
        return _ticket_not_used(offered, hs, echo)
    return Outcome(False, Reason.SESSION_ID_UNKNOWN, echo)


def _ticket_not_used(offered: ClientSession, hs: Handshake, said: str) -> Outcome:
    """Our ticket was not used: what the tickets themselves tell about why."""
    ours = offered.ticket
    if len(ours) < MIN_RFC5077_LEN:
        return Outcome(
            False,
            Reason.STATEFUL_TICKET_UNKNOWN,
            f"{said}; our {len(ours)}-byte ticket is too short to carry a session: it is an id "
            "into the server's session cache, which did not have it",
        )
    if not hs.tickets:
        return Outcome(False, Reason.TICKET_IGNORED, f"{said}; no new ticket")
    prefix = ours[:KEY_NAME_LEN]
    if any(t.prefix == prefix for t in hs.tickets):
        return Outcome(
            False,
            Reason.SESSION_REFUSED,
            f"{said} under the key name of ours ({label(prefix)}): the server holds our "
            "ticket's key, yet did not resume it",
        )
    return Outcome(False, Reason.TICKET_REISSUED, said)


def _mismatch(offered: ClientSession, hs: Handshake) -> Outcome | None:
    """A session that could not be resumed here whatever the server keeps."""
    state = offered.state
    version = ProtocolVersion(state.version).label
    if hs.version != version:
        return Outcome(
            False,
            Reason.VERSION_OR_SUITE_CHANGED,
            f"the session is {version}, the server chose {hs.version}",
        )
    assert hs.cipher_suite is not None
    if state.version == ProtocolVersion.TLS1_2 and hs.cipher_suite != state.cipher_suite:
        return Outcome(
            False,
            Reason.VERSION_OR_SUITE_CHANGED,
            f"the session's suite is {_suite(state.cipher_suite)}, the server "
            f"chose {_suite(hs.cipher_suite)}",
        )
    if state.version == ProtocolVersion.TLS1_3:
        mine, theirs = BY_CODE.get(state.cipher_suite), BY_CODE.get(hs.cipher_suite)
        if mine is None or theirs is None or mine.prf_hash != theirs.prf_hash:
            return Outcome(
                False,
                Reason.VERSION_OR_SUITE_CHANGED,
                f"the ticket's suite is {_suite(state.cipher_suite)}, the server "
                f"chose {_suite(hs.cipher_suite)} (another hash)",
            )
    if state.server_name != hs.endpoint.sni:
        return Outcome(
            False,
            Reason.SNI_MISMATCH,
            f"the session is for SNI {state.server_name!r}, this connection sent "
            f"{hs.endpoint.sni!r}",
        )
    if state.version == ProtocolVersion.TLS1_2 and hs.hello is not None:
        ems_now = ExtensionType.extended_master_secret in hs.hello.extensions
        if ems_now != state.extended_master_secret:
            return Outcome(
                False,
                Reason.EMS_MISMATCH,
                f"the session {'has' if state.extended_master_secret else 'lacks'} "
                f"the extended master secret, this ServerHello "
                f"{'has' if ems_now else 'lacks'} it (RFC 7627 §5.3)",
            )
    return None

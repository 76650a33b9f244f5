"""Each resumption mechanism probed on one address: is it offered, does it resume N of N
times, what the server issues (lifetime hint, ticket size, tickets per connection), whether a
resumed connection renews its ticket, and the round trips and time of full vs resumed
handshakes. 0-RTT also gets a replay probe: the same first flight, byte for byte, sent twice.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..config import ClientConfig
from ..enums import ExtensionType, ProtocolVersion, PskKeyExchangeMode
from ..session.model import ClientSession
from .classify import Mechanism, Outcome, Reason, classify, failed
from .probe import Endpoint, Handshake, ProbeConfig, handshake, replay_configs

# Sent as 0-RTT data: harmless to an HTTP server (and echoed by an echo server).
EARLY_DATA = b"HEAD / HTTP/1.0\r\n\r\n"

Step = Callable[[str], None]


def config_for(mechanism: Mechanism) -> ClientConfig:
    """A client that can resume by ``mechanism`` only. Certificates are not validated: this
    audits resumption, not the certificate."""
    if mechanism in (Mechanism.SESSION_ID, Mechanism.TICKET):
        return ProbeConfig(
            verify=False,
            min_version=ProtocolVersion.TLS1_2,
            max_version=ProtocolVersion.TLS1_2,
            session_tickets=mechanism is Mechanism.TICKET,
        )
    psk_ke = mechanism is Mechanism.PSK_KE
    mode = PskKeyExchangeMode.psk_ke if psk_ke else PskKeyExchangeMode.psk_dhe_ke
    return ProbeConfig(
        verify=False,
        min_version=ProtocolVersion.TLS1_3,
        max_version=ProtocolVersion.TLS1_3,
        psk_ke=psk_ke,
        psk_modes=(mode,),
    )


def resumable(mechanism: Mechanism, hs: Handshake) -> list[ClientSession]:
    """The sessions ``hs`` gave that resume by ``mechanism`` alone, oldest first."""
    if mechanism is Mechanism.SESSION_ID:
        s = hs.session
        if s is None or not s.session_id or s.version != ProtocolVersion.TLS1_2:
            return []
        return [ClientSession(s.state, s.session_id, b"")]
    if mechanism is Mechanism.TICKET:
        # With a ticket the client sends a random session id (RFC 5077 §3.4): only the
        # ticket can resume.
        return [ClientSession(t.session.state, b"", t.ticket) for t in hs.tickets]
    return [t.session for t in hs.tickets if t.session.version == ProtocolVersion.TLS1_3]


def nothing_issued(mechanism: Mechanism, fulls: Sequence[Handshake]) -> tuple[Reason, str]:
    hs = next(h for h in fulls if h.ok)
    hello = hs.hello
    if mechanism is Mechanism.SESSION_ID:
        return Reason.NO_SESSION_ID_ISSUED, "the ServerHello's session id is empty"
    if mechanism is Mechanism.TICKET:
        if hello is not None and ExtensionType.session_ticket not in hello.extensions:
            return Reason.NO_TICKET_ISSUED, "the ServerHello has no session_ticket extension"
        return Reason.NO_TICKET_ISSUED, "the NewSessionTicket was empty"
    return Reason.NO_TICKET_ISSUED, "no NewSessionTicket after the handshake"


@dataclass(frozen=True, slots=True)
class Timing:
    """Handshakes of one kind: round trips (before the handshake completed, and before the
    client's application data could leave) and the median wall time."""

    samples: int
    round_trips: int | None
    data_round_trips: int | None
    median_ms: float | None
    median_connect_ms: float | None

    @classmethod
    def of(cls, handshakes: Sequence[Handshake]) -> Timing:
        ok = [h for h in handshakes if h.ok]
        if not ok:
            return cls(0, None, None, None, None)
        rtts = Counter(h.round_trips for h in ok).most_common(1)[0][0]
        data = Counter(0 if h.early_data == "accepted" else h.round_trips for h in ok)
        return cls(
            len(ok),
            rtts,
            data.most_common(1)[0][0],
            round(statistics.median(h.handshake_ms for h in ok), 2),
            round(statistics.median(h.connect_ms for h in ok), 2),
        )


@dataclass(frozen=True, slots=True)
class Issued:
    """What full handshakes issued to resume with."""

    session_id: bool | None = None  # TLS 1.2: a non-empty session id
    tickets_per_connection: int | None = None
    ticket_size: int | None = None
    lifetime_hint: int | None = None  # seconds, as announced (TLS 1.2: 0 = unspecified)
    max_early_data: int | None = None

    @classmethod
    def of(cls, mechanism: Mechanism, fulls: Sequence[Handshake]) -> Issued:
        ok = [h for h in fulls if h.ok]
        if not ok:
            return cls()
        if mechanism is Mechanism.SESSION_ID:
            return cls(session_id=any(h.hello and h.hello.session_id for h in ok))
        tickets = [t for h in ok for t in h.tickets]
        per = Counter(len(h.tickets) for h in ok).most_common(1)[0][0]
        if not tickets:
            return cls(tickets_per_connection=0)
        return cls(
            tickets_per_connection=per,
            ticket_size=Counter(len(t.ticket) for t in tickets).most_common(1)[0][0],
            lifetime_hint=tickets[-1].lifetime_hint,
            max_early_data=max(t.max_early_data for t in tickets) if mechanism.tls13 else None,
        )


@dataclass(frozen=True, slots=True)
class ReplayProbe:
    """0-RTT anti-replay: the first flight of an accepted 0-RTT connection sent again."""

    tested: bool
    first_accepted: bool
    replay_accepted: bool
    identical_first_flight: bool
    evidence: str


@dataclass(frozen=True, slots=True)
class MechanismResult:
    mechanism: Mechanism
    address: str
    supported: bool  # the server issued something this mechanism can resume with
    attempts: int
    resumed: int
    reason: Reason | None  # why not (the most common reason among failed attempts)
    evidence: str
    outcomes: tuple[Outcome, ...]
    issued: Issued
    renews: bool | None  # a resumed connection brought a new ticket
    renewed_tickets: int | None  # TLS 1.3: tickets per resumed connection
    extended_master_secret: bool | None
    version: str | None
    cipher_suite: str | None
    full: Timing
    resumed_timing: Timing
    replay: ReplayProbe | None = None
    handshakes: tuple[Handshake, ...] = field(default=(), repr=False)

    @property
    def verdict(self) -> str:
        if not self.supported:
            if self.reason is Reason.VERSION_NOT_ENABLED:
                return "not enabled"
            return "not offered" if self.reason is not Reason.CONNECTION_FAILED else "failed"
        if self.attempts and self.resumed == self.attempts:
            return "resumes"
        return "partly" if self.resumed else "does not resume"

    @property
    def passed(self) -> bool:
        return self.supported and self.attempts > 0 and self.resumed == self.attempts


def _headline(outcomes: Sequence[Outcome]) -> tuple[Reason | None, str]:
    failed = [o for o in outcomes if not o.resumed and o.reason is not None]
    if not failed:
        return None, outcomes[-1].evidence if outcomes else ""
    reason = Counter(o.reason for o in failed).most_common(1)[0][0]
    return reason, next(o.evidence for o in failed if o.reason is reason)


def _unsupported(
    mechanism: Mechanism,
    endpoint: Endpoint,
    fulls: list[Handshake],
    attempts: int,
    reason: Reason,
    evidence: str,
) -> MechanismResult:
    first = next((h for h in fulls if h.ok), None)
    return MechanismResult(
        mechanism,
        endpoint.label,
        False,
        attempts,
        0,
        reason,
        evidence,
        (),
        Issued.of(mechanism, fulls),
        None,
        None,
        first.extended_master_secret if first and not mechanism.tls13 else None,
        first.version if first else None,
        first.suite_name if first else None,
        Timing.of(fulls),
        Timing.of([]),
        None,
        tuple(fulls),
    )


def probe_mechanism(
    mechanism: Mechanism, endpoint: Endpoint, attempts: int, timeout: float
) -> MechanismResult:
    """``attempts`` full handshakes, then ``attempts`` resumptions, each offering the newest
    unused session as a client would (TLS 1.3 tickets once each)."""
    config = config_for(mechanism)
    fulls = [handshake(endpoint, config, timeout=timeout) for _ in range(attempts)]
    if not any(h.ok for h in fulls):
        return _unsupported(mechanism, endpoint, fulls, attempts, *failed(mechanism, fulls[0]))
    pool = [s for h in fulls for s in resumable(mechanism, h)]
    if not pool:
        return _unsupported(mechanism, endpoint, fulls, attempts, *nothing_issued(mechanism, fulls))
    tries: list[Handshake] = []
    outcomes: list[Outcome] = []
    for _ in range(attempts):
        if not pool:  # TLS 1.3 tickets used up: one more full handshake for more
            refill = handshake(endpoint, config, timeout=timeout)
            fulls.append(refill)
            pool = resumable(mechanism, refill)
            if not pool:
                break
        session = pool.pop() if mechanism.tls13 else pool[-1]
        hs = handshake(endpoint, config, session, timeout=timeout)
        tries.append(hs)
        outcomes.append(classify(mechanism, session, hs))
        pool.extend(resumable(mechanism, hs))
    return _result(mechanism, endpoint, attempts, fulls, tries, outcomes)


def _result(
    mechanism: Mechanism,
    endpoint: Endpoint,
    attempts: int,
    fulls: list[Handshake],
    tries: list[Handshake],
    outcomes: list[Outcome],
    replay: ReplayProbe | None = None,
) -> MechanismResult:
    reason, evidence = _headline(outcomes)
    resumed = [h for h, o in zip(tries, outcomes, strict=True) if o.resumed]
    renews: bool | None = None
    renewed: int | None = None
    if mechanism is not Mechanism.SESSION_ID and resumed:
        renewed = Counter(len(h.tickets) for h in resumed).most_common(1)[0][0]
        renews = any(h.tickets for h in resumed)
    first = next(h for h in fulls if h.ok)
    return MechanismResult(
        mechanism,
        endpoint.label,
        True,
        attempts,
        len(resumed),
        reason,
        evidence,
        tuple(outcomes),
        Issued.of(mechanism, fulls),
        renews,
        renewed if mechanism.tls13 else None,
        first.extended_master_secret if not mechanism.tls13 else None,
        first.version,
        first.suite_name,
        Timing.of(fulls),
        Timing.of(resumed),
        replay,
        (*fulls, *tries),
    )


def probe_early_data(endpoint: Endpoint, attempts: int, timeout: float) -> MechanismResult:
    """0-RTT on tickets that allow it, ``attempts`` times, then the replay probe."""
    mechanism = Mechanism.EARLY_DATA
    config = config_for(mechanism)
    fulls = [handshake(endpoint, config, timeout=timeout)]
    if not fulls[0].ok:
        return _unsupported(mechanism, endpoint, fulls, attempts, *failed(mechanism, fulls[0]))
    if not fulls[0].tickets:
        return _unsupported(mechanism, endpoint, fulls, attempts, *nothing_issued(mechanism, fulls))
    pool = _early_tickets(fulls[0])
    if not pool:
        return _unsupported(
            mechanism,
            endpoint,
            fulls,
            attempts,
            Reason.EARLY_DATA_REFUSED,
            "the tickets carry no early_data extension",
        )
    tries: list[Handshake] = []
    outcomes: list[Outcome] = []
    for _ in range(attempts + 1):  # the last ticket is the replay probe's
        if not pool:
            refill = handshake(endpoint, config, timeout=timeout)
            fulls.append(refill)
            pool = _early_tickets(refill)
            if not pool:
                break
        if len(tries) == attempts:
            break
        session = pool.pop()
        hs = handshake(
            endpoint,
            config,
            session,
            timeout=timeout,
            early_data=EARLY_DATA[: session.state.max_early_data],
        )
        tries.append(hs)
        outcomes.append(_early_outcome(session, hs))
        pool.extend(_early_tickets(hs))
    replay = _replay(endpoint, config, pool, timeout)
    return _result(mechanism, endpoint, attempts, fulls, tries, outcomes, replay)


def _early_tickets(hs: Handshake) -> list[ClientSession]:
    return [s for s in resumable(Mechanism.PSK, hs) if s.state.max_early_data > 0]


def _early_outcome(offered: ClientSession, hs: Handshake) -> Outcome:
    if hs.early_data == "accepted":
        return Outcome(True, None, "EncryptedExtensions has early_data: 0-RTT accepted")
    if hs.ok and hs.resumed:
        return Outcome(
            False,
            Reason.EARLY_DATA_REFUSED,
            "PSK accepted, but EncryptedExtensions has no early_data",
        )
    psk = classify(Mechanism.PSK, offered, hs)
    return Outcome(False, psk.reason, f"0-RTT refused with the PSK: {psk.evidence}")


def _replay(
    endpoint: Endpoint, config: ClientConfig, pool: list[ClientSession], timeout: float
) -> ReplayProbe:
    if not pool:
        return ReplayProbe(False, False, False, False, "no ticket left for the replay probe")
    session = pool.pop()
    first_config, again_config = replay_configs(config, time.time())
    data = EARLY_DATA[: session.state.max_early_data]
    first = handshake(endpoint, first_config, session, early_data=data, timeout=timeout)
    if first.early_data != "accepted":
        why = first.error or first.early_data
        return ReplayProbe(
            False,
            False,
            False,
            False,
            f"0-RTT was not accepted the first time ({why}): nothing to replay",
        )
    again = handshake(endpoint, again_config, session, early_data=data, timeout=timeout)
    identical = again.first_flight == first.first_flight
    accepted = again.early_data == "accepted"
    what = (
        "the same ClientHello and 0-RTT records, byte for byte"
        if identical
        else "the same ticket and early data (the ClientHello could not be reproduced)"
    )
    if accepted:
        evidence = f"{what}, sent again: the server ACCEPTED the early data twice"
    else:
        evidence = f"{what}, sent again: early data refused ({again.error or again.early_data})"
    return ReplayProbe(True, True, accepted, identical, evidence)


def refine_psk_ke(results: dict[Mechanism, MechanismResult]) -> None:
    """When psk_dhe_ke resumes this server's tickets but psk_ke alone does not, the reason is
    the mode (RFC 8446 §4.2.9), whatever else the server did."""
    dhe, ke = results.get(Mechanism.PSK), results.get(Mechanism.PSK_KE)
    if dhe is None or ke is None or not dhe.resumed or ke.resumed or not ke.supported:
        return
    evidence = f"psk_dhe_ke resumes this server's tickets; offered with psk_ke alone: {ke.evidence}"
    outcomes = tuple(
        Outcome(False, Reason.PSK_MODE_REFUSED, o.evidence)
        if o.reason in (Reason.TICKET_REISSUED, Reason.TICKET_IGNORED)
        else o
        for o in ke.outcomes
    )
    results[Mechanism.PSK_KE] = replace(
        ke, reason=Reason.PSK_MODE_REFUSED, evidence=evidence, outcomes=outcomes
    )

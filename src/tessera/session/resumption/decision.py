"""The frozen outcome of a resumption resolution, and the one copy of "can this session be
resumed here" shared by the TLS 1.2 server, the TLS 1.3 server and the client."""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

from ...enums import ProtocolVersion
from ..model import ServerSession
from .operations import StoreWrite
from .vocabulary import EarlyDataRefusal, FallbackReason, HandshakeKind, Mechanism


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
    # What the client will be given to resume with later: tickets (TLS 1.2: 0 or 1, promised in
    # the ServerHello; TLS 1.3: NewSessionTickets after the handshake) and, TLS 1.2, whether
    # its session goes to the store under a fresh session id.
    tickets: int = 0
    session_id_cached: bool = False

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
    def kind(self) -> HandshakeKind:
        """``full``, ``session_id``, ``ticket``, ``psk`` or ``psk_0rtt``."""
        return HandshakeKind.of(self.resumed_by, self.early_data_accepted)

    def describe(self) -> str:
        """One line for logs and status pages."""
        if self.resumed_by is not None:
            text = f"resumed by {self.resumed_by.value}"
            return text + (" with 0-RTT" if self.early_data_accepted else "")
        if self.fallback is not None and self.offered is not None:
            return f"full handshake; {self.offered.value} not resumed ({self.fallback.value})"
        return "full handshake; nothing offered to resume"


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

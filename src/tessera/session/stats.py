"""Resumption statistics, like OpenSSL's SSL_CTX_sess_* counters and CPython's session_stats().

:class:`SessionStats` is an observer (see :mod:`tessera.session.observer`): it counts the facts a
server reports. Every resumption attempt that falls back to a full handshake is counted with its
reason.
"""

from __future__ import annotations

import threading
from collections import Counter
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .resumption import ResumptionDecision


class FallbackReason(Enum):
    """Why an offered session or ticket did not resume."""

    UNKNOWN_SESSION_ID = "unknown session id"
    SESSION_EXPIRED = "session expired"
    TICKET_MALFORMED = "ticket malformed"
    TICKET_MAC_FAILED = "ticket MAC or decryption failed"
    TICKET_UNKNOWN_KEY = "ticket key name unknown"
    TICKET_EXPIRED = "ticket expired"
    VERSION_MISMATCH = "protocol version mismatch"
    CIPHER_MISMATCH = "cipher suite not offered"
    SNI_MISMATCH = "server name mismatch"
    EMS_MISMATCH = "extended master secret mismatch"
    ALPN_MISMATCH = "ALPN mismatch"
    CLIENT_CERT_MISMATCH = "client certificate requirement"
    PSK_BINDER_INVALID = "PSK binder invalid"
    PSK_AGE_INVALID = "ticket age outside the window"
    PSK_MODE_UNSUPPORTED = "no acceptable psk_key_exchange_mode"
    PSK_ALREADY_USED = "single-use ticket already used"
    STORE_UNAVAILABLE = "session store unavailable"
    STORE_VALUE_REJECTED = "store value rejected: sealed under another secret or altered"
    SESSION_CORRUPT = "stored session unreadable"
    RESUMPTION_DISABLED = "resumption disabled on this server"
    # The server renegotiates to ask for a client certificate, which only a full handshake can
    # do (OpenSSL's SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION).
    REFUSED_IN_RENEGOTIATION = "resumption refused in renegotiation"


_TICKET_FAILURES = frozenset(
    (
        FallbackReason.TICKET_MALFORMED,
        FallbackReason.TICKET_MAC_FAILED,
        FallbackReason.TICKET_UNKNOWN_KEY,
    )
)
_TIMEOUTS = frozenset((FallbackReason.SESSION_EXPIRED, FallbackReason.TICKET_EXPIRED))
_RENEGOTIATION_FACTS = {
    "RenegotiationCompleted": "renegotiations",
    "RenegotiationRefused": "renegotiations_refused",
    "PostHandshakeAuthCompleted": "post_handshake_auths",
}


class SessionStats:
    """Thread-safe counters shared by every connection of a server configuration."""

    COUNTERS = (
        "full_handshakes",  # handshakes that were not resumptions
        "resumed",  # all resumed handshakes
        "resumed_session_id",
        "resumed_ticket",
        "resumed_psk",
        "misses",  # an offered session id not found in the cache
        "timeouts",  # an offered session (id or ticket) past its lifetime
        "evictions",  # sessions dropped because the cache was full
        "ticket_failures",  # tickets that failed to open (MAC, decryption, format, key)
        "tickets_issued",
        "sessions_cached",
        "early_data_accepted",
        "early_data_rejected",
        "store_errors",  # store operations that raised (the handshake went on without them)
        "handshake_failures",  # connections that ended in a fatal alert during the handshake
        "renegotiations",  # TLS 1.2 renegotiations completed (also counted as handshakes)
        "renegotiations_refused",  # client-initiated or insecure renegotiations refused
        "post_handshake_auths",  # TLS 1.3 post-handshake client authentications completed
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._reasons: Counter[FallbackReason] = Counter()
        self._stores: list[object] = []

    def track_store(self, store: object) -> None:
        """Report a store's own ``evictions`` counter (cache full) in :meth:`snapshot`."""
        if hasattr(store, "evictions") and all(s is not store for s in self._stores):
            self._stores.append(store)

    # -- the observer ----------------------------------------------------------------------
    def observe(self, fact: object) -> None:
        # Dispatch on the class name: no imports here (this module is below the ones that
        # define the facts) and no chain of isinstance checks on every handshake.
        kind = type(fact).__name__
        if kind == "ResumptionDecision":
            self._decision(fact)  # type: ignore[arg-type]
        elif kind == "HandshakeCompleted":
            by = fact.info.resumed_by  # type: ignore[attr-defined]
            with self._lock:
                if by is None:
                    self._counts["full_handshakes"] += 1
                else:
                    self._counts["resumed"] += 1
                    self._counts["resumed_" + by] += 1
        elif kind == "TicketsIssued":
            self.incr("tickets_issued", fact.count)  # type: ignore[attr-defined]
        elif kind == "SessionCached":
            self.incr("sessions_cached")
        elif kind == "StoreFailed":
            self.incr("store_errors")
        elif kind == "HandshakeFailed" and fact.during_handshake:  # type: ignore[attr-defined]
            self.incr("handshake_failures")
        elif kind in _RENEGOTIATION_FACTS:
            self.incr(_RENEGOTIATION_FACTS[kind])

    def _decision(self, d: ResumptionDecision) -> None:
        reason = d.fallback
        with self._lock:
            counts = self._counts
            if reason is not None:
                self._reasons[reason] += 1
                if reason is FallbackReason.UNKNOWN_SESSION_ID:
                    # An unknown session id (a single-use TLS 1.3 ticket has its own reason).
                    counts["misses"] += d.offered is not None and d.offered.value == "session_id"
                elif reason in _TIMEOUTS:
                    counts["timeouts"] += 1
                elif reason in _TICKET_FAILURES:
                    counts["ticket_failures"] += 1
            if d.early_data_accepted:
                counts["early_data_accepted"] += 1
            elif d.early_data_offered:
                counts["early_data_rejected"] += 1

    # -- counting by hand ------------------------------------------------------------------
    def incr(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def fallback(self, reason: FallbackReason) -> None:
        with self._lock:
            self._reasons[reason] += 1

    def __getitem__(self, name: str) -> int:
        return self.snapshot()[name] if name == "evictions" else self._counts[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            counts = {name: self._counts[name] for name in self.COUNTERS}
        counts["evictions"] += sum(int(getattr(s, "evictions", 0)) for s in self._stores)
        return counts

    def fallback_reasons(self) -> dict[str, int]:
        with self._lock:
            return {r.value: n for r, n in self._reasons.items()}

    def reason_count(self, reason: FallbackReason) -> int:
        with self._lock:
            return self._reasons[reason]

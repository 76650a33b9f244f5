"""Resumption statistics, like OpenSSL's SSL_CTX_sess_* counters and CPython's session_stats().

:class:`SessionStats` is an observer (see :mod:`tessera.observe.facts`): it counts the facts a
server reports. Every resumption attempt that falls back to a full handshake is counted with its
reason.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import assert_never

from ..events import HandshakeCompleted, PostHandshakeAuthCompleted, RenegotiationCompleted
from ..observe.facts import (
    Fact,
    HandshakeFailed,
    NotIssued,
    RenegotiationRefused,
    SessionCached,
    StoreFailed,
    TicketsIssued,
)
from .resumption import FallbackReason, Mechanism, ResumptionDecision

__all__ = ["FallbackReason", "SessionStats"]

_TICKET_FAILURES = frozenset(
    (
        FallbackReason.TICKET_MALFORMED,
        FallbackReason.TICKET_MAC_FAILED,
        FallbackReason.TICKET_UNKNOWN_KEY,
    )
)
_TIMEOUTS = frozenset((FallbackReason.SESSION_EXPIRED, FallbackReason.TICKET_EXPIRED))
_RESUMED_BY = {m: f"resumed_{m.value}" for m in Mechanism}


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
        "tickets_not_issued",  # tickets not given: their store put failed, or no key could seal
        "ids_not_cached",  # TLS 1.2 sessions whose store put failed (the client's id is unknown)
        "observer_errors",  # observer calls that raised (counted and skipped by the guard)
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
        if isinstance(getattr(store, "evictions", None), int) and all(
            s is not store for s in self._stores
        ):
            self._stores.append(store)

    # -- the observer ----------------------------------------------------------------------
    def observe(self, fact: Fact) -> None:
        match fact:
            case ResumptionDecision():
                self._decision(fact)
            case HandshakeCompleted():
                self._completed(fact.info.resumed_by)
            case TicketsIssued():
                self.incr("tickets_issued", fact.count)
            case SessionCached():
                self.incr("sessions_cached")
            case NotIssued():
                self.incr("tickets_not_issued" if fact.what == "ticket" else "ids_not_cached",
                          fact.count)  # fmt: skip
            case StoreFailed():
                self.incr("store_errors")
            case HandshakeFailed():
                if fact.during_handshake:
                    self.incr("handshake_failures")
            case RenegotiationCompleted():
                self.incr("renegotiations")
            case RenegotiationRefused():
                self.incr("renegotiations_refused")
            case PostHandshakeAuthCompleted():
                self.incr("post_handshake_auths")
            case _:
                assert_never(fact)

    def _completed(self, by: Mechanism | None) -> None:
        with self._lock:
            if by is None:
                self._counts["full_handshakes"] += 1
            else:
                self._counts["resumed"] += 1
                self._counts[_RESUMED_BY[by]] += 1

    def _decision(self, d: ResumptionDecision) -> None:
        reason = d.fallback
        with self._lock:
            counts = self._counts
            if reason is not None:
                self._reasons[reason] += 1
                if reason is FallbackReason.UNKNOWN_SESSION_ID:
                    # An unknown session id (a single-use TLS 1.3 ticket has its own reason).
                    counts["misses"] += d.offered is Mechanism.SESSION_ID
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

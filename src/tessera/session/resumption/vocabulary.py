"""The words of resumption, one of each: how a session was offered or resumed, what kind of
handshake that made, why an offered session did not resume, why 0-RTT was refused.

``ConnectionInfo.resumed_by``, the server's decision, the statistics, the Prometheus labels, the
connection log and the auditor all use these enums (the string enums compare equal to their
values, so ``info.resumed_by == "ticket"`` reads as before).
"""

from __future__ import annotations

from enum import Enum, StrEnum


class Mechanism(StrEnum):
    """How a session was offered or resumed (``ConnectionInfo.resumed_by``)."""

    SESSION_ID = "session_id"  # TLS 1.2, the server's session cache (RFC 5246)
    TICKET = "ticket"  # TLS 1.2, RFC 5077
    PSK = "psk"  # TLS 1.3, a ticket's PSK (RFC 8446 §2.2)


class HandshakeKind(StrEnum):
    """What a completed handshake was: full, or resumed by which mechanism (``psk_0rtt``: a PSK
    resumption that accepted early data). The label of the handshake metrics and log lines."""

    FULL = "full"
    SESSION_ID = "session_id"
    TICKET = "ticket"
    PSK = "psk"
    PSK_0RTT = "psk_0rtt"

    @classmethod
    def of(cls, resumed_by: Mechanism | None, early_data: bool = False) -> HandshakeKind:
        if resumed_by is None:
            return cls.FULL
        if early_data and resumed_by is Mechanism.PSK:
            return cls.PSK_0RTT
        return cls(resumed_by.value)


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


class NotIssued(Enum):
    """Why a session id or ticket the server meant to hand out was not (nothing the client
    could not use is ever sent)."""

    STORE_FAILED = "the session store did not take it"
    NO_TICKET_KEY = "no ticket key can seal it"

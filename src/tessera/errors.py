"""The exception tree.

::

    TLSError
     ├─ LocalProtocolError   the API was misused; nothing was sent
     ├─ RemoteProtocolError  the peer broke the protocol; ``.alert`` is already queued
     │    ├─ DecodeError, UnexpectedMessage, IllegalParameter, BadRecordMac, ...
     ├─ AlertReceived        the peer sent a fatal alert (``.alert``)
     ├─ ConnectionClosedError the connection is closed or failed; no further use
     │    └─ HandshakeTruncated  end of stream before the handshake completed
     ├─ HandshakeTimeout     a front end gave up waiting for the peer
 ├─ StoreError           a session store could not answer (resumption falls back)
     │    └─ StoreValueRejected  its value does not open (another fleet secret, altered)
     ├─ IdleTimeout          a front end cut a connection the peer left idle
     └─ ConfigError          a configuration that cannot work

``AlertError`` is the common base of every error that carries an alert (sent or received), so
callers who only care about "which alert" catch that.

What can reach code through a socket (``TLSSocket``, ``wrap_socket``, ``TLSContext``) is also an
``OSError``, as ``ssl.SSLError`` is, so that code written for ``ssl`` (``socketserver``,
``http.server``, ``except OSError`` around a request) handles it: ``AlertError`` (an
``OSError``), ``ConnectionClosedError`` (a ``ConnectionError``), ``HandshakeTimeout`` and
``IdleTimeout`` (``TimeoutError``). Misuse of the API (``LocalProtocolError``) and
configuration errors stay plain ``TLSError``s: they are bugs to fix, not network events.
"""

from __future__ import annotations

from .enums import AlertDescription


class TLSError(Exception):
    """Base of every tessera error."""


class LocalProtocolError(TLSError):
    """The caller used the connection wrongly (for example sent data before the handshake)."""


class ConfigError(TLSError):
    """A configuration value that cannot work; the message says which and what to do."""


class ConnectionClosedError(TLSError, ConnectionError):
    """The connection is closed (or failed earlier) and can no longer be used (also a
    ``ConnectionError``, as ``ssl.SSLEOFError`` is an ``OSError``)."""


class StoreError(TLSError):
    """A session store could not answer (down, or too slow). Given as an answer to
    ``provide_session`` it means a full handshake, counted as "session store unavailable"."""


class StoreValueRejected(StoreError):
    """The store answered, but the value under the key does not open: sealed under another
    fleet secret, or altered. A full handshake, counted as "store value rejected"."""


class HandshakeTimeout(TLSError, TimeoutError):
    """The peer stopped sending in the middle of the handshake (also a ``TimeoutError``, as
    the standard library's handshake timeouts are)."""


class HandshakeTruncated(ConnectionClosedError):
    """The transport reached end of stream (``receive_data(b"")``) before the handshake
    completed: the peer gave up, crashed or was cut off."""


class IdleTimeout(TLSError, TimeoutError):
    """After the handshake the peer sent nothing usable (or read nothing) for too long (also a
    ``TimeoutError``)."""


class AlertError(TLSError, OSError):
    """An error that carries a TLS alert: one we sent, or one the peer sent (also an
    ``OSError``, as ``ssl.SSLError`` is)."""

    def __init__(self, alert: AlertDescription, message: str = "") -> None:
        self.alert = alert
        self.detail = message
        text = f"{alert.name} ({int(alert)})"
        super().__init__(f"{text}: {message}" if message else text)


class RemoteProtocolError(AlertError):
    """The peer violated the protocol. The fatal ``alert`` is already queued for sending."""

    default_alert: AlertDescription = AlertDescription.internal_error

    def __init__(self, message: str = "", alert: AlertDescription | None = None) -> None:
        super().__init__(alert if alert is not None else self.default_alert, message)


class DecodeError(RemoteProtocolError):
    default_alert = AlertDescription.decode_error


class UnexpectedMessage(RemoteProtocolError):
    default_alert = AlertDescription.unexpected_message


class IllegalParameter(RemoteProtocolError):
    default_alert = AlertDescription.illegal_parameter


class BadRecordMac(RemoteProtocolError):
    default_alert = AlertDescription.bad_record_mac


class RecordOverflow(RemoteProtocolError):
    default_alert = AlertDescription.record_overflow


class HandshakeFailure(RemoteProtocolError):
    default_alert = AlertDescription.handshake_failure


class ProtocolVersionError(RemoteProtocolError):
    default_alert = AlertDescription.protocol_version


class DecryptError(RemoteProtocolError):
    default_alert = AlertDescription.decrypt_error


class BadCertificate(RemoteProtocolError):
    """The peer's certificate failed validation (the alert says why: unknown_ca, expired...)."""

    default_alert = AlertDescription.bad_certificate


class MissingExtension(RemoteProtocolError):
    default_alert = AlertDescription.missing_extension


class UnsupportedExtension(RemoteProtocolError):
    default_alert = AlertDescription.unsupported_extension


class NoApplicationProtocol(RemoteProtocolError):
    default_alert = AlertDescription.no_application_protocol


class InsufficientSecurity(RemoteProtocolError):
    default_alert = AlertDescription.insufficient_security


class InappropriateFallback(RemoteProtocolError):
    default_alert = AlertDescription.inappropriate_fallback


class CertificateRequired(RemoteProtocolError):
    default_alert = AlertDescription.certificate_required


class InternalError(RemoteProtocolError):
    """Something went wrong on our side; the peer is told internal_error."""

    default_alert = AlertDescription.internal_error


class AlertReceived(AlertError):
    """The peer sent a fatal alert; ``alert`` is its description."""

    def __init__(self, alert: AlertDescription, message: str = "") -> None:
        super().__init__(alert, message or "the peer sent a fatal alert")

"""tessera: TLS 1.2/1.3 in Python, with session resumption you can see and control.

The public names are imported on first use (PEP 562), so that ``import tessera.cli.main`` (and
``tessera --help``) does not load the whole protocol stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .certs import CertifiedKey, generate_self_signed
    from .config import ClientAuth, ClientConfig, ServerConfig
    from .connection import ClientConnection, ServerConnection
    from .crypto.x509 import VerifyProfile
    from .enums import AlertDescription, ProtocolVersion
    from .errors import (
        AlertError,
        AlertReceived,
        ConfigError,
        ConnectionClosedError,
        HandshakeTimeout,
        HandshakeTruncated,
        IdleTimeout,
        LocalProtocolError,
        RemoteProtocolError,
        StoreError,
        TLSError,
    )
    from .events import (
        ApplicationData,
        ConnectionClosed,
        ConnectionInfo,
        EarlyDataRejected,
        HandshakeCompleted,
        KeyUpdated,
        PostHandshakeAuthCompleted,
        RenegotiationCompleted,
        RenegotiationDeclined,
        ResumptionDecided,
        ServerHelloReceived,
        SessionLookupRequired,
        SessionStoreUpdate,
        SessionTicketReceived,
    )
    from .io.blocking import TLSServer, TLSSocket
    from .io.stdlib import TLSContext, wrap_socket
    from .observe.facts import ResumptionObserver
    from .session.client_cache import ClientSessionCache
    from .session.keyring import KeyFileFormat, TicketKey, TicketKeyring, TicketKeySource
    from .session.model import ClientSession, ServerSession
    from .session.resumption import EarlyDataRefusal, Mechanism, ResumptionDecision
    from .session.sealer import Rfc5077Sealer, TicketSealer
    from .session.stats import FallbackReason, SessionStats
    from .session.store import MemoryStore, SessionStore

__version__ = "0.1.0"

_WHERE = {
    "CertifiedKey": "certs",
    "generate_self_signed": "certs",
    "ClientAuth": "config",
    "ClientConfig": "config",
    "ServerConfig": "config",
    "ClientConnection": "connection",
    "ServerConnection": "connection",
    "VerifyProfile": "crypto.x509",
    "AlertDescription": "enums",
    "ProtocolVersion": "enums",
    "AlertError": "errors",
    "AlertReceived": "errors",
    "ConfigError": "errors",
    "ConnectionClosedError": "errors",
    "HandshakeTimeout": "errors",
    "IdleTimeout": "errors",
    "LocalProtocolError": "errors",
    "RemoteProtocolError": "errors",
    "StoreError": "errors",
    "TLSError": "errors",
    "ApplicationData": "events",
    "ConnectionClosed": "events",
    "ConnectionInfo": "events",
    "EarlyDataRejected": "events",
    "HandshakeCompleted": "events",
    "KeyUpdated": "events",
    "PostHandshakeAuthCompleted": "events",
    "RenegotiationCompleted": "events",
    "RenegotiationDeclined": "events",
    "ResumptionDecided": "events",
    "ServerHelloReceived": "events",
    "SessionLookupRequired": "events",
    "SessionStoreUpdate": "events",
    "SessionTicketReceived": "events",
    "TLSServer": "io.blocking",
    "TLSSocket": "io.blocking",
    "ClientSessionCache": "session.client_cache",
    "KeyFileFormat": "session.keyring",
    "TicketKey": "session.keyring",
    "TicketKeyring": "session.keyring",
    "TicketKeySource": "session.keyring",
    "ClientSession": "session.model",
    "ServerSession": "session.model",
    "ResumptionObserver": "observe.facts",
    "EarlyDataRefusal": "session.resumption",
    "Mechanism": "session.resumption",
    "ResumptionDecision": "session.resumption",
    "Rfc5077Sealer": "session.sealer",
    "TicketSealer": "session.sealer",
    "FallbackReason": "session.stats",
    "SessionStats": "session.stats",
    "MemoryStore": "session.store",
    "SessionStore": "session.store",
    "HandshakeTruncated": "errors",
    "TLSContext": "io.stdlib",
    "wrap_socket": "io.stdlib",
}

__all__ = [
    "AlertDescription",
    "AlertError",
    "AlertReceived",
    "ApplicationData",
    "CertifiedKey",
    "ClientAuth",
    "ClientConfig",
    "ClientConnection",
    "ClientSession",
    "ClientSessionCache",
    "ConfigError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionInfo",
    "EarlyDataRefusal",
    "EarlyDataRejected",
    "FallbackReason",
    "HandshakeCompleted",
    "HandshakeTimeout",
    "HandshakeTruncated",
    "IdleTimeout",
    "KeyFileFormat",
    "KeyUpdated",
    "LocalProtocolError",
    "Mechanism",
    "MemoryStore",
    "PostHandshakeAuthCompleted",
    "ProtocolVersion",
    "RemoteProtocolError",
    "RenegotiationCompleted",
    "RenegotiationDeclined",
    "ResumptionDecided",
    "ResumptionDecision",
    "ResumptionObserver",
    "Rfc5077Sealer",
    "ServerConfig",
    "ServerConnection",
    "ServerHelloReceived",
    "ServerSession",
    "SessionLookupRequired",
    "SessionStats",
    "SessionStore",
    "SessionStoreUpdate",
    "SessionTicketReceived",
    "StoreError",
    "TLSContext",
    "TLSError",
    "TLSServer",
    "TLSSocket",
    "TicketKey",
    "TicketKeySource",
    "TicketKeyring",
    "TicketSealer",
    "VerifyProfile",
    "generate_self_signed",
    "wrap_socket",
]


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tessera' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])

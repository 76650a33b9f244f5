"""tessera: TLS 1.2/1.3 in Python, with session resumption you can see and control."""

from .certs import CertifiedKey, generate_self_signed
from .config import ClientAuth, ClientConfig, ServerConfig
from .connection import ClientConnection, ServerConnection
from .enums import AlertDescription, ProtocolVersion
from .errors import (
    AlertError,
    AlertReceived,
    ConfigError,
    ConnectionClosedError,
    HandshakeTimeout,
    HandshakeTruncated,
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
    ResumptionDecided,
    SessionLookupRequired,
    SessionStoreUpdate,
    SessionTicketReceived,
)
from .io.blocking import TLSServer, TLSSocket
from .io.stdlib import TLSContext, wrap_socket
from .session.client_cache import ClientSessionCache
from .session.keyring import KeyFileFormat, TicketKey, TicketKeyring, TicketKeySource
from .session.model import ClientSession, ServerSession
from .session.observer import ResumptionObserver
from .session.resumption import EarlyDataRefusal, Mechanism, ResumptionDecision
from .session.sealer import Rfc5077Sealer, TicketSealer
from .session.stats import FallbackReason, SessionStats
from .session.store import MemoryStore, SessionStore

__version__ = "0.1.0"

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
    "KeyFileFormat",
    "KeyUpdated",
    "LocalProtocolError",
    "Mechanism",
    "MemoryStore",
    "ProtocolVersion",
    "RemoteProtocolError",
    "ResumptionDecided",
    "ResumptionDecision",
    "ResumptionObserver",
    "Rfc5077Sealer",
    "ServerConfig",
    "ServerConnection",
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
    "generate_self_signed",
    "wrap_socket",
]

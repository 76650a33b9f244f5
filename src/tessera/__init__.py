"""tessera: TLS 1.2/1.3 in Python, with session resumption you can see and control."""

from .certs import CertifiedKey
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
    LocalProtocolError,
    RemoteProtocolError,
    TLSError,
)
from .events import (
    ApplicationData,
    ConnectionClosed,
    ConnectionInfo,
    EarlyDataRejected,
    HandshakeCompleted,
    KeyUpdated,
    SessionTicketReceived,
)
from .io.blocking import TLSServer, TLSSocket
from .session.client_cache import ClientSessionCache
from .session.keyring import KeyFileFormat, TicketKey, TicketKeyring
from .session.model import ClientSession, ServerSession
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
    "EarlyDataRejected",
    "FallbackReason",
    "HandshakeCompleted",
    "HandshakeTimeout",
    "KeyFileFormat",
    "KeyUpdated",
    "LocalProtocolError",
    "MemoryStore",
    "ProtocolVersion",
    "RemoteProtocolError",
    "ServerConfig",
    "ServerConnection",
    "ServerSession",
    "SessionStats",
    "SessionStore",
    "SessionTicketReceived",
    "TLSError",
    "TLSServer",
    "TLSSocket",
    "TicketKey",
    "TicketKeyring",
    "VerifyProfile",
]

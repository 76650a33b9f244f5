"""Handshake messages, extensions and alerts: frozen dataclasses with one codec."""

from .base import decode_message, encode_handshake
from .certificate import (
    Certificate12,
    Certificate13,
    CertificateEntry,
    CertificateRequest12,
    CertificateRequest13,
    CertificateVerify,
)
from .hello import (
    ClientHello,
    ServerHello,
    extensions_block,
    server_hello13_extensions,
    server_hello_bytes,
)
from .key_exchange import (
    ClientKeyExchangeECDHE,
    ClientKeyExchangeRSA,
    EndOfEarlyData,
    HelloRequest,
    ServerHelloDone,
    ServerKeyExchangeECDHE,
)
from .misc import (
    Alert,
    EncryptedExtensions,
    Finished,
    KeyUpdate,
    NewSessionTicket12,
    NewSessionTicket13,
    finished_bytes,
    new_session_ticket13_bytes,
)

__all__ = [
    "Alert",
    "Certificate12",
    "Certificate13",
    "CertificateEntry",
    "CertificateRequest12",
    "CertificateRequest13",
    "CertificateVerify",
    "ClientHello",
    "ClientKeyExchangeECDHE",
    "ClientKeyExchangeRSA",
    "EncryptedExtensions",
    "EndOfEarlyData",
    "Finished",
    "HelloRequest",
    "KeyUpdate",
    "NewSessionTicket12",
    "NewSessionTicket13",
    "ServerHello",
    "ServerHelloDone",
    "ServerKeyExchangeECDHE",
    "decode_message",
    "encode_handshake",
    "extensions_block",
    "finished_bytes",
    "new_session_ticket13_bytes",
    "server_hello13_extensions",
    "server_hello_bytes",
]

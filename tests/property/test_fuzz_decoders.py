"""Arbitrary and mutated bytes into every decoder: a typed protocol error or a value, nothing else.

Errors must be ``RemoteProtocolError`` subclasses that carry the alert the peer would get
(decode_error, illegal_parameter), never IndexError / struct.error / ValueError / AssertionError,
and never InternalError (which the connection uses for bugs).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tessera import ClientSession, ServerSession, TicketKey, TicketKeyring
from tessera.codec import Reader
from tessera.errors import InternalError, RemoteProtocolError
from tessera.messages import (
    Alert,
    Certificate12,
    Certificate13,
    CertificateRequest12,
    CertificateRequest13,
    CertificateVerify,
    ClientHello,
    ClientKeyExchangeECDHE,
    ClientKeyExchangeRSA,
    EncryptedExtensions,
    Finished,
    HelloRequest,
    KeyUpdate,
    NewSessionTicket12,
    NewSessionTicket13,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchangeECDHE,
    decode_message,
    encode_handshake,
)
from tessera.messages import extensions as X
from tessera.session.model import SessionDecodeError
from tessera.session.sealer import Opened, Rfc5077Sealer
from tessera.session.stats import FallbackReason

from .strategies import messages

SETTINGS = settings(max_examples=200, deadline=None)
DECODERS: list[Any] = [
    ClientHello,
    ServerHello,
    Certificate12,
    Certificate13,
    CertificateRequest12,
    CertificateRequest13,
    CertificateVerify,
    ServerKeyExchangeECDHE,
    ClientKeyExchangeECDHE,
    ClientKeyExchangeRSA,
    ServerHelloDone,
    HelloRequest,
    Finished,
    NewSessionTicket12,
    NewSessionTicket13,
    EncryptedExtensions,
    KeyUpdate,
]
REGISTRIES = [X.CLIENT_HELLO, X.SERVER_HELLO, X.HELLO_RETRY_REQUEST, X.ENCRYPTED_EXTENSIONS,
              X.CERTIFICATE_REQUEST_13, X.NEW_SESSION_TICKET_13]  # fmt: skip
VECTORS = Path(__file__).resolve().parents[1] / "vectors"
GOLDEN_CH = (VECTORS / "openssl_s_client_hello.bin").read_bytes()[9:]


def only_protocol_errors(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except RemoteProtocolError as e:
        assert not isinstance(e, InternalError), e
        assert e.alert is not None
        return None


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """A valid encoding with a few random edits: flips, insertions, deletions, truncation."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and data:
            del data[pos]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


@SETTINGS
@given(st.sampled_from(DECODERS), st.binary(max_size=300))
def test_arbitrary_bytes_into_message_decoders(cls: Any, body: bytes) -> None:
    msg = only_protocol_errors(decode_message, cls, body)
    # Whatever decodes re-encodes to the same bytes (a ClientHello's server_name may drop
    # name types other than host_name, so it is exempt).
    if msg is not None and cls is not ClientHello:
        assert encode_handshake(msg)[4:] == body


@SETTINGS
@given(mutated(messages.map(lambda m: encode_handshake(m)[4:])), st.sampled_from(DECODERS))
def test_mutated_messages_into_every_decoder(body: bytes, cls: Any) -> None:
    only_protocol_errors(decode_message, cls, body)


@SETTINGS
@given(mutated(st.just(GOLDEN_CH)))
def test_mutated_openssl_client_hello(body: bytes) -> None:
    ch = only_protocol_errors(decode_message, ClientHello, body)
    if ch is not None:
        assert decode_message(ClientHello, encode_handshake(ch)[4:]) == ch


@SETTINGS
@given(st.sampled_from(REGISTRIES), st.binary(max_size=200))
def test_arbitrary_extension_blocks(registry: Any, data: bytes) -> None:
    only_protocol_errors(X.decode_extensions, Reader(data), registry)


@SETTINGS
@given(st.binary(max_size=4))
def test_arbitrary_alerts(data: bytes) -> None:
    only_protocol_errors(Alert.decode, data)


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_sessions(data: bytes) -> None:
    for cls in (ServerSession, ClientSession):
        with contextlib.suppress(SessionDecodeError):
            cls.from_bytes(data)


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_client_session_pem(data: bytes) -> None:
    import base64

    text = (
        "-----BEGIN TESSERA SESSION-----\n"
        + base64.encodebytes(data).decode()
        + "-----END TESSERA SESSION-----\n"
    )
    with contextlib.suppress(SessionDecodeError):
        ClientSession.from_pem(text)


KEYRING = TicketKeyring([TicketKey(b"K" * 16, b"h" * 32, b"a" * 32)])


@SETTINGS
@given(st.one_of(st.binary(max_size=300), st.binary(max_size=200).map(lambda b: b"K" * 16 + b)))
def test_arbitrary_tickets(ticket: bytes) -> None:
    result = Rfc5077Sealer(KEYRING).open(ticket)
    assert isinstance(result, FallbackReason | Opened)
    assert not isinstance(result, Opened)  # forging needs the MAC key

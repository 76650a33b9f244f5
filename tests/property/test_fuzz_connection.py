"""Arbitrary input to a connection raises only typed protocol errors (or nothing).

A ``RemoteProtocolError`` must not be an ``InternalError`` (the connection's wrapper for bugs),
its fatal alert must be the last record queued, and the connection must then refuse further
use. ``AlertReceived`` is also a legitimate outcome: the bytes may spell a fatal alert.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pair.helpers import Certs, Direction, World, parse_records
from tessera import AlertReceived, ClientConnection, ConnectionClosedError, ServerConnection
from tessera.enums import AlertLevel, ContentType
from tessera.errors import InternalError, RemoteProtocolError

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
VECTORS = Path(__file__).resolve().parents[1] / "vectors"
OPENSSL_CH = (VECTORS / "openssl_s_client_hello.bin").read_bytes()


def check_outcome(
    conn: ServerConnection | ClientConnection, data: bytes, chunks: list[int]
) -> None:
    pos = 0
    if not data:
        return  # b"" is end of stream (tests/pair/test_eof.py), not input
    try:
        for size in [*chunks, len(data)]:
            conn.receive_data(data[pos : pos + size])
            pos += size
            if pos >= len(data):
                break
    except RemoteProtocolError as e:
        assert not isinstance(e, InternalError), f"a bug surfaced as internal_error: {e!r}"
        assert e.__cause__ is None or isinstance(e.__cause__, RemoteProtocolError), repr(
            e.__cause__
        )
        out = conn.data_to_send()
        last = parse_records(out)[-1]
        assert last.content_type == ContentType.ALERT
        if len(last.fragment) == 2:
            assert last.fragment == bytes((AlertLevel.FATAL, e.alert))
        try:
            conn.receive_data(b"\x16\x03\x03\x00\x00")
        except ConnectionClosedError:
            pass
        else:
            raise AssertionError("the connection accepted data after an error") from None
    except AlertReceived:
        assert conn.failed
    else:
        parse_records(conn.data_to_send())  # whatever it queued is well-formed records


record_types = st.one_of(st.sampled_from([20, 21, 22, 23]), st.integers(0, 255))
versions = st.one_of(st.sampled_from([0x0301, 0x0303]), st.integers(0, 0xFFFF))


@st.composite
def records(draw: st.DrawFn, payloads: st.SearchStrategy[bytes]) -> bytes:
    out = b""
    for _ in range(draw(st.integers(1, 4))):
        ctype = draw(record_types)
        version = draw(versions)
        payload = draw(payloads)
        length = draw(st.one_of(st.just(len(payload)), st.integers(0, 0xFFFF)))
        out += bytes((ctype, version >> 8, version & 0xFF)) + length.to_bytes(2, "big") + payload
    return out


@st.composite
def handshake_payloads(draw: st.DrawFn) -> bytes:
    msg_type = draw(st.one_of(st.integers(0, 25), st.integers(0, 255)))
    body = draw(st.binary(max_size=120))
    length = draw(st.one_of(st.just(len(body)), st.integers(0, 0xFFFFFF)))
    return bytes((msg_type,)) + length.to_bytes(3, "big") + body


@st.composite
def mutated_client_hello(draw: st.DrawFn) -> bytes:
    data = bytearray(OPENSSL_CH)
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        del data[draw(st.integers(5, len(data))) :]
    return bytes(data)


inputs = st.one_of(
    st.binary(max_size=400),
    records(st.binary(max_size=60)),
    records(handshake_payloads()),
    mutated_client_hello(),
)
chunkings = st.lists(st.integers(1, 64), max_size=6)


@SETTINGS
@given(data=inputs, chunks=chunkings)
def test_server_fed_arbitrary_bytes(certs: Certs, data: bytes, chunks: list[int]) -> None:
    conn = ServerConnection(World(certs).server_config())
    check_outcome(conn, data, chunks)


@SETTINGS
@given(data=inputs, chunks=chunkings)
def test_client_waiting_for_server_hello(certs: Certs, data: bytes, chunks: list[int]) -> None:
    conn = ClientConnection(World(certs).client_config(), "localhost")
    conn.start_handshake()
    conn.data_to_send()
    check_outcome(conn, data, chunks)


def _stage(certs: Certs, which: str) -> Any:
    """A pair whose ``which`` side waits for the next plaintext flight of the handshake."""
    w = World(certs)
    p = w.pair()
    p.start()
    p.deliver(Direction.C2S)
    if which == "client":
        p.intercept(Direction.S2C)  # drop the server's flight: the client waits for it
        return p.client
    p.deliver(Direction.S2C)
    p.intercept(Direction.C2S)  # drop the client's second flight
    return p.server


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(["client", "server"]),
    data=st.one_of(records(handshake_payloads()), records(st.binary(max_size=80))),
)
def test_mid_handshake_arbitrary_records(certs: Certs, which: str, data: bytes) -> None:
    check_outcome(_stage(certs, which), data, [])

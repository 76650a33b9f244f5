"""ServerSession / ClientSession: one versioned binary encoding, corrupt input refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tessera import ClientSession, ServerSession
from tessera.session.model import SessionDecodeError

TLS12 = ServerSession(
    version=0x0303,
    cipher_suite=0xC02B,
    secret=bytes(range(48)),
    extended_master_secret=True,
    created=1_700_000_000.123,
    lifetime=7200,
    server_name="localhost",
)


def test_tls12_localhost_is_at_most_74_bytes() -> None:
    data = TLS12.to_bytes()
    assert len(data) <= 74
    assert len(data) == 1 + 1 + 2 + 1 + 6 + 4 + 48 + 1 + len("localhost") + 1


def test_layout() -> None:
    data = TLS12.to_bytes()
    assert data[0] == 1  # format
    assert data[1] == 3  # TLS 1.2 minor version
    assert data[2:4] == b"\xc0\x2b"
    assert data[4] == 1  # EMS flag only
    assert int.from_bytes(data[5:11], "big") == 1_700_000_000_123  # milliseconds
    assert int.from_bytes(data[11:15], "big") == 7200
    assert data[15:63] == bytes(range(48))


@pytest.mark.parametrize(
    "session",
    [
        TLS12,
        replace(TLS12, extended_master_secret=False, server_name=None),
        replace(TLS12, alpn=b"h2", peer_chain=(b"\x30\x03\x02\x01\x01", b"\x30\x00")),
        replace(TLS12, cipher_suite=0xC030, created=0.0, lifetime=0),
        ServerSession(
            0x0304, 0x1302, bytes(48), False, 1.5, 600, "a.example", b"h2", (), 0xDEADBEEF, 16384
        ),
        ServerSession(0x0304, 0x1301, bytes(32), False, 1.5, 600),
    ],
)
def test_round_trip(session: ServerSession) -> None:
    data = session.to_bytes()
    back = ServerSession.from_bytes(data)
    assert back == session
    assert back.to_bytes() == data


def test_created_keeps_millisecond_precision() -> None:
    back = ServerSession.from_bytes(replace(TLS12, created=1_700_000_012.3456).to_bytes())
    assert back.created == pytest.approx(1_700_000_012.346, abs=1e-6)  # nearest millisecond


@pytest.mark.parametrize("ms", [1001, 1003, 4_350, 1_700_000_000_123])
def test_whole_milliseconds_are_encoded_exactly(ms: int) -> None:
    """A creation time that is a whole number of milliseconds (as every decoded session's is)
    must encode to exactly that many milliseconds, so decode/encode is stable (a re-sealed
    ticket keeps its creation time). ``int(created * 1000)`` truncates 1.001 * 1000 =
    1000.9999999999999 to 1000."""
    data = replace(TLS12, created=ms / 1000).to_bytes()
    assert int.from_bytes(data[5:11], "big") == ms
    assert ServerSession.from_bytes(data).to_bytes() == data


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: b"",
        lambda d: d[:-1],
        lambda d: d + b"\x00",
        lambda d: b"\x02" + d[1:],  # unknown format
        lambda d: d[:1] + b"\x02" + d[2:],  # TLS 1.1
        lambda d: d[:2] + b"\x13\x01" + d[4:],  # a TLS 1.3 suite in a TLS 1.2 session
        lambda d: d[:2] + b"\x12\x34" + d[4:],  # unknown suite
        lambda d: d[:4] + b"\x02" + d[5:],  # claims a peer chain that is not there
        lambda d: d[:-10] + b"\xff" + d[-9:],  # SNI not ASCII
    ],
)
def test_corrupt_server_session(mangle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SessionDecodeError):
        ServerSession.from_bytes(mangle(TLS12.to_bytes()))


def test_every_truncation_is_session_decode_error() -> None:
    data = replace(TLS12, alpn=b"h2", peer_chain=(b"\x30\x00",)).to_bytes()
    for n in range(len(data)):
        with pytest.raises(SessionDecodeError):
            ServerSession.from_bytes(data[:n])


def test_expiry() -> None:
    s = replace(TLS12, created=1000.0, lifetime=100)
    assert not s.expired(1000.0) and not s.expired(1099.9)
    assert s.expired(1100.0)
    assert s.expired(900.0)  # created "in the future": a clock that jumped, or a forged time
    assert not s.expired(950.0)
    assert s.remaining(1030.4) == 70  # whole seconds, rounded up
    assert s.remaining(5000.0) == 0


CLIENT = ClientSession(TLS12, b"\x01" * 32, b"ticket bytes")


@pytest.mark.parametrize(
    "session",
    [
        CLIENT,
        ClientSession(TLS12),
        ClientSession(TLS12, b"", b"t" * 1000),
        ClientSession(TLS12, b"\x02" * 32),
    ],
)
def test_client_session_round_trip(session: ClientSession) -> None:
    data = session.to_bytes()
    assert ClientSession.from_bytes(data) == session
    assert ClientSession.from_pem(session.to_pem()) == session
    assert session.to_pem().startswith("-----BEGIN TESSERA SESSION-----\n")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: d[:-1],
        lambda d: d + b"\x00",
        lambda d: b"\x09" + d[1:],
        lambda d: b"\x01\x21" + bytes(33) + d[34:],  # session id of 33 bytes
        lambda d: d[:1],
    ],
)
def test_corrupt_client_session(mangle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SessionDecodeError):
        ClientSession.from_bytes(mangle(CLIENT.to_bytes()))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-----BEGIN TESSERA SESSION-----\n!!!!\n-----END TESSERA SESSION-----\n",
        "-----BEGIN TESSERA SESSION-----\nAAAA\n-----END TESSERA SESSION-----\n",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ],
)
def test_corrupt_pem(text: str) -> None:
    with pytest.raises(SessionDecodeError):
        ClientSession.from_pem(text)


def test_with_ticket_restarts_lifetime() -> None:
    s = CLIENT.with_ticket(b"new", 300, 5000.0)
    assert s.ticket == b"new" and s.session_id == CLIENT.session_id
    assert s.state.created == 5000.0 and s.state.lifetime == 300
    assert s.state.secret == CLIENT.state.secret
    assert s.expired(5300.0) and not s.expired(5299.0)
    assert (s.version, s.cipher_suite) == (0x0303, 0xC02B)


def test_secret_not_in_repr() -> None:
    assert bytes(range(48)).hex() not in repr(TLS12)

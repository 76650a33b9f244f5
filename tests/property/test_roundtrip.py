"""Round trips: decode(encode(x)) == x, and the bytes survive a second encoding unchanged."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tessera import ClientSession, ServerSession
from tessera.codec import Reader, Writer
from tessera.crypto.suites import ALL_SUITES
from tessera.messages import Alert, decode_message, encode_handshake
from tessera.messages import extensions as X

from .strategies import alerts, client_hello_extensions, messages, opaque, server_hello_extensions

SETTINGS = settings(max_examples=200, deadline=None)


@SETTINGS
@given(messages)
def test_message_round_trip(msg: Any) -> None:
    raw = encode_handshake(msg)
    assert raw[0] == msg.msg_type
    assert int.from_bytes(raw[1:4], "big") == len(raw) - 4
    back = decode_message(type(msg), raw[4:])
    assert back == msg
    assert encode_handshake(back) == raw


@SETTINGS
@given(client_hello_extensions)
def test_client_hello_extension_block_round_trip(exts: tuple[Any, ...]) -> None:
    w = Writer()
    X.encode_extensions(w, exts)
    r = Reader(w.getvalue())
    assert X.decode_extensions(r, X.CLIENT_HELLO) == exts
    r.expect_empty()


@SETTINGS
@given(server_hello_extensions)
def test_server_hello_extension_block_round_trip(exts: tuple[Any, ...]) -> None:
    w = Writer()
    X.encode_extensions(w, exts)
    assert X.decode_extensions(Reader(w.getvalue()), X.SERVER_HELLO) == exts


@SETTINGS
@given(alerts)
def test_alert_round_trip(alert: Alert) -> None:
    assert Alert.decode(alert.to_bytes()) == alert


# Creation times as the codec keeps them: whole milliseconds of a realistic clock.
created_times = st.integers(1_500_000_000_000, 2**47 - 1).map(lambda ms: ms / 1000)
tls12_suites = st.sampled_from([s.code for s in ALL_SUITES if not s.is_tls13])
tls13_suites = st.sampled_from([s for s in ALL_SUITES if s.is_tls13])

server_sessions = st.one_of(
    st.builds(
        ServerSession,
        st.just(0x0303),
        tls12_suites,
        st.binary(min_size=48, max_size=48),
        st.booleans(),
        created_times,
        st.integers(0, 2**32 - 1),
        st.one_of(
            st.none(), st.text("abcdefghijklmnopqrstuvwxyz.-0123456789", min_size=1, max_size=255)
        ),
        st.one_of(st.none(), opaque(1, 255)),
        st.lists(opaque(1, 80), max_size=3).map(tuple),
    ),
    tls13_suites.flatmap(
        lambda s: st.builds(
            ServerSession,
            st.just(0x0304),
            st.just(s.code),
            st.binary(min_size=s.hash_len, max_size=s.hash_len),
            st.booleans(),
            created_times,
            st.integers(0, 2**32 - 1),
            st.none(),
            st.none(),
            st.just(()),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1),
        )
    ),
)


# Found by Hypothesis: 2148134615798 ms encodes as ...797 (int() of 2148134615.798 * 1000).
Y2038 = ServerSession(0x0303, 0xC02B, bytes(48), False, 2148134615.798, 0)


@SETTINGS
@example(Y2038)
@given(server_sessions)
def test_server_session_round_trip(session: ServerSession) -> None:
    data = session.to_bytes()
    assert ServerSession.from_bytes(data) == session
    assert ServerSession.from_bytes(data).to_bytes() == data


@SETTINGS
@example(Y2038, b"", b"")
@given(server_sessions, opaque(0, 32), opaque(0, 300))
def test_client_session_round_trip(state: ServerSession, sid: bytes, ticket: bytes) -> None:
    session = ClientSession(state, sid, ticket)
    assert ClientSession.from_bytes(session.to_bytes()) == session
    assert ClientSession.from_pem(session.to_pem()) == session

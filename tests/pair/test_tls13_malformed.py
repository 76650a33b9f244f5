"""Malformed and unexpected TLS 1.3 input. Protected handshake flights are opened with the key
log, rewritten and sealed again, so messages can be reordered, dropped or injected under the
right keys. Every failure must be an AlertError subclass with its fatal alert queued (plaintext,
or protected and read back by the peer)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tessera import ClientAuth
from tessera.enums import AlertDescription, ContentType, HandshakeType, NamedGroup
from tessera.errors import (
    BadRecordMac,
    DecodeError,
    IllegalParameter,
    MissingExtension,
    UnexpectedMessage,
    UnsupportedExtension,
)
from tessera.messages import EncryptedExtensions, ServerHello
from tessera.messages import extensions as X

from .helpers import (
    ConnectionPair,
    Direction,
    Message,
    Record,
    World,
    record,
    rewrite,
)
from .test_tls13_support import (
    AES128,
    KeyLog,
    client13,
    expect_alert13,
    expect_conn_alert13,
    nth_client_hello,
    on_hello_messages,
    protected_record,
    reseal_flight,
    server13,
    tickets,
    without,
)

EE, CERT, CV, FIN = (
    HandshakeType.ENCRYPTED_EXTENSIONS,
    HandshakeType.CERTIFICATE,
    HandshakeType.CERTIFICATE_VERIFY,
    HandshakeType.FINISHED,
)
EOED = Message(HandshakeType.END_OF_EARLY_DATA, b"")


def logged_pair(world: World, tamper_for, **server_kw) -> ConnectionPair:  # type: ignore[no-untyped-def]
    """A pair whose server and client log their secrets; ``tamper_for(keylog)`` builds the hook."""
    log = KeyLog()
    server_kw.setdefault("cipher_suites", (AES128,))
    server = server13(world, keylog=log, **server_kw)
    client = client13(world, keylog=log, certificate=world.certs.client)
    pair = world.pair(client, server, tamper=tamper_for(log))
    pair.start()
    return pair


def server_flight(change):  # type: ignore[no-untyped-def]
    """Rewrite the server's protected handshake flight (EE .. Finished)."""

    def build(log: KeyLog):  # type: ignore[no-untyped-def]
        class Lazy:
            hook = None

            def __call__(self, d: Direction, records: list[Record]):  # type: ignore[no-untyped-def]
                if d is not Direction.S2C:
                    return records
                if self.hook is None:
                    opener = log.aead("SERVER_HANDSHAKE_TRAFFIC_SECRET")
                    sealer = log.aead("SERVER_HANDSHAKE_TRAFFIC_SECRET")
                    self.hook = reseal_flight(opener, sealer, change)
                return self.hook(d, records)

        return Lazy()

    return build


def client_flight(change):  # type: ignore[no-untyped-def]
    """Rewrite the client's protected second flight (Certificate .. Finished)."""

    def build(log: KeyLog):  # type: ignore[no-untyped-def]
        class Lazy:
            hook = None

            def __call__(self, d: Direction, records: list[Record]):  # type: ignore[no-untyped-def]
                if d is not Direction.C2S or not any(
                    r.content_type == ContentType.APPLICATION_DATA for r in records
                ):
                    return records
                if self.hook is None:
                    opener = log.aead("CLIENT_HANDSHAKE_TRAFFIC_SECRET")
                    sealer = log.aead("CLIENT_HANDSHAKE_TRAFFIC_SECRET")
                    self.hook = reseal_flight(opener, sealer, change)
                return self.hook(d, records)

        return Lazy()

    return build


def by_type(msgs: list[Message], t: int) -> Message:
    return next(m for m in msgs if m.msg_type == t)


def drop_type(t: int):  # type: ignore[no-untyped-def]
    return lambda msgs: [m for m in msgs if m.msg_type != t]


# -- the server's flight out of order ----------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda ms: [by_type(ms, FIN), *[m for m in ms if m.msg_type != FIN]],
                     id="finished-before-encrypted-extensions"),
        pytest.param(lambda ms: [by_type(ms, CERT), by_type(ms, EE), *ms[2:]],
                     id="certificate-before-encrypted-extensions"),
        pytest.param(drop_type(EE), id="no-encrypted-extensions"),
        pytest.param(drop_type(CV), id="no-certificate-verify"),
        pytest.param(drop_type(CERT), id="no-certificate"),
        pytest.param(lambda ms: [ms[0], *ms], id="encrypted-extensions-twice"),
        pytest.param(lambda ms: [*ms[:3], EOED, ms[3]], id="end-of-early-data-from-server"),
        pytest.param(lambda ms: [*ms[:1], Message(HandshakeType.SERVER_HELLO, b""), *ms[1:]],
                     id="server-hello-again"),
    ],
)  # fmt: skip
def test_tls13_server_flight_out_of_order(world: World, change) -> None:  # type: ignore[no-untyped-def]
    pair = logged_pair(world, server_flight(change))
    assert expect_alert13(pair, UnexpectedMessage, AlertDescription.unexpected_message) == "client"


def test_tls13_server_flight_resealed_unchanged_still_works(world: World) -> None:
    """The rewriting machinery itself does not break a handshake."""
    pair = logged_pair(world, server_flight(lambda ms: ms))
    pair.pump()
    assert pair.client.handshake_complete and pair.server.handshake_complete


def test_tls13_early_data_accepted_that_was_never_offered(world: World) -> None:
    def add_early(ms: list[Message]) -> list[Message]:
        ee = ms[0].decode(EncryptedExtensions)
        return [Message.of(EncryptedExtensions((*ee.extensions, X.EarlyDataIndication()))), *ms[1:]]

    pair = logged_pair(world, server_flight(add_early))
    # RFC 8446 §4.2: an extension the client did not offer is unsupported_extension.
    side = expect_alert13(pair, UnsupportedExtension, AlertDescription.unsupported_extension)
    assert side == "client"


def test_tls13_bad_server_finished(world: World) -> None:
    from tessera.errors import DecryptError

    def corrupt(ms: list[Message]) -> list[Message]:
        fin = by_type(ms, FIN)
        bad = Message(FIN, bytes((fin.body[0] ^ 1,)) + fin.body[1:])
        return [bad if m is fin else m for m in ms]

    pair = logged_pair(world, server_flight(corrupt))
    assert expect_alert13(pair, DecryptError, AlertDescription.decrypt_error) == "client"


# -- the client's second flight ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "client_auth"),
    [
        pytest.param(drop_type(CERT), ClientAuth.REQUIRED, id="finished-before-certificate"),
        pytest.param(drop_type(CV), ClientAuth.REQUIRED, id="no-certificate-verify"),
        pytest.param(lambda ms: [EOED, *ms], ClientAuth.NONE, id="end-of-early-data-unasked"),
        pytest.param(
            lambda ms: [*ms, EOED], ClientAuth.NONE, id="end-of-early-data-after-finished"
        ),
    ],
)
def test_tls13_client_flight_out_of_order(world: World, change, client_auth) -> None:  # type: ignore[no-untyped-def]
    pair = logged_pair(world, client_flight(change), client_auth=client_auth)
    assert expect_alert13(pair, UnexpectedMessage, AlertDescription.unexpected_message) == "server"


def test_tls13_application_data_before_client_finished(world: World) -> None:
    """A protected application_data record under the client's handshake keys, before its
    Finished: the server is not open for data yet."""

    def build(log: KeyLog):  # type: ignore[no-untyped-def]
        done = [False]

        def hook(d: Direction, records: list[Record]):  # type: ignore[no-untyped-def]
            if (
                d is not Direction.C2S
                or done[0]
                or not any(r.content_type == ContentType.APPLICATION_DATA for r in records)
            ):
                return records
            done[0] = True
            opener = log.aead("CLIENT_HANDSHAKE_TRAFFIC_SECRET")
            sealer = log.aead("CLIENT_HANDSHAKE_TRAFFIC_SECRET")
            out: list[Record | bytes] = [sealer.seal(ContentType.APPLICATION_DATA, b"too soon")]
            for r in records:
                if r.content_type == ContentType.APPLICATION_DATA:
                    ctype, plain = opener.open(r.content_type, r.fragment)
                    out.append(sealer.seal(ctype, plain))
                else:
                    out.append(r)
            return out

        return hook

    pair = logged_pair(world, build)
    assert expect_alert13(pair, UnexpectedMessage, AlertDescription.unexpected_message) == "server"


# -- ClientHello extensions ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "ext", [X.SupportedGroups, X.KeyShareOffer], ids=["supported_groups", "key_share"]
)
def test_tls13_client_hello_without_group_extensions(world: World, ext) -> None:  # type: ignore[no-untyped-def]
    pair = world.pair(client13(world), server13(world),
                      tamper=on_hello_messages(nth_client_hello(0, lambda ch: without(ch, ext))))  # fmt: skip
    pair.start()
    assert expect_alert13(pair, MissingExtension, AlertDescription.missing_extension) == "server"


def test_tls13_client_hello_without_signature_algorithms(world: World) -> None:
    pair = world.pair(client13(world), server13(world),
                      tamper=on_hello_messages(nth_client_hello(
                          0, lambda ch: without(ch, X.SignatureAlgorithms))))  # fmt: skip
    pair.start()
    assert expect_alert13(pair, MissingExtension, AlertDescription.missing_extension) == "server"


def test_tls13_client_hello_with_compression(world: World) -> None:
    pair = world.pair(client13(world), server13(world),
                      tamper=on_hello_messages(nth_client_hello(
                          0, lambda ch: replace(ch, compression_methods=(1, 0)))))  # fmt: skip
    pair.start()
    assert expect_alert13(pair, IllegalParameter, AlertDescription.illegal_parameter) == "server"


# -- ServerHello checks on the client ---------------------------------------------------------------
def _sh_rewrite(change):  # type: ignore[no-untyped-def]
    def fn(msg: Message) -> Message:
        return Message.of(change(msg.decode(ServerHello)))

    return on_hello_messages(rewrite(Direction.S2C, HandshakeType.SERVER_HELLO, fn))


def _with_ext(sh: ServerHello, new) -> ServerHello:  # type: ignore[no-untyped-def]
    return replace(sh, extensions=tuple(new if type(e) is type(new) else e for e in sh.extensions))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda sh: _with_ext(sh, X.KeyShareSelected(
            X.KeyShareEntry(NamedGroup.secp256r1, b"\x04" + bytes(64)))), id="share-for-unoffered-group"),
        pytest.param(lambda sh: _with_ext(sh, X.SupportedVersionSelected(0x0303)),
                     id="supported-versions-tls12"),
        pytest.param(lambda sh: replace(sh, cipher_suite=0x1305), id="suite-not-offered"),
        pytest.param(lambda sh: replace(sh, session_id=bytes(32)), id="session-id-not-echoed"),
        pytest.param(lambda sh: replace(sh, extensions=(*sh.extensions, X.PreSharedKeySelected(0))),
                     id="psk-never-offered"),
    ],
)  # fmt: skip
def test_tls13_bad_server_hello(world: World, change) -> None:  # type: ignore[no-untyped-def]
    pair = world.pair(client13(world), server13(world), tamper=_sh_rewrite(change))
    pair.start()
    assert expect_alert13(pair, IllegalParameter, AlertDescription.illegal_parameter) == "client"


def test_tls13_server_hello_without_key_share_or_psk(world: World) -> None:
    pair = world.pair(client13(world), server13(world),
                      tamper=_sh_rewrite(lambda sh: replace(sh, extensions=tuple(
                          e for e in sh.extensions if not isinstance(e, X.KeyShareSelected)))))  # fmt: skip
    pair.start()
    assert expect_alert13(pair, MissingExtension, AlertDescription.missing_extension) == "client"


def test_tls13_server_selects_a_psk_identity_not_offered(world: World) -> None:
    server = server13(world)
    ticket = tickets(world.connect(client13(world, session_cache=None), server))[0]
    pair = world.pair(client13(world, session_cache=None), server, session=ticket,
                      tamper=_sh_rewrite(lambda sh: _with_ext(sh, X.PreSharedKeySelected(1))))  # fmt: skip
    pair.start()
    assert expect_alert13(pair, IllegalParameter, AlertDescription.illegal_parameter) == "client"


def test_tls13_second_hello_retry_request(world: World) -> None:
    captured: list[Message] = []

    def fn(d: Direction, msg: Message):  # type: ignore[no-untyped-def]
        if d is Direction.S2C and msg.msg_type == HandshakeType.SERVER_HELLO:
            if msg.decode(ServerHello).is_hello_retry_request:
                captured.append(msg)
            elif captured:
                return captured[0]  # the real ServerHello becomes another HRR
        return msg

    client = client13(world, groups=(NamedGroup.x25519, NamedGroup.secp256r1),
                      key_share_groups=(NamedGroup.x25519,))  # fmt: skip
    pair = world.pair(client, server13(world, groups=(NamedGroup.secp256r1,)),
                      tamper=on_hello_messages(fn))  # fmt: skip
    pair.start()
    assert expect_alert13(pair, UnexpectedMessage, AlertDescription.unexpected_message) == "client"


# -- ChangeCipherSpec ------------------------------------------------------------------------------------
def _connected(world: World) -> ConnectionPair:
    pair = world.connect(client13(world), server13(world))
    assert pair.send(Direction.C2S, b"x") == b"x"
    return pair


@pytest.mark.parametrize("receiver", ["client", "server"])
def test_tls13_ccs_after_the_handshake(world: World, receiver: str) -> None:
    pair = _connected(world)
    conn, peer = (pair.client, pair.server) if receiver == "client" else (pair.server, pair.client)
    expect_conn_alert13(conn, record(ContentType.CHANGE_CIPHER_SPEC, b"\x01"), UnexpectedMessage,
                        AlertDescription.unexpected_message, peer)  # fmt: skip


def test_tls13_ccs_with_a_bad_value_during_the_handshake(world: World) -> None:
    """RFC 8446 §5: a change_cipher_spec other than 0x01 is unexpected_message."""

    def fn(d: Direction, records: list[Record]) -> list[Record]:
        for r in records:
            if d is Direction.S2C and r.content_type == ContentType.CHANGE_CIPHER_SPEC:
                r.fragment = b"\x02"
        return records

    pair = world.pair(client13(world), server13(world), tamper=fn)
    pair.start()
    assert expect_alert13(pair, UnexpectedMessage, AlertDescription.unexpected_message) == "client"


def test_tls13_protected_ccs_during_the_handshake(world: World) -> None:
    """RFC 8446 §5: a protected change_cipher_spec record is unexpected_message."""

    def build(log: KeyLog):  # type: ignore[no-untyped-def]
        done = [False]

        def hook(d: Direction, records: list[Record]):  # type: ignore[no-untyped-def]
            if d is not Direction.S2C or done[0]:
                return records
            done[0] = True
            opener = log.aead("SERVER_HANDSHAKE_TRAFFIC_SECRET")
            sealer = log.aead("SERVER_HANDSHAKE_TRAFFIC_SECRET")
            out: list[Record | bytes] = []
            for r in records:
                if r.content_type == ContentType.APPLICATION_DATA:
                    out.append(sealer.seal(ContentType.CHANGE_CIPHER_SPEC, b"\x01"))
                    out.append(sealer.seal(*opener.open(r.content_type, r.fragment)))
                else:
                    out.append(r)
            return out

        return hook

    pair = logged_pair(world, build)
    assert expect_alert13(pair, UnexpectedMessage, AlertDescription.unexpected_message) == "client"


@pytest.mark.parametrize("receiver", ["client", "server"])
def test_tls13_protected_ccs_after_the_handshake(world: World, receiver: str) -> None:
    pair = _connected(world)
    conn, peer = (pair.client, pair.server) if receiver == "client" else (pair.server, pair.client)
    data = protected_record(peer, b"\x01" + bytes((ContentType.CHANGE_CIPHER_SPEC,)))
    expect_conn_alert13(conn, data, UnexpectedMessage, AlertDescription.unexpected_message, peer)


# -- the record layer after keys are on -------------------------------------------------------------------
@pytest.mark.parametrize("inner", [b"\x00", b"\x00" * 100, b""], ids=["one-zero", "zeros", "empty"])
@pytest.mark.parametrize("receiver", ["client", "server"])
def test_tls13_record_without_content_type(world: World, receiver: str, inner: bytes) -> None:
    pair = _connected(world)
    conn, peer = (pair.client, pair.server) if receiver == "client" else (pair.server, pair.client)
    expect_conn_alert13(conn, protected_record(peer, inner), UnexpectedMessage,
                        AlertDescription.unexpected_message, peer)  # fmt: skip


def test_tls13_padding_is_stripped(world: World) -> None:
    pair = _connected(world)
    pair.client.receive_data(protected_record(pair.server, b"padded" + b"\x17" + bytes(300)))
    from .test_tls13_support import app_data

    assert app_data(pair.client.events()) == b"padded"


@pytest.mark.parametrize("receiver", ["client", "server"])
def test_tls13_plaintext_application_data_after_keys(world: World, receiver: str) -> None:
    pair = _connected(world)
    conn, peer = (pair.client, pair.server) if receiver == "client" else (pair.server, pair.client)
    expect_conn_alert13(conn, record(ContentType.APPLICATION_DATA, b"hello"), BadRecordMac,
                        AlertDescription.bad_record_mac, peer)  # fmt: skip


@pytest.mark.parametrize(
    "ctype", [ContentType.HANDSHAKE, ContentType.ALERT], ids=["handshake", "alert"]
)
def test_tls13_plaintext_record_after_keys(world: World, ctype: int) -> None:
    pair = _connected(world)
    body = b"\x18\x00\x00\x01\x00" if ctype == ContentType.HANDSHAKE else b"\x02\x28"
    expect_conn_alert13(pair.client, record(ctype, body), UnexpectedMessage,
                        AlertDescription.unexpected_message, pair.server)  # fmt: skip


def test_tls13_record_with_a_bad_tag(world: World) -> None:
    pair = _connected(world)
    rec = bytearray(protected_record(pair.server, b"data\x17"))
    rec[-1] ^= 1
    expect_conn_alert13(pair.client, bytes(rec), BadRecordMac, AlertDescription.bad_record_mac,
                        pair.server)  # fmt: skip


def test_tls13_replayed_record_fails(world: World) -> None:
    pair = _connected(world)
    rec = protected_record(pair.server, b"once\x17")
    pair.client.receive_data(rec)
    expect_conn_alert13(
        pair.client, rec, BadRecordMac, AlertDescription.bad_record_mac, pair.server
    )


# -- post-handshake messages -------------------------------------------------------------------------------
def _handshake_inner(msg_type: int, body: bytes) -> bytes:
    return (
        bytes((msg_type,)) + len(body).to_bytes(3, "big") + body + bytes((ContentType.HANDSHAKE,))
    )


@pytest.mark.parametrize("receiver", ["client", "server"])
def test_tls13_key_update_request_value_2(world: World, receiver: str) -> None:
    pair = _connected(world)
    conn, peer = (pair.client, pair.server) if receiver == "client" else (pair.server, pair.client)
    data = protected_record(peer, _handshake_inner(HandshakeType.KEY_UPDATE, b"\x02"))
    expect_conn_alert13(conn, data, IllegalParameter, AlertDescription.illegal_parameter, peer)


@pytest.mark.parametrize("body", [b"", b"\x00\x00"], ids=["empty", "trailing"])
def test_tls13_key_update_bad_length(world: World, body: bytes) -> None:
    pair = _connected(world)
    data = protected_record(pair.client, _handshake_inner(HandshakeType.KEY_UPDATE, body))
    expect_conn_alert13(pair.server, data, DecodeError, AlertDescription.decode_error, pair.client)


def test_tls13_new_session_ticket_sent_to_a_server(world: World) -> None:
    pair = _connected(world)
    nst = (60).to_bytes(4, "big") + bytes(4) + b"\x01\x00" + b"\x00\x04tick" + b"\x00\x00"
    data = protected_record(pair.client, _handshake_inner(HandshakeType.NEW_SESSION_TICKET, nst))
    expect_conn_alert13(pair.server, data, UnexpectedMessage, AlertDescription.unexpected_message,
                        pair.client)  # fmt: skip


@pytest.mark.parametrize(
    "msg_type",
    [HandshakeType.CLIENT_HELLO, HandshakeType.SERVER_HELLO, HandshakeType.FINISHED,
     HandshakeType.CERTIFICATE, HandshakeType.END_OF_EARLY_DATA],
    ids=lambda t: HandshakeType(t).name,
)  # fmt: skip
@pytest.mark.parametrize("receiver", ["client", "server"])
def test_tls13_handshake_message_after_the_handshake(
    world: World, receiver: str, msg_type: int
) -> None:
    pair = _connected(world)
    conn, peer = (pair.client, pair.server) if receiver == "client" else (pair.server, pair.client)
    data = protected_record(peer, _handshake_inner(msg_type, b""))
    expect_conn_alert13(conn, data, UnexpectedMessage, AlertDescription.unexpected_message, peer)


def test_tls13_ticket_with_a_lifetime_over_seven_days(world: World) -> None:
    pair = _connected(world)
    nst = (
        (7 * 24 * 3600 + 1).to_bytes(4, "big")
        + bytes(4)
        + b"\x01\x00"
        + b"\x00\x04tick"
        + b"\x00\x00"
    )
    data = protected_record(pair.server, _handshake_inner(HandshakeType.NEW_SESSION_TICKET, nst))
    expect_conn_alert13(pair.client, data, IllegalParameter, AlertDescription.illegal_parameter,
                        pair.server)  # fmt: skip


def test_tls13_ticket_with_lifetime_zero_is_discarded(world: World) -> None:
    pair = _connected(world)
    before = len(tickets(pair))
    nst = bytes(4) + bytes(4) + b"\x01\x00" + b"\x00\x04tick" + b"\x00\x00"
    pair.client.receive_data(
        protected_record(pair.server, _handshake_inner(HandshakeType.NEW_SESSION_TICKET, nst))
    )
    assert pair.client.events() == [] and len(tickets(pair)) == before

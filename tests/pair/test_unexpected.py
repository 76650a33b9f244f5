"""Every state x every wrong input is an unexpected_message alert (never a crash, never a hang).

Each case drives a real handshake to one state, then delivers a handshake message of a type that
state does not expect (protected with the sender's keys when the receiver already reads
protected records), a ChangeCipherSpec or application data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tessera import ClientAuth, ClientConnection, ServerConnection
from tessera.enums import AlertDescription, ContentType, HandshakeType
from tessera.errors import UnexpectedMessage
from tessera.events import ApplicationData

from .helpers import (
    ConnectionPair,
    Direction,
    Message,
    World,
    expect_failure,
    frame,
    on_messages,
    parse_records,
    record,
    rewrite,
    seal_with_seq,
    split_messages,
)

HS = ContentType.HANDSHAKE
C2S, S2C = Direction.C2S, Direction.S2C


def deliver_prefix(pair: ConnectionPair, direction: Direction, n: int, ccs: bool = False) -> None:
    """Deliver only the first ``n`` plaintext handshake messages of the next flight (and its
    ChangeCipherSpec when ``ccs``); the rest of the flight is dropped."""
    records = pair.intercept(direction)
    plain = b"".join(r.fragment for r in records if r.content_type == HS and not r.encrypted)
    msgs, _ = split_messages(plain)
    assert len(msgs) >= n, [m.name for m in msgs]
    data = b"".join(
        r.to_bytes() for r in frame(HS, b"".join(m.raw for m in msgs[:n]), records[0].version)
    )
    if ccs:
        data += record(ContentType.CHANGE_CIPHER_SPEC, b"\x01")
    if data:
        pair.inject(direction, data)


@dataclass
class Stage:
    """A receiver parked in one state, the connection that would talk to it, and whether the
    receiver already reads protected records."""

    receiver: ClientConnection | ServerConnection
    sender: ClientConnection | ServerConnection
    encrypted: bool
    state: str


def _server_auth_pair(
    world: World, auth: ClientAuth = ClientAuth.NONE, cert: bool = False
) -> ConnectionPair:
    p = world.pair(
        world.client_config(certificate=world.certs.client if cert else None),
        world.server_config(client_auth=auth),
    )
    p.start()
    return p


def s_expect_client_hello(world: World) -> Stage:
    p = _server_auth_pair(world)
    return Stage(p.server, p.client, False, "ExpectClientHello")


def s_expect_client_certificate(world: World) -> Stage:
    p = _server_auth_pair(world, ClientAuth.REQUIRED, cert=True)
    p.deliver(C2S)
    return Stage(p.server, p.client, False, "ExpectClientCertificate")


def s_expect_client_key_exchange(world: World) -> Stage:
    p = _server_auth_pair(world)
    p.deliver(C2S)
    return Stage(p.server, p.client, False, "ExpectClientKeyExchange")


def s_expect_certificate_verify(world: World) -> Stage:
    p = _server_auth_pair(world, ClientAuth.REQUIRED, cert=True)
    p.deliver(C2S)
    p.deliver(S2C)
    deliver_prefix(p, C2S, 2)  # Certificate, ClientKeyExchange
    return Stage(p.server, p.client, False, "ExpectCertificateVerify")


def s_expect_ccs(world: World) -> Stage:
    p = _server_auth_pair(world)
    p.deliver(C2S)
    p.deliver(S2C)
    deliver_prefix(p, C2S, 1)  # ClientKeyExchange
    return Stage(p.server, p.client, False, "ExpectChangeCipherSpec")


def s_expect_finished(world: World) -> Stage:
    p = _server_auth_pair(world)
    p.deliver(C2S)
    p.deliver(S2C)
    deliver_prefix(p, C2S, 1, ccs=True)
    return Stage(p.server, p.client, True, "ExpectFinished")


def s_expect_ccs_abbreviated(world: World) -> Stage:
    client, server = world.client_config(), world.server_config()
    world.connect(client, server)
    p = world.pair(client, server)
    p.start()
    p.deliver(C2S)
    p.deliver(S2C)
    p.intercept(C2S)  # drop the client's CCS and Finished
    return Stage(p.server, p.client, False, "ExpectChangeCipherSpec")


def s_traffic(world: World) -> Stage:
    p = world.connect(world.client_config(), world.server_config())
    return Stage(p.server, p.client, True, "Traffic12")


def c_expect_server_hello(world: World) -> Stage:
    p = _server_auth_pair(world)
    p.intercept(C2S)
    return Stage(p.client, p.server, False, "ExpectServerHello")


def _client_after(world: World, n: int, auth: ClientAuth = ClientAuth.NONE) -> Stage:
    p = _server_auth_pair(world, auth)
    p.deliver(C2S)
    deliver_prefix(p, S2C, n)
    return Stage(p.client, p.server, False, p.client.state_name)


def c_expect_certificate(world: World) -> Stage:
    return _client_after(world, 1)


def c_expect_server_key_exchange(world: World) -> Stage:
    return _client_after(world, 2)


def c_expect_certificate_request_or_done(world: World) -> Stage:
    return _client_after(world, 3)


def c_expect_done_after_request(world: World) -> Stage:
    return _client_after(world, 4, ClientAuth.OPTIONAL)


def c_expect_ticket_or_ccs(world: World) -> Stage:
    p = _server_auth_pair(world)
    p.deliver(C2S)
    p.deliver(S2C)
    p.deliver(C2S)
    p.intercept(S2C)  # NewSessionTicket, CCS, Finished: dropped
    return Stage(p.client, p.server, False, "ExpectTicketOrCCS")


def c_expect_finished(world: World) -> Stage:
    p = _server_auth_pair(world)
    p.deliver(C2S)
    p.deliver(S2C)
    p.deliver(C2S)
    deliver_prefix(p, S2C, 1, ccs=True)  # NewSessionTicket and CCS
    return Stage(p.client, p.server, True, "ExpectFinished")


def c_traffic(world: World) -> Stage:
    p = world.connect(world.client_config(), world.server_config())
    return Stage(p.client, p.server, True, "Traffic12")


HR = HandshakeType.HELLO_REQUEST  # ignored by a TLS 1.2 client while it negotiates
STAGES: dict[str, tuple[Callable[[World], Stage], set[int]]] = {
    # name: (how to get there, handshake types that are valid there)
    "server/ExpectClientHello": (s_expect_client_hello, {HandshakeType.CLIENT_HELLO}),
    "server/ExpectClientCertificate": (s_expect_client_certificate, {HandshakeType.CERTIFICATE}),
    "server/ExpectClientKeyExchange": (
        s_expect_client_key_exchange,
        {HandshakeType.CLIENT_KEY_EXCHANGE},
    ),
    "server/ExpectCertificateVerify": (
        s_expect_certificate_verify,
        {HandshakeType.CERTIFICATE_VERIFY},
    ),
    "server/ExpectChangeCipherSpec": (s_expect_ccs, set()),
    "server/ExpectChangeCipherSpec(resumed)": (s_expect_ccs_abbreviated, set()),
    "server/ExpectFinished": (s_expect_finished, {HandshakeType.FINISHED}),
    "server/Traffic12": (s_traffic, {HandshakeType.CLIENT_HELLO}),  # no_renegotiation warning
    "client/ExpectServerHello": (c_expect_server_hello, {HandshakeType.SERVER_HELLO}),
    "client/ExpectCertificate": (c_expect_certificate, {HandshakeType.CERTIFICATE, HR}),
    "client/ExpectServerKeyExchange": (
        c_expect_server_key_exchange,
        {HandshakeType.SERVER_KEY_EXCHANGE, HR},
    ),
    "client/ExpectCertificateRequestOrDone": (
        c_expect_certificate_request_or_done,
        {HandshakeType.CERTIFICATE_REQUEST, HandshakeType.SERVER_HELLO_DONE, HR},
    ),
    "client/ExpectServerHelloDone(after request)": (
        c_expect_done_after_request,
        {HandshakeType.SERVER_HELLO_DONE, HR},
    ),
    "client/ExpectTicketOrCCS": (c_expect_ticket_or_ccs, {HandshakeType.NEW_SESSION_TICKET, HR}),
    "client/ExpectFinished": (c_expect_finished, {HandshakeType.FINISHED, HR}),
    "client/Traffic12": (c_traffic, {HR}),  # a renegotiation (or a no_renegotiation warning)
}
WRONG_TYPES = [*(int(t) for t in HandshakeType), 99, 255]
CASES = [
    pytest.param(name, t, id=f"{name}-{t}")
    for name, (_, valid) in STAGES.items()
    for t in WRONG_TYPES
    if t not in valid
]


def _deliver(stage: Stage, ctype: int, data: bytes) -> bytes:
    if stage.encrypted:
        seq = stage.receiver._records.read.seq  # type: ignore[attr-defined]
        return seal_with_seq(stage.sender, ctype, data, seq)
    return record(ctype, data)


@pytest.mark.parametrize(("stage_name", "msg_type"), CASES)
def test_unexpected_handshake_message(world: World, stage_name: str, msg_type: int) -> None:
    stage = STAGES[stage_name][0](world)
    assert stage.state in stage.receiver.state_name
    stage.receiver.data_to_send()
    body = bytes(12) if msg_type == HandshakeType.FINISHED else b"\x00\x00"
    wire = _deliver(stage, HS, Message(msg_type, body).raw)
    expect_failure(stage.receiver, wire, UnexpectedMessage, AlertDescription.unexpected_message)


@pytest.mark.parametrize(
    "stage_name", [n for n, (_, valid) in STAGES.items() if HR in valid and "Traffic" not in n]
)
def test_hello_request_is_ignored_while_negotiating(world: World, stage_name: str) -> None:
    """RFC 5246 §7.4.1.1: a TLS 1.2 client that is negotiating ignores a HelloRequest (as
    OpenSSL does): nothing is sent, the state stays, and the handshake still completes."""
    stage = STAGES[stage_name][0](world)
    before = stage.receiver.state_name
    stage.receiver.data_to_send()
    stage.receiver.receive_data(_deliver(stage, HS, Message(HR, b"").raw))
    assert not stage.receiver.failed
    assert stage.receiver.data_to_send() == b""
    assert stage.receiver.state_name == before


CCS_CASES = [n for n in STAGES if "ChangeCipherSpec" not in n and "TicketOrCCS" not in n]


@pytest.mark.parametrize("stage_name", CCS_CASES)
def test_unexpected_change_cipher_spec(world: World, stage_name: str) -> None:
    stage = STAGES[stage_name][0](world)
    stage.receiver.data_to_send()
    wire = _deliver(stage, ContentType.CHANGE_CIPHER_SPEC, b"\x01")
    expect_failure(stage.receiver, wire, UnexpectedMessage, AlertDescription.unexpected_message)


@pytest.mark.parametrize("stage_name", [n for n in STAGES if "Traffic" not in n])
def test_application_data_during_handshake(world: World, stage_name: str) -> None:
    stage = STAGES[stage_name][0](world)
    stage.receiver.data_to_send()
    wire = _deliver(stage, ContentType.APPLICATION_DATA, b"too early")
    expect_failure(stage.receiver, wire, UnexpectedMessage, AlertDescription.unexpected_message)


def test_alert_is_last_after_a_whole_flight(world: World) -> None:
    """ClientHello and a bad message in one delivery: the server's flight for the ClientHello is
    queued, and the fatal alert comes after it."""
    p = _server_auth_pair(world)
    hello = p.client.data_to_send()
    wire = hello + record(HS, Message(HandshakeType.FINISHED, bytes(12)).raw, 0x0303)
    expect_failure(p.server, wire, UnexpectedMessage, AlertDescription.unexpected_message)


def test_application_data_inside_fragmented_handshake_message(world: World) -> None:
    p = world.connect(world.client_config(), world.server_config())
    part = seal_with_seq(p.client, HS, b"\x01\x00\x00\x10", 1)
    data = seal_with_seq(p.client, ContentType.APPLICATION_DATA, b"x", 2)
    expect_failure(p.server, part + data, UnexpectedMessage, AlertDescription.unexpected_message)


def test_alert_inside_fragmented_handshake_message(world: World) -> None:
    server = ServerConnection(world.server_config())
    wire = record(HS, b"\x01\x00\x00\x10") + record(ContentType.ALERT, b"\x01\x00")
    expect_failure(server, wire, UnexpectedMessage, AlertDescription.unexpected_message)


def test_ccs_inside_fragmented_handshake_message(world: World) -> None:
    p = _server_auth_pair(world)
    p.deliver(C2S)
    p.deliver(S2C)
    flight = p.intercept(C2S)
    cke = flight[0].fragment
    wire = record(HS, cke[:3], 0x0303) + record(ContentType.CHANGE_CIPHER_SPEC, b"\x01")
    expect_failure(p.server, wire, UnexpectedMessage, AlertDescription.unexpected_message)


def test_handshake_message_spanning_key_change(world: World) -> None:
    """The ClientKeyExchange cut in two around the ChangeCipherSpec."""
    p = _server_auth_pair(world)
    p.deliver(C2S)
    p.deliver(S2C)
    flight = p.intercept(C2S)
    raw = flight[0].fragment + Message(HandshakeType.FINISHED, bytes(12)).raw[:2]
    wire = record(HS, raw, 0x0303) + record(ContentType.CHANGE_CIPHER_SPEC, b"\x01")
    expect_failure(p.server, wire, UnexpectedMessage, AlertDescription.unexpected_message)


def test_ticket_promised_but_missing(world: World) -> None:
    p = world.pair()
    p.start()
    p.deliver(C2S)
    p.deliver(S2C)
    p.deliver(C2S)
    records = p.intercept(S2C)
    assert records[0].fragment[0] == HandshakeType.NEW_SESSION_TICKET
    wire = b"".join(r.to_bytes() for r in records[1:])
    expect_failure(p.client, wire, UnexpectedMessage, AlertDescription.unexpected_message)


def test_ticket_not_promised(world: World) -> None:
    from tessera.messages import NewSessionTicket12

    p = world.pair(world.client_config(), world.server_config(ticket_keyring=None))
    p.start()
    p.deliver(C2S)
    p.deliver(S2C)
    p.deliver(C2S)
    p.intercept(S2C)
    assert "ExpectTicketOrCCS" in p.client.state_name
    nst = Message.of(NewSessionTicket12(300, b"t" * 80)).raw
    expect_failure(
        p.client, record(HS, nst), UnexpectedMessage, AlertDescription.unexpected_message
    )


def test_two_tickets(world: World) -> None:
    p = world.pair()
    p.start()
    p.deliver(C2S)
    p.deliver(S2C)
    p.deliver(C2S)
    records = p.intercept(S2C)
    nst = records[0]
    wire = nst.to_bytes() + b"".join(r.to_bytes() for r in records)
    expect_failure(p.client, wire, UnexpectedMessage, AlertDescription.unexpected_message)


def test_two_certificate_requests(world: World) -> None:
    p = _server_auth_pair(world, ClientAuth.OPTIONAL)
    p.deliver(C2S)
    records = p.intercept(S2C)
    msgs, _ = split_messages(b"".join(r.fragment for r in records))
    names = [m.name for m in msgs]
    i = names.index("CERTIFICATE_REQUEST")
    msgs.insert(i, msgs[i])
    wire = record(HS, b"".join(m.raw for m in msgs), 0x0303)
    expect_failure(p.client, wire, UnexpectedMessage, AlertDescription.unexpected_message)


def test_server_hello_twice(world: World) -> None:
    def twice(m: Message) -> list[Message]:
        return [m, m]

    p = world.pair(tamper=on_messages(rewrite(S2C, HandshakeType.SERVER_HELLO, twice)))
    p.start()
    p.deliver(C2S)
    with pytest.raises(UnexpectedMessage):
        p.deliver(S2C)


# -- renegotiation is declined, not fatal ---------------------------------------------------------
def test_server_declines_renegotiation(world: World) -> None:
    p = world.connect(world.client_config(), world.server_config())
    hello = ClientConnection(world.client_config(), "localhost")
    hello.start_handshake()
    ch = parse_records(hello.data_to_send())[0].fragment
    p.server.receive_data(seal_with_seq(p.client, HS, ch, p.server._records.read.seq))  # type: ignore[attr-defined]
    assert not p.server.failed
    # The answer is an encrypted warning alert; the client reads it and carries on.
    (rec,) = parse_records(p.server.data_to_send())
    assert rec.content_type == ContentType.ALERT
    p.client.receive_data(rec.to_bytes())
    assert not p.client.failed
    assert p.send(S2C, b"still here") == b"still here"


def test_client_declines_hello_request(world: World) -> None:
    """With ClientConfig(renegotiation=False) a HelloRequest gets a warning no_renegotiation."""
    p = world.connect(world.client_config(renegotiation=False), world.server_config())
    request = Message(HandshakeType.HELLO_REQUEST, b"").raw
    p.client.receive_data(seal_with_seq(p.server, HS, request, p.client._records.read.seq))  # type: ignore[attr-defined]
    assert not p.client.failed
    (rec,) = parse_records(p.client.data_to_send())
    assert rec.content_type == ContentType.ALERT
    p.server.receive_data(rec.to_bytes())
    assert not p.server.failed
    p.server._records.write.seq += 1  # type: ignore[attr-defined]  # the injected HelloRequest used one
    p.client.send_data(b"ok")
    p.deliver(C2S)
    assert ApplicationData(b"ok") in p.server_events


def test_hello_request_with_body_is_decode_error(world: World) -> None:
    from tessera.errors import DecodeError

    p = world.connect(world.client_config(), world.server_config())
    request = Message(HandshakeType.HELLO_REQUEST, b"\x00").raw
    wire = seal_with_seq(p.server, HS, request, p.client._records.read.seq)  # type: ignore[attr-defined]
    expect_failure(p.client, wire, DecodeError, AlertDescription.decode_error)

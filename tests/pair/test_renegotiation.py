"""TLS 1.2 secure renegotiation (RFC 5746) in memory: the state machine of issue 12.

A renegotiation runs a fresh handshake (transcript, randoms, keys) inside the open connection;
records flow under the old keys until the new ChangeCipherSpec; ``info`` describes the last
completed handshake until ``RenegotiationCompleted``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tessera import (
    AlertReceived,
    ClientAuth,
    FallbackReason,
    LocalProtocolError,
    ProtocolVersion,
)
from tessera.crypto.suites import TLS_EMPTY_RENEGOTIATION_INFO_SCSV
from tessera.enums import AlertDescription as AD
from tessera.enums import ContentType
from tessera.errors import HandshakeFailure, ProtocolVersionError, UnexpectedMessage
from tessera.events import (
    ApplicationData,
    HandshakeCompleted,
    RenegotiationCompleted,
    RenegotiationDeclined,
    ResumptionDecided,
)
from tessera.handshake import client as client_hs
from tessera.handshake import renegotiation
from tessera.handshake.renegotiation import (
    CLIENT_RENEGOTIATIONS_PER_WINDOW,
    MAX_REFUSALS,
    RENEGOTIATION_WINDOW,
)
from tessera.messages import ClientHello, HelloRequest
from tessera.messages import extensions as X
from tessera.messages.base import encode_handshake
from tessera.messages.hello import DOWNGRADE_TLS12

from .helpers import (
    ConnectionPair,
    Direction,
    World,
    expect_failure,
    expect_pair_failure,
    seal_with_seq,
    write_seq,
)
from .test_hardening_reprs import Secrets, scan
from .test_tls13_support import KeyLog

C2S, S2C = Direction.C2S, Direction.S2C


def received(events: list[Any]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, ApplicationData))


def of_type(events: list[Any], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def with_certificate(world: World, **kw: Any) -> ConnectionPair:
    """A completed TLS 1.2 handshake; the client has a certificate the server did not ask for."""
    client = world.client_config(certificate=world.certs.client, **kw.pop("client", {}))
    return world.connect(client, world.server_config(**kw))


def inject(p: ConnectionPair, direction: Direction, msg: Any) -> None:
    """A handshake message protected with the sender's current keys, sent out of band."""
    sender = p.client if direction is C2S else p.server
    raw = msg if isinstance(msg, bytes) else encode_handshake(msg)
    wire = seal_with_seq(sender, ContentType.HANDSHAKE, raw, write_seq(sender))
    sender._records.write.seq += 1  # type: ignore[attr-defined]
    p.inject(direction, wire)


# -- the server asks (the client-certificate-on-a-path flow) ---------------------------------------
def test_server_requested_renegotiation_refuses_resumption_and_gets_the_certificate(
    world: World,
) -> None:
    p = with_certificate(world)
    first = p.server.info
    assert first is not None and first.peer_certificates == () and first.secure_renegotiation
    p.server.request_renegotiation(client_auth=ClientAuth.OPTIONAL)
    assert p.server.renegotiating and p.server.info is first
    p.pump()
    (done,) = of_type(p.server_events, RenegotiationCompleted)
    assert done.initiator == "server" and done.session_offered
    info = p.server.info
    assert info is done.info and info.peer_certificates[0].subject.rfc4514_string() == (
        "CN=tessera client"
    )
    decision = info.resumption
    assert decision is not None and decision.fallback is FallbackReason.REFUSED_IN_RENEGOTIATION
    assert decision.describe() == (
        "full handshake; ticket not resumed (resumption refused in renegotiation)"
    )
    assert len(of_type(p.server_events, HandshakeCompleted)) == 1  # the first handshake only
    (client_done,) = of_type(p.client_events, RenegotiationCompleted)
    assert client_done.initiator == "server" and client_done.session_offered
    assert not client_done.info.resumed and p.client.info is client_done.info
    stats = p.server_config.statistics
    assert stats["renegotiations"] == 1 and stats["full_handshakes"] == 2
    assert stats.reason_count(FallbackReason.REFUSED_IN_RENEGOTIATION) == 1
    assert not p.server.renegotiating and not p.client.renegotiating
    assert p.send(C2S, b"after") == b"after" and p.send(S2C, b"reply") == b"reply"


def test_renegotiation_makes_new_keys_and_a_new_session(world: World) -> None:
    p = with_certificate(world)
    old_read, old_ctx, old = p.client._records.read, p.client._ctx, p.client._state
    old_session = p.client.session
    p.server.request_renegotiation()
    p.pump()
    new_ctx, new = p.client._ctx, p.client._state
    assert p.client._records.read is not old_read
    assert new_ctx is not old_ctx
    assert new.negotiated.client_random != old.negotiated.client_random
    assert new.master_secret != old.master_secret
    new_session = p.client.session
    assert new_session is not None and old_session is not None
    assert new_session.state.secret == new.master_secret != old_session.state.secret
    assert p.server_config.statistics["tickets_issued"] == 2


def test_application_data_interleaves_in_both_directions(world: World) -> None:
    """Data flows under the old keys until each ChangeCipherSpec, then under the new ones."""
    p = with_certificate(world)
    p.server.request_renegotiation(client_auth=ClientAuth.OPTIONAL)
    p.server.send_data(b"s1")
    p.deliver(S2C)  # HelloRequest, s1 -> ClientHello
    p.client.send_data(b"c1")
    p.deliver(C2S)  # ClientHello, c1 -> the server's flight
    assert "ExpectClientCertificate" in p.server.state_name and p.server.renegotiating
    p.server.send_data(b"s2")
    p.deliver(S2C)  # ServerHello..ServerHelloDone, s2 (old keys) -> the client's flight
    assert "ExpectTicketOrCCS" in p.client.state_name
    p.client.send_data(b"c2")  # after its ChangeCipherSpec: under the new keys
    p.deliver(C2S)  # Certificate..Finished, c2 -> NewSessionTicket, CCS, Finished
    assert of_type(p.server_events, RenegotiationCompleted)
    p.server.send_data(b"s3")
    p.deliver(S2C)
    assert received(p.client_events) == b"s1s2s3"
    assert received(p.server_events) == b"c1c2"
    assert of_type(p.client_events, RenegotiationCompleted)
    assert p.server.info is not None and p.server.info.peer_certificates


def test_no_application_data_between_ccs_and_finished(world: World) -> None:
    p = with_certificate(world)
    p.server.request_renegotiation()
    p.deliver(S2C)
    p.deliver(C2S)
    p.deliver(S2C)
    p.deliver(C2S)  # the server completed and queued NewSessionTicket, CCS, Finished
    records = p.intercept(S2C)
    assert [r.content_type for r in records] == [
        ContentType.HANDSHAKE,
        ContentType.CHANGE_CIPHER_SPEC,
        ContentType.HANDSHAKE,
    ]
    # Data sealed with the new keys where the Finished (their first record) should be.
    data = seal_with_seq(p.server, ContentType.APPLICATION_DATA, b"too soon", 0)
    wire = records[0].to_bytes() + records[1].to_bytes() + data
    expect_failure(p.client, wire, UnexpectedMessage, AD.unexpected_message)


def test_info_describes_the_last_completed_handshake_meanwhile(world: World) -> None:
    p = with_certificate(world)
    before_server, before_client = p.server.info, p.client.info
    p.server.request_renegotiation()
    for _ in range(3):
        p.deliver(S2C)
        p.deliver(C2S)
        if not p.server.renegotiating:
            break
        assert p.server.handshake_complete and p.client.handshake_complete
        assert p.server.info is before_server
        if p.client.renegotiating:
            assert p.client.info is before_client
    p.pump()
    assert p.server.info is not before_server and p.client.info is not before_client


def test_required_certificate_missing_fails_the_renegotiation(world: World) -> None:
    p = world.connect(world.client_config(), world.server_config())
    p.server.request_renegotiation(require_client_certificate=True)
    assert expect_pair_failure(p, HandshakeFailure, AD.handshake_failure) == "server"


def test_optional_certificate_missing_completes_without_one(world: World) -> None:
    p = world.connect(world.client_config(), world.server_config())
    p.server.request_renegotiation(client_auth=ClientAuth.OPTIONAL)
    p.pump()
    (done,) = of_type(p.server_events, RenegotiationCompleted)
    assert done.info.peer_certificates == ()


def test_allow_resumption_resumes_the_current_session(world: World) -> None:
    p = with_certificate(world)
    p.server.request_renegotiation(client_auth=ClientAuth.NONE, allow_resumption=True)
    p.pump()
    (done,) = of_type(p.client_events, RenegotiationCompleted)
    assert done.info.resumed and done.info.resumed_by == "ticket"
    assert p.server_config.statistics["resumed_ticket"] == 1
    assert p.send(C2S, b"x") == b"x"


def test_session_id_renegotiation_refused_then_cached_anew(world: World) -> None:
    client = world.client_config(certificate=world.certs.client, session_tickets=False)
    p = world.connect(client, world.server_config())
    old_id = p.server.info.session_id  # type: ignore[union-attr]
    p.server.request_renegotiation()
    p.pump()
    decision = next(
        e.decision for e in reversed(p.server_events) if isinstance(e, ResumptionDecided)
    )
    assert decision.offered is not None and decision.offered.value == "session_id"
    assert decision.fallback is FallbackReason.REFUSED_IN_RENEGOTIATION
    new_id = p.server.info.session_id  # type: ignore[union-attr]
    assert new_id and new_id != old_id
    assert p.server_config.statistics["sessions_cached"] == 2


def test_a_renegotiation_keeps_tls12_without_a_downgrade_sentinel(world: World) -> None:
    """A server that also speaks TLS 1.3 marks its TLS 1.2 ServerHello random (RFC 8446 §4.1.3)
    in the first handshake only; the renegotiation stays TLS 1.2."""
    server = world.server_config(max_version=ProtocolVersion.TLS1_3)
    p = world.connect(world.client_config(), server)
    assert p.client._state.negotiated.server_random.endswith(DOWNGRADE_TLS12)
    p.server.request_renegotiation()
    p.pump()
    assert p.client.info is not None and p.client.info.version == ProtocolVersion.TLS1_2
    assert not p.client._state.negotiated.server_random.endswith(DOWNGRADE_TLS12)


def test_a_hello_request_during_the_renegotiation_is_ignored(world: World) -> None:
    p = with_certificate(world)
    p.server.request_renegotiation()
    p.deliver(S2C)  # the client answers with its ClientHello
    hello = p.intercept(C2S)
    inject(p, S2C, HelloRequest())
    assert p.client.data_to_send() == b"" and not p.client.failed
    p.inject(C2S, b"".join(r.to_bytes() for r in hello))
    p.pump()
    assert of_type(p.client_events, RenegotiationCompleted)


def test_client_with_renegotiation_off_declines(world: World) -> None:
    p = with_certificate(world, client={"renegotiation": False})
    p.server.request_renegotiation()
    p.pump()
    assert of_type(p.server_events, RenegotiationDeclined)
    assert not p.server.renegotiating and not of_type(p.server_events, RenegotiationCompleted)
    assert p.send(C2S, b"still") == b"still"
    with pytest.raises(LocalProtocolError, match="disabled"):
        p.client.renegotiate()
    p.server.request_renegotiation()  # it may ask again


def test_request_renegotiation_refusals(world: World) -> None:
    p = world.connect(world.client_config(), world.server_config())
    p.server.request_renegotiation()
    with pytest.raises(LocalProtocolError, match="already under way"):
        p.server.request_renegotiation()
    p13 = world.connect(
        world.client_config(max_version=ProtocolVersion.TLS1_3),
        world.server_config(max_version=ProtocolVersion.TLS1_3),
    )
    with pytest.raises(LocalProtocolError, match=r"TLS 1\.3 has no renegotiation"):
        p13.server.request_renegotiation()
    with pytest.raises(LocalProtocolError, match="renegotiate"):
        p13.client.renegotiate()
    fresh = world.pair()
    with pytest.raises(LocalProtocolError, match="before the handshake"):
        fresh.server.request_renegotiation()


# -- the client asks ------------------------------------------------------------------------------
def test_client_initiated_refused_by_default_then_cut_off(world: World) -> None:
    p = world.connect(world.client_config(), world.server_config())
    for i in range(MAX_REFUSALS):
        p.client.renegotiate()
        p.pump()
        assert len(of_type(p.client_events, RenegotiationDeclined)) == i + 1
        assert not p.client.renegotiating and p.send(C2S, b"ok") == b"ok"
    stats = p.server_config.statistics
    assert stats["renegotiations_refused"] == MAX_REFUSALS
    p.client.renegotiate()
    with pytest.raises(HandshakeFailure, match="after 3 refusals"):
        p.deliver(C2S)
    assert p.server.failed
    with pytest.raises(AlertReceived) as info:
        p.deliver(S2C)
    assert info.value.alert is AD.handshake_failure


def test_client_initiated_when_enabled_resumes_and_is_rate_limited(world: World) -> None:
    p = world.connect(world.client_config(), world.server_config(client_renegotiation=True))
    for _ in range(CLIENT_RENEGOTIATIONS_PER_WINDOW):
        p.client.renegotiate()
        p.pump()
    done = of_type(p.client_events, RenegotiationCompleted)
    assert len(done) == CLIENT_RENEGOTIATIONS_PER_WINDOW
    assert all(d.initiator == "client" and d.info.resumed for d in done)
    p.client.renegotiate()  # over the limit
    p.pump()
    assert len(of_type(p.client_events, RenegotiationDeclined)) == 1
    world.clock.advance(RENEGOTIATION_WINDOW)
    p.client.renegotiate()
    p.pump()
    assert (
        len(of_type(p.client_events, RenegotiationCompleted))
        == CLIENT_RENEGOTIATIONS_PER_WINDOW + 1
    )
    assert p.server_config.statistics["renegotiations"] == CLIENT_RENEGOTIATIONS_PER_WINDOW + 1


# -- RFC 5746 checks -------------------------------------------------------------------------------
def renegotiation_hello(p: ConnectionPair, *, ri: bytes | None, scsv: bool = False,
                        ems: bool = True, versions: tuple[int, ...] | None = None) -> ClientHello:  # fmt: skip
    suites = [0xC02B] + ([TLS_EMPTY_RENEGOTIATION_INFO_SCSV] if scsv else [])
    exts: list[Any] = [
        X.SupportedGroups((29, 23)),
        X.ECPointFormats((0,)),
        X.SignatureAlgorithms((0x0403,)),
    ]
    if ems:
        exts.append(X.ExtendedMasterSecret())
    if ri is not None:
        exts.append(X.RenegotiationInfo(ri))
    if versions is not None:
        exts.append(X.SupportedVersionsOffer(versions))
    return ClientHello(0x0303, bytes(32), b"", tuple(suites), (0,), tuple(exts))


def enabled_pair(world: World) -> ConnectionPair:
    return world.connect(world.client_config(), world.server_config(client_renegotiation=True))


def test_crafted_renegotiation_hello_with_the_right_verify_data_is_answered(world: World) -> None:
    """The control for the tests below: the crafted hello is good enough when it is right."""
    p = enabled_pair(world)
    inject(p, C2S, renegotiation_hello(p, ri=p.client._state.client_verify_data))
    assert "ExpectClientKeyExchange" in p.server.state_name


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("wrong verify_data", {"ri": b"\x00" * 12}),
        ("empty renegotiation_info", {"ri": b""}),
        ("no renegotiation_info", {"ri": None}),
    ],
)
def test_renegotiation_info_must_carry_the_client_verify_data(
    world: World, name: str, kw: dict[str, Any]
) -> None:
    p = enabled_pair(world)
    ch = renegotiation_hello(p, **kw)
    with pytest.raises(HandshakeFailure, match="verify_data"):
        inject(p, C2S, ch)
    assert p.server.failed


def test_scsv_in_a_renegotiation_hello_is_fatal(world: World) -> None:
    p = enabled_pair(world)
    ch = renegotiation_hello(p, ri=p.client._state.client_verify_data, scsv=True)
    with pytest.raises(HandshakeFailure, match="SCSV"):
        inject(p, C2S, ch)


def test_renegotiation_without_ems_on_an_ems_connection_is_refused(world: World) -> None:
    p = enabled_pair(world)
    assert p.server.info is not None and p.server.info.extended_master_secret
    ch = renegotiation_hello(p, ri=p.client._state.client_verify_data, ems=False)
    with pytest.raises(HandshakeFailure, match="extended_master_secret"):
        inject(p, C2S, ch)


def test_renegotiation_cannot_move_to_tls13(world: World) -> None:
    p = world.connect(world.client_config(), world.server_config(
        client_renegotiation=True, max_version=ProtocolVersion.TLS1_3))  # fmt: skip
    ch = renegotiation_hello(p, ri=p.client._state.client_verify_data, versions=(0x0304,))
    with pytest.raises(ProtocolVersionError, match=r"TLS 1\.2"):
        inject(p, C2S, ch)


def test_server_with_wrong_verify_data_is_refused_by_the_client(world: World) -> None:
    p = with_certificate(world)
    state = p.server._state
    state.server_verify_data = bytes(b ^ 1 for b in state.server_verify_data)
    p.server.request_renegotiation()
    with pytest.raises(HandshakeFailure, match="RFC 5746"):
        p.pump()
    assert p.client.failed


def test_server_dropping_ems_in_a_renegotiation_is_refused_by_the_client(world: World) -> None:
    server = world.server_config()
    p = world.connect(world.client_config(), server)
    object.__setattr__(server, "extended_master_secret", False)  # the server changes its mind
    p.server.request_renegotiation()
    with pytest.raises(HandshakeFailure, match="extended master secret"):
        p.pump()
    assert p.client.failed


# -- legacy (insecure) renegotiation -----------------------------------------------------------
# A peer without RFC 5746: tessera always sends renegotiation_info, so the test removes it at
# the source (a tamper on the wire would break the transcript and the Finished).
def test_server_refuses_legacy_renegotiation(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    real = client_hs.client_hello_12_extensions

    def without_ri(ctx: Any, session: Any) -> list[Any]:
        return [e for e in real(ctx, session) if not isinstance(e, X.RenegotiationInfo)]

    monkeypatch.setattr(client_hs, "client_hello_12_extensions", without_ri)
    p = world.connect(world.client_config(), world.server_config(client_renegotiation=True))
    monkeypatch.undo()
    assert p.server.info is not None and not p.server.info.secure_renegotiation
    with pytest.raises(LocalProtocolError, match="secure renegotiation"):
        p.server.request_renegotiation()
    with pytest.raises(LocalProtocolError, match="secure renegotiation"):
        p.server.request_client_certificate()
    with pytest.raises(LocalProtocolError, match="secure renegotiation"):
        p.client.renegotiate()
    # Even with client renegotiation enabled, a ClientHello on it is refused with a warning.
    inject(p, C2S, renegotiation_hello(p, ri=b""))
    assert not p.server.failed
    assert p.server_config.statistics["renegotiations_refused"] == 1


def test_client_refuses_legacy_renegotiation(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    real = renegotiation.check_client_hello
    monkeypatch.setattr(renegotiation, "check_client_hello", lambda ctx, hello: False)
    p = world.connect(world.client_config(), world.server_config())
    monkeypatch.setattr(renegotiation, "check_client_hello", real)
    assert p.client.info is not None and not p.client.info.secure_renegotiation
    with pytest.raises(LocalProtocolError, match="secure renegotiation"):
        p.client.renegotiate()
    state = p.server._state  # a server that believes the client can
    state.negotiated = dataclasses.replace(state.negotiated, secure_renegotiation=True)
    p.server.request_renegotiation()
    p.pump()
    assert of_type(p.server_events, RenegotiationDeclined)
    assert p.send(C2S, b"on") == b"on"


# -- secrets --------------------------------------------------------------------------------------
def deliver_scanned(p: ConnectionPair, secrets: Secrets, what: str, rounds: int = 10) -> int:
    """Deliver one record at a time until both sides go quiet, scanning every repr after each
    (as tests/pair/test_hardening_reprs.py does for handshakes); objects checked."""
    checked = 0
    for step in range(rounds):
        moved = False
        for d in (C2S, S2C):
            for i, r in enumerate(p.intercept(d)):
                moved = True
                p.inject(d, r.to_bytes())
                checked += scan(p, secrets, f"{what}: flight {step} {d.value} record {i}")
        if not moved:
            break
    return checked


@pytest.mark.parametrize("allow_resumption", [False, True])
def test_no_secret_in_any_repr_during_a_renegotiation(world: World, allow_resumption: bool) -> None:
    secrets = Secrets()
    log: KeyLog = secrets.keylog
    client = world.client_config(certificate=world.certs.client, keylog=log)
    p = world.connect(client, world.server_config(keylog=log))
    p.server.request_renegotiation(
        client_auth=ClientAuth.OPTIONAL, allow_resumption=allow_resumption
    )
    checked = deliver_scanned(p, secrets, "renegotiation")
    assert of_type(p.server_events, RenegotiationCompleted) and checked > 50
    secrets_logged = {secret for _, _, secret in log.lines}
    assert len(secrets_logged) == (1 if allow_resumption else 2)

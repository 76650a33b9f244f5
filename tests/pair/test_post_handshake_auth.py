"""TLS 1.3 post-handshake client authentication (RFC 8446 §4.6.2) in memory: the way TLS 1.3
asks for a client certificate on an open connection, since it has no renegotiation."""

from __future__ import annotations

from typing import Any

import pytest

from tessera import LocalProtocolError
from tessera.enums import AlertDescription as AD
from tessera.errors import (
    CertificateRequired,
    DecryptError,
    IllegalParameter,
    UnexpectedMessage,
)
from tessera.events import ApplicationData, PostHandshakeAuthCompleted
from tessera.messages import CertificateRequest13, ClientHello
from tessera.messages import extensions as X
from tessera.messages.base import encode_handshake

from .helpers import ConnectionPair, Direction, World, first_message
from .test_hardening_reprs import Secrets
from .test_renegotiation import deliver_scanned
from .test_tls13_support import client13, expect_alert13, protected_record, server13

C2S, S2C = Direction.C2S, Direction.S2C


def connect(world: World, *, cert: bool = True, **client_kw: Any) -> ConnectionPair:
    if cert:
        client_kw.setdefault("certificate", world.certs.client)
    return world.connect(client13(world, **client_kw), server13(world))


def of_type(events: list[Any], cls: type) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def offered_pha(p: ConnectionPair) -> bool:
    hello = first_message(p, C2S, 1).decode(ClientHello)
    return hello.find(X.PostHandshakeAuth) is not None


def test_the_server_gets_the_certificate_after_the_handshake(world: World) -> None:
    p = connect(world)
    assert offered_pha(p)  # default: offered when the client has a certificate
    assert p.server.info is not None and p.server.info.peer_certificates == ()
    p.server.request_client_certificate()
    p.pump()
    (done,) = of_type(p.server_events, PostHandshakeAuthCompleted)
    assert done.certificate_sent and done.info is p.server.info
    assert done.info.peer_certificates[0].subject.rfc4514_string() == "CN=tessera client"
    (answered,) = of_type(p.client_events, PostHandshakeAuthCompleted)
    assert answered.certificate_sent
    assert p.server_config.statistics["post_handshake_auths"] == 1
    assert p.send(C2S, b"after") == b"after"


def test_application_data_and_key_updates_interleave(world: World) -> None:
    """The Finished key is the client's *current* application traffic secret."""
    p = connect(world)
    p.client.update_keys()
    p.client.send_data(b"c1")
    p.server.request_client_certificate()
    p.server.send_data(b"s1")
    p.deliver(S2C)  # the request reaches the client before its KeyUpdate reaches the server
    p.client.send_data(b"c2")
    p.pump()
    assert of_type(p.server_events, PostHandshakeAuthCompleted)
    assert b"".join(e.data for e in p.server_events if isinstance(e, ApplicationData)) == b"c1c2"
    assert b"".join(e.data for e in p.client_events if isinstance(e, ApplicationData)) == b"s1"
    p.server.update_keys()
    p.pump()
    p.server.request_client_certificate()  # a second request, after a server KeyUpdate too
    p.pump()
    assert len(of_type(p.server_events, PostHandshakeAuthCompleted)) == 2


def test_no_certificate_optional_and_required(world: World) -> None:
    p = connect(world, cert=False, post_handshake_auth=True)
    p.server.request_client_certificate()
    p.pump()
    (done,) = of_type(p.server_events, PostHandshakeAuthCompleted)
    assert not done.certificate_sent and done.info.peer_certificates == ()
    p.server.request_client_certificate(required=True)
    assert expect_alert13(p, CertificateRequired, AD.certificate_required) == "server"


def test_client_that_did_not_offer_cannot_be_asked(world: World) -> None:
    p = connect(world, cert=False)
    assert not offered_pha(p)
    with pytest.raises(LocalProtocolError, match="post_handshake_auth"):
        p.server.request_client_certificate()
    p2 = connect(world, post_handshake_auth=False)  # a certificate, but PHA turned off
    assert not offered_pha(p2)


def test_request_to_a_client_that_did_not_offer_is_unexpected(world: World) -> None:
    p = connect(world, cert=False)
    p.server._state.post_handshake_auth = True  # a server that asks anyway
    p.server.request_client_certificate()
    assert expect_alert13(p, UnexpectedMessage, AD.unexpected_message) == "client"


def test_one_request_at_a_time(world: World) -> None:
    p = connect(world)
    p.server.request_client_certificate()
    with pytest.raises(LocalProtocolError, match="already outstanding"):
        p.server.request_client_certificate()


def crafted_request(p: ConnectionPair, context: bytes, seq: int | None = None) -> bytes:
    """A CertificateRequest sealed with the server's keys (at ``seq``: default the next one,
    which it then uses up), sent out of band."""
    req = CertificateRequest13(context, (X.SignatureAlgorithms((0x0403,)),))
    prot = p.server._records.write
    wire = protected_record(p.server, encode_handshake(req) + b"\x16", seq)
    if seq is None:
        prot.seq += 1  # type: ignore[attr-defined]
    return wire


def test_certificate_for_another_request_is_illegal(world: World) -> None:
    p = connect(world)
    p.server.request_client_certificate()
    p.intercept(S2C)  # the real request is lost; the client answers a forged one
    seq = p.server._records.write.seq - 1  # type: ignore[attr-defined]
    p.client.receive_data(crafted_request(p, b"forged context", seq))
    assert expect_alert13(p, IllegalParameter, AD.illegal_parameter) == "server"


def test_a_reused_request_context_is_illegal(world: World) -> None:
    p = connect(world)
    p.client.receive_data(crafted_request(p, b"same"))
    p.client.data_to_send()
    with pytest.raises(IllegalParameter, match="used before"):
        p.client.receive_data(crafted_request(p, b"same"))


@pytest.mark.parametrize("cert", [True, False])
def test_a_wrong_transcript_fails_verification(world: World, cert: bool) -> None:
    """The client signs and MACs over a transcript that differs from the server's: the
    CertificateVerify (with a certificate) or the Finished (without) fails: decrypt_error."""
    p = connect(world, cert=cert, post_handshake_auth=True)
    p.client._ctx.transcript.add(b"\x14\x00\x00\x00")  # the client's view drifts
    p.server.request_client_certificate()
    assert expect_alert13(p, DecryptError, AD.decrypt_error) == "server"


def test_no_secret_in_any_repr_during_post_handshake_auth(world: World) -> None:
    secrets = Secrets()
    client = client13(world, certificate=world.certs.client, keylog=secrets.keylog)
    p = world.connect(client, server13(world, keylog=secrets.keylog))
    p.client.update_keys()
    p.server.request_client_certificate()
    checked = deliver_scanned(p, secrets, "post-handshake auth")
    assert of_type(p.server_events, PostHandshakeAuthCompleted) and checked > 20

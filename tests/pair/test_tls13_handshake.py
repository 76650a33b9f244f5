"""Full TLS 1.3 handshakes in memory: every suite x group x certificate type, HelloRetryRequest
and its cookie, client certificates, KeyUpdate, and the downgrade sentinel."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tessera import ClientAuth, LocalProtocolError, ProtocolVersion
from tessera.certs import CertifiedKey, issue_leaf
from tessera.crypto.suites import TLS13_SUITES
from tessera.enums import AlertDescription, HandshakeType, NamedGroup, SignatureScheme
from tessera.errors import CertificateRequired, HandshakeFailure, IllegalParameter
from tessera.events import HandshakeCompleted
from tessera.messages import ClientHello, ServerHello
from tessera.messages import extensions as X
from tessera.messages.hello import DOWNGRADE_TLS12, HELLO_RETRY_REQUEST_RANDOM

from .helpers import (
    ALL_GROUPS,
    Certs,
    Direction,
    MessageLog,
    World,
    on_messages,
    rewrite,
)
from .test_tls13_support import (
    TLS12,
    TLS13,
    app_data,
    client13,
    client_hellos,
    expect_alert13,
    key_updates,
    nth_client_hello,
    on_hello_messages,
    server13,
    server_hellos,
    without,
)

P256, P384, X25519 = NamedGroup.secp256r1, NamedGroup.secp384r1, NamedGroup.x25519
CERT_KINDS = ("p256", "p384", "rsa", "ed25519")
EXPECTED_SCHEME = {
    "p256": (SignatureScheme.ecdsa_secp256r1_sha256,),
    "p384": (SignatureScheme.ecdsa_secp384r1_sha384,),
    "rsa": (
        SignatureScheme.rsa_pss_rsae_sha256,
        SignatureScheme.rsa_pss_rsae_sha384,
        SignatureScheme.rsa_pss_rsae_sha512,
    ),
    "ed25519": (SignatureScheme.ed25519,),
}


class Leaves:
    """Server leaves by kind, made on first use (so a kind that cannot be made fails only the
    tests that use it)."""

    def __init__(self, certs: Certs) -> None:
        self._made: dict[str, CertifiedKey] = {"p256": certs.ecdsa, "rsa": certs.rsa}
        self._ca = certs.ca

    def __getitem__(self, kind: str) -> CertifiedKey:
        if kind not in self._made:
            self._made[kind] = issue_leaf(self._ca, ("localhost", "127.0.0.1"), kind=kind)
        return self._made[kind]


@pytest.fixture(scope="module")
def leaves(certs: Certs) -> Leaves:
    return Leaves(certs)


def exchange(pair) -> None:  # type: ignore[no-untyped-def]
    assert pair.send(Direction.C2S, b"ping" * 100) == b"ping" * 100
    assert pair.send(Direction.S2C, b"pong") == b"pong"


# -- the full matrix -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", CERT_KINDS)
@pytest.mark.parametrize("group", ALL_GROUPS, ids=lambda g: NamedGroup(g).name)
@pytest.mark.parametrize("suite", TLS13_SUITES, ids=lambda s: s.name)
def test_tls13_full_handshake(world: World, leaves, suite, group: int, kind: str) -> None:  # type: ignore[no-untyped-def]
    server = server13(world, certificates=(leaves[kind],), cipher_suites=(suite,))
    client = client13(world, groups=(group,))
    log = MessageLog()
    pair = world.connect(client, server, tamper=log)
    for conn in (pair.client, pair.server):
        info = conn.info
        assert info is not None
        assert info.version is ProtocolVersion.TLS1_3
        assert info.cipher_suite == suite
        assert info.group == group
        assert info.resumed is False and info.resumed_by is None
        assert info.early_data_accepted is False
    assert pair.client.info.signature_scheme in EXPECTED_SCHEME[kind]
    assert pair.client.info.peer_certificates[0] == leaves[kind].leaf
    (sh,) = server_hellos(pair)
    assert not sh.is_hello_retry_request
    assert sh.legacy_version == 0x0303 and sh.cipher_suite == suite.code
    assert sh.find(X.SupportedVersionSelected) == X.SupportedVersionSelected(TLS13)
    assert sh.find(X.KeyShareSelected).entry.group == group
    assert sh.find(X.PreSharedKeySelected) is None
    # Middlebox compatibility: the ServerHello is the only plaintext handshake message.
    assert log.names(Direction.S2C)[:2] == ["SERVER_HELLO", "ChangeCipherSpec"]
    assert set(log.names(Direction.S2C)[2:]) == {"encrypted APPLICATION_DATA"}
    assert log.names(Direction.C2S)[:2] == ["CLIENT_HELLO", "ChangeCipherSpec"]
    assert set(log.names(Direction.C2S)[2:]) == {"encrypted APPLICATION_DATA"}
    exchange(pair)


def test_tls13_client_hello_shape(world: World) -> None:
    pair = world.connect(client13(world), server13(world))
    (ch,) = client_hellos(pair)
    assert ch.legacy_version == 0x0303 and len(ch.session_id) == 32
    assert ch.find(X.SupportedVersionsOffer).versions == (TLS13, TLS12)
    assert [e.group for e in ch.find(X.KeyShareOffer).entries] == [X25519]
    assert ch.find(X.PskKeyExchangeModes).modes == (1,)  # psk_dhe_ke only by default
    assert ch.find(X.OfferedPsks) is None and ch.find(X.EarlyDataIndication) is None
    (sh,) = server_hellos(pair)
    assert sh.session_id == ch.session_id  # echoed (RFC 8446 §4.1.3)


def test_tls13_server_chooses_the_certificate_the_client_can_verify(world: World) -> None:
    server = server13(world)  # ECDSA first, then RSA
    client = client13(world, signature_schemes=(SignatureScheme.rsa_pss_rsae_sha256,))
    pair = world.connect(client, server)
    assert pair.client.info.signature_scheme == SignatureScheme.rsa_pss_rsae_sha256
    assert pair.client.info.peer_certificates[0] == world.certs.rsa.leaf


def test_tls13_rsa_never_uses_pkcs1(world: World) -> None:
    """RSASSA-PKCS1-v1_5 is not for TLS 1.3 handshake signatures (RFC 8446 §4.2.3)."""
    server = server13(world, certificates=(world.certs.rsa,))
    client = client13(world, signature_schemes=(SignatureScheme.rsa_pkcs1_sha256,))
    pair = world.pair(client, server)
    pair.start()
    expect_alert13(pair, HandshakeFailure, AlertDescription.handshake_failure)


# -- HelloRetryRequest -------------------------------------------------------------------------
def hrr_configs(world: World, **server_kw):  # type: ignore[no-untyped-def]
    """The client sends an X25519 share; the server accepts only P-256."""
    client = client13(world, groups=(X25519, P256), key_share_groups=(X25519,))
    server = server13(world, groups=(P256,), **server_kw)
    return client, server


def test_tls13_hello_retry_request(world: World) -> None:
    client, server = hrr_configs(world)
    log = MessageLog()
    pair = world.connect(client, server, tamper=log)
    hrr, sh = server_hellos(pair)
    assert hrr.is_hello_retry_request and hrr.random == HELLO_RETRY_REQUEST_RANDOM
    assert hrr.find(X.KeyShareRetry) == X.KeyShareRetry(P256)
    cookie = hrr.find(X.Cookie)
    assert cookie is not None and cookie.cookie
    assert not sh.is_hello_retry_request
    assert sh.cipher_suite == hrr.cipher_suite
    ch1, ch2 = client_hellos(pair)
    assert ch1.find(X.Cookie) is None
    assert ch2.find(X.Cookie) == cookie
    assert [e.group for e in ch2.find(X.KeyShareOffer).entries] == [P256]
    assert (ch2.random, ch2.session_id) == (ch1.random, ch1.session_id)
    assert ch2.find(X.EarlyDataIndication) is None
    for conn in (pair.client, pair.server):
        assert conn.info.group == P256 and conn.info.version is ProtocolVersion.TLS1_3
    assert log.names(Direction.S2C)[:2] == ["SERVER_HELLO", "ChangeCipherSpec"]
    # The second ClientHello follows the client's compatibility ChangeCipherSpec.
    assert log.names(Direction.C2S)[:2] == ["CLIENT_HELLO", "ChangeCipherSpec"]
    exchange(pair)


def test_tls13_no_retry_when_a_share_fits(world: World) -> None:
    client = client13(world, groups=(X25519, P256), key_share_groups=(X25519, P256))
    server = server13(world, groups=(P256,))
    pair = world.connect(client, server)
    assert len(server_hellos(pair)) == 1 and len(client_hellos(pair)) == 1
    assert pair.server.info.group == P256


def test_tls13_retry_without_common_group_fails(world: World) -> None:
    client = client13(world, groups=(X25519,))
    server = server13(world, groups=(P256,))
    pair = world.pair(client, server)
    pair.start()
    expect_alert13(pair, HandshakeFailure, AlertDescription.handshake_failure)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda ch: without(ch, X.Cookie), id="cookie-missing"),
        pytest.param(
            lambda ch: replace(
                ch,
                extensions=tuple(
                    X.Cookie(bytes(len(e.cookie))) if isinstance(e, X.Cookie) else e
                    for e in ch.extensions
                ),
            ),
            id="cookie-wrong",
        ),
        pytest.param(
            lambda ch: replace(
                ch,
                extensions=tuple(
                    X.Cookie(e.cookie[:-1] + bytes((e.cookie[-1] ^ 1,)))
                    if isinstance(e, X.Cookie)
                    else e
                    for e in ch.extensions
                ),
            ),
            id="cookie-one-bit",
        ),
        pytest.param(lambda ch: replace(ch, random=bytes(32)), id="random-changed"),
        pytest.param(
            lambda ch: replace(
                ch,
                extensions=tuple(
                    X.KeyShareOffer(()) if isinstance(e, X.KeyShareOffer) else e
                    for e in ch.extensions
                ),
            ),
            id="share-missing",
        ),
    ],
)
def test_tls13_second_client_hello_checked(world: World, change) -> None:  # type: ignore[no-untyped-def]
    client, server = hrr_configs(world)
    pair = world.pair(client, server, tamper=on_hello_messages(nth_client_hello(1, change)))
    pair.start()
    assert expect_alert13(pair, IllegalParameter, AlertDescription.illegal_parameter) == "server"


def test_tls13_cookie_is_bound_to_the_server_key(world: World) -> None:
    """A cookie from one server configuration is refused by another (different cookie_key)."""
    client, server_a = hrr_configs(world)
    _, server_b = hrr_configs(world)
    captured: list[bytes] = []

    def grab(d: Direction, msg):  # type: ignore[no-untyped-def]
        if msg.msg_type == HandshakeType.SERVER_HELLO and d is Direction.S2C:
            hrr = msg.decode(ServerHello)
            if hrr.is_hello_retry_request:
                captured.append(hrr.find(X.Cookie).cookie)
        return msg

    world.connect(client, server_a, tamper=on_messages(grab))

    def swap(ch: ClientHello) -> ClientHello:
        return replace(
            ch,
            extensions=tuple(
                X.Cookie(captured[0]) if isinstance(e, X.Cookie) else e for e in ch.extensions
            ),
        )

    pair = world.pair(client, server_b, tamper=on_hello_messages(nth_client_hello(1, swap)))
    pair.start()
    expect_alert13(pair, IllegalParameter, AlertDescription.illegal_parameter)


# -- client certificates ------------------------------------------------------------------------
def test_tls13_client_certificate(world: World) -> None:
    server = server13(world, client_auth=ClientAuth.REQUIRED)
    client = client13(world, certificate=world.certs.client)
    pair = world.connect(client, server)
    assert pair.server.info.peer_certificates[0] == world.certs.client.leaf
    exchange(pair)


def test_tls13_client_certificate_required_but_missing(world: World) -> None:
    server = server13(world, client_auth=ClientAuth.REQUIRED)
    pair = world.pair(client13(world), server)
    pair.start()
    side = expect_alert13(pair, CertificateRequired, AlertDescription.certificate_required)
    assert side == "server"


def test_tls13_client_certificate_optional_and_missing(world: World) -> None:
    server = server13(world, client_auth=ClientAuth.OPTIONAL)
    pair = world.connect(client13(world), server)
    assert pair.server.info.peer_certificates == ()
    exchange(pair)


# -- KeyUpdate ------------------------------------------------------------------------------------
@pytest.mark.parametrize("request_peer", [False, True], ids=["not-requested", "requested"])
@pytest.mark.parametrize("initiator", ["client", "server"])
def test_tls13_key_update(world: World, initiator: str, request_peer: bool) -> None:
    pair = world.connect(client13(world), server13(world))
    exchange(pair)
    pair.client_events.clear()
    pair.server_events.clear()
    side, other = (
        (pair.client, pair.server) if initiator == "client" else (pair.server, pair.client)
    )
    side_events, other_events = (
        (pair.client_events, pair.server_events)
        if initiator == "client"
        else (pair.server_events, pair.client_events)
    )
    before = side._records.write
    side.update_keys(request_peer=request_peer)
    assert side._records.write is not before
    pair.pump()
    side_events.extend(side.events())
    other_events.extend(other.events())
    assert key_updates(side_events) == (["local", "peer"] if request_peer else ["local"])
    assert key_updates(other_events) == (["peer", "local"] if request_peer else ["peer"])
    # Data still flows both ways, under the new keys.
    exchange(pair)
    assert app_data(pair.client_events) == b"pong"


def test_tls13_many_key_updates_both_ways(world: World) -> None:
    pair = world.connect(client13(world), server13(world))
    for i in range(5):
        pair.client.update_keys(request_peer=i % 2 == 0)
        pair.server.update_keys(request_peer=False)
        pair.pump()
        exchange(pair)
    pair.client_events.extend(pair.client.events())
    pair.server_events.extend(pair.server.events())
    # The client updated 5 times and answered none; the server updated 5 times on its own and
    # 3 times because the client asked.
    assert key_updates(pair.client_events).count("local") == 5
    assert key_updates(pair.client_events).count("peer") == 5 + 3
    assert key_updates(pair.server_events).count("peer") == 5
    assert key_updates(pair.server_events).count("local") == 5 + 3


def test_tls13_update_keys_needs_an_open_tls13_connection(world: World) -> None:
    pair = world.pair(client13(world), server13(world))
    pair.start()
    with pytest.raises(LocalProtocolError):
        pair.client.update_keys()
    tls12 = world.connect(world.client_config(), world.server_config())
    with pytest.raises(LocalProtocolError):
        tls12.client.update_keys()


# -- the downgrade sentinel (RFC 8446 §4.1.3) ---------------------------------------------------
def _server_random(pair) -> bytes:  # type: ignore[no-untyped-def]
    (sh,) = server_hellos(pair)
    return sh.random


@pytest.mark.parametrize(("server_max", "sentinel"), [(TLS13, True), (TLS12, False)])
def test_tls13_capable_server_sets_sentinel_for_tls12_client(
    world: World, server_max, sentinel
) -> None:  # type: ignore[no-untyped-def]
    server = world.server_config(max_version=server_max)
    client = world.client_config(max_version=TLS12)
    pair = world.connect(client, server)
    assert pair.client.info.version is ProtocolVersion.TLS1_2
    assert (_server_random(pair)[-8:] == DOWNGRADE_TLS12) is sentinel
    exchange(pair)


def test_tls13_client_accepts_tls12_server_without_sentinel(world: World) -> None:
    pair = world.connect(client13(world), world.server_config(max_version=TLS12))
    assert pair.client.info.version is ProtocolVersion.TLS1_2
    assert _server_random(pair)[-8:] != DOWNGRADE_TLS12
    exchange(pair)


@pytest.mark.parametrize("tail", [DOWNGRADE_TLS12, b"DOWNGRD\x00"], ids=["tls12", "tls11"])
def test_tls13_client_detects_downgrade(world: World, tail: bytes) -> None:
    def change(msg):  # type: ignore[no-untyped-def]
        sh = msg.decode(ServerHello)
        from .helpers import Message

        return Message.of(replace(sh, random=sh.random[:24] + tail))

    pair = world.pair(
        client13(world),
        world.server_config(max_version=TLS12),
        tamper=on_messages(rewrite(Direction.S2C, HandshakeType.SERVER_HELLO, change)),
    )
    pair.start()
    side = expect_alert13(pair, IllegalParameter, AlertDescription.illegal_parameter)
    assert side == "client"
    assert not any(isinstance(e, HandshakeCompleted) for e in pair.client_events)


def test_tls12_only_client_ignores_the_sentinel(world: World) -> None:
    """Only a client that offered TLS 1.3 may treat the sentinel as an attack."""
    pair = world.connect(world.client_config(max_version=TLS12), server13(world))
    assert _server_random(pair)[-8:] == DOWNGRADE_TLS12
    assert pair.client.info.version is ProtocolVersion.TLS1_2

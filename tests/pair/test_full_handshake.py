"""Full TLS 1.2 handshakes in memory: every suite, group and certificate type, the extensions
that change the record layer (EMS, ETM), ALPN, SNI, client certificates, data and closing."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tessera import (
    AlertReceived,
    ClientAuth,
    ConnectionClosed,
    LocalProtocolError,
    ProtocolVersion,
    RemoteProtocolError,
)
from tessera.crypto.suites import Auth, KeyExchange
from tessera.enums import AlertDescription, ContentType, HandshakeType, NamedGroup, SignatureScheme
from tessera.errors import BadCertificate, HandshakeFailure
from tessera.events import (
    ApplicationData,
    HandshakeCompleted,
    ResumptionDecided,
    ServerHelloReceived,
    SessionTicketReceived,
)

from .helpers import (
    ALL_GROUPS,
    ALL_TLS12_SUITES,
    MAX_FRAGMENT,
    Direction,
    MessageLog,
    World,
    assert_fatal_alert_last,
    parse_records,
)


def _exchange_data(pair) -> None:  # type: ignore[no-untyped-def]
    assert pair.send(Direction.C2S, b"ping") == b"ping"
    assert pair.send(Direction.S2C, b"pong") == b"pong"


@pytest.mark.parametrize("suite", ALL_TLS12_SUITES, ids=lambda s: s.openssl_name)
def test_every_tls12_suite(world: World, suite) -> None:  # type: ignore[no-untyped-def]
    pair = world.connect(
        world.client_config(cipher_suites=suite.openssl_name), world.server_config()
    )
    for conn in (pair.client, pair.server):
        info = conn.info
        assert info is not None
        assert info.version is ProtocolVersion.TLS1_2
        assert info.cipher_suite == suite
        assert info.resumed is False and info.resumed_by is None
        assert info.extended_master_secret is True
        # ETM applies to CBC suites only (RFC 7366 §3).
        assert info.encrypt_then_mac is (not suite.is_aead)
        assert info.secure_renegotiation is True
    leaf_key = pair.client.info.peer_certificates[0].public_key()
    assert isinstance(leaf_key, rsa.RSAPublicKey) is (suite.auth is Auth.RSA)
    if suite.kx is KeyExchange.ECDHE:
        assert pair.client.info.group == pair.server.info.group == NamedGroup.x25519
        assert pair.client.info.signature_scheme is not None
    else:
        assert pair.client.info.group is None
        assert pair.client.info.signature_scheme is None
    _exchange_data(pair)


@pytest.mark.parametrize("group", ALL_GROUPS, ids=lambda g: NamedGroup(g).name)
def test_every_group(world: World, group: int) -> None:
    pair = world.connect(world.client_config(groups=(group,)), world.server_config())
    assert pair.client.info.group == group
    assert pair.server.info.group == group
    _exchange_data(pair)


def test_server_prefers_its_own_group_order(world: World) -> None:
    server = world.server_config(groups=(NamedGroup.secp384r1, NamedGroup.x25519))
    client = world.client_config(groups=(NamedGroup.x25519, NamedGroup.secp384r1))
    pair = world.connect(client, server)
    assert pair.server.info.group == NamedGroup.secp384r1


@pytest.mark.parametrize(
    ("cert", "suite", "scheme"),
    [
        ("ecdsa", "ECDHE-ECDSA-AES128-GCM-SHA256", SignatureScheme.ecdsa_secp256r1_sha256),
        ("rsa", "ECDHE-RSA-AES128-GCM-SHA256", SignatureScheme.rsa_pss_rsae_sha256),
    ],
)
def test_certificate_types(world: World, cert: str, suite: str, scheme: int) -> None:
    certified = getattr(world.certs, cert)
    pair = world.connect(
        world.client_config(cipher_suites=suite), world.server_config(certificates=(certified,))
    )
    assert pair.client.info.peer_certificates[0] == certified.leaf
    assert pair.client.info.signature_scheme == scheme == pair.server.info.signature_scheme


def test_rsa_pkcs1_when_the_client_offers_only_pkcs1(world: World) -> None:
    client = world.client_config(
        cipher_suites="ECDHE-RSA-AES128-GCM-SHA256",
        signature_schemes=(SignatureScheme.rsa_pkcs1_sha384,),
    )
    pair = world.connect(client, world.server_config())
    assert pair.client.info.signature_scheme == SignatureScheme.rsa_pkcs1_sha384


def test_server_picks_certificate_for_suite(world: World) -> None:
    # The server holds both; the client only offers RSA-authenticated suites.
    pair = world.connect(
        world.client_config(cipher_suites="ECDHE-RSA-CHACHA20-POLY1305"), world.server_config()
    )
    assert pair.client.info.peer_certificates[0] == world.certs.rsa.leaf


@pytest.mark.parametrize("client_ems", [True, False])
@pytest.mark.parametrize("server_ems", [True, False])
def test_extended_master_secret(world: World, client_ems: bool, server_ems: bool) -> None:
    log = MessageLog()
    pair = world.connect(
        world.client_config(extended_master_secret=client_ems),
        world.server_config(extended_master_secret=server_ems),
        tamper=log,
    )
    both = client_ems and server_ems
    assert pair.client.info.extended_master_secret is both
    assert pair.server.info.extended_master_secret is both
    _exchange_data(pair)


def test_extended_master_secret_changes_the_master_secret(world: World) -> None:
    """With the same randoms and premaster, EMS on and off must give different secrets: the
    keylog lines (CLIENT_RANDOM <random> <master>) of both runs differ only in the secret."""
    lines: dict[bool, list[str]] = {True: [], False: []}
    for ems in (True, False):
        w = World(world.certs, clock=world.clock)
        w.connect(
            w.client_config(extended_master_secret=ems, keylog=lines[ems].append),
            w.server_config(),
        )
    assert lines[True][0].split()[1] == lines[False][0].split()[1]  # same client random
    assert lines[True][0].split()[2] != lines[False][0].split()[2]


def test_require_extended_master_secret(world: World) -> None:
    pair = world.pair(
        world.client_config(require_extended_master_secret=True),
        world.server_config(extended_master_secret=False),
    )
    pair.start()
    with pytest.raises(HandshakeFailure):
        pair.pump()
    assert_fatal_alert_last(pair.client.data_to_send(), AlertDescription.handshake_failure)


@pytest.mark.parametrize("client_etm", [True, False])
@pytest.mark.parametrize("server_etm", [True, False])
@pytest.mark.parametrize("suite", ["ECDHE-ECDSA-AES128-SHA", "AES256-SHA256"])
def test_encrypt_then_mac(world: World, client_etm: bool, server_etm: bool, suite: str) -> None:
    pair = world.connect(
        world.client_config(encrypt_then_mac=client_etm, cipher_suites=suite),
        world.server_config(encrypt_then_mac=server_etm),
    )
    both = client_etm and server_etm
    assert pair.client.info.encrypt_then_mac is both
    assert pair.server.info.encrypt_then_mac is both
    _exchange_data(pair)
    # The MAC-then-encrypt record of 4 bytes: IV + one block of (data + 20-byte MAC + pad) = 48;
    # encrypt-then-MAC: IV + one block + MAC after it = 16 + 16 + 20 (SHA-1) or + 32 (SHA-256).
    pair.client.send_data(b"abcd")
    (rec,) = parse_records(pair.client.data_to_send())
    mac_len = 20 if suite.endswith("-SHA") else 32
    if both:
        assert len(rec.fragment) == 32 + mac_len
    else:
        assert len(rec.fragment) == 16 + ((4 + mac_len) // 16 + 1) * 16


def test_etm_not_offered_for_aead_only_client(world: World) -> None:
    log: list[bytes] = []
    pair = world.pair(world.client_config(cipher_suites="ECDHE-ECDSA-AES128-GCM-SHA256"))
    pair.start()
    log.append(pair.client.data_to_send())
    # 0x0016 is encrypt_then_mac: absent from an AEAD-only ClientHello.
    from tessera.messages import ClientHello
    from tessera.messages import extensions as X
    from tessera.messages.base import decode_message

    ch = decode_message(ClientHello, parse_records(log[0])[0].fragment[4:])
    assert ch.find(X.EncryptThenMac) is None
    assert ch.find(X.ExtendedMasterSecret) is not None


# -- ALPN and SNI ---------------------------------------------------------------------------
def test_alpn_server_preference(world: World) -> None:
    pair = world.connect(
        world.client_config(alpn_protocols=("http/1.1", "h2")),
        world.server_config(alpn_protocols=("h2", "http/1.1")),
    )
    assert pair.client.info.alpn_protocol == "h2"
    assert pair.server.info.alpn_protocol == "h2"


def test_alpn_only_one_side(world: World) -> None:
    pair = world.connect(world.client_config(alpn_protocols=("h2",)), world.server_config())
    assert pair.client.info.alpn_protocol is None
    pair = world.connect(world.client_config(), world.server_config(alpn_protocols=("h2",)))
    assert pair.client.info.alpn_protocol is None


def test_sni_selects_certificate(world: World) -> None:
    server = world.server_config(certificates=(world.certs.ecdsa, world.certs.alt))
    pair = world.connect(world.client_config(), server, server_name="alt.example")
    assert pair.client.info.peer_certificates[0] == world.certs.alt.leaf
    assert pair.server.info.server_name == "alt.example"
    assert pair.client.info.server_name == "alt.example"
    pair = world.connect(world.client_config(), server, server_name="localhost")
    assert pair.client.info.peer_certificates[0] == world.certs.ecdsa.leaf
    assert pair.server.info.server_name == "localhost"


def test_sni_is_case_insensitive_on_the_server(world: World) -> None:
    server = world.server_config(certificates=(world.certs.ecdsa, world.certs.alt))
    pair = world.connect(world.client_config(), server, server_name="ALT.example")
    assert pair.server.info.server_name == "alt.example"
    assert pair.client.info.peer_certificates[0] == world.certs.alt.leaf


def test_unknown_sni_falls_back_to_all_certificates(world: World) -> None:
    server = world.server_config(certificates=(world.certs.alt,))
    client = world.client_config(verify=False)
    pair = world.connect(client, server, server_name="nowhere.example")
    assert pair.client.info.peer_certificates[0] == world.certs.alt.leaf
    assert pair.server.info.server_name == "nowhere.example"


def test_no_sni_for_ip_address(world: World) -> None:
    pair = world.connect(world.client_config(), world.server_config(), server_name="127.0.0.1")
    assert pair.server.info.server_name is None


def test_wrong_host_name_is_bad_certificate(world: World) -> None:
    pair = world.pair(world.client_config(), world.server_config(certificates=(world.certs.alt,)))
    pair.start()
    with pytest.raises(BadCertificate):
        pair.pump()
    alert = parse_records(pair.client.data_to_send())[-1].fragment
    assert alert[0] == 2 and alert[1] in (
        AlertDescription.bad_certificate,
        AlertDescription.certificate_unknown,
    )


def test_untrusted_server_is_unknown_ca(world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tessera.certs import generate_ca

    other = tmp_path / "other.pem"
    other.write_bytes(generate_ca("ec", "someone else").to_pem()[0])
    pair = world.pair(world.client_config(cafile=other), world.server_config())
    pair.start()
    with pytest.raises(BadCertificate) as err:
        pair.pump()
    assert err.value.alert is AlertDescription.unknown_ca
    assert_fatal_alert_last(pair.client.data_to_send(), AlertDescription.unknown_ca)


# -- client certificates --------------------------------------------------------------------
@pytest.mark.parametrize("mode", [ClientAuth.REQUIRED, ClientAuth.OPTIONAL])
def test_client_certificate(world: World, mode: ClientAuth) -> None:
    log = MessageLog()
    pair = world.connect(
        world.client_config(certificate=world.certs.client),
        world.server_config(client_auth=mode),
        tamper=log,
    )
    assert pair.server.info.peer_certificates[0] == world.certs.client.leaf
    assert "certificate_request" in " ".join(log.names(Direction.S2C)).lower()
    assert [n for n in log.names(Direction.C2S) if not n.startswith("encrypted")] == [
        "CLIENT_HELLO",
        "CERTIFICATE",
        "CLIENT_KEY_EXCHANGE",
        "CERTIFICATE_VERIFY",
        "ChangeCipherSpec",
    ]
    _exchange_data(pair)


def test_client_certificate_optional_and_absent(world: World) -> None:
    log = MessageLog()
    pair = world.connect(
        world.client_config(), world.server_config(client_auth=ClientAuth.OPTIONAL), tamper=log
    )
    assert pair.server.info.peer_certificates == ()
    names = log.names(Direction.C2S)
    assert "CERTIFICATE" in names and "CERTIFICATE_VERIFY" not in names


def test_client_certificate_required_and_absent(world: World) -> None:
    pair = world.pair(world.client_config(), world.server_config(client_auth=ClientAuth.REQUIRED))
    pair.start()
    with pytest.raises(HandshakeFailure):
        pair.pump()
    assert_fatal_alert_last(pair.server.data_to_send(), AlertDescription.handshake_failure)


def test_client_certificate_not_requested_is_not_sent(world: World) -> None:
    log = MessageLog()
    pair = world.connect(
        world.client_config(certificate=world.certs.client), world.server_config(), tamper=log
    )
    assert "CERTIFICATE" not in log.names(Direction.C2S)
    assert pair.server.info.peer_certificates == ()


def test_client_certificate_from_unknown_ca(world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tessera.certs import generate_ca, issue_leaf

    rogue = issue_leaf(generate_ca("ec", "rogue"), ("rogue",), client=True)
    pair = world.pair(
        world.client_config(certificate=rogue), world.server_config(client_auth=ClientAuth.OPTIONAL)
    )
    pair.start()
    with pytest.raises(BadCertificate) as err:
        pair.pump()
    assert err.value.alert is AlertDescription.unknown_ca


# -- application data and closing -----------------------------------------------------------
@pytest.mark.parametrize("suite", ["ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-SHA256"])
def test_large_messages_are_fragmented(world: World, suite: str) -> None:
    pair = world.connect(world.client_config(cipher_suites=suite), world.server_config())
    payload = bytes(range(256)) * 400  # 100 KiB
    for direction, sender in ((Direction.C2S, pair.client), (Direction.S2C, pair.server)):
        sender.send_data(payload)
        wire = sender.data_to_send()
        records = parse_records(wire)
        assert len(records) == -(-len(payload) // MAX_FRAGMENT) == 7
        assert all(r.content_type == ContentType.APPLICATION_DATA for r in records)
        assert all(len(r.fragment) <= MAX_FRAGMENT + 2048 for r in records)
        receiver_events = pair.server_events if direction is Direction.C2S else pair.client_events
        before = len(receiver_events)
        pair.inject(direction, wire)
        chunks = [e.data for e in receiver_events[before:] if isinstance(e, ApplicationData)]
        assert len(chunks) == 7
        assert all(len(c) <= MAX_FRAGMENT for c in chunks)
        assert b"".join(chunks) == payload


def test_data_in_small_pieces(world: World) -> None:
    pair = world.connect(world.client_config(), world.server_config())
    pair.client.send_data(b"hello world")
    wire = pair.client.data_to_send()
    for i in range(len(wire)):
        pair.server.receive_data(wire[i : i + 1])
    assert [e for e in pair.server.events() if isinstance(e, ApplicationData)] == [
        ApplicationData(b"hello world")
    ]


def test_send_before_handshake_is_local_error(world: World) -> None:
    pair = world.pair()
    pair.start()
    with pytest.raises(LocalProtocolError):
        pair.client.send_data(b"too early")
    with pytest.raises(LocalProtocolError):
        pair.server.send_data(b"too early")


def test_client_must_start_before_receiving(world: World) -> None:
    pair = world.pair()
    with pytest.raises(LocalProtocolError):
        pair.client.receive_data(b"\x16\x03\x03\x00\x01\x00")
    pair.start()
    with pytest.raises(LocalProtocolError):
        pair.client.start_handshake()


@pytest.mark.parametrize("closer", ["client", "server"])
def test_close_notify(world: World, closer: str) -> None:
    pair = world.connect(world.client_config(), world.server_config())
    first, other = (pair.client, pair.server) if closer == "client" else (pair.server, pair.client)
    direction = Direction.C2S if closer == "client" else Direction.S2C
    first.close()
    assert first.closed
    with pytest.raises(LocalProtocolError):
        first.send_data(b"after close")
    pair.deliver(direction)
    events = pair.server_events if closer == "client" else pair.client_events
    assert isinstance(events[-1], ConnectionClosed)
    assert other.peer_closed
    # The other side may still send (half close), then close too.
    back = Direction.S2C if closer == "client" else Direction.C2S
    assert pair.send(back, b"last words") == b"last words"
    other.close()
    pair.deliver(back)
    events = pair.client_events if closer == "client" else pair.server_events
    assert isinstance(events[-1], ConnectionClosed)


def test_data_after_close_notify_is_ignored(world: World) -> None:
    pair = world.connect(world.client_config(), world.server_config())
    pair.client.close()
    wire = pair.client.data_to_send()
    pair.server.receive_data(wire + b"\x17\x03\x03\x00\x05junk!")
    events = pair.server.events()
    assert events == [ConnectionClosed()]


def test_events_and_info(world: World) -> None:
    pair = world.connect(
        world.client_config(alpn_protocols=("h2",)), world.server_config(alpn_protocols=("h2",))
    )
    c = pair.completed("client").info
    s = pair.completed("server").info
    assert c == pair.client.info and s == pair.server.info
    assert c.session_id == s.session_id
    assert c.cipher_suite == s.cipher_suite
    assert c.alpn_protocol == s.alpn_protocol == "h2"
    assert c.server_name == s.server_name == "localhost"
    assert s.peer_certificates == ()
    assert [type(e) for e in pair.client_events] == [
        ServerHelloReceived,
        HandshakeCompleted,
        SessionTicketReceived,
    ]
    assert [type(e) for e in pair.server_events] == [ResumptionDecided, HandshakeCompleted]
    decided = pair.server_events[0]
    assert isinstance(decided, ResumptionDecided)
    assert decided.decision.kind == "full" and decided.decision.offered is None
    assert s.resumption is decided.decision


def test_keylog_lines(world: World) -> None:
    client_lines: list[str] = []
    server_lines: list[str] = []
    pair = world.connect(
        world.client_config(keylog=client_lines.append),
        world.server_config(keylog=server_lines.append),
    )
    assert client_lines == server_lines
    (line,) = client_lines
    label, random_hex, secret_hex = line.split()
    assert label == "CLIENT_RANDOM"
    assert len(bytes.fromhex(random_hex)) == 32 and len(bytes.fromhex(secret_hex)) == 48
    assert pair.client.info is not None


def test_full_handshake_flights(world: World) -> None:
    log = MessageLog()
    world.connect(world.client_config(), world.server_config(), tamper=log)
    assert log.names(Direction.S2C) == [
        "SERVER_HELLO",
        "CERTIFICATE",
        "SERVER_KEY_EXCHANGE",
        "SERVER_HELLO_DONE",
        "NEW_SESSION_TICKET",
        "ChangeCipherSpec",
        "encrypted HANDSHAKE",
    ]
    assert log.names(Direction.C2S) == [
        "CLIENT_HELLO",
        "CLIENT_KEY_EXCHANGE",
        "ChangeCipherSpec",
        "encrypted HANDSHAKE",
    ]
    assert HandshakeType.SERVER_HELLO.name in log.names(Direction.S2C)


def test_no_common_suite_is_handshake_failure(world: World) -> None:
    pair = world.pair(
        world.client_config(cipher_suites="ECDHE-RSA-AES128-GCM-SHA256"),
        world.server_config(certificates=(world.certs.ecdsa,)),
    )
    pair.start()
    with pytest.raises(HandshakeFailure):
        pair.pump()
    data = pair.server.data_to_send()
    assert_fatal_alert_last(data, AlertDescription.handshake_failure)
    with pytest.raises(AlertReceived) as err:
        pair.client.receive_data(data)
    assert err.value.alert is AlertDescription.handshake_failure


def test_no_common_group_skips_ecdhe(world: World) -> None:
    # No group in common: ECDHE suites are impossible, static RSA still works.
    pair = world.connect(
        world.client_config(
            groups=(NamedGroup.x448,), cipher_suites="ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256"
        ),
        world.server_config(groups=(NamedGroup.x25519,)),
    )
    assert pair.client.info.cipher_suite.openssl_name == "AES128-GCM-SHA256"


def test_remote_errors_are_alert_errors() -> None:
    assert issubclass(HandshakeFailure, RemoteProtocolError)


def test_hellos_depend_only_on_config_rng(world: World) -> None:
    """Randomness comes from config.rng: the same seed gives byte-identical hellos."""
    from .helpers import CountingRng

    flights = []
    for _ in range(2):
        w = World(world.certs, clock=world.clock, rng=CountingRng(b"seed"))
        p = w.pair(w.client_config(session_cache=None), w.server_config())
        p.start()
        p.deliver(Direction.C2S)
        p.deliver(Direction.S2C)
        hello = p.sent[Direction.C2S][0]
        server_hello = parse_records(p.sent[Direction.S2C][0])[0].fragment
        flights.append((hello, server_hello[: 4 + 2 + 32 + 1 + 32]))
    assert flights[0] == flights[1]
    w = World(world.certs, clock=world.clock, rng=CountingRng(b"other seed"))
    p = w.pair(w.client_config(session_cache=None))
    p.start()
    assert p.client.data_to_send() != flights[0][0]


def test_certificate_validity_uses_config_clock(world: World) -> None:
    world.clock.advance(40 * 86400)  # the test certificates are valid for 30 days
    pair = world.pair()
    pair.start()
    with pytest.raises(BadCertificate) as err:
        pair.pump()
    assert err.value.alert is AlertDescription.certificate_expired


def test_info_before_completion(world: World) -> None:
    pair = world.pair()
    assert pair.client.info is None and not pair.client.handshake_complete
    pair.start()
    pair.deliver(Direction.C2S)
    assert pair.server.info is None
    pair.pump()
    assert pair.server.info is not None


@pytest.mark.parametrize(
    ("fragment", "alert"),
    [
        (b"\x02\x28", AlertDescription.handshake_failure),
        (b"\x02\x50", AlertDescription.internal_error),
        (b"\x02\xee", AlertDescription.internal_error),  # unknown description
    ],
)
def test_fatal_alert_received(world: World, fragment: bytes, alert: AlertDescription) -> None:
    from tessera import ConnectionClosedError

    from .helpers import record

    pair = world.pair()
    pair.start()
    pair.deliver(Direction.C2S)
    pair.intercept(Direction.S2C)
    with pytest.raises(AlertReceived) as err:
        pair.client.receive_data(record(ContentType.ALERT, fragment))
    assert err.value.alert is alert
    assert pair.client.failed and pair.client.data_to_send() == b""  # no alert in reply
    with pytest.raises(ConnectionClosedError):
        pair.client.receive_data(b"\x15\x03\x03\x00\x02\x01\x00")


def test_warning_alert_is_not_fatal(world: World) -> None:
    from .helpers import record

    pair = world.pair()
    pair.start()
    pair.server.receive_data(record(ContentType.ALERT, b"\x01\x5a"))  # user_canceled warning
    assert not pair.server.failed
    pair.pump()
    assert pair.client.handshake_complete


def test_empty_receive_is_end_of_stream(world: World) -> None:
    pair = world.connect(world.client_config(), world.server_config())
    pair.server.receive_data(b"")  # EOF without close_notify (tests/pair/test_eof.py)
    assert pair.server.events() == [ConnectionClosed(close_notify=False)]

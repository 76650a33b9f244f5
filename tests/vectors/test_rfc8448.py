"""RFC 8448 traces checked against tessera: the key schedule, the record protection and the
message codec.

The values live in ``rfc8448_trace.txt`` (RFC 8448 §3 "Simple 1-RTT Handshake" and §4 "Resumed
0-RTT Handshake"). Transcript hashes are computed from the RFC's own message bytes, and every
message is decoded with ``tessera.messages`` and re-encoded byte for byte. The §4 ClientHello is
also handed to a real ``ServerConnection`` holding the §3 ticket's PSK, which must verify the
RFC's binder and decrypt the RFC's 0-RTT record.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from tessera import ClientAuth, MemoryStore, ServerConfig, ServerConnection
from tessera.certs import generate_self_signed
from tessera.crypto.key_exchange import KeyShare
from tessera.crypto.key_schedule import KeySchedule, hkdf_expand_label, hkdf_extract, psk_binder
from tessera.crypto.suites import BY_CODE
from tessera.crypto.transcript import Transcript
from tessera.enums import ContentType, HandshakeType, NamedGroup, ProtocolVersion
from tessera.errors import BadRecordMac, DecryptError
from tessera.events import ApplicationData, ResumptionDecided
from tessera.messages import (
    Certificate13,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    Finished,
    NewSessionTicket13,
    ServerHello,
    decode_message,
    encode_handshake,
)
from tessera.messages import extensions as X
from tessera.record.protection import AEAD13
from tessera.session.model import ServerSession
from tessera.session.resumption import stateful_ticket_key

TRACE = Path(__file__).with_name("rfc8448_trace.txt")
SUITE = BY_CODE[0x1301]  # TLS_AES_128_GCM_SHA256, used throughout RFC 8448
_HEAD = re.compile(r"^(\w+) \((\d+) octets\):\s*(.*)$")


def load_trace(path: Path = TRACE) -> dict[str, dict[str, bytes]]:
    """{section: {name: bytes}}; each value must have the octet count the RFC prints."""
    sections: dict[str, dict[str, list[str]]] = {}
    counts: dict[tuple[str, str], int] = {}
    current: dict[str, list[str]] | None = None
    section = ""
    name = ""
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip().strip("[]")
            current = sections.setdefault(section, {})
            continue
        assert current is not None, line
        m = _HEAD.match(line)
        if m:
            name = m.group(1)
            assert name not in current, f"{name} twice in section {section}"
            current[name] = m.group(3).split()
            counts[section, name] = int(m.group(2))
            continue
        assert line.startswith(" "), f"unexpected line {line!r}"
        current[name].extend(line.split())
    out: dict[str, dict[str, bytes]] = {}
    for sec, entries in sections.items():
        out[sec] = {}
        for key, tokens in entries.items():
            assert all(re.fullmatch(r"[0-9a-f]{2}", t) for t in tokens), (sec, key)
            value = bytes.fromhex("".join(tokens))
            assert len(value) == counts[sec, key], (sec, key, len(value), counts[sec, key])
            out[sec][key] = value
    return out


V = load_trace()
S3 = V["3"]
S4 = V["4"]


def sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def transcript_of(*messages: bytes) -> bytes:
    """tessera's own transcript hash over the RFC's message bytes."""
    t = Transcript()
    for m in messages:
        t.add(m)
    t.set_hash("sha256")
    return t.digest()


def x25519_share(private: bytes) -> KeyShare:
    """A tessera KeyShare holding the RFC's fixed private key instead of a random one."""
    share = object.__new__(KeyShare)
    key = x25519.X25519PrivateKey.from_private_bytes(private)
    share.group = NamedGroup.x25519
    share._private = key
    share.public = key.public_key().public_bytes_raw()
    return share


def record(fragment: bytes) -> tuple[int, bytes]:
    return ContentType.APPLICATION_DATA, fragment


def header(fragment: bytes) -> bytes:
    return bytes((ContentType.APPLICATION_DATA, 3, 3)) + len(fragment).to_bytes(2, "big")


# -- the trace file ------------------------------------------------------------------------
def test_trace_file_has_both_sections() -> None:
    assert set(V) == {"3", "4"}
    assert len(S3) >= 40 and len(S4) >= 35


def test_transcript_hashes_from_the_rfc_messages() -> None:
    s3_msgs = [S3[n] for n in ("ClientHello", "ServerHello", "EncryptedExtensions",
                               "Certificate", "CertificateVerify", "ServerFinished")]  # fmt: skip
    assert transcript_of(*s3_msgs[:2]) == S3["hs_hash"]
    assert transcript_of(*s3_msgs) == S3["ap_hash"]
    assert transcript_of(*s3_msgs, S3["ClientFinished"]) == S3["res_hash"]
    assert transcript_of() == S3["empty_hash"] == hashlib.sha256().digest()

    eoed = bytes((HandshakeType.END_OF_EARLY_DATA, 0, 0, 0))
    s4_msgs = [S4[n] for n in ("ClientHello", "ServerHello", "EncryptedExtensions",
                               "ServerFinished")]  # fmt: skip
    assert transcript_of(S4["ClientHelloPrefix"]) == S4["binder_hash"]
    assert transcript_of(S4["ClientHello"]) == S4["ch_hash"]
    assert transcript_of(*s4_msgs[:2]) == S4["hs_hash"]
    assert transcript_of(*s4_msgs) == S4["ap_hash"]
    assert transcript_of(*s4_msgs, eoed) == S4["eoed_hash"]
    assert transcript_of(*s4_msgs, eoed, S4["ClientFinished"]) == S4["cf_hash"]


# -- HKDF-Expand-Label's info encoding, shown in the trace ------------------------------------
@pytest.mark.parametrize(
    ("label", "context", "length", "info"),
    [
        pytest.param(b"derived", S3["empty_hash"], 32, S3["derived_info"], id="derived"),
        pytest.param(b"c hs traffic", S3["hs_hash"], 32, S3["c_hs_info"], id="c-hs-traffic"),
        pytest.param(b"key", b"", 16, S3["key_info"], id="key"),
        pytest.param(b"iv", b"", 12, S3["iv_info"], id="iv"),
        pytest.param(b"finished", b"", 32, S3["finished_info"], id="finished"),
        pytest.param(b"resumption", b"\x00\x00", 32, S3["resumption_info"], id="resumption"),
        pytest.param(b"c e traffic", S4["ch_hash"], 32, S4["c_e_traffic_info"], id="c-e-traffic"),
    ],
)
def test_hkdf_label_info_matches_rfc(
    label: bytes, context: bytes, length: int, info: bytes
) -> None:
    # HKDF-Expand with a one-block output is HMAC(secret, info | 0x01): checking the first block
    # against the RFC's info bytes pins the label encoding.
    secret = S3["handshake_secret"]
    expected = hmac.digest(secret, info + b"\x01", "sha256")[:length]
    assert hkdf_expand_label("sha256", secret, label, context, length) == expected


# -- §3 Simple 1-RTT Handshake ---------------------------------------------------------------
def test_s3_x25519_shared_secret() -> None:
    client = x25519_share(S3["client_private"])
    server = x25519_share(S3["server_private"])
    assert client.public == S3["client_public"]
    assert server.public == S3["server_public"]
    assert client.exchange(S3["server_public"]) == S3["ecdhe"]
    assert server.exchange(S3["client_public"]) == S3["ecdhe"]


def test_s3_key_schedule() -> None:
    ks = KeySchedule(SUITE)
    assert ks.secret == S3["early_secret"]
    assert hkdf_extract("sha256", bytes(32), bytes(32)) == S3["early_secret"]
    assert ks.derive(b"derived", S3["empty_hash"]) == S3["derived_for_handshake"]

    ks.to_handshake(S3["ecdhe"])
    assert ks.secret == S3["handshake_secret"]
    assert (
        hkdf_extract("sha256", S3["derived_for_handshake"], S3["ecdhe"]) == S3["handshake_secret"]
    )
    hs_hash = transcript_of(S3["ClientHello"], S3["ServerHello"])
    c_hs = ks.derive(b"c hs traffic", hs_hash)
    s_hs = ks.derive(b"s hs traffic", hs_hash)
    assert c_hs == S3["c_hs_traffic"]
    assert s_hs == S3["s_hs_traffic"]
    assert ks.traffic_keys(s_hs) == (S3["server_hs_key"], S3["server_hs_iv"])
    assert ks.traffic_keys(c_hs) == (S3["client_hs_key"], S3["client_hs_iv"])
    assert ks.derive(b"derived", S3["empty_hash"]) == S3["derived_for_master"]

    # The server's Finished covers ClientHello..CertificateVerify.
    before_sf = transcript_of(S3["ClientHello"], S3["ServerHello"], S3["EncryptedExtensions"],
                              S3["Certificate"], S3["CertificateVerify"])  # fmt: skip
    assert ks.finished_key(s_hs) == S3["server_finished_key"]
    assert ks.finished_mac(s_hs, before_sf) == S3["server_verify_data"]
    assert encode_handshake(Finished(ks.finished_mac(s_hs, before_sf))) == S3["ServerFinished"]

    ks.to_master()
    assert ks.secret == S3["master_secret"]
    ap_hash = transcript_of(S3["ClientHello"], S3["ServerHello"], S3["EncryptedExtensions"],
                            S3["Certificate"], S3["CertificateVerify"], S3["ServerFinished"])  # fmt: skip
    c_ap = ks.derive(b"c ap traffic", ap_hash)
    s_ap = ks.derive(b"s ap traffic", ap_hash)
    assert c_ap == S3["c_ap_traffic"]
    assert s_ap == S3["s_ap_traffic"]
    assert ks.derive(b"exp master", ap_hash) == S3["exp_master"]
    assert ks.traffic_keys(s_ap) == (S3["server_ap_key"], S3["server_ap_iv"])
    assert ks.traffic_keys(c_ap) == (S3["client_ap_key"], S3["client_ap_iv"])

    # The client's Finished covers ClientHello..server Finished.
    assert ks.finished_key(c_hs) == S3["client_finished_key"]
    assert ks.finished_mac(c_hs, ap_hash) == S3["client_verify_data"]
    assert encode_handshake(Finished(S3["client_verify_data"])) == S3["ClientFinished"]

    res_hash = transcript_of(S3["ClientHello"], S3["ServerHello"], S3["EncryptedExtensions"],
                             S3["Certificate"], S3["CertificateVerify"], S3["ServerFinished"],
                             S3["ClientFinished"])  # fmt: skip
    res_master = ks.derive(b"res master", res_hash)
    assert res_master == S3["res_master"]


def test_s3_resumption_psk_from_the_ticket_nonce() -> None:
    nst = decode_message(NewSessionTicket13, S3["NewSessionTicket"][4:])
    assert nst.lifetime == 30 and nst.age_add == 0xFAD6AAC5 and nst.nonce == b"\x00\x00"
    assert nst.find(X.EarlyDataLimit) == X.EarlyDataLimit(1024)
    ks = KeySchedule(SUITE)
    assert ks.resumption_psk(S3["res_master"], nst.nonce) == S3["resumption_psk"]
    # Another nonce gives another PSK (one per ticket).
    assert ks.resumption_psk(S3["res_master"], b"\x00\x01") != S3["resumption_psk"]


def test_s3_record_protection() -> None:
    # The server's handshake flight: EE..Finished in one record at sequence 0.
    flight = (S3["EncryptedExtensions"] + S3["Certificate"] + S3["CertificateVerify"]
              + S3["ServerFinished"])  # fmt: skip
    seal = AEAD13(SUITE, S3["server_hs_key"], S3["server_hs_iv"])
    wire = seal.seal(ContentType.HANDSHAKE, flight)
    assert wire == header(S3["server_hs_record"]) + S3["server_hs_record"]
    opener = AEAD13(SUITE, S3["server_hs_key"], S3["server_hs_iv"])
    assert opener.open(*record(S3["server_hs_record"])) == (ContentType.HANDSHAKE, flight)

    # The client's Finished under its handshake keys.
    client_hs = AEAD13(SUITE, S3["client_hs_key"], S3["client_hs_iv"])
    assert client_hs.seal(ContentType.HANDSHAKE, S3["ClientFinished"]) == (
        header(S3["client_finished_record"]) + S3["client_finished_record"]
    )

    # Application data: the client's first record, the server's second (after the ticket).
    client_ap = AEAD13(SUITE, S3["client_ap_key"], S3["client_ap_iv"])
    assert client_ap.open(*record(S3["client_ap_record"])) == (
        ContentType.APPLICATION_DATA,
        S3["application_data"],
    )
    server_ap = AEAD13(SUITE, S3["server_ap_key"], S3["server_ap_iv"])
    server_ap.seq = 1
    assert server_ap.seal(ContentType.APPLICATION_DATA, S3["application_data"]) == (
        header(S3["server_ap_record"]) + S3["server_ap_record"]
    )
    # Wrong sequence number: the nonce differs and the tag fails.
    wrong = AEAD13(SUITE, S3["server_ap_key"], S3["server_ap_iv"])
    with pytest.raises(BadRecordMac):
        wrong.open(*record(S3["server_ap_record"]))


def test_s3_messages_round_trip() -> None:
    ch = decode_message(ClientHello, S3["ClientHello"][4:])
    assert ch.cipher_suites == (0x1301, 0x1303, 0x1302)
    assert ch.find(X.ServerName) == X.ServerName("server")
    assert ch.find(X.KeyShareOffer) == X.KeyShareOffer(
        (X.KeyShareEntry(NamedGroup.x25519, S3["client_public"]),)
    )
    assert ch.find(X.SupportedVersionsOffer) == X.SupportedVersionsOffer((0x0304,))
    assert ch.find(X.OfferedPsks) is None
    assert encode_handshake(ch) == S3["ClientHello"]

    sh = decode_message(ServerHello, S3["ServerHello"][4:])
    assert sh.cipher_suite == 0x1301 and not sh.is_hello_retry_request
    assert sh.find(X.SupportedVersionSelected) == X.SupportedVersionSelected(ProtocolVersion.TLS1_3)
    assert sh.find(X.KeyShareSelected) == X.KeyShareSelected(
        X.KeyShareEntry(NamedGroup.x25519, S3["server_public"])
    )
    assert encode_handshake(sh) == S3["ServerHello"]

    ee = decode_message(EncryptedExtensions, S3["EncryptedExtensions"][4:])
    assert encode_handshake(ee) == S3["EncryptedExtensions"]
    cert = decode_message(Certificate13, S3["Certificate"][4:])
    assert cert.context == b"" and len(cert.entries) == 1
    assert encode_handshake(cert) == S3["Certificate"]
    cv = decode_message(CertificateVerify, S3["CertificateVerify"][4:])
    assert cv.scheme == 0x0804  # rsa_pss_rsae_sha256
    assert encode_handshake(cv) == S3["CertificateVerify"]
    for name in ("ServerFinished", "ClientFinished"):
        assert encode_handshake(decode_message(Finished, S3[name][4:])) == S3[name]
    nst = decode_message(NewSessionTicket13, S3["NewSessionTicket"][4:])
    assert encode_handshake(nst) == S3["NewSessionTicket"]


# -- §4 Resumed 0-RTT Handshake --------------------------------------------------------------
def test_s4_early_secret_and_binder() -> None:
    psk = S3["resumption_psk"]
    ks = KeySchedule(SUITE, psk)
    assert ks.secret == S4["early_secret"]
    assert ks.binder_key() == S4["binder_key"]
    assert ks.finished_key(S4["binder_key"]) == S4["binder_finished_key"]
    assert ks.finished_mac(ks.binder_key(), S4["binder_hash"]) == S4["binder"]
    assert psk_binder(SUITE, psk, sha256(S4["ClientHelloPrefix"])) == S4["binder"]
    # An external PSK would use another label, and so another binder.
    assert ks.binder_key(external=True) != S4["binder_key"]


def test_s4_binder_covers_the_truncated_client_hello() -> None:
    raw = S4["ClientHello"]
    ch = decode_message(ClientHello, raw[4:])
    psks = ch.find(X.OfferedPsks)
    assert psks is not None and ch.extensions[-1] is psks
    assert psks.binders == (S4["binder"],)
    (ident,) = psks.identities
    nst = decode_message(NewSessionTicket13, S3["NewSessionTicket"][4:])
    assert ident.identity == nst.ticket
    # The client's view of the ticket age, obfuscated with the ticket's age_add.
    assert (ident.obfuscated_ticket_age - nst.age_add) & 0xFFFFFFFF == 6
    # What the server hashes for the binder: the hello up to the binders list.
    assert raw[: len(raw) - psks.binders_length()] == S4["ClientHelloPrefix"]
    assert ch.find(X.EarlyDataIndication) == X.EarlyDataIndication()
    assert ch.find(X.PskKeyExchangeModes) == X.PskKeyExchangeModes((1,))
    assert encode_handshake(ch) == raw


def test_s4_early_traffic() -> None:
    ks = KeySchedule(SUITE, S3["resumption_psk"])
    ch_hash = transcript_of(S4["ClientHello"])
    c_e = ks.derive(b"c e traffic", ch_hash)
    assert c_e == S4["c_e_traffic"]
    assert ks.derive(b"e exp master", ch_hash) == S4["e_exp_master"]
    assert ks.traffic_keys(c_e) == (S4["early_key"], S4["early_iv"])
    early = AEAD13(SUITE, S4["early_key"], S4["early_iv"])
    ctype, data = early.open(*record(S4["early_ap_record"]))
    assert ctype == ContentType.APPLICATION_DATA and len(data) == 6
    assert early.open(*record(S4["end_of_early_data_record"])) == (
        ContentType.HANDSHAKE,
        bytes((HandshakeType.END_OF_EARLY_DATA, 0, 0, 0)),
    )


def test_s4_handshake_and_application_secrets() -> None:
    client = x25519_share(S4["client_private"])
    assert client.public == S4["client_public"]
    assert client.exchange(S4["server_public"]) == S4["ecdhe"]
    assert x25519_share(S4["server_private"]).exchange(S4["client_public"]) == S4["ecdhe"]

    ks = KeySchedule(SUITE, S3["resumption_psk"])
    assert ks.derive(b"derived", S3["empty_hash"]) == S4["derived_for_handshake"]
    ks.to_handshake(S4["ecdhe"])
    assert ks.secret == S4["handshake_secret"]
    hs_hash = transcript_of(S4["ClientHello"], S4["ServerHello"])
    c_hs = ks.derive(b"c hs traffic", hs_hash)
    s_hs = ks.derive(b"s hs traffic", hs_hash)
    assert (c_hs, s_hs) == (S4["c_hs_traffic"], S4["s_hs_traffic"])
    assert ks.traffic_keys(s_hs) == (S4["server_hs_key"], S4["server_hs_iv"])

    # Without certificates the server's Finished follows EncryptedExtensions directly.
    pre_sf = transcript_of(S4["ClientHello"], S4["ServerHello"], S4["EncryptedExtensions"])
    assert encode_handshake(Finished(ks.finished_mac(s_hs, pre_sf))) == S4["ServerFinished"]
    server_hs = AEAD13(SUITE, S4["server_hs_key"], S4["server_hs_iv"])
    assert server_hs.seal(
        ContentType.HANDSHAKE, S4["EncryptedExtensions"] + S4["ServerFinished"]
    ) == (header(S4["server_hs_record"]) + S4["server_hs_record"])

    assert ks.derive(b"derived", S3["empty_hash"]) == S4["derived_for_master"]
    ks.to_master()
    assert ks.secret == S4["master_secret"]
    ap_hash = transcript_of(S4["ClientHello"], S4["ServerHello"], S4["EncryptedExtensions"],
                            S4["ServerFinished"])  # fmt: skip
    c_ap = ks.derive(b"c ap traffic", ap_hash)
    s_ap = ks.derive(b"s ap traffic", ap_hash)
    assert (c_ap, s_ap) == (S4["c_ap_traffic"], S4["s_ap_traffic"])
    assert ks.derive(b"exp master", ap_hash) == S4["exp_master"]
    assert ks.traffic_keys(s_ap) == (S4["server_ap_key"], S4["server_ap_iv"])

    # The client's Finished covers EndOfEarlyData too, and goes under the client hs keys.
    eoed = bytes((HandshakeType.END_OF_EARLY_DATA, 0, 0, 0))
    pre_cf = transcript_of(S4["ClientHello"], S4["ServerHello"], S4["EncryptedExtensions"],
                           S4["ServerFinished"], eoed)  # fmt: skip
    assert encode_handshake(Finished(ks.finished_mac(c_hs, pre_cf))) == S4["ClientFinished"]
    c_key, c_iv = ks.traffic_keys(c_hs)
    assert AEAD13(SUITE, c_key, c_iv).seal(ContentType.HANDSHAKE, S4["ClientFinished"]) == (
        header(S4["client_finished_record"]) + S4["client_finished_record"]
    )

    c_ap_key, c_ap_iv = ks.traffic_keys(c_ap)
    assert AEAD13(SUITE, c_ap_key, c_ap_iv).open(*record(S4["client_ap_record"])) == (
        ContentType.APPLICATION_DATA,
        S4["application_data"],
    )
    assert (
        AEAD13(SUITE, S4["server_ap_key"], S4["server_ap_iv"]).seal(
            ContentType.APPLICATION_DATA, S4["application_data"]
        )
        == header(S4["server_ap_record"]) + S4["server_ap_record"]
    )


def test_s4_messages_round_trip() -> None:
    sh = decode_message(ServerHello, S4["ServerHello"][4:])
    assert sh.find(X.PreSharedKeySelected) == X.PreSharedKeySelected(0)
    assert sh.find(X.KeyShareSelected) == X.KeyShareSelected(
        X.KeyShareEntry(NamedGroup.x25519, S4["server_public"])
    )
    assert encode_handshake(sh) == S4["ServerHello"]
    ee = decode_message(EncryptedExtensions, S4["EncryptedExtensions"][4:])
    assert ee.find(X.EarlyDataIndication) == X.EarlyDataIndication()
    assert encode_handshake(ee) == S4["EncryptedExtensions"]
    for name in ("ServerFinished", "ClientFinished"):
        assert encode_handshake(decode_message(Finished, S4[name][4:])) == S4[name]


# -- §4 through a real ServerConnection --------------------------------------------------------
def _server_holding_the_s3_ticket(
    max_early_data_size: int = 1024,
) -> tuple[ServerConnection, float]:
    """A server whose (stateful) store maps the RFC's ticket to the RFC's resumption PSK, with a
    clock 6 ms after the ticket was issued (the age the §4 ClientHello reports)."""
    nst = decode_message(NewSessionTicket13, S3["NewSessionTicket"][4:])
    created = 1_700_000_000.0
    now = created + 0.006
    store = MemoryStore(clock=lambda: now)
    session = ServerSession(
        version=ProtocolVersion.TLS1_3,
        cipher_suite=SUITE.code,
        secret=S3["resumption_psk"],
        extended_master_secret=False,
        created=created,
        lifetime=nst.lifetime,
        server_name="server",
        ticket_age_add=nst.age_add,
        max_early_data=1024,
    )
    store.put(stateful_ticket_key(nst.ticket), session.to_bytes(), 30)
    config = ServerConfig(
        certificates=(generate_self_signed("ec", ("server",)),),
        session_store=store,
        stateful_tickets=True,
        max_early_data_size=max_early_data_size,
        client_auth=ClientAuth.NONE,
        clock=lambda: now,
    )
    return ServerConnection(config)


def _handshake_record(payload: bytes, version: bytes = b"\x03\x01") -> bytes:
    return bytes((ContentType.HANDSHAKE,)) + version + len(payload).to_bytes(2, "big") + payload


def test_s4_server_verifies_the_rfc_binder_and_reads_the_rfc_early_data() -> None:
    server = _server_holding_the_s3_ticket()
    server.receive_data(_handshake_record(S4["ClientHello"]))
    out = server.data_to_send()
    assert out[0] == ContentType.HANDSHAKE
    sh = decode_message(ServerHello, out[5 + 4 : 5 + int.from_bytes(out[3:5], "big")])
    assert sh.find(X.PreSharedKeySelected) == X.PreSharedKeySelected(0)
    assert sh.cipher_suite == SUITE.code
    # The RFC's 0-RTT record decrypts under the server's client_early_traffic_secret.
    (decided,) = server.events()
    assert isinstance(decided, ResumptionDecided) and decided.decision.kind == "psk_0rtt"
    server.receive_data(header(S4["early_ap_record"]) + S4["early_ap_record"])
    (event,) = server.events()
    assert isinstance(event, ApplicationData) and event.early is True and len(event.data) == 6
    # EndOfEarlyData (early sequence 1) moves the server on to the client's Finished.
    server.receive_data(header(S4["end_of_early_data_record"]) + S4["end_of_early_data_record"])
    assert server.state_name == "ExpectFinished"
    assert server.config.statistics["early_data_accepted"] == 1


def test_s4_server_rejects_an_altered_rfc_binder() -> None:
    server = _server_holding_the_s3_ticket()
    raw = bytearray(S4["ClientHello"])
    raw[-1] ^= 0x01  # the last byte of the binder
    with pytest.raises(DecryptError):
        server.receive_data(_handshake_record(bytes(raw)))
    assert server.data_to_send()[-7:] == bytes((ContentType.ALERT, 3, 3, 0, 2, 2, 51))


def test_s3_server_completes_a_handshake_with_the_rfc_client() -> None:
    """The §3 ClientHello, sent to a tessera server, and the handshake finished by playing the
    RFC's client (its fixed X25519 key) with the key schedule checked above."""
    server = ServerConnection(
        ServerConfig(certificates=(generate_self_signed("ec", ("server",)),), clock=lambda: 0.0)
    )
    server.receive_data(_handshake_record(S3["ClientHello"]))
    out = server.data_to_send()
    sh_len = int.from_bytes(out[3:5], "big")
    sh_raw = out[5 : 5 + sh_len]
    sh = decode_message(ServerHello, sh_raw[4:])
    assert sh.session_id == b"" and sh.cipher_suite == SUITE.code
    share = sh.find(X.KeyShareSelected)
    assert share is not None and share.entry.group == NamedGroup.x25519
    rest = out[5 + sh_len :]
    assert rest[0] == ContentType.APPLICATION_DATA  # no compatibility CCS: empty session id

    ks = KeySchedule(SUITE)
    ks.to_handshake(x25519_share(S3["client_private"]).exchange(share.entry.key_exchange))
    hs_hash = transcript_of(S3["ClientHello"], sh_raw)
    c_hs, s_hs = ks.derive(b"c hs traffic", hs_hash), ks.derive(b"s hs traffic", hs_hash)
    opener = AEAD13(SUITE, *ks.traffic_keys(s_hs))
    ctype, flight = opener.open(ContentType.APPLICATION_DATA, rest[5:])
    assert ctype == ContentType.HANDSHAKE
    types = []
    pos = 0
    transcript = [S3["ClientHello"], sh_raw]
    while pos < len(flight):
        n = int.from_bytes(flight[pos + 1 : pos + 4], "big")
        msg = flight[pos : pos + 4 + n]
        if msg[0] == HandshakeType.FINISHED:
            assert msg[4:] == ks.finished_mac(s_hs, transcript_of(*transcript))
        types.append(msg[0])
        transcript.append(msg)
        pos += 4 + n
    assert types == [
        HandshakeType.ENCRYPTED_EXTENSIONS,
        HandshakeType.CERTIFICATE,
        HandshakeType.CERTIFICATE_VERIFY,
        HandshakeType.FINISHED,
    ]
    client_finished = encode_handshake(Finished(ks.finished_mac(c_hs, transcript_of(*transcript))))
    server.receive_data(AEAD13(SUITE, *ks.traffic_keys(c_hs)).seal(ContentType.HANDSHAKE,
                                                                   client_finished))  # fmt: skip
    assert server.handshake_complete
    assert server.info.version is ProtocolVersion.TLS1_3 and server.info.server_name == "server"
    # Application data both ways under the application traffic keys.
    ks.to_master()
    ap_hash = transcript_of(*transcript)
    c_ap, s_ap = ks.derive(b"c ap traffic", ap_hash), ks.derive(b"s ap traffic", ap_hash)
    server.receive_data(AEAD13(SUITE, *ks.traffic_keys(c_ap)).seal(ContentType.APPLICATION_DATA,
                                                                   S3["application_data"]))  # fmt: skip
    assert [e.data for e in server.events() if isinstance(e, ApplicationData)] == [
        S3["application_data"]
    ]
    server.send_data(b"pong")
    reader = AEAD13(SUITE, *ks.traffic_keys(s_ap))
    records = server.data_to_send()
    got = []
    while records:
        n = int.from_bytes(records[3:5], "big")
        got.append(reader.open(records[0], records[5 : 5 + n]))
        records = records[5 + n :]
    assert got[-1] == (ContentType.APPLICATION_DATA, b"pong")

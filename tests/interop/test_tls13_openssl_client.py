"""``openssl s_client -tls1_3`` (and curl) against ``tessera serve --tls1_3 --www``.

Every TLS 1.3 suite with every default group and both certificate types, a HelloRetryRequest
forced by a first key share the server does not take, no group in common, resumption with a
saved session (``-sess_out`` / ``-sess_in``), ALPN and SNI. Each handshake is followed by an
HTTP GET, so application data flows both ways and the server's ``--www`` page says what *it*
negotiated.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import (
    HTTP_GET,
    Peer,
    openssl_s_client,
    run,
    ssl_alert_numbers,
    tessera_serve13,
)
from resumption_helpers import outcomes, parse_status_page

from conftest import Pki, free_port, require_program
from tessera.crypto.suites import TLS13_SUITES
from tessera.messages.hello import HELLO_RETRY_REQUEST_RANDOM

pytestmark = pytest.mark.interop

SUITES = [s.openssl_name for s in TLS13_SUITES]
# (s_client -groups, "Server Temp Key" printed by s_client, tessera's group name on the page)
GROUPS = [
    ("X25519", "X25519, 253 bits", "x25519"),
    ("P-256", "ECDH, prime256v1, 256 bits", "secp256r1"),
    ("P-384", "ECDH, secp384r1, 384 bits", "secp384r1"),
]
# TLS 1.3 picks the certificate by signature_algorithms: offer only one key type's schemes.
CERTS = {
    "ecdsa": ("ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384", "ECDSA", 256),
    "rsa": ("rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512", "RSA-PSS", 2048),
}


def cert_args(pki: Pki) -> list[str]:
    return [
        *("--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)),
        *("--cert", str(pki.rsa_cert), "--key", str(pki.rsa_key)),
    ]


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    """TLS 1.3 only, ECDSA P-256 and RSA-2048 certificates, ALPN http/1.1 then h2 (the page is
    HTTP/1.0, so a client offering both, like curl, must get http/1.1)."""
    require_program("openssl")
    logs = tmp_path_factory.mktemp("serve13")
    with tessera_serve13(
        free_port(), logs, "--www", "--alpn", "http/1.1,h2", *cert_args(pki)
    ) as peer:
        yield peer


def get_page(peer: Peer, pki: Pki, *args: str) -> str:
    """s_client -tls1_3 with the test CA, GET / and read to the end; its output."""
    assert peer.port is not None
    return openssl_s_client(
        peer.port, "-tls1_3", "-CAfile", str(pki.ca_file), "-ign_eof", *args, input=HTTP_GET
    )


@pytest.mark.parametrize("cert", list(CERTS))
@pytest.mark.parametrize("group", GROUPS, ids=[g[0] for g in GROUPS])
@pytest.mark.parametrize("suite", SUITES)
def test_suites_groups_and_certificates(
    server: Peer, pki: Pki, suite: str, group: tuple[str, str, str], cert: str
) -> None:
    groups, temp_key, tessera_group = group
    sigalgs, sig_type, bits = CERTS[cert]
    out = get_page(
        server,
        pki,
        "-ciphersuites",
        suite,
        "-groups",
        groups,
        "-sigalgs",
        sigalgs,
        "-verify_hostname",
        "localhost",
    )
    # What s_client says about the handshake ...
    assert f"New, TLSv1.3, Cipher is {suite}" in out, out
    assert "Verify return code: 0 (ok)" in out, out
    assert f"Server Temp Key: {temp_key}" in out, out
    assert f"Peer signature type: {sig_type}" in out, out
    assert f"Server public key is {bits} bit" in out, out
    # ... and what tessera says on the page it served over the connection.
    page = parse_status_page(out)
    assert page.outcome == "New", out
    assert page.fields["Protocol"] == "TLSv1.3", out
    assert page.fields["Cipher"] == suite, out
    assert page.fields["Group"] == tessera_group, out
    assert page.fields["Resumed"] == "no", out
    assert page.fields["Extended master secret"] == "n/a (TLS 1.3)", out
    assert "</pre></body></html>" in out, out
    assert not ssl_alert_numbers(out), out


def test_hello_retry_request(server: Peer, pki: Pki) -> None:
    """s_client's first (only) key share is X448, which tessera does not enable; P-256 is in its
    supported_groups. tessera answers with a HelloRetryRequest for P-256 (a ServerHello whose
    random is SHA-256("HelloRetryRequest")), s_client sends a second ClientHello, and the
    handshake completes on P-256."""
    out = get_page(server, pki, "-groups", "X448:P-256", "-msg", "-trace")
    assert out.count("ClientHello") >= 2, out
    hellos = out.split("    ServerHello, Length=")[1:]
    assert len(hellos) == 2, out
    hrr_hex = HELLO_RETRY_REQUEST_RANDOM.hex().upper()
    # -trace prints the random as gmt_unix_time (4 bytes) and random_bytes (28 bytes).
    first, second = hellos
    assert f"gmt_unix_time=0x{hrr_hex[:8]}" in first, out
    assert f"random_bytes (len=28): {hrr_hex[8:]}" in first, out
    assert "cookie" in first, out
    assert hrr_hex[8:] not in second, out
    assert "Server Temp Key: ECDH, prime256v1, 256 bits" in out, out
    assert "New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256" in out, out
    page = parse_status_page(out)
    assert page.fields["Group"] == "secp256r1", out
    assert not ssl_alert_numbers(out), out


def test_hello_retry_request_then_resumption(server: Peer, pki: Pki, tmp_path: Path) -> None:
    """A PSK offered in a ClientHello that gets a HelloRetryRequest: the binder of the second
    ClientHello covers message_hash(ClientHello1) + HelloRetryRequest, and tessera resumes."""
    sess = tmp_path / "sess.pem"
    out = get_page(server, pki, "-sess_out", str(sess))
    assert sess.exists(), out
    out = get_page(server, pki, "-sess_in", str(sess), "-groups", "X448:P-256", "-msg")
    assert out.count("ServerHello") == 2, out
    assert "Reused, TLSv1.3" in out, out
    page = parse_status_page(out)
    assert page.fields["Resumed"] == "yes, by psk", out
    assert page.fields["Group"] == "secp256r1", out


@pytest.mark.parametrize("groups", ["X448", "P-521", "X448:P-521"])
def test_no_group_in_common_is_handshake_failure(server: Peer, pki: Pki, groups: str) -> None:
    """tessera enables X25519, P-256 and P-384: nothing to retry with, so handshake_failure."""
    out = get_page(server, pki, "-groups", groups)
    assert ssl_alert_numbers(out) == [40], out
    assert "alert handshake failure" in out, out
    assert "Cipher is (NONE)" in out, out


def test_no_suite_in_common_is_handshake_failure(pki: Pki, tmp_path: Path) -> None:
    """A server limited to TLS 1.3 and a client offering only TLS 1.2 suites."""
    with tessera_serve13(
        free_port(), tmp_path, "--www", "--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)
    ) as peer:
        assert peer.port is not None
        out = openssl_s_client(peer.port, "-tls1_2", "-CAfile", str(pki.ca_file))
    assert ssl_alert_numbers(out) == [70], out  # protocol_version: no version in common


# -- resumption -------------------------------------------------------------------------------


def test_sess_out_then_sess_in_resumes(server: Peer, pki: Pki, tmp_path: Path) -> None:
    """The first connection saves the session a post-handshake NewSessionTicket brought; the
    second offers it as a PSK and resumes: ``Reused, TLSv1.3`` on both ends."""
    sess = tmp_path / "sess.pem"
    first = get_page(server, pki, "-sess_out", str(sess))
    assert outcomes(first) == ["New"], first
    # tessera sends --num-tickets (2) tickets after a full handshake.
    assert first.count("Post-Handshake New Session Ticket arrived") == 2, first
    assert "TLS session ticket lifetime hint: 7200 (seconds)" in first, first
    assert sess.exists(), first
    second = get_page(server, pki, "-sess_in", str(sess))
    assert outcomes(second) == ["Reused"], second
    assert "Reused, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256" in second, second
    page = parse_status_page(second)
    assert page.outcome == "Reused", second
    assert page.fields["Resumed"] == "yes, by psk", second
    # A resumption with psk_dhe_ke still runs a fresh key exchange.
    assert "Server Temp Key: X25519" in second, second
    assert page.fields["Group"] == "x25519", second
    # No certificate on a resumed handshake; one fresh ticket after it.
    assert "Peer signature type" not in second, second
    assert second.count("Post-Handshake New Session Ticket arrived") == 1, second
    assert "Verify return code: 0 (ok)" in second, second


@pytest.mark.parametrize("suite", SUITES)
def test_resumption_keeps_the_suite(server: Peer, pki: Pki, tmp_path: Path, suite: str) -> None:
    sess = tmp_path / "sess.pem"
    get_page(server, pki, "-ciphersuites", suite, "-sess_out", str(sess))
    out = get_page(server, pki, "-ciphersuites", suite, "-sess_in", str(sess))
    assert f"Reused, TLSv1.3, Cipher is {suite}" in out, out
    assert parse_status_page(out).fields["Cipher"] == suite, out


def test_resumed_session_chain(server: Peer, pki: Pki, tmp_path: Path) -> None:
    """A ticket can resume several times (tessera's tickets are not single-use unless
    --stateful-tickets); every resumption passes the ticket-age check."""
    sess = tmp_path / "sess.pem"
    get_page(server, pki, "-sess_out", str(sess))
    for _ in range(3):
        out = get_page(server, pki, "-sess_in", str(sess))
        assert outcomes(out) == ["Reused"], out


# -- ALPN and SNI -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offer", "chosen"),
    [("h2,http/1.1", "http/1.1"), ("http/1.1,h2", "http/1.1"), ("h2", "h2")],
)
def test_alpn(server: Peer, pki: Pki, offer: str, chosen: str) -> None:
    """The server's preference wins (RFC 7301 §3.2); the answer is in EncryptedExtensions."""
    out = get_page(server, pki, "-alpn", offer)
    assert f"ALPN protocol: {chosen}" in out, out
    assert parse_status_page(out).fields["ALPN"] == chosen, out


def test_alpn_mismatch_is_no_application_protocol(server: Peer, pki: Pki) -> None:
    out = get_page(server, pki, "-alpn", "spdy/3")
    assert ssl_alert_numbers(out) == [120], out


def test_alpn_kept_across_resumption(server: Peer, pki: Pki, tmp_path: Path) -> None:
    sess = tmp_path / "sess.pem"
    get_page(server, pki, "-alpn", "http/1.1", "-sess_out", str(sess))
    out = get_page(server, pki, "-alpn", "http/1.1", "-sess_in", str(sess))
    assert "Reused, TLSv1.3" in out, out
    assert "ALPN protocol: http/1.1" in out, out
    assert parse_status_page(out).fields["ALPN"] == "http/1.1", out


def test_sni(server: Peer, pki: Pki, tmp_path: Path) -> None:
    out = get_page(server, pki, "-servername", "localhost", "-verify_hostname", "localhost")
    assert "Verify return code: 0 (ok)" in out, out
    assert parse_status_page(out).fields["SNI"] == "localhost", out
    # Resumption carries the name: the same name resumes ...
    sess = tmp_path / "sess.pem"
    get_page(server, pki, "-servername", "localhost", "-sess_out", str(sess))
    out = get_page(server, pki, "-servername", "localhost", "-sess_in", str(sess))
    assert parse_status_page(out).fields["Resumed"] == "yes, by psk", out
    assert parse_status_page(out).fields["SNI"] == "localhost", out


def test_sni_mismatch_falls_back_to_a_full_handshake(
    server: Peer, pki: Pki, tmp_path: Path
) -> None:
    """A ticket issued for one server name offered under another (RFC 8446 §4.6.1: the SNI
    must match) is not resumed; the page counts why."""
    sess = tmp_path / "sess.pem"
    first = get_page(server, pki, "-servername", "localhost", "-sess_out", str(sess))
    before = parse_status_page(first).reason("server name mismatch")
    out = get_page(server, pki, "-servername", "other.test", "-sess_in", str(sess), "-trace")
    # s_client did offer the ticket (pre_shared_key) ...
    client_hello = out.split("ClientHello, Length=", 1)[1].split("ServerHello, Length=", 1)[0]
    assert "extension_type=psk(41)" in client_hello, out
    assert outcomes(out) == ["New"], out
    page = parse_status_page(out)
    assert page.fields["Resumed"] == "no", out
    assert page.fields["SNI"] == "other.test", out
    # ... and tessera says why it did not resume.
    assert page.reason("server name mismatch") == before + 1, out


# -- curl -------------------------------------------------------------------------------------


def curl(peer: Peer, pki: Pki, *args: str, urls: int = 1) -> tuple[int, str]:
    require_program("curl")
    port = peer.port
    url = f"https://localhost:{port}/"
    argv = ["curl", "-sS", "--max-time", "15", "--cacert", str(pki.ca_file),
            "--resolve", f"localhost:{port}:127.0.0.1", *args, *([url] * urls)]  # fmt: skip
    proc = run(argv, timeout=30)
    return proc.returncode, proc.stdout.decode(errors="replace")


def test_curl_default_is_tls13(server: Peer, pki: Pki) -> None:
    rc, out = curl(server, pki)
    assert rc == 0, out
    page = parse_status_page(out)
    assert page.fields["Protocol"] == "TLSv1.3", out
    assert page.fields["SNI"] == "localhost", out
    assert page.fields["ALPN"] == "http/1.1", out


@pytest.mark.parametrize("suite", SUITES)
def test_curl_tls13_ciphers(server: Peer, pki: Pki, suite: str) -> None:
    rc, out = curl(server, pki, "--tlsv1.3", "--tls13-ciphers", suite, "--http1.1")
    assert rc == 0, out
    page = parse_status_page(out)
    assert page.fields["Cipher"] == suite, out
    assert page.fields["ALPN"] == "http/1.1", out


def test_curl_resumes_within_one_run(server: Peer, pki: Pki) -> None:
    """Two URLs in one curl run: the server closes after each page, so curl connects twice and
    offers a ticket from its session cache the second time."""
    rc, out = curl(server, pki, "--http1.1", urls=2)
    assert rc == 0, out
    resumed = [line for line in out.splitlines() if line.startswith("Resumed:")]
    assert resumed == ["Resumed: no", "Resumed: yes, by psk"], out

"""``openssl s_client -tls1_2`` against ``tessera serve --tls1_2 --www``.

Every default TLS 1.2 suite with every group and both certificate types, every legacy suite
(enabled by name, with and without encrypt-then-MAC), and the refusal of legacy suites that are
not enabled. Each handshake is followed by an HTTP GET, so application data flows both ways.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from peers import (
    HTTP_GET,
    Peer,
    openssl_s_client,
    ssl_alert_numbers,
    tessera_serve,
    wait_for_output,
)

from conftest import Pki, free_port, require_program
from tessera.certs import issue_leaf
from tessera.crypto.suites import ALL_SUITES, DEFAULT_TLS12_SUITES, Auth, BulkCipher

pytestmark = pytest.mark.interop

LEGACY = [s for s in ALL_SUITES if s.legacy]
DEFAULT_NAMES = [s.openssl_name for s in DEFAULT_TLS12_SUITES]
# (id, s_client -groups for ECDSA suites, for RSA suites, "Server Temp Key" printed by s_client,
# tessera's group name, ECDSA server key size). RFC 8422 §5.3: the curve of an ECDSA server
# certificate must be one the client lists in supported_groups, so for X25519 the ECDSA cases
# also offer P-256 (the server prefers X25519), and P-384 is served by a P-384 certificate.
GROUPS = [
    ("X25519", "X25519:P-256", "X25519", "X25519, 253 bits", "x25519", 256),
    ("P-256", "P-256", "P-256", "ECDH, prime256v1, 256 bits", "secp256r1", 256),
    ("P-384", "P-384", "P-384", "ECDH, secp384r1, 384 bits", "secp384r1", 384),
]


@pytest.fixture(scope="module")
def ecdsa384(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """An ECDSA P-384 leaf for localhost from the test CA, as (cert file, key file)."""
    d = tmp_path_factory.mktemp("p384")
    chain, key = issue_leaf(pki.ca, ("localhost", "127.0.0.1"), kind="p384").to_pem()
    (d / "p384.crt").write_bytes(chain)
    (d / "p384.key").write_bytes(key)
    return str(d / "p384.crt"), str(d / "p384.key")


def cert_args(pki: Pki) -> list[str]:
    return [
        *("--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)),
        *("--cert", str(pki.rsa_cert), "--key", str(pki.rsa_key)),
    ]


def verify_args(pki: Pki) -> list[str]:
    return ["-CAfile", str(pki.ca_file), "-verify_hostname", "localhost"]


@pytest.fixture(scope="module")
def default_server(
    pki: Pki, ecdsa384: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Peer]:
    """The default suites; certificates ECDSA P-256, RSA-2048 and ECDSA P-384, in that order."""
    require_program("openssl")
    port = free_port()
    logs = tmp_path_factory.mktemp("serve-default")
    p384 = ["--cert", ecdsa384[0], "--key", ecdsa384[1]]
    with tessera_serve(port, logs, "--tls1_2", "--www", *cert_args(pki), *p384) as peer:
        yield peer


@pytest.fixture(scope="module")
def legacy_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    require_program("openssl")
    port = free_port()
    logs = tmp_path_factory.mktemp("serve-legacy")
    ciphers = ":".join(s.openssl_name for s in LEGACY)
    with tessera_serve(
        port, logs, "--tls1_2", "--www", "--ciphers", ciphers, *cert_args(pki)
    ) as peer:
        yield peer


def get_page(peer: Peer, pki: Pki, *args: str) -> str:
    assert peer.port is not None
    return openssl_s_client(
        peer.port, "-tls1_2", *verify_args(pki), "-ign_eof", *args, input=HTTP_GET
    )


@pytest.mark.parametrize("group", GROUPS, ids=[g[0] for g in GROUPS])
@pytest.mark.parametrize("suite", DEFAULT_NAMES)
def test_default_suites_and_groups(
    default_server: Peer, pki: Pki, suite: str, group: tuple[str, str, str, str, str, int]
) -> None:
    _, ecdsa_groups, rsa_groups, temp_key, tessera_group, ecdsa_bits = group
    ecdsa = "-ECDSA-" in suite
    out = get_page(
        default_server, pki, "-cipher", suite, "-groups", ecdsa_groups if ecdsa else rsa_groups
    )
    # What s_client says about the handshake ...
    assert "Protocol  : TLSv1.2" in out, out
    assert f"Cipher    : {suite}" in out, out
    assert f"New, TLSv1.2, Cipher is {suite}" in out, out
    assert "Verify return code: 0 (ok)" in out, out
    assert "Extended master secret: yes" in out, out
    assert f"Server Temp Key: {temp_key}" in out, out
    # ... the certificate matching the suite's authentication ...
    if ecdsa:
        assert f"Server public key is {ecdsa_bits} bit" in out, out
        assert "Peer signature type: ECDSA" in out, out
    else:
        assert "Server public key is 2048 bit" in out, out
        assert "Peer signature type: RSA" in out, out
    # ... and the page tessera served over the connection.
    assert "HTTP/1.0 200 ok" in out, out
    assert "Protocol: TLSv1.2" in out, out
    assert f"Cipher: {suite}" in out, out
    assert f"Group: {tessera_group}" in out, out
    assert not ssl_alert_numbers(out), out


def test_ecdsa_certificate_only_on_a_curve_the_client_offers(
    default_server: Peer, pki: Pki
) -> None:
    """RFC 8422 §5.3: "the public key in the server's certificate MUST respect the client's
    choice of elliptic curves. A server that cannot satisfy this requirement MUST NOT choose an
    ECC cipher suite". A client offering only X25519 cannot take a P-256 or P-384 ECDSA
    certificate, so the server must fall back to an ECDHE-RSA suite."""
    out = get_page(default_server, pki, "-groups", "X25519")
    assert "Protocol  : TLSv1.2" in out, out
    assert "Cipher    : ECDHE-RSA-AES128-GCM-SHA256" in out, out
    assert "HTTP/1.0 200 ok" in out, out


def test_ecdsa_only_offer_without_the_certificate_curve_is_refused(
    default_server: Peer, pki: Pki
) -> None:
    """Same rule, no RSA suite offered: the server has nothing acceptable and must say
    handshake_failure instead of sending a certificate the client rejects."""
    out = get_page(
        default_server, pki, "-groups", "X25519", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"
    )
    assert ssl_alert_numbers(out) == [40], out
    assert "wrong curve" not in out, out


def test_server_preference_without_cipher_choice(default_server: Peer, pki: Pki) -> None:
    """s_client offers its whole default list; tessera picks its own first default suite that
    fits a certificate (the ECDSA one)."""
    out = get_page(default_server, pki)
    assert "Protocol  : TLSv1.2" in out, out
    assert f"Cipher    : {DEFAULT_NAMES[0]}" in out, out
    assert "HTTP/1.0 200 ok" in out, out


def test_http_get_over_s_client(default_server: Peer, pki: Pki) -> None:
    """Issue item 7: a handshake and an HTTP/1.0 GET through s_client, answered, then closed
    by the server with close_notify."""
    out = get_page(default_server, pki, "-msg")
    assert "Verify return code: 0 (ok)" in out, out
    assert "HTTP/1.0 200 ok" in out, out
    assert "Content-Type: text/html" in out, out
    assert "</pre></body></html>" in out, out
    # "<<<" is what s_client received: the server's close_notify after the page.
    page_end = out.index("</pre></body></html>")
    assert "<<< TLS 1.2, Alert [length 0002], warning close_notify" in out[page_end:], out
    assert "\nclosed\n" in out[page_end:], out
    wait_for_output(default_server, "New, TLSv1.2")  # (its line once the connection ended)


def legacy_params() -> list[Any]:
    out = []
    for suite in LEGACY:
        if suite.cipher is BulkCipher.AES_CBC:
            out.append(pytest.param(suite.openssl_name, True, id=f"{suite.openssl_name}-etm"))
            out.append(pytest.param(suite.openssl_name, False, id=f"{suite.openssl_name}-no_etm"))
        else:
            out.append(pytest.param(suite.openssl_name, None, id=suite.openssl_name))
    return out


@pytest.mark.parametrize(("suite", "etm"), legacy_params())
def test_legacy_suites_enabled_by_name(
    legacy_server: Peer, pki: Pki, suite: str, etm: bool | None
) -> None:
    args = ["-cipher", suite, "-tlsextdebug"]
    if etm is False:
        args.append("-no_etm")
    out = get_page(legacy_server, pki, *args)
    assert "Protocol  : TLSv1.2" in out, out
    assert f"Cipher    : {suite}" in out, out
    assert "Verify return code: 0 (ok)" in out, out
    # The GET went through and the page came back: records protected in both directions.
    assert "HTTP/1.0 200 ok" in out, out
    assert f"Cipher: {suite}" in out, out
    assert "</pre></body></html>" in out, out
    # RFC 7366: the server echoes encrypt_then_mac only for a CBC suite the client asked for it.
    etm_echoed = 'TLS server extension "encrypt-then-mac"' in out
    assert etm_echoed is bool(etm), out
    if suite.startswith("ECDHE-"):
        assert "Server Temp Key: X25519" in out, out
    else:
        # Static RSA key exchange: no ServerKeyExchange, so no temporary key.
        assert "Server Temp Key" not in out, out
    auth = next(s.auth for s in LEGACY if s.openssl_name == suite)
    bits = "256" if auth is Auth.ECDSA else "2048"
    assert f"Server public key is {bits} bit" in out, out


@pytest.mark.parametrize("suite", [s.openssl_name for s in LEGACY])
def test_legacy_suites_refused_unless_enabled(default_server: Peer, pki: Pki, suite: str) -> None:
    assert default_server.port is not None
    out = openssl_s_client(default_server.port, "-tls1_2", *verify_args(pki), "-cipher", suite)
    assert ssl_alert_numbers(out) == [40], out
    assert "alert handshake failure" in out, out
    assert "Cipher is (NONE)" in out, out

"""``curl --tlsv1.2 --tls-max 1.2`` against ``tessera serve --tls1_2 --www``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from peers import Peer, run, tessera_serve

from conftest import Pki, free_port, require_program
from tessera.crypto.suites import DEFAULT_TLS12_SUITES

pytestmark = pytest.mark.interop

DEFAULT_NAMES = [s.openssl_name for s in DEFAULT_TLS12_SUITES]


@pytest.fixture(scope="module")
def www(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    require_program("curl")
    port = free_port()
    args = [
        *("--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)),
        *("--cert", str(pki.rsa_cert), "--key", str(pki.rsa_key)),
    ]
    with tessera_serve(port, tmp_path_factory.mktemp("serve"), "--tls1_2", "--www", *args) as p:
        yield p


def curl(www: Peer, *args: str) -> tuple[int, str]:
    port = www.port
    argv = [
        "curl",
        "-sS",
        "--max-time",
        "15",
        "--tlsv1.2",
        "--tls-max",
        "1.2",
        # localhost is 127.0.0.1 here whatever /etc/hosts says (the server listens on IPv4).
        "--resolve",
        f"localhost:{port}:127.0.0.1",
        *args,
        f"https://localhost:{port}/",
    ]
    proc = run(argv, timeout=30)
    return proc.returncode, proc.stdout.decode(errors="replace")


@pytest.mark.parametrize("suite", DEFAULT_NAMES)
def test_curl_suites(www: Peer, pki: Pki, suite: str) -> None:
    rc, page = curl(www, "--cacert", str(pki.ca_file), "--ciphers", suite)
    assert rc == 0, page
    assert f"New, TLSv1.2, Cipher is {suite}" in page, page
    assert "Protocol: TLSv1.2" in page, page
    assert f"Cipher: {suite}" in page, page
    assert "SNI: localhost" in page, page


# (curl --curves, tessera's name on the page)
GROUPS = [("X25519", "x25519"), ("P-256", "secp256r1"), ("P-384", "secp384r1")]


@pytest.mark.parametrize("group", GROUPS, ids=[g[0] for g in GROUPS])
def test_curl_groups(www: Peer, pki: Pki, group: tuple[str, str]) -> None:
    curves, name = group
    # An RSA suite, so that the ECDSA certificate's curve does not matter (RFC 8422 §5.3).
    suite = "ECDHE-RSA-AES128-GCM-SHA256"
    rc, page = curl(www, "--cacert", str(pki.ca_file), "--ciphers", suite, "--curves", curves)
    assert rc == 0, page
    assert "Protocol: TLSv1.2" in page, page
    assert f"Group: {name}" in page, page


def test_curl_insecure(www: Peer) -> None:
    rc, page = curl(www, "-k")
    assert rc == 0, page
    assert "Protocol: TLSv1.2" in page, page
    assert "Cipher: ECDHE-" in page, page


def test_curl_verifies_the_chain(www: Peer) -> None:
    """Without --cacert or -k, curl must refuse the test CA's chain (exit 60)."""
    rc, out = curl(www)
    assert rc == 60, out
    assert "SSL certificate problem" in out, out


def test_curl_verbose_handshake(www: Peer, pki: Pki) -> None:
    """curl's own account of the handshake (-v): version, cipher, certificate, and no ALPN
    (the server has none configured). Whether curl reads the server's close_notify after the
    Content-Length body is a race, so that is checked with s_client -msg instead."""
    rc, out = curl(www, "-v", "--cacert", str(pki.ca_file))
    assert rc == 0, out
    assert "SSL connection using TLSv1.2 / ECDHE-ECDSA-AES128-GCM-SHA256" in out, out
    assert "subject: CN=localhost" in out, out
    assert "SSL certificate verify ok." in out, out
    assert "ALPN: server did not agree on a protocol" in out, out
    assert "HTTP/1.0 200 ok" in out, out

"""The tessera client (Python API and ``tessera connect``) against ``openssl s_server -tls1_2``.

One s_server holds an ECDSA P-256 certificate (``-cert``) and an RSA-2048 one (``-dcert``), so
every suite finds its certificate. s_server's ``-www`` page reports what it negotiated (the
``SSL_SESSION_print`` block), the client's offered groups and whether a client certificate came.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from peers import HTTP_GET, TESSERA, Peer, openssl_s_server, run

from conftest import Pki, free_port, require_program
from tessera import ClientConfig, ProtocolVersion, TLSSocket
from tessera.crypto.suites import ALL_SUITES, DEFAULT_TLS12_SUITES, Auth, BulkCipher, CipherSuite
from tessera.enums import NamedGroup
from tessera.events import ConnectionInfo

pytestmark = pytest.mark.interop

TLS12 = ProtocolVersion.TLS1_2
LEGACY = [s for s in ALL_SUITES if s.legacy]
# (tessera group, what s_server prints in "Supported groups:")
GROUPS = [
    (NamedGroup.x25519, "x25519"),
    (NamedGroup.secp256r1, "secp256r1"),
    (NamedGroup.secp384r1, "secp384r1"),
]


@pytest.fixture(scope="module")
def s_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    require_program("openssl")
    port = free_port()
    logs = tmp_path_factory.mktemp("s_server")
    with openssl_s_server(
        port,
        logs,
        pki.ecdsa_cert,
        pki.ecdsa_key,
        "-dcert",
        str(pki.rsa_cert),
        "-dkey",
        str(pki.rsa_key),
        "-tls1_2",
        "-groups",
        "X25519:P-256:P-384",
        "-cipher",
        "DEFAULT@SECLEVEL=1",
    ) as peer:
        yield peer


def fetch(
    port: int, config: ClientConfig, server_name: str = "localhost"
) -> tuple[ConnectionInfo, str]:
    """Handshake, GET /, read the page until the server closes."""
    with TLSSocket.connect(("127.0.0.1", port), config, server_name, timeout=15) as tls:
        info = tls.info
        tls.sendall(HTTP_GET)
        page = b""
        while chunk := tls.recv(65536):
            page += chunk
    return info, page.decode(errors="replace")


def client_config(
    pki: Pki, suite: CipherSuite, groups: tuple[int, ...], encrypt_then_mac: bool = True
) -> ClientConfig:
    return ClientConfig(
        cafile=pki.ca_file,
        max_version=TLS12,
        cipher_suites=(suite,),
        groups=groups,
        encrypt_then_mac=encrypt_then_mac,
    )


@pytest.mark.parametrize("group", GROUPS, ids=[g[1] for g in GROUPS])
@pytest.mark.parametrize("suite", DEFAULT_TLS12_SUITES, ids=str)
def test_api_client_suites_and_groups(
    s_server: Peer, pki: Pki, suite: CipherSuite, group: tuple[int, str]
) -> None:
    assert s_server.port is not None
    g, openssl_group = group
    # An ECDSA suite also needs the certificate's curve (P-256) among the offered groups
    # (RFC 8422 §5.3); listed second, the client still prefers ``g``.
    p256 = NamedGroup.secp256r1
    groups = (g,) if suite.auth is Auth.RSA or g == p256 else (g, p256)
    info, page = fetch(s_server.port, client_config(pki, suite, groups))
    assert info.version == TLS12
    assert info.cipher_suite == suite
    assert info.group == g
    assert info.extended_master_secret
    leaf_key = info.peer_certificates[0].public_key()
    if suite.auth is Auth.ECDSA:
        assert isinstance(leaf_key, ec.EllipticCurvePublicKey)
    else:
        assert isinstance(leaf_key, rsa.RSAPublicKey)
    # What s_server says it negotiated.
    assert "HTTP/1.0 200 ok" in page, page
    assert "Protocol  : TLSv1.2" in page, page
    assert f"Cipher    : {suite.openssl_name}" in page, page
    assert f"New, TLSv1.2, Cipher is {suite.openssl_name}" in page, page
    assert f"Supported groups: {openssl_group}" in page, page
    assert "Extended master secret: yes" in page, page


LEGACY_PARAMS = [
    pytest.param(s, etm, id=f"{s}-{'etm' if etm else 'no_etm'}")
    for s in LEGACY
    for etm in ((True, False) if s.cipher is BulkCipher.AES_CBC else (True,))
]


@pytest.mark.parametrize(("suite", "etm"), LEGACY_PARAMS)
def test_api_client_legacy_suites(s_server: Peer, pki: Pki, suite: CipherSuite, etm: bool) -> None:
    """Legacy suites, enabled by name on the client; s_server accepts them at SECLEVEL=1.
    Encrypt-then-MAC (RFC 7366) is used with CBC suites exactly when the client offers it."""
    assert s_server.port is not None
    config = client_config(
        pki, suite, (NamedGroup.x25519, NamedGroup.secp256r1), encrypt_then_mac=etm
    )
    info, page = fetch(s_server.port, config)
    assert info.cipher_suite == suite
    assert info.encrypt_then_mac is (etm and suite.cipher is BulkCipher.AES_CBC)
    assert f"Cipher    : {suite.openssl_name}" in page, page
    assert "Protocol  : TLSv1.2" in page, page
    assert page.rstrip().endswith("</HTML>"), page


@pytest.mark.parametrize("suite", DEFAULT_TLS12_SUITES, ids=str)
def test_cli_connect(s_server: Peer, pki: Pki, suite: CipherSuite) -> None:
    assert s_server.port is not None
    argv = [
        *TESSERA,
        "connect",
        f"127.0.0.1:{s_server.port}",
        "--tls1_2",
        "--ca",
        str(pki.ca_file),
        "--ciphers",
        suite.openssl_name,
    ]
    proc = run(argv, input=HTTP_GET, timeout=30)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out
    # tessera's own summary ...
    assert f"New, TLSv1.2, Cipher is {suite.openssl_name}" in out, out
    assert "Protocol: TLSv1.2" in out, out
    assert f"Cipher: {suite.openssl_name} ({suite.name})" in out, out
    assert "Group: x25519" in out, out
    assert "Server certificate subject: CN=localhost" in out, out
    assert "Server certificate issuer: CN=tessera test CA" in out, out
    assert "Extended master secret: yes" in out, out
    # ... and s_server's page, relayed to stdout.
    assert "HTTP/1.0 200 ok" in out, out
    assert "Protocol  : TLSv1.2" in out, out
    assert f"Cipher    : {suite.openssl_name}" in out, out

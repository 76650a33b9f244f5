"""SNI with per-name certificates over TLS 1.2.

tessera serve holds ECDSA and RSA leaves for ``a.test`` and for ``b.test``; openssl s_client
asks for each name with each suite type and must get that name's certificate of that type.
The other way round, the tessera client sends SNI to ``openssl s_server -servername``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import HTTP_GET, Peer, openssl_s_client, openssl_s_server, tessera_serve

from conftest import Pki, free_port, require_program
from tessera import ClientConfig, ProtocolVersion, TLSSocket
from tessera.certs import issue_leaf

pytestmark = pytest.mark.interop

NAMES = ("a.test", "b.test")
KINDS = {"ec": ("ECDHE-ECDSA-AES128-GCM-SHA256", 256), "rsa": ("ECDHE-RSA-AES128-GCM-SHA256", 2048)}


@pytest.fixture(scope="module")
def leaves(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], tuple[Path, Path]]:
    """(name, kind) -> (cert file, key file), all issued by the test CA."""
    d = tmp_path_factory.mktemp("sni")
    out = {}
    for name in NAMES:
        for kind in KINDS:
            chain, key = issue_leaf(pki.ca, (name,), kind=kind).to_pem()
            c, k = d / f"{name}-{kind}.crt", d / f"{name}-{kind}.key"
            c.write_bytes(chain)
            k.write_bytes(key)
            out[name, kind] = (c, k)
    return out


@pytest.fixture(scope="module")
def sni_server(
    leaves: dict[tuple[str, str], tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Peer]:
    require_program("openssl")
    port = free_port()
    args = []
    for c, k in leaves.values():  # a.test first
        args += ["--cert", str(c), "--key", str(k)]
    with tessera_serve(port, tmp_path_factory.mktemp("serve"), "--tls1_2", "--www", *args) as p:
        yield p


def s_client(server: Peer, pki: Pki, *args: str) -> str:
    assert server.port is not None
    return openssl_s_client(
        server.port, "-tls1_2", "-CAfile", str(pki.ca_file), "-ign_eof", *args, input=HTTP_GET
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", NAMES)
def test_s_client_gets_the_certificate_for_its_name(
    sni_server: Peer, pki: Pki, name: str, kind: str
) -> None:
    suite, bits = KINDS[kind]
    out = s_client(sni_server, pki, "-servername", name, "-verify_hostname", name, "-cipher", suite)
    assert f"subject=CN = {name}" in out, out
    assert f"Server public key is {bits} bit" in out, out
    assert "Verify return code: 0 (ok)" in out, out
    assert f"Cipher    : {suite}" in out, out
    assert f"SNI: {name}" in out, out  # tessera's page
    assert "HTTP/1.0 200 ok" in out, out


def test_s_client_without_sni_gets_the_first_certificate(sni_server: Peer, pki: Pki) -> None:
    out = s_client(sni_server, pki, "-noservername")
    assert "subject=CN = a.test" in out, out
    assert "SNI: (none)" in out, out
    assert "HTTP/1.0 200 ok" in out, out


def test_s_client_unknown_name_fails_hostname_check(sni_server: Peer, pki: Pki) -> None:
    """A name no certificate has: the server falls back to its first certificate, which the
    client's hostname check then rejects (X509_V_ERR_HOSTNAME_MISMATCH, 62)."""
    out = s_client(sni_server, pki, "-servername", "c.test", "-verify_hostname", "c.test")
    assert "subject=CN = a.test" in out, out
    assert "Verify return code: 62 (hostname mismatch)" in out, out


# -- tessera client -> openssl s_server -servername b.test -cert2 ... ---------------------------


@pytest.fixture(scope="module")
def s_server_sni(
    leaves: dict[tuple[str, str], tuple[Path, Path]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Peer]:
    require_program("openssl")
    port = free_port()
    a_cert, a_key = leaves["a.test", "ec"]
    b_cert, b_key = leaves["b.test", "ec"]
    extra = ["-servername", "b.test", "-cert2", str(b_cert), "-key2", str(b_key), "-tls1_2"]
    with openssl_s_server(port, tmp_path_factory.mktemp("s_server"), a_cert, a_key, *extra) as p:
        yield p


@pytest.mark.parametrize("name", NAMES)
def test_tessera_client_sends_sni(s_server_sni: Peer, pki: Pki, name: str) -> None:
    assert s_server_sni.port is not None
    config = ClientConfig(cafile=pki.ca_file, max_version=ProtocolVersion.TLS1_2)
    with TLSSocket.connect(("127.0.0.1", s_server_sni.port), config, name, timeout=10) as tls:
        leaf = tls.info.peer_certificates[0]
        tls.sendall(HTTP_GET)
        page = b""
        while chunk := tls.recv(65536):
            page += chunk
    assert leaf.subject.rfc4514_string() == f"CN={name}"
    assert b"Protocol  : TLSv1.2" in page, page

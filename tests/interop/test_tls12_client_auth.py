"""Client certificates over TLS 1.2, both ways.

* openssl s_client ``-cert/-key`` -> ``tessera serve --verify-client required --client-ca CA``.
* the tessera client (API and CLI) with a certificate -> ``openssl s_server -Verify 1 -CAfile``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import (
    HTTP_GET,
    TESSERA,
    Peer,
    openssl_s_client,
    openssl_s_server,
    run,
    ssl_alert_numbers,
    tessera_serve,
)

from conftest import Pki, free_port, require_program
from tessera import (
    AlertDescription,
    AlertReceived,
    CertifiedKey,
    ClientConfig,
    ProtocolVersion,
    TLSSocket,
)
from tessera.certs import generate_ca, issue_leaf
from tessera.crypto.suites import parse_cipher_list

pytestmark = pytest.mark.interop


def write(cert: CertifiedKey, d: Path, name: str) -> tuple[Path, Path]:
    chain, key = cert.to_pem()
    (d / f"{name}.crt").write_bytes(chain)
    (d / f"{name}.key").write_bytes(key)
    return d / f"{name}.crt", d / f"{name}.key"


@pytest.fixture(scope="module")
def client_certs(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, Path]]:
    """Client leaves: ECDSA and RSA from the test CA, and one from a CA nobody trusts."""
    d = tmp_path_factory.mktemp("clients")
    rsa_client = issue_leaf(pki.ca, ("tessera rsa client",), kind="rsa", client=True)
    rogue_ca = generate_ca("ec", common_name="rogue CA")
    rogue = issue_leaf(rogue_ca, ("rogue client",), kind="ec", client=True)
    return {
        "ec": (pki.client_cert, pki.client_key),
        "rsa": write(rsa_client, d, "rsa-client"),
        "rogue": write(rogue, d, "rogue-client"),
    }


# -- openssl s_client -> tessera serve --verify-client ------------------------------------------


def tessera_server(pki: Pki, logs: Path, mode: str) -> Peer:
    args = ["--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)]
    args += ["--cert", str(pki.rsa_cert), "--key", str(pki.rsa_key)]
    args += ["--verify-client", mode, "--client-ca", str(pki.ca_file)]
    return tessera_serve(free_port(), logs, "--tls1_2", "--www", *args)


@pytest.fixture(scope="module")
def required(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    require_program("openssl")
    with tessera_server(pki, tmp_path_factory.mktemp("required"), "required") as peer:
        yield peer


@pytest.fixture(scope="module")
def optional(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    require_program("openssl")
    with tessera_server(pki, tmp_path_factory.mktemp("optional"), "optional") as peer:
        yield peer


def s_client(server: Peer, pki: Pki, *args: str) -> str:
    assert server.port is not None
    return openssl_s_client(
        server.port, "-tls1_2", "-CAfile", str(pki.ca_file), "-ign_eof", *args, input=HTTP_GET
    )


@pytest.mark.parametrize("suite", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"])
@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_s_client_with_certificate(
    required: Peer, pki: Pki, client_certs: dict[str, tuple[Path, Path]], kind: str, suite: str
) -> None:
    cert, key = client_certs[kind]
    out = s_client(required, pki, "-cert", str(cert), "-key", str(key), "-cipher", suite, "-msg")
    assert "Protocol  : TLSv1.2" in out, out
    assert f"Cipher    : {suite}" in out, out
    # s_client answered a CertificateRequest with its Certificate and CertificateVerify.
    assert "<<< TLS 1.2, Handshake [length" in out and "CertificateRequest" in out, out
    assert ">>> TLS 1.2, Handshake [length" in out and "CertificateVerify" in out, out
    assert "HTTP/1.0 200 ok" in out, out
    assert not ssl_alert_numbers(out), out


def test_s_client_without_certificate_is_refused(required: Peer, pki: Pki) -> None:
    """RFC 5246 §7.4.6: a server that requires a certificate may answer an empty Certificate
    with a fatal handshake_failure alert."""
    out = s_client(required, pki)
    assert ssl_alert_numbers(out) == [40], out
    assert "HTTP/1.0 200" not in out, out
    # The CertificateRequest named the CA that --client-ca trusts (RFC 5246 §7.4.4).
    assert "Acceptable client certificate CA names\nCN = tessera test CA\n" in out, out


def test_s_client_with_untrusted_certificate_is_refused(
    required: Peer, pki: Pki, client_certs: dict[str, tuple[Path, Path]]
) -> None:
    cert, key = client_certs["rogue"]
    out = s_client(required, pki, "-cert", str(cert), "-key", str(key))
    assert ssl_alert_numbers(out) == [48], out  # unknown_ca
    assert "alert unknown ca" in out, out
    assert "HTTP/1.0 200" not in out, out


def test_optional_client_certificate(
    optional: Peer, pki: Pki, client_certs: dict[str, tuple[Path, Path]]
) -> None:
    without = s_client(optional, pki)
    assert "HTTP/1.0 200 ok" in without, without
    cert, key = client_certs["ec"]
    with_cert = s_client(optional, pki, "-cert", str(cert), "-key", str(key))
    assert "HTTP/1.0 200 ok" in with_cert, with_cert
    cert, key = client_certs["rogue"]
    rogue = s_client(optional, pki, "-cert", str(cert), "-key", str(key))
    assert ssl_alert_numbers(rogue) == [48], rogue


# -- tessera client -> openssl s_server -Verify 1 -CAfile CA ------------------------------------


@pytest.fixture(scope="module")
def s_server_verify(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    require_program("openssl")
    extra = ["-dcert", str(pki.rsa_cert), "-dkey", str(pki.rsa_key)]
    extra += ["-tls1_2", "-Verify", "1", "-CAfile", str(pki.ca_file)]
    with openssl_s_server(
        free_port(), tmp_path_factory.mktemp("s_server"), pki.ecdsa_cert, pki.ecdsa_key, *extra
    ) as peer:
        yield peer


def fetch(peer: Peer, config: ClientConfig) -> str:
    assert peer.port is not None
    with TLSSocket.connect(("127.0.0.1", peer.port), config, "localhost", timeout=10) as tls:
        tls.sendall(HTTP_GET)
        page = b""
        while chunk := tls.recv(65536):
            page += chunk
    return page.decode(errors="replace")


@pytest.mark.parametrize("suite", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"])
@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_api_client_certificate(
    s_server_verify: Peer,
    pki: Pki,
    client_certs: dict[str, tuple[Path, Path]],
    kind: str,
    suite: str,
) -> None:
    cert, key = client_certs[kind]
    config = ClientConfig(
        cafile=pki.ca_file,
        max_version=ProtocolVersion.TLS1_2,
        cipher_suites=parse_cipher_list(suite),
        certificate=CertifiedKey.load(cert, key),
    )
    page = fetch(s_server_verify, config)
    assert "Protocol  : TLSv1.2" in page, page
    assert f"Cipher    : {suite}" in page, page
    assert "Client certificate" in page, page
    subject = "tessera client" if kind == "ec" else "tessera rsa client"
    assert f"Subject: CN={subject}" in page, page
    assert "Verify return code: 0 (ok)" in page, page


def test_api_client_without_certificate(s_server_verify: Peer, pki: Pki) -> None:
    config = ClientConfig(cafile=pki.ca_file, max_version=ProtocolVersion.TLS1_2)
    with pytest.raises(AlertReceived) as e:
        fetch(s_server_verify, config)
    assert e.value.alert == AlertDescription.handshake_failure


def test_cli_client_certificate(s_server_verify: Peer, pki: Pki) -> None:
    argv = [*TESSERA, "connect", f"127.0.0.1:{s_server_verify.port}", "--tls1_2"]
    argv += ["--ca", str(pki.ca_file), "--cert", str(pki.client_cert), "--key", str(pki.client_key)]
    proc = run(argv, input=HTTP_GET, timeout=30)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out
    assert "New, TLSv1.2, Cipher is" in out, out
    assert "Subject: CN=tessera client" in out, out

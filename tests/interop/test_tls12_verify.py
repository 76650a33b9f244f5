"""Certificate validation by the tessera client against ``openssl s_server -tls1_2``.

A wrong host name is bad_certificate (42), an unknown issuer unknown_ca (48), an expired leaf
certificate_expired (45); the alert goes to the server, which reports it. ``verify=False``
connects anyway.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import HTTP_GET, TESSERA, Peer, openssl_s_server, run, wait_for_output

from conftest import Pki, free_port, require_program
from tessera import AlertDescription, AlertError, ClientConfig, ProtocolVersion, TLSSocket
from tessera.certs import generate_ca, issue_leaf
from tessera.crypto.suites import parse_cipher_list

pytestmark = pytest.mark.interop

TLS12 = ProtocolVersion.TLS1_2


@pytest.fixture(scope="module")
def s_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    require_program("openssl")
    extra = ["-dcert", str(pki.rsa_cert), "-dkey", str(pki.rsa_key), "-tls1_2"]
    logs = tmp_path_factory.mktemp("s_server")
    with openssl_s_server(free_port(), logs, pki.ecdsa_cert, pki.ecdsa_key, *extra) as peer:
        yield peer


@pytest.fixture(scope="module")
def rogue_ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rogue") / "rogue-ca.crt"
    path.write_bytes(generate_ca("ec", common_name="tessera test CA").to_pem()[0])
    return path


@pytest.fixture(scope="module")
def expired_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    """s_server with a leaf whose validity ended (days=0: not after = the moment of issue)."""
    require_program("openssl")
    d = tmp_path_factory.mktemp("expired")
    chain, key = issue_leaf(pki.ca, ("localhost", "127.0.0.1"), kind="ec", days=0).to_pem()
    (d / "expired.crt").write_bytes(chain)
    (d / "expired.key").write_bytes(key)
    time.sleep(1.1)  # make sure "now" is past notAfter (one-second resolution)
    with openssl_s_server(free_port(), d, d / "expired.crt", d / "expired.key", "-tls1_2") as p:
        yield p


def fetch(peer: Peer, config: ClientConfig, server_name: str = "localhost") -> str:
    assert peer.port is not None
    with TLSSocket.connect(("127.0.0.1", peer.port), config, server_name, timeout=10) as tls:
        tls.sendall(HTTP_GET)
        page = b""
        while chunk := tls.recv(65536):
            page += chunk
    return page.decode(errors="replace")


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "LOCALHOST"])
def test_valid_names(s_server: Peer, pki: Pki, name: str) -> None:
    page = fetch(s_server, ClientConfig(cafile=pki.ca_file, max_version=TLS12), name)
    assert "Protocol  : TLSv1.2" in page, page


def test_wrong_host_name(s_server: Peer, pki: Pki) -> None:
    config = ClientConfig(cafile=pki.ca_file, max_version=TLS12)
    with pytest.raises(AlertError) as e:
        fetch(s_server, config, "wrong.test")
    assert e.value.alert == AlertDescription.bad_certificate
    out = wait_for_output(s_server, "SSL alert number 42")
    assert "alert bad certificate" in out and "SSL alert number 42" in out, out


def test_unknown_ca(s_server: Peer, rogue_ca_file: Path) -> None:
    """A CA of the same name but another key: the chain does not verify."""
    config = ClientConfig(cafile=rogue_ca_file, max_version=TLS12)
    with pytest.raises(AlertError) as e:
        fetch(s_server, config)
    assert e.value.alert == AlertDescription.unknown_ca
    out = wait_for_output(s_server, "SSL alert number 48")
    assert "alert unknown ca" in out and "SSL alert number 48" in out, out


def test_expired_certificate(expired_server: Peer, pki: Pki) -> None:
    config = ClientConfig(cafile=pki.ca_file, max_version=TLS12)
    with pytest.raises(AlertError) as e:
        fetch(expired_server, config)
    assert e.value.alert == AlertDescription.certificate_expired
    out = wait_for_output(expired_server, "SSL alert number 45")
    assert "SSL alert number 45" in out, out


@pytest.mark.parametrize("suite", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"])
def test_verify_false_connects(s_server: Peer, suite: str) -> None:
    """No CA, a wrong name: without verification the handshake still completes."""
    config = ClientConfig(verify=False, max_version=TLS12, cipher_suites=parse_cipher_list(suite))
    page = fetch(s_server, config, "wrong.test")
    assert f"Cipher    : {suite}" in page, page


def cli(peer: Peer, *args: str) -> tuple[int, str]:
    argv = [*TESSERA, "connect", f"127.0.0.1:{peer.port}", "--tls1_2", *args]
    proc = run(argv, input=HTTP_GET, timeout=30)
    return proc.returncode, proc.stdout.decode(errors="replace")


def test_cli_wrong_name(s_server: Peer, pki: Pki) -> None:
    rc, out = cli(s_server, "--ca", str(pki.ca_file), "--sni", "wrong.test")
    assert rc == 1, out
    assert "bad_certificate (42)" in out, out
    assert "HTTP/1.0 200" not in out, out


def test_cli_unknown_ca(s_server: Peer, rogue_ca_file: Path) -> None:
    rc, out = cli(s_server, "--ca", str(rogue_ca_file))
    assert rc == 1, out
    assert "unknown_ca (48)" in out, out


def test_cli_insecure(s_server: Peer) -> None:
    rc, out = cli(s_server, "-k", "--sni", "wrong.test")
    assert rc == 0, out
    assert "New, TLSv1.2, Cipher is" in out, out
    assert "HTTP/1.0 200 ok" in out, out

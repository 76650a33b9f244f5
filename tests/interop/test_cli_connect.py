"""``tessera connect`` as an ``s_client`` user runs it (issue 14.1, 14.3, 14.7, 14.9, 14.10):
URLs as targets, a plain-HTTP port named as such, --ca checked before connecting,
--reconnect with --sess-out, verify profiles, the minimum RSA size, s_client-style options,
and a coloured summary on a terminal."""

from __future__ import annotations

import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import HTTP_GET, TESSERA, Peer, openssl_s_server, run, tessera_serve

from conftest import Pki, free_port, require_program
from openssl_pki import EC, openssl, req_signed, req_x509

pytestmark = pytest.mark.interop
WIDE = {"COLUMNS": "300"}


def connect(*args: str, input: bytes = b"", env: dict[str, str] | None = None) -> tuple[int, str]:
    r = run([*TESSERA, "connect", *args], input=input, timeout=40, env={**WIDE, **(env or {})})
    return r.returncode, r.stdout.decode(errors="replace")


@pytest.fixture(scope="module")
def www(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    d = tmp_path_factory.mktemp("www")
    certs = ("--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key))
    with tessera_serve(free_port(), d, "--www", *certs) as peer:
        yield peer


def test_reconnect_writes_sess_out(www: Peer, pki: Pki, tmp_path: Path) -> None:
    sess = tmp_path / "sess.pem"
    rc, out = connect(f"127.0.0.1:{www.port}", "--ca", str(pki.ca_file), "--sni", "localhost",
                      "--reconnect", "--sess-out", str(sess))  # fmt: skip
    assert rc == 0, out
    assert out.count("Reused, TLSv1.3") == 5, out
    assert stat.S_IMODE(sess.stat().st_mode) == 0o600
    rc, out = connect(f"127.0.0.1:{www.port}", "--ca", str(pki.ca_file), "--sni", "localhost",
                      "--sess-in", str(sess), input=HTTP_GET)  # fmt: skip
    assert rc == 0 and out.startswith("Reused, TLSv1.3"), out


@pytest.mark.parametrize("url", ["https://localhost:{port}/", "https://localhost:{port}"])
def test_https_url_target(www: Peer, pki: Pki, url: str) -> None:
    rc, out = connect(url.format(port=www.port), "--ca", str(pki.ca_file), input=HTTP_GET)
    assert rc == 0 and "New, TLSv1.3" in out and "HTTP/1.0 200 ok" in out, out


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("http://localhost:80/", "http:// is not TLS"),
        ("localhost", "expected HOST:PORT or https://HOST[:PORT]"),
        ("localhost:99999", "port 99999 is not between 1 and 65535"),
    ],
)
def test_bad_targets(target: str, message: str) -> None:
    rc, out = connect(target)
    assert rc == 2 and message in out and "Traceback" not in out, out


def test_plain_http_port_is_named(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with Peer(argv, port=port, log_dir=tmp_path, name="http.server"):
        rc, out = connect(f"127.0.0.1:{port}", "-k")
    assert rc == 1, out
    assert "the server answered in plaintext HTTP: is this a TLS port?" in out, out
    assert "unknown record content type" not in out


def test_ca_file_checked_before_connecting(pki: Pki) -> None:
    """A key file given as --ca fails at once, before any connection (the port is closed)."""
    rc, out = connect(f"127.0.0.1:{free_port()}", "--ca", str(pki.ecdsa_key))
    assert rc == 2 and "holds a private key" in out, out
    assert "refused" not in out.lower(), out


def test_key_without_cert(pki: Pki) -> None:
    rc, out = connect(f"127.0.0.1:{free_port()}", "--key", str(pki.client_key))
    assert rc == 2 and "--key needs --cert" in out, out


# -- verify profiles and RSA size through the command line ----------------------------------------


@pytest.fixture(scope="module")
def dev_ca_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Peer, Path]]:
    """openssl s_server with a leaf signed by a CA made by ``openssl req -x509``."""
    d = tmp_path_factory.mktemp("devca")
    ca = req_x509(d, "ca", "/CN=Dev CA", key=EC)
    leaf = req_signed(d, "leaf", "/CN=localhost", ca, extfile="subjectAltName=DNS:localhost\n")
    with openssl_s_server(free_port(), d, leaf.cert, leaf.key, "-cert_chain", str(ca.cert)) as p:
        yield p, ca.cert


def test_verify_profile_option(dev_ca_server: tuple[Peer, Path]) -> None:
    peer, ca = dev_ca_server
    target = f"localhost:{peer.port}"
    rc, out = connect(target, "--ca", str(ca))
    assert rc == 1 and "has no keyUsage extension" in out and "--verify-profile openssl" in out
    rc, out = connect(target, "--ca", str(ca), "--verify-profile", "openssl", input=HTTP_GET)
    assert rc == 0 and "New, TLSv1.3" in out, out


def test_min_rsa_bits_option(tmp_path: Path) -> None:
    weak = req_x509(tmp_path, "weak", "/CN=localhost", key="rsa:1024",
                    addext=("subjectAltName=DNS:localhost",))  # fmt: skip
    port = free_port()
    common = ("--ca", str(weak.cert), "--verify-profile", "openssl")
    with tessera_serve(port, tmp_path, "--cert", str(weak.cert), "--key", str(weak.key)):
        rc, out = connect(f"localhost:{port}", *common)
        rc2, out2 = connect(f"localhost:{port}", *common, "--min-rsa-bits", "1024")
    assert rc == 1 and "1024-bit RSA key" in out and "--min-rsa-bits" in out, out
    assert rc2 == 0 and "New, TLSv1.3" in out2, out2


# -- s_client options ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s_server_rsa(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    d = tmp_path_factory.mktemp("rsa")
    with openssl_s_server(free_port(), d, pki.rsa_cert, pki.rsa_key) as peer:
        yield peer


def test_groups_ciphersuites_sigalgs(s_server_rsa: Peer, pki: Pki) -> None:
    target = (f"127.0.0.1:{s_server_rsa.port}", "--ca", str(pki.ca_file), "--sni", "localhost")
    rc, out = connect(*target, "--groups", "P-384",
                      "--ciphersuites", "TLS_CHACHA20_POLY1305_SHA256", input=HTTP_GET)  # fmt: skip
    assert rc == 0, out
    assert "New, TLSv1.3, Cipher is TLS_CHACHA20_POLY1305_SHA256" in out, out
    assert "Group: secp384r1" in out, out
    rc, out = connect(*target, "--tls1_2", "--sigalgs", "RSA-PSS+SHA512", input=HTTP_GET)
    assert rc == 0, out
    assert "Shared Signature Algorithms: RSA-PSS+SHA512" in out, out
    rc, out = connect(*target, "--sigalgs", "DSA+SHA256")
    assert rc == 2 and "unknown or unsupported signature algorithm 'DSA+SHA256'" in out, out


def test_client_key_password(pki: Pki, tmp_path: Path) -> None:
    require_program("openssl")
    openssl("pkey", "-in", str(pki.client_key), "-aes256", "-passout", "pass:pw",
            "-out", "client-enc.key", cwd=tmp_path)  # fmt: skip
    args = ("-Verify", "1", "-CAfile", str(pki.ca_file))
    with openssl_s_server(free_port(), tmp_path, pki.ecdsa_cert, pki.ecdsa_key, *args) as peer:
        base = (f"127.0.0.1:{peer.port}", "--ca", str(pki.ca_file), "--sni", "localhost",
                "--cert", str(pki.client_cert), "--key", str(tmp_path / "client-enc.key"))  # fmt: skip
        rc, out = connect(*base, "--pass", "env:CLIENT_KEY_PW", input=HTTP_GET,
                          env={"CLIENT_KEY_PW": "pw"})  # fmt: skip
        rc_bad, out_bad = connect(*base, "--pass", "pass:wrong")
    assert rc == 0 and "New, TLSv1.3" in out and "HTTP/1.0 200 ok" in out, out
    assert rc_bad == 2 and "cannot load the private key" in out_bad, out_bad


def test_summary_is_coloured_on_a_terminal(www: Peer, pki: Pki) -> None:
    """rich colours the summary when it may (FORCE_COLOR stands for a terminal here) and
    prints plain ``Field: value`` lines into a pipe."""
    args = (f"127.0.0.1:{www.port}", "--ca", str(pki.ca_file), "--sni", "localhost")
    rc, plain = connect(*args)
    rc2, coloured = connect(*args, env={"FORCE_COLOR": "1"})
    assert rc == rc2 == 0
    assert "\x1b[" not in plain and "Protocol: TLSv1.3" in plain, plain
    assert "\x1b[1mProtocol:\x1b[0m" in coloured, coloured

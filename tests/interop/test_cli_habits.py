"""Operator habits (issue 22, item 6), against real peers: ``tessera connect --json`` and
``--showcerts`` agree with what ``openssl s_server`` serves and ``openssl s_client`` prints;
errors name the target with exit status 3 when it cannot be reached; a busy port names the
address; ``tessera serve --config`` serves what its file says, the command line overriding it."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from peers import TESSERA, Peer, openssl_s_client, openssl_s_server, run, wait_for_output

from conftest import Pki, free_port

pytestmark = pytest.mark.interop

PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def tessera(*args: str, timeout: float = 40.0) -> subprocess.CompletedProcess[str]:
    """``tessera ARGS`` with stdout and stderr apart."""
    return subprocess.run([*TESSERA, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)  # fmt: skip


def fingerprint(path: Path) -> str:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.fingerprint(hashes.SHA256()).hex().upper()


def test_connect_json_reports_what_openssl_negotiated(pki: Pki, tmp_path: Path) -> None:
    port = free_port()
    suite = "ECDHE-ECDSA-AES256-GCM-SHA384"
    with openssl_s_server(port, tmp_path, pki.ecdsa_cert, pki.ecdsa_key, "-tls1_2", "-cipher",
                          suite):  # fmt: skip
        seen = openssl_s_client(port, "-tls1_2", "-CAfile", str(pki.ca_file))
        assert f"Cipher is {suite}" in seen, seen
        r = tessera("connect", f"127.0.0.1:{port}", "--ca", str(pki.ca_file), "--sni",
                    "localhost", "--json", "--reconnect")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr == "", r.stderr  # the summary is the JSON itself
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(records) == 6, r.stdout
    first, *rest = records
    assert first["protocol"] == "TLSv1.2" and first["cipher"] == suite
    assert first["cipher_iana"] == "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"
    assert first["resumed"] is False and first["resumed_by"] is None
    assert first["extended_master_secret"] is True and first["verified"] is True
    assert first["target"] == f"127.0.0.1:{port}" and first["server_name"] == "localhost"
    (leaf,) = first["certificates"]  # s_server sends the leaf alone here
    assert leaf["sha256"] == fingerprint(pki.ecdsa_cert) and leaf["version"] == 3
    assert leaf["subject_alt_names"] == ["localhost", "127.0.0.1"] and "pem" not in leaf
    assert all(r["resumed"] and r["resumed_by"] == "ticket" for r in rest), rest


def test_showcerts_prints_the_chain_as_openssl_does(pki: Pki, tmp_path: Path) -> None:
    port = free_port()
    with openssl_s_server(port, tmp_path, pki.ecdsa_cert, pki.ecdsa_key, "-cert_chain",
                          str(pki.ca_file)):  # fmt: skip
        theirs = openssl_s_client(port, "-showcerts", "-CAfile", str(pki.ca_file))
        ours = run([*TESSERA, "connect", f"127.0.0.1:{port}", "--ca", str(pki.ca_file), "--sni",
                    "localhost", "--showcerts", "-q"]).stdout.decode()  # fmt: skip
        as_json = tessera("connect", f"127.0.0.1:{port}", "--ca", str(pki.ca_file), "--sni",
                          "localhost", "--showcerts", "--json")  # fmt: skip
    assert len(PEM.findall(theirs)) == 2, theirs
    assert PEM.findall(ours) == PEM.findall(theirs), ours
    assert ours.startswith("New, TLSv1.3") and "Certificate chain\n 0 s:CN=localhost" in ours
    assert " 1 s:CN=tessera test CA" in ours or " 1 s:" in ours, ours
    chain = json.loads(as_json.stdout)["certificates"]
    assert [c["pem"].strip() for c in chain] == PEM.findall(theirs)


def test_an_unreachable_target_is_named_with_status_3() -> None:
    port = free_port()  # nothing listens there
    r = tessera("connect", f"127.0.0.1:{port}")
    assert r.returncode == 3, r.stderr
    assert r.stderr == f"tessera connect: error: 127.0.0.1:{port}: connection refused\n"
    r = tessera("connect", f"[::1]:{port}", "--json")
    assert r.returncode == 3 and f"[::1]:{port}: " in r.stderr and "Errno" not in r.stderr


def test_a_failed_verification_names_the_target(pki: Pki, tmp_path: Path) -> None:
    port = free_port()
    with openssl_s_server(port, tmp_path, pki.ecdsa_cert, pki.ecdsa_key):
        r = tessera("connect", f"localhost:{port}")  # the system store: our CA is not there
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(f"tessera connect: error: localhost:{port}: unknown_ca (48): ")
    assert r.stderr.count("\n") == 1, r.stderr


def test_a_busy_port_names_the_address() -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):  # the port's occupant
        for command in (
            ["serve", "--port", str(port)],
            ["proxy", "--listen", f"127.0.0.1:{port}", "--backend", "127.0.0.1:9"],
        ):
            r = tessera(*command)
            name = command[0]
            assert r.returncode == 1, r.stderr
            assert r.stderr.endswith(
                f"tessera {name}: error: 127.0.0.1:{port}: address already in use\n"
            ), r.stderr


def test_serve_from_a_config_file(pki: Pki, tmp_path: Path) -> None:
    """Every key in the file takes effect (checked by openssl s_client), and the command line
    wins over the file."""
    port = free_port()
    config = tmp_path / "tessera.toml"
    config.write_text(
        "[serve]\n"
        f"port = {free_port()}  # overridden below\n"
        f'cert = ["{pki.ecdsa_cert}"]\n'
        f'key = ["{pki.ecdsa_key}"]\n'
        "www = true\n"
        "tls1-2 = true\n"
        "no-ticket = true\n"
        'ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305"\n'
        "quiet = true\n"
    )
    argv = [*TESSERA, "serve", "--config", str(config), "--port", str(port)]
    with Peer(argv, port=port, log_dir=tmp_path, name="serve-config") as peer:
        banner = wait_for_output(peer, "signals: HUP")
        assert f"listening on 127.0.0.1:{port} (TLSv1.2, www)" in banner, banner
        out = openssl_s_client(port, "-CAfile", str(pki.ca_file), "-reconnect", "-ign_eof",
                               input=b"GET / HTTP/1.0\r\n\r\n")  # fmt: skip
    assert "Cipher is ECDHE-ECDSA-CHACHA20-POLY1305" in out, out
    assert "Protocol  : TLSv1.2" in out or "TLSv1.2" in out, out
    handshakes, page = out.split("<html>", 1)  # the www page of the last connection
    assert handshakes.count("Reused, TLSv1.2") == 5, out  # by session id: --no-ticket
    assert "TLS session ticket:" not in handshakes, out
    assert "Reused, TLSv1.2" in page and "tickets_issued: 0" in page, page


def test_a_config_mistake_stops_the_start_with_the_line(tmp_path: Path) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text('[proxy]\nlisten = "127.0.0.1:1"\n\nbackends = "127.0.0.1:2"\n')
    r = tessera("proxy", "--config", str(config))
    assert r.returncode == 2, r.stderr
    assert r.stderr == (f"tessera proxy: error: {config}, line 4: unknown key 'backends' in "
                        "[proxy] (did you mean 'backend'?)\n")  # fmt: skip


def test_an_unreachable_backend_is_named_in_words(tmp_path: Path) -> None:
    """The proxy's line for a client whose backend refuses: the backend and the reason in
    words, not ``[Errno 111]``."""
    port, backend = free_port(), free_port()  # nothing listens on the backend's port
    argv = [*TESSERA, "proxy", "--listen", f"127.0.0.1:{port}", "--backend",
            f"127.0.0.1:{backend}"]  # fmt: skip
    with Peer(argv, port=port, log_dir=tmp_path, name="proxy") as peer:
        openssl_s_client(port, "-ign_eof", input=b"hello\n")
        log = wait_for_output(peer, f'error="backend 127.0.0.1:{backend} unreachable: ')
    assert f'error="backend 127.0.0.1:{backend} unreachable: connection refused"' in log, log
    assert "Errno" not in log, log


@pytest.mark.parametrize(
    ("cert", "key", "message"),
    [
        ("key", "key", "{key}: expected a PEM certificate, found a private key"),
        ("cert", "cert", "{cert}: expected a PEM private key, found a certificate"),
        ("cert", None, "{cert}: expected a PEM private key, found a certificate; give the key "
                       "file with --key FILE"),
        ("der", "key", "{der}: expected a PEM certificate, found DER (convert it to PEM with "
                       "openssl x509 or openssl pkey)"),
        ("cert", "other", "{other}: the private key does not match the leaf certificate in "
                          "{cert}"),
        ("text", "key", "{text}: expected a PEM certificate, found no PEM block"),
    ],
)  # fmt: skip
def test_a_wrong_file_is_named_with_what_it_holds(pki: Pki, tmp_path: Path, cert: str,
                                                  key: str | None, message: str) -> None:  # fmt: skip
    der = tmp_path / "server.der"
    der.write_bytes(x509.load_pem_x509_certificate(pki.ecdsa_cert.read_bytes()).public_bytes(
        serialization.Encoding.DER))  # fmt: skip
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    files = {"cert": pki.ecdsa_cert, "key": pki.ecdsa_key, "other": pki.rsa_key, "der": der,
             "text": text}  # fmt: skip
    args = ["--cert", str(files[cert])] + (["--key", str(files[key])] if key else [])
    r = tessera("serve", "--port", "0", *args)
    assert r.returncode == 2, r.stderr
    expected = message.format(**{k: str(v) for k, v in files.items()})
    assert r.stderr.splitlines()[-1] == f"tessera serve: error: {expected}", r.stderr

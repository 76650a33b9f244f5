"""NSS key log (SSLKEYLOGFILE) over TLS 1.2: tessera and OpenSSL must log the same secrets.

``CLIENT_RANDOM <client random> <master secret>`` is the TLS 1.2 line; the same connection
seen from both ends must give the same line, so Wireshark can decrypt with either file.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from peers import HTTP_GET, TESSERA, Peer, openssl_s_client, openssl_s_server, run

from conftest import Pki, free_port, require_program
from waiting import wait_until

pytestmark = pytest.mark.interop

LINE = re.compile(r"^CLIENT_RANDOM [0-9a-f]{64} [0-9a-f]{96}$", re.IGNORECASE)


def client_random_lines(path: Path) -> list[str]:
    text = path.read_text() if path.exists() else ""
    return [line.strip().lower() for line in text.splitlines() if line.startswith("CLIENT_RANDOM")]


def wait_for_lines(path: Path, n: int) -> list[str]:
    wait_until(lambda: len(client_random_lines(path)) >= n, f"{n} CLIENT_RANDOM lines in {path}",
               details=lambda: "\n".join(client_random_lines(path)))  # fmt: skip
    return client_random_lines(path)


SUITES = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
]


def test_tessera_serve_sslkeylogfile_matches_s_client(
    pki: Pki, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require_program("openssl")
    server_log = tmp_path / "tessera.keys"
    client_log = tmp_path / "openssl.keys"
    port = free_port()
    argv = [*TESSERA, "serve", "--port", str(port), "--tls1_2", "--www"]
    argv += ["--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)]
    argv += ["--cert", str(pki.rsa_cert), "--key", str(pki.rsa_key)]
    with Peer(
        argv,
        port=port,
        log_dir=tmp_path_factory.mktemp("serve"),
        name="tessera-serve",
        env={"SSLKEYLOGFILE": str(server_log)},
    ):
        for suite in SUITES:
            out = openssl_s_client(
                port,
                "-tls1_2",
                "-CAfile",
                str(pki.ca_file),
                "-cipher",
                suite,
                "-keylogfile",
                str(client_log),
                "-ign_eof",
                input=HTTP_GET,
            )
            assert f"Cipher    : {suite}" in out and "HTTP/1.0 200 ok" in out, out
        server_lines = wait_for_lines(server_log, len(SUITES))
    client_lines = client_random_lines(client_log)
    assert len(client_lines) == len(SUITES), client_log.read_text()
    assert all(LINE.match(line) for line in server_lines), server_lines
    assert server_lines == client_lines
    # Key material: the file tessera created is readable by its owner only.
    assert stat.S_IMODE(server_log.stat().st_mode) == 0o600


@pytest.mark.parametrize("how", ["--keylogfile", "SSLKEYLOGFILE"])
def test_tessera_connect_keylog_matches_s_server(
    pki: Pki, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, how: str
) -> None:
    require_program("openssl")
    server_log = tmp_path / "openssl.keys"
    client_log = tmp_path / "tessera.keys"
    port = free_port()
    logs = tmp_path_factory.mktemp("s_server")
    extra = ["-tls1_2", "-keylogfile", str(server_log)]
    with openssl_s_server(port, logs, pki.ecdsa_cert, pki.ecdsa_key, *extra):
        argv = [*TESSERA, "connect", f"127.0.0.1:{port}", "--tls1_2", "--ca", str(pki.ca_file)]
        env = None
        if how == "--keylogfile":
            argv += ["--keylogfile", str(client_log)]
        else:
            env = {"SSLKEYLOGFILE": str(client_log)}
        proc = run(argv, input=HTTP_GET, timeout=30, env=env)
        out = proc.stdout.decode(errors="replace")
        assert proc.returncode == 0, out
        assert "New, TLSv1.2, Cipher is" in out and "HTTP/1.0 200 ok" in out, out
        server_lines = wait_for_lines(server_log, 1)
    client_lines = client_random_lines(client_log)
    assert len(client_lines) == 1, client_log.read_text() if client_log.exists() else "no file"
    assert LINE.match(client_lines[0]), client_lines
    assert client_lines == server_lines

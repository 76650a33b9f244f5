"""``tessera serve`` as an operator uses it (issue 14.5, 14.7-14.9): bad options fail at start
with a message (never a traceback, never a server that fails every handshake), SIGHUP reloads
files without dropping connections, several ``--ticket-keys`` files, ``--no-ticket`` as in
OpenSSL, Ctrl-C, per-connection log lines, and the s_server-style options."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
from peers import (
    HTTP_GET,
    TESSERA,
    TICKET_ARRIVED,
    Peer,
    openssl_s_client,
    openssl_s_client_steps,
    run,
    wait_for_output,
)

from conftest import Pki, free_port, require_program
from openssl_pki import EC, Made, openssl, req_signed, req_x509
from tessera import ClientConfig, ClientSessionCache, ProtocolVersion, TLSSocket
from tessera.session.keyring import KeyFileFormat, read_key_file

pytestmark = pytest.mark.interop

TLS12 = ProtocolVersion.TLS1_2
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"
WIDE = {"COLUMNS": "300"}


def serve(port: int, log_dir: Path, *args: str) -> Peer:
    argv = [*TESSERA, "serve", "--port", str(port), *args]
    return Peer(argv, port=port, log_dir=log_dir, name="tessera-serve", env=WIDE)


def banner_of(peer: Peer) -> str:
    """The start-up lines (printed just after the port opens: wait for the last one)."""
    return wait_for_output(peer, "signals: HUP reloads")


def fails_at_start(*args: str) -> str:
    """Run ``tessera serve ARGS``; it must exit at once with status 2 and no traceback."""
    port = [] if {"-p", "--port"} & set(args) else ["--port", str(free_port())]
    r = run([*TESSERA, "serve", *port, *args], timeout=30)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 2, out
    assert "Traceback" not in out, out
    return out


# -- 14.7: options that used to fail late or silently ---------------------------------------------


def test_port_out_of_range() -> None:
    out = fails_at_start("-p", "70000")
    assert "70000 is not in the range 0<=x<=65535" in out, out


def test_key_without_cert(pki: Pki) -> None:
    assert "--key needs --cert" in fails_at_start("--key", str(pki.ecdsa_key))


def test_client_ca_missing_or_not_a_certificate(pki: Pki, tmp_path: Path) -> None:
    out = fails_at_start("--verify-client", "required", "--client-ca", str(tmp_path / "no.pem"))
    assert "does not exist" in out, out
    out = fails_at_start("--verify-client", "required", "--client-ca", str(pki.ecdsa_key))
    assert "holds a private key" in out, out


def test_tls13_names_in_ciphers_are_refused() -> None:
    out = fails_at_start("--ciphers", "TLS_AES_128_GCM_SHA256")
    assert "TLS_AES_128_GCM_SHA256 belongs in --ciphersuites (TLS 1.3)" in out, out
    out = fails_at_start("--ciphersuites", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert "belongs in --ciphers (TLS 1.2)" in out, out


def test_ciphersuites_keep_tls12_and_the_banner_is_true(tmp_path: Path) -> None:
    port = free_port()
    with serve(port, tmp_path, "--ciphersuites", "TLS_AES_256_GCM_SHA384") as peer:
        assert "(TLSv1.3, TLSv1.2, echo)" in banner_of(peer)
        out13 = openssl_s_client(port, "-tls1_3")
        out12 = openssl_s_client(port, "-tls1_2")
    assert "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384" in out13, out13
    assert "New, TLSv1.2, Cipher is ECDHE-" in out12, out12


def test_ticket_key_options_that_do_nothing(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    key.write_bytes(os.urandom(80))
    out = fails_at_start("--ticket-keys", str(key), "--ticket-rotation", "60")
    assert "--ticket-rotation applies to generated keys" in out, out
    assert "drop --ticket-keys" in fails_at_start("--ticket-keys", str(key), "--no-ticket")


# -- 14.3: --save-cert ---------------------------------------------------------------------------


def test_save_cert_lets_connect_trust_the_server(tmp_path: Path) -> None:
    port = free_port()
    saved = tmp_path / "served.pem"
    with serve(port, tmp_path, "--www", "--save-cert", str(saved)) as peer:
        assert f"saved to {saved}" in banner_of(peer)
        r = run([*TESSERA, "connect", f"127.0.0.1:{port}"], timeout=30)
        refused = r.stdout.decode(errors="replace")
        r2 = run([*TESSERA, "connect", f"localhost:{port}", "--ca", str(saved)], input=HTTP_GET,
                 timeout=30)  # fmt: skip
        trusted = r2.stdout.decode(errors="replace")
    assert r.returncode == 1, refused
    for hint in ("unknown_ca (48)", "self-signed", "--ca FILE", "--insecure", "--save-cert FILE"):
        assert hint in refused, refused
    assert "all candidates exhausted" not in refused
    assert r2.returncode == 0 and "New, TLSv1.3" in trusted and "200 ok" in trusted, trusted


# -- 14.5: --no-ticket as in openssl s_server -----------------------------------------------------


def test_no_ticket_keeps_tls13_resumption_with_stateful_tickets(tmp_path: Path) -> None:
    port = free_port()
    sess = tmp_path / "sess.pem"
    with serve(port, tmp_path, "--no-ticket") as peer:
        banner = banner_of(peer)
        first = openssl_s_client_steps(port, "-tls1_3", "-sess_out", str(sess),
                                       until=TICKET_ARRIVED)  # fmt: skip
        again = openssl_s_client(port, "-tls1_3", "-sess_in", str(sess))
        replay = openssl_s_client(port, "-tls1_3", "-sess_in", str(sess))
        twelve = openssl_s_client(port, "-tls1_2", "-sess_out", str(tmp_path / "s12.pem"))
        twelve_again = openssl_s_client(port, "-tls1_2", "-sess_in", str(tmp_path / "s12.pem"))
        log = wait_for_output(peer, "(resumed by session_id)")
    assert "stateful: single use, kept in the session cache" in banner, banner
    assert "TLS 1.2 tickets" not in banner and "ticket keys" not in banner, banner
    assert "New, TLSv1.3" in first and "Reused, TLSv1.3" in again, again
    assert "New, TLSv1.3" in replay, replay  # a stateful ticket is used once
    assert "TLS session ticket:" not in twelve, twelve  # no TLS 1.2 ticket issued
    assert "Reused, TLSv1.2" in twelve_again, twelve_again
    assert "(resumed by psk)" in log


def test_no_ticket_no_cache_says_off(tmp_path: Path) -> None:
    port = free_port()
    with serve(port, tmp_path, "--no-ticket", "--no-cache") as peer:
        assert "resumption: off" in banner_of(peer)


# -- 14.8: log lines, SIGHUP, several key files, Ctrl-C -------------------------------------------


def ticket_name(session: object) -> bytes:
    return bytes(session.ticket[:16])  # type: ignore[attr-defined]


def get_session(port: int, pki: Pki, session: object = None) -> tuple[bool, object]:
    """A TLS 1.2 connection with the tessera client: (resumed, the session to resume next)."""
    config = ClientConfig(cafile=pki.ca_file, max_version=TLS12, session_cache=ClientSessionCache())
    with TLSSocket.connect(("127.0.0.1", port), config, "localhost", timeout=10,
                           session=session) as tls:  # type: ignore[arg-type]  # fmt: skip
        tls.sendall(HTTP_GET)
        while tls.recv(65536):
            pass
        return tls.info.resumed, tls.session


def key_file(path: Path) -> Path:
    from tessera.session.keyring import TicketKey, write_key_file

    write_key_file(path, [TicketKey.generate(time.time(), 80)], KeyFileFormat.NATIVE)
    return path


def name_of(path: Path) -> bytes:
    return read_key_file(path, KeyFileFormat.NATIVE, 0.0)[0].name


def pki_server(port: int, log_dir: Path, pki: Pki, *args: str) -> Peer:
    certs = ("--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key))
    return serve(port, log_dir, "--www", *certs, *args)


def test_log_lines_name_time_peer_and_fallback_reason(pki: Pki, tmp_path: Path) -> None:
    a, b = free_port(), free_port()
    with pki_server(a, tmp_path, pki) as first, pki_server(b, tmp_path, pki) as second:
        _, from_a = get_session(a, pki)
        resumed, _ = get_session(b, pki, from_a)  # b cannot open a's ticket
        assert not resumed
        log = wait_for_output(second, "resumption fell back")
        assert first.output()
    assert re.search(rf"^{STAMP} 127\.0\.0\.1:\d+ New, TLSv1\.2, Cipher is \S+ "
                     r"\(resumption fell back: ticket key name unknown\)$", log, re.M), log  # fmt: skip


def test_several_ticket_key_files_first_encrypts(pki: Pki, tmp_path: Path) -> None:
    old, new = key_file(tmp_path / "old.key"), key_file(tmp_path / "new.key")
    a, b = free_port(), free_port()
    with pki_server(a, tmp_path, pki, "--ticket-keys", str(old)):
        _, sealed_by_old = get_session(a, pki)
    assert ticket_name(sealed_by_old) == name_of(old)
    keys = ("--ticket-keys", str(new), "--ticket-keys", str(old))
    with pki_server(b, tmp_path, pki, *keys) as peer:
        banner = banner_of(peer)
        resumed, fresh = get_session(b, pki, sealed_by_old)
    assert resumed  # the second file decrypts
    assert ticket_name(fresh) == name_of(new)  # the first file encrypts
    assert "keys from new.key (encrypts), old.key (decrypts only)" in banner, banner
    assert "rotated every" not in banner and "reloaded on SIGHUP" in banner, banner


def test_sighup_reloads_files_and_keeps_connections(pki: Pki, tmp_path: Path) -> None:
    require_program("openssl")
    d = tmp_path
    ca = req_x509(d, "ca", "/CN=Reload CA", key=EC)
    one = req_signed(d, "one", "/CN=one.test", ca, extfile="subjectAltName=DNS:localhost\n")
    two = req_signed(d, "two", "/CN=two.test", ca, extfile="subjectAltName=DNS:localhost\n")
    live = Made(d / "live.pem", d / "live.key")
    shutil.copy(one.cert, live.cert)
    shutil.copy(one.key, live.key)
    keyfile = key_file(d / "ticket.key")
    port = free_port()
    config = ClientConfig(cafile=ca.cert, verify_profile="openssl", max_version=TLS12)
    with serve(port, d, "--cert", str(live.cert), "--key", str(live.key), "--echo",
               "--ticket-keys", str(keyfile)) as peer:  # fmt: skip
        held = TLSSocket.connect(("127.0.0.1", port), config, "localhost", timeout=10)
        held.sendall(b"before")
        assert held.recv(100) == b"before"
        shutil.copy(two.cert, live.cert)
        shutil.copy(two.key, live.key)
        old_name = name_of(keyfile)
        key_file(keyfile)
        os.kill(peer.proc.pid, signal.SIGHUP)
        wait_for_output(peer, "reloaded: 1 certificate(s), 1 ticket key(s)")
        assert peer.proc.poll() is None, peer.output()  # HUP no longer kills it
        with TLSSocket.connect(("127.0.0.1", port), config, "localhost", timeout=10) as tls:
            subject = tls.info.peer_certificates[0].subject.rfc4514_string()
            tls.sendall(b"x")
            tls.recv(10)
            tls.close()
        new_name = ticket_name(tls.session)
        held.sendall(b"after")  # the connection opened before the reload still works
        assert held.recv(100) == b"after"
        held.close()
        # A broken file is refused and the running configuration stays.
        live.cert.write_text("not a certificate")
        os.kill(peer.proc.pid, signal.SIGHUP)
        wait_for_output(peer, "reload failed, still serving the previous files")
        with TLSSocket.connect(("127.0.0.1", port), config, "localhost", timeout=10) as tls:
            assert tls.info.peer_certificates[0].subject.rfc4514_string() == "CN=two.test"
    assert subject == "CN=two.test"
    assert new_name == name_of(keyfile) != old_name


def test_ctrl_c_prints_statistics_and_exits_130(pki: Pki, tmp_path: Path) -> None:
    port = free_port()
    peer = pki_server(port, tmp_path, pki)
    try:
        get_session(port, pki)
        os.kill(peer.proc.pid, signal.SIGINT)
        rc = peer.proc.wait(15)
    finally:
        out = peer.stop()
    assert rc == 130, out
    assert "final statistics" in out and re.search(r"full_handshakes\s*│\s*1", out), out


# -- 14.9: s_server options ------------------------------------------------------------------------


def test_groups_and_sigalgs(pki: Pki, tmp_path: Path) -> None:
    port = free_port()
    certs = ("--cert", str(pki.rsa_cert), "--key", str(pki.rsa_key))
    with serve(port, tmp_path, *certs, "--groups", "P-384", "--sigalgs", "RSA-PSS+SHA384"):
        out = openssl_s_client(port, "-tls1_3")
        out12 = openssl_s_client(port, "-tls1_2")
    assert (
        "Server Temp Key: ECDH, secp384r1" in out or "Negotiated TLS1.3 group: secp384r1" in out
    ), out
    assert "Peer signature type: RSA-PSS" in out and "Peer signing digest: SHA384" in out, out
    assert "Peer signing digest: SHA384" in out12, out12


def test_encrypted_key_with_pass(tmp_path: Path) -> None:
    require_program("openssl")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-keyout", "enc.key", "-passout", "pass:s3cret", "-out", "enc.pem", "-days", "30",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
            cwd=tmp_path)  # fmt: skip
    cert, key = str(tmp_path / "enc.pem"), str(tmp_path / "enc.key")
    out = fails_at_start("--cert", cert, "--key", key)
    assert "cannot load the private key" in out and "--pass" in out, out
    assert "environment variable NOPE is not set" in fails_at_start(
        "--cert", cert, "--key", key, "--pass", "env:NOPE"
    )
    port = free_port()
    (tmp_path / "pw").write_text("s3cret\n")
    with serve(port, tmp_path, "--cert", cert, "--key", key, "--pass", f"file:{tmp_path / 'pw'}"):
        assert "New, TLSv1.3" in openssl_s_client(port)


def test_help_names_every_option() -> None:
    text = run([*TESSERA, "serve", "--help"], env=WIDE).stdout.decode()
    assert re.search(r"-p, --port INTEGER RANGE\s+Port to listen on", text), text
    for option in ("--groups", "--sigalgs", "--ciphersuites", "--pass", "--save-cert"):
        assert option in text, option

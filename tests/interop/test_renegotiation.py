"""Issue 12 with real peers: a client certificate asked for on one path (TLS 1.2 secure
renegotiation, TLS 1.3 post-handshake authentication), and tessera's client renegotiating with
``openssl s_server``.

* clients -> ``tessera serve --www --client-cert-path /secure --client-ca CA``:
  ``openssl s_client`` (TLS 1.2; TLS 1.3 with ``-enable_pha``), curl, CPython ``ssl``, Node
  ``tls`` and ``tessera connect``;
* the tessera client -> ``openssl s_server``: its ``R`` command (server-initiated) and
  ``-client_renegotiation`` (client-initiated).
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import (
    TESSERA,
    Peer,
    node_script,
    openssl_s_client,
    run,
    ssl_alert_numbers,
    tessera_serve,
    wait_for_output,
)

from conftest import Pki, free_port, require_program, serving
from tessera import (
    AlertReceived,
    ClientConfig,
    HandshakeTimeout,
    ProtocolVersion,
    ServerConfig,
    TLSSocket,
)
from tessera.enums import AlertDescription
from tessera.events import RenegotiationCompleted, RenegotiationDeclined
from tessera.handshake.renegotiation import MAX_REFUSALS
from waiting import WAIT, wait_until

pytestmark = pytest.mark.interop

SECURE_GET = b"GET /secure HTTP/1.0\r\n\r\n"
SUBJECT = "Client certificate subject: CN=tessera client"


def serve_args(pki: Pki) -> list[str]:
    return ["--www", "--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key),
            "--client-ca", str(pki.ca_file), "--client-cert-path", "/secure",
            "--client-cert-path", "/admin"]  # fmt: skip


def start_server(pki: Pki, logs: Path) -> Peer:
    require_program("openssl")
    return tessera_serve(free_port(), logs, *serve_args(pki))


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    with start_server(pki, tmp_path_factory.mktemp("reneg")) as peer:
        yield peer


def port_of(peer: Peer) -> int:
    assert peer.port is not None
    return peer.port


def s_client(peer: Peer, pki: Pki, *args: str, request: bytes = SECURE_GET) -> str:
    return openssl_s_client(
        port_of(peer), "-CAfile", str(pki.ca_file), "-servername", "localhost", "-ign_eof",
        "-state", *args, input=request,
    )  # fmt: skip


def with_cert(pki: Pki) -> list[str]:
    return ["-cert", str(pki.client_cert), "-key", str(pki.client_key)]


def after(out: str, marker: str) -> str:
    assert marker in out, out
    return out.split(marker, 1)[1]


# -- openssl s_client -> tessera serve ------------------------------------------------------------
def test_s_client_tls12_renegotiates_and_the_resumption_is_refused(
    pki: Pki, tmp_path: Path
) -> None:
    with start_server(pki, tmp_path) as peer:
        out = s_client(peer, pki, "-tls1_2", *with_cert(pki))
        log = wait_for_output(peer, "/secure: client certificate")
    # The client's log shows the renegotiation: a HelloRequest, then a full handshake with a
    # CertificateRequest that it answers.
    reneg = after(out, "SSL_connect:SSLv3/TLS read hello request")
    for step in ("write client hello", "read server certificate request",
                 "write client certificate", "write certificate verify", "read finished"):  # fmt: skip
        assert f"SSL_connect:SSLv3/TLS {step}" in reneg, out
    page = after(reneg, "HTTP/1.0 200 ok")
    assert SUBJECT in page and "Client certificate issuer: CN=tessera test CA" in page, out
    assert "ticket not resumed (resumption refused in renegotiation)" in page, out
    # tessera counts it: one renegotiation, one refused resumption.
    assert "  renegotiations: 1\n" in page and "  resumption refused in renegotiation: 1\n" in page
    assert "client certificate CN=tessera client by renegotiation (TLS 1.2)" in log, log
    assert not ssl_alert_numbers(out), out


def test_s_client_tls13_post_handshake_auth(server: Peer, pki: Pki) -> None:
    out = s_client(server, pki, "-tls1_3", "-enable_pha", *with_cert(pki))
    pha = after(out, "SSL_connect:SSLv3/TLS read server certificate request")
    assert "SSL_connect:SSLv3/TLS write client certificate" in pha, out
    assert "SSL_connect:SSLv3/TLS write certificate verify" in pha, out
    page = after(pha, "HTTP/1.0 200 ok")
    assert SUBJECT in page and "Obtained by: post-handshake authentication (TLS 1.3)" in page
    assert "hello request" not in out, out


def test_s_client_tls13_without_pha_gets_403_saying_why(server: Peer, pki: Pki) -> None:
    out = s_client(server, pki, "-tls1_3", *with_cert(pki))
    page = after(out, "HTTP/1.0 403 Forbidden")
    assert (
        "/secure needs a client certificate: the client did not offer post_handshake_auth" in page
    )
    assert "server certificate request" not in out, out


def test_s_client_without_certificate_gets_403(server: Peer, pki: Pki) -> None:
    out = s_client(server, pki, "-tls1_2")
    reneg = after(out, "SSL_connect:SSLv3/TLS read hello request")
    assert "read server certificate request" in reneg, out
    assert "/secure needs a client certificate: the client sent no certificate." in after(
        reneg, "HTTP/1.0 403 Forbidden"
    )


def test_other_paths_do_not_renegotiate(server: Peer, pki: Pki) -> None:
    out = s_client(server, pki, "-tls1_2", *with_cert(pki), request=b"GET /open HTTP/1.0\r\n\r\n")
    assert "HTTP/1.0 200 ok" in out and "hello request" not in out, out
    assert SUBJECT not in out, out


def test_second_prefix_and_sub_paths(server: Peer, pki: Pki) -> None:
    out = s_client(server, pki, "-tls1_2", *with_cert(pki),
                   request=b"GET /admin/users HTTP/1.0\r\n\r\n")  # fmt: skip
    assert SUBJECT in after(out, "HTTP/1.0 200 ok"), out
    assert "Request: GET /admin/users" in out, out


# -- curl, CPython ssl, Node tls --------------------------------------------------------------------
def curl(peer: Peer, pki: Pki, *args: str) -> str:
    require_program("curl")
    argv = ["curl", "-sS", "--cacert", str(pki.ca_file), "--cert", str(pki.client_cert),
            "--key", str(pki.client_key), *args,
            f"https://localhost:{port_of(peer)}/secure"]  # fmt: skip
    return run(argv, timeout=20).stdout.decode(errors="replace")


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_curl_with_a_client_certificate(server: Peer, pki: Pki, version: str) -> None:
    """curl (OpenSSL) renegotiates transparently in TLS 1.2 and enables post-handshake
    authentication for TLS 1.3."""
    flags = ["--tls-max", "1.2"] if version == "1.2" else ["--tlsv1.3"]
    out = curl(server, pki, *flags, "-D", "-")
    assert out.startswith("HTTP/1.0 200 ok"), out
    how = "renegotiation (TLS 1.2)" if version == "1.2" else "post-handshake authentication"
    assert SUBJECT in out and f"Obtained by: {how}" in out, out


def test_curl_post_body_is_kept_meanwhile(server: Peer, pki: Pki) -> None:
    out = curl(server, pki, "--tls-max", "1.2", "--data-binary", "name=value")
    assert SUBJECT in out and "Request: POST /secure (10 body bytes kept meanwhile)" in out, out


def test_curl_body_over_the_limit_is_413(server: Peer, pki: Pki, tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (128 * 1024 + 1))
    out = curl(server, pki, "--tls-max", "1.2", "--data-binary", f"@{big}", "-D", "-")
    assert out.startswith("HTTP/1.0 413 Request Entity Too Large"), out
    assert "its body (131073 bytes) is larger than 131072 bytes" in out, out
    assert SUBJECT not in out, out


def python_ssl_get(peer: Peer, pki: Pki, version: str, pha: bool) -> str:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca_file)
    ctx.load_cert_chain(pki.client_cert, pki.client_key)
    if version == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.post_handshake_auth = pha
    raw = socket.create_connection(("127.0.0.1", port_of(peer)), timeout=15)
    with raw, ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(SECURE_GET)
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    return data.decode()


@pytest.mark.parametrize(("version", "pha", "status"),
                         [("1.2", False, "200 ok"), ("1.3", True, "200 ok"),
                          ("1.3", False, "403 Forbidden")])  # fmt: skip
def test_python_ssl(server: Peer, pki: Pki, version: str, pha: bool, status: str) -> None:
    page = python_ssl_get(server, pki, version, pha)
    assert page.startswith(f"HTTP/1.0 {status}"), page
    assert (SUBJECT in page) is (status == "200 ok"), page


def test_node_tls12(server: Peer, pki: Pki) -> None:
    require_program("node")
    script = f"""
const tls = require('tls'), fs = require('fs');
const s = tls.connect({{host: '127.0.0.1', port: {port_of(server)}, servername: 'localhost',
  ca: fs.readFileSync({str(pki.ca_file)!r}), cert: fs.readFileSync({str(pki.client_cert)!r}),
  key: fs.readFileSync({str(pki.client_key)!r}), maxVersion: 'TLSv1.2'}},
  () => s.write('GET /secure HTTP/1.0\\r\\n\\r\\n'));
let page = '';
s.on('data', d => page += d);
s.on('end', () => console.log(s.getProtocol() + '\\n' + page));
s.on('error', e => {{ console.log('error ' + e.message); process.exit(1); }});
"""
    out = node_script(script).stdout.decode()
    assert out.startswith("TLSv1.2\nHTTP/1.0 200 ok"), out
    assert SUBJECT in out and "resumption refused in renegotiation" in out, out


# -- tessera connect ------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["--tls1_2", "--tls1_3"])
def test_tessera_connect_reports_what_happened(server: Peer, pki: Pki, version: str) -> None:
    argv = [*TESSERA, "connect", f"127.0.0.1:{port_of(server)}", version, "--sni", "localhost",
            "--ca", str(pki.ca_file), "--cert", str(pki.client_cert),
            "--key", str(pki.client_key)]  # fmt: skip
    out = run(argv, input=SECURE_GET, timeout=30).stdout.decode()
    if version == "--tls1_2":
        assert "Renegotiated: full handshake, resumption refused by the server" in out, out
    else:
        assert "Post-handshake authentication: the server asked; client certificate sent" in out
    assert "HTTP/1.0 200 ok" in out and SUBJECT in out, out


def test_tessera_client_initiated_renegotiation_is_cut_off_after_the_bound(
    server: Peer, pki: Pki
) -> None:
    """tessera serve refuses client-initiated renegotiation (warning no_renegotiation) and
    closes the connection with a fatal alert when the client keeps trying."""
    config = ClientConfig(cafile=pki.ca_file, max_version=ProtocolVersion.TLS1_2)
    with TLSSocket.connect(("127.0.0.1", port_of(server)), config, "localhost") as tls:
        for _ in range(MAX_REFUSALS):
            tls.renegotiate(10)
            assert isinstance(tls.handshake_notices[-1], RenegotiationDeclined)
        with pytest.raises(AlertReceived) as info:
            tls.renegotiate(10)
    assert info.value.alert is AlertDescription.handshake_failure


# -- the tessera client -> openssl s_server -----------------------------------------------------
def s_server(pki: Pki, logs: Path, *args: str) -> Peer:
    """s_server without -www: it prints what it receives and reads commands from stdin."""
    require_program("openssl")
    port = free_port()
    argv = ["openssl", "s_server", "-accept", str(port), "-cert", str(pki.ecdsa_cert),
            "-key", str(pki.ecdsa_key), "-CAfile", str(pki.ca_file), "-tls1_2", "-state",
            *args]  # fmt: skip
    return Peer(argv, port=port, log_dir=logs, name="s_server-reneg", stdin=subprocess.PIPE)


def command(peer: Peer, line: bytes) -> None:
    assert peer.proc.stdin is not None
    peer.proc.stdin.write(line)
    peer.proc.stdin.flush()


def client_config(pki: Pki) -> ClientConfig:
    return ClientConfig(
        cafile=pki.ca_file, certificate=pki.client, max_version=ProtocolVersion.TLS1_2
    )


def wait_for_notice(tls: TLSSocket, deadline: float = WAIT) -> None:
    tls.sock.settimeout(0.2)
    end = time.monotonic() + deadline
    while not tls.handshake_notices and time.monotonic() < end:
        try:
            tls.receive_some()
        except (TimeoutError, BlockingIOError):
            continue


@pytest.mark.parametrize("args", [("-verify", "1"), ("-no_resumption_on_reneg",)],
                         ids=["verify-1", "no-resumption-on-reneg"])  # fmt: skip
def test_s_server_R_renegotiates_and_data_flows(
    pki: Pki, tmp_path: Path, args: tuple[str, ...]
) -> None:
    with (
        s_server(pki, tmp_path, *args) as peer,
        TLSSocket.connect(("127.0.0.1", port_of(peer)), client_config(pki), "localhost") as tls,
    ):
        tls.sendall(b"before renegotiation\n")
        wait_for_output(peer, "before renegotiation")
        command(peer, b"R\n")
        wait_for_notice(tls)
        (done,) = tls.handshake_notices
        assert isinstance(done, RenegotiationCompleted) and done.initiator == "server"
        assert done.session_offered
        command(peer, b"from the server after\n")
        tls.sock.settimeout(10)
        assert tls.recv(100) == b"from the server after\n"
        tls.sendall(b"from the client after\n")
        out = wait_for_output(peer, "from the client after")
    reneg = after(out, "SSL_accept:SSLv3/TLS write hello request")
    assert "SSL_accept:SSLv3/TLS read client hello" in reneg, out
    if args[0] == "-no_resumption_on_reneg":  # a full handshake, asking for the certificate
        assert not done.info.resumed
        assert "write certificate request" in reneg and "read certificate verify" in reneg, out
    else:  # OpenSSL resumes the offered session, and asks no certificate again (CLIENT_ONCE)
        assert done.info.resumed and done.info.resumed_by == "ticket"


@pytest.mark.parametrize("allowed", [True, False], ids=["client_renegotiation", "default"])
def test_client_initiated_renegotiation_with_s_server(
    pki: Pki, tmp_path: Path, allowed: bool
) -> None:
    args = ("-client_renegotiation",) if allowed else ()
    with (
        s_server(pki, tmp_path, *args) as peer,
        TLSSocket.connect(("127.0.0.1", port_of(peer)), client_config(pki), "localhost") as tls,
    ):
        tls.sendall(b"one\n")
        info = tls.renegotiate(10)
        notice = tls.handshake_notices[-1]
        tls.sendall(b"two\n")
        command(peer, b"three\n")
        tls.sock.settimeout(10)
        assert tls.recv(100) == b"three\n"
        out = wait_for_output(peer, "two\n")
    assert "one\n" in out
    if allowed:
        assert isinstance(notice, RenegotiationCompleted) and notice.initiator == "client"
        assert info is notice.info and info.resumed
        assert out.count("SSL_accept:SSLv3/TLS read client hello") == 2, out
    else:
        assert isinstance(notice, RenegotiationDeclined)
        assert "SSL3 alert write:warning:no renegotiation" in out, out


# -- the blocking front end -------------------------------------------------------------------
def test_request_client_certificate_times_out_on_a_silent_client(pki: Pki) -> None:
    """A client that does not answer the HelloRequest (it reads nothing meanwhile): the server's
    wait is bounded; the application still answers, under the old keys."""
    outcome: list[str] = []

    def handler(tls: TLSSocket) -> None:
        tls.recv(100)
        try:
            tls.request_client_certificate(timeout=0.5)
        except HandshakeTimeout as e:
            outcome.append(str(e))
        tls.sendall(b"answered anyway")

    config = ServerConfig(certificates=(pki.ecdsa,), client_cafile=pki.ca_file,
                          max_version=ProtocolVersion.TLS1_2)  # fmt: skip
    with serving(config, handler) as server:
        tls = TLSSocket.connect(server.address, client_config(pki), "localhost")
        with tls:
            tls.sendall(b"GET /secure")
            # Not reading (the HelloRequest waits in the socket) until the server gave up.
            wait_until(lambda: outcome, "request_client_certificate did not time out")
            tls.sock.settimeout(10)
            assert tls.recv(100) == b"answered anyway"
    assert outcome and "no answer from the peer" in outcome[0], outcome

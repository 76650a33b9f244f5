"""``TLSSocket`` where ``ssl.SSLSocket`` fits, checked against CPython's ``ssl`` (a real OpenSSL
peer in a thread), ``curl`` and ``openssl s_client``:

* what it tells (``version()``, ``cipher()``, ``selected_alpn_protocol()``, ``getpeercert()``,
  ``session_reused``) equals what the ``ssl`` peer says of the same connection, and
  ``getpeercert()`` is the dict ``ssl`` makes of the same certificate;
* the socket surface: ``recv_into``, ``send`` counts, ``makefile``, timeouts (TimeoutError),
  non-blocking reads, ``shutdown(SHUT_WR)`` (close_notify, then a half-close), ``unwrap()`` back
  to plaintext, a bare end of stream told apart from close_notify;
* the standard library on top: ``http.server`` serving HTTPS through ``TLSContext.wrap_socket``
  answers ``curl``, ``openssl s_client``, ``http.client`` and ``urllib``; ``socketserver`` with
  a CPython ``ssl`` client that resumes.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import socket
import socketserver
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from peers import Peer, openssl_s_client, run

from conftest import Pki, free_port, require_program
from tessera import ClientConfig, ProtocolVersion, ServerConfig
from tessera.io.blocking import TLSSocket
from tessera.io.stdlib import TLSContext, TLSListener, wrap_socket
from waiting import wait_until

pytestmark = pytest.mark.interop
HOST = "127.0.0.1"
VERSIONS = {"1.2": ProtocolVersion.TLS1_2, "1.3": ProtocolVersion.TLS1_3}


def client_config(pki: Pki, version: str | None = None, **kw: Any) -> ClientConfig:
    if version is not None:
        kw["min_version"] = kw["max_version"] = VERSIONS[version]
    return ClientConfig(cafile=pki.ca_file, **kw)


def server_config(pki: Pki, **kw: Any) -> ServerConfig:
    return ServerConfig(certificates=(pki.ecdsa,), **kw)


@contextlib.contextmanager
def ssl_server(
    pki: Pki, serve: Callable[[ssl.SSLSocket], Any], version: str = "1.3", connections: int = 1,
    alpn: list[str] | None = None,
) -> Iterator[tuple[int, list[Any]]]:  # fmt: skip
    """A CPython ssl server in a thread: ``serve(conn)`` for each of ``connections``
    connections; yields (port, what each serve() returned)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.ecdsa_cert, pki.ecdsa_key)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion[f"TLSv{version.replace('.', '_')}"]
    if alpn:
        ctx.set_alpn_protocols(alpn)
    listener = socket.create_server((HOST, 0))
    listener.settimeout(10)
    results: list[Any] = []
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            for _ in range(connections):
                raw, _ = listener.accept()
                raw.settimeout(10)
                with ctx.wrap_socket(raw, server_side=True) as conn:
                    results.append(serve(conn))
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], results
        thread.join(15)
        assert not thread.is_alive(), "the ssl server thread did not finish"
        assert not errors, errors
    finally:
        listener.close()


def connect(port: int, config: ClientConfig, **kw: Any) -> TLSSocket:
    raw = socket.create_connection((HOST, port), timeout=10)
    return wrap_socket(raw, config, server_hostname="localhost", **kw)  # type: ignore[no-any-return]


def echo_once(conn: ssl.SSLSocket) -> tuple[Any, ...]:
    data = conn.recv(1024)
    conn.sendall(data)
    conn.recv(1)  # until our close
    return conn.version(), conn.cipher(), conn.selected_alpn_protocol(), conn.session_reused


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_what_it_tells_matches_the_ssl_peer(pki: Pki, version: str) -> None:
    with ssl_server(pki, echo_once, version, connections=2, alpn=["h2", "http/1.1"]) as (
        port,
        seen,
    ):
        config = client_config(pki, version, alpn_protocols=("http/1.1",))
        with connect(port, config) as tls:
            assert tls.send(b"hello") == 5
            assert tls.recv(5) == b"hello"
            mine = (tls.version(), tls.cipher(), tls.selected_alpn_protocol(), tls.session_reused)
            session = tls.session
            assert tls.getpeercert() == ssl._ssl._test_decode_cert(str(pki.ecdsa_cert))  # type: ignore[attr-defined]
            assert tls.getpeercert(binary_form=True) == ssl.PEM_cert_to_DER_cert(
                pki.ecdsa_cert.read_text().split("-----END CERTIFICATE-----")[0]
                + "-----END CERTIFICATE-----\n"
            )
            assert tls.getpeername()[1] == port
            assert tls.getsockname()[0] == HOST
            assert tls.fileno() == tls.sock.fileno()
            assert tls.recv_into(bytearray(0)) == 0  # as ssl: nothing asked, nothing read
        with connect(port, config, session=session) as again:
            again.sendall(b"x")
            assert again.recv(1) == b"x"
            assert again.session_reused
    assert seen[0] == mine
    assert seen[1][3] is True  # the ssl server resumed our session too


def test_getpeercert_without_verification_is_empty(pki: Pki) -> None:
    with ssl_server(pki, echo_once) as (port, _), connect(port, ClientConfig(verify=False)) as tls:
        tls.sendall(b"a")
        tls.recv(1)
        assert tls.getpeercert() == {}
        assert tls.getpeercert(True)


def test_recv_into_makefile_and_timeouts(pki: Pki) -> None:
    def serve(conn: ssl.SSLSocket) -> bytes:
        f = conn.makefile("rwb")
        line = f.readline()
        f.write(line.upper() + b"second line\n")
        f.flush()
        got = conn.recv(100)  # after our timeout test
        conn.sendall(b"late")
        conn.recv(1)
        return got

    with ssl_server(pki, serve) as (port, seen), connect(port, client_config(pki)) as tls:
        f = tls.makefile("rwb")
        f.write(b"first line\n")
        f.flush()
        assert f.readline() == b"FIRST LINE\n"
        assert f.readline() == b"second line\n"
        f.close()
        tls.settimeout(0.2)
        assert tls.gettimeout() == 0.2
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            tls.recv(10)
        assert time.monotonic() - t0 < 3
        tls.setblocking(False)
        assert not tls.getblocking()
        with pytest.raises(BlockingIOError):
            tls.recv(10)
        tls.setblocking(True)
        tls.sendall(b"go")
        buf = bytearray(16)
        n = tls.recv_into(buf)
        assert buf[:n] == b"late"
    assert seen == [b"go"]


def test_shutdown_write_side_then_read_the_answer(pki: Pki) -> None:
    def serve(conn: ssl.SSLSocket) -> bytes:
        data = b""
        while chunk := conn.recv(100):  # b"" at our close_notify
            data += chunk
        conn.sendall(b"answer after your close_notify")
        return data

    with ssl_server(pki, serve) as (port, seen), connect(port, client_config(pki)) as tls:
        tls.sendall(b"request")
        tls.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := tls.recv(100):
            got += chunk
        assert got == b"answer after your close_notify"
        assert tls.close_notify_received is False  # CPython's close() sends no close_notify
    assert seen == [b"request"]


def test_unwrap_back_to_plaintext(pki: Pki) -> None:
    def serve(conn: ssl.SSLSocket) -> bytes:
        conn.sendall(b"secret")
        plain = conn.unwrap()
        plain.sendall(b"plain text now")
        return plain.recv(100)

    with ssl_server(pki, serve) as (port, seen):
        tls = connect(port, client_config(pki))
        assert tls.recv(6) == b"secret"
        raw = tls.unwrap()
        assert tls.close_notify_received is True
        got = b""
        while len(got) < 14:
            got += raw.recv(100)
        assert got == b"plain text now"
        raw.sendall(b"plain reply")
        raw.close()
    assert seen == [b"plain reply"]


# -- the standard library's servers and clients on top ----------------------------------------------
class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        tls = self.connection
        body = f"hello over {tls.version()} resumed={tls.session_reused}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def https_server(pki: Pki) -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer((HOST, 0), Hello)
    httpd.socket = TLSContext(server_config(pki)).wrap_socket(httpd.socket, server_side=True)
    assert isinstance(httpd.socket, TLSListener)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def test_http_server_answers_curl(https_server: int, pki: Pki) -> None:
    require_program("curl")
    url = f"https://localhost:{https_server}/"
    out = run(["curl", "-sS", "--cacert", str(pki.ca_file), "--resolve",
               f"localhost:{https_server}:{HOST}", url, url]).stdout.decode()  # fmt: skip
    assert "hello over TLSv1.3 resumed=False" in out, out
    assert "hello over TLSv1.3 resumed=True" in out, out  # curl resumed on its second connection


def test_http_server_answers_openssl_s_client(https_server: int, pki: Pki) -> None:
    require_program("openssl")
    out = openssl_s_client(https_server, "-CAfile", str(pki.ca_file), "-servername",
                           "localhost", "-tls1_2", "-ign_eof",
                           input=b"GET / HTTP/1.0\r\n\r\n")  # fmt: skip
    assert "New, TLSv1.2" in out, out
    assert "Verify return code: 0 (ok)" in out, out
    assert "HTTP/1.0 200 OK" in out, out
    assert "hello over TLSv1.2 resumed=False" in out, out


def test_http_client_and_urllib_through_tls_context(https_server: int, pki: Pki) -> None:
    context = TLSContext(client_config(pki))
    conn = http.client.HTTPSConnection("localhost", https_server, context=context, timeout=10)  # type: ignore[arg-type]
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 200
    assert response.read() == b"hello over TLSv1.3 resumed=False\n"
    conn.close()
    with urllib.request.urlopen(
        f"https://localhost:{https_server}/", context=context, timeout=10
    ) as r:  # type: ignore[arg-type]
        assert r.read().startswith(b"hello over TLSv1.3")


def test_socketserver_with_a_resuming_ssl_client(pki: Pki) -> None:
    class Upper(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline()
            self.wfile.write(line.upper())

    server = socketserver.ThreadingTCPServer((HOST, 0), Upper)
    server.socket = wrap_socket(server.socket, server_config(pki), server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        session = None
        for expected_reuse in (False, True):
            with (
                socket.create_connection(server.server_address, timeout=10) as raw,
                ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s,
            ):
                s.sendall(b"shout\n")
                assert s.recv(100) == b"SHOUT\n"
                assert s.session_reused is expected_reuse
                session = s.session
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


# -- a load balancer's health check: a bare TCP connect and close ------------------------------
def _haproxy_checking(log_dir: Path, port: int) -> Peer:
    """HAProxy (TCP mode) checking ``port`` with a bare TCP connect and a clean close
    (``tcp-check connect linger``). Its default check resets the connection before the last
    ACK of the TCP handshake, so that one never reaches ``accept()``; this one does, as the
    checks of most other balancers do."""
    front = free_port()
    conf = log_dir / f"haproxy-{front}.cfg"
    conf.write_text(f"""
global
  maxconn 50
defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend fe
  bind 127.0.0.1:{front}
  default_backend be
backend be
  option tcp-check
  tcp-check connect linger
  server s1 127.0.0.1:{port} check inter 50ms fall 2 rise 1
""")
    haproxy = require_program("haproxy")
    return Peer([haproxy, "-db", "-f", str(conf)], port=front, log_dir=log_dir, name="haproxy")


@pytest.mark.parametrize("server_class", [http.server.HTTPServer, http.server.ThreadingHTTPServer])
def test_http_server_survives_bare_tcp_probes(
    pki: Pki, tmp_path: Path, server_class: type[http.server.HTTPServer]
) -> None:
    """A probe that connects and closes (HAProxy's default check, then plain ones) is an end of
    file for the handler, as with ``ssl``: no error reaches ``socketserver`` (whose
    ``handle_error`` would print a traceback), each is counted, and the server still serves
    HTTPS, through HAProxy too."""
    errors: list[object] = []

    class Server(server_class):  # type: ignore[misc, valid-type]
        def handle_error(self, request: object, client_address: object) -> None:
            errors.append(client_address)

    httpd = Server((HOST, 0), Hello)
    listener = TLSContext(server_config(pki)).wrap_socket(httpd.socket, server_side=True)
    httpd.socket = listener
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    port = httpd.server_address[1]
    try:
        for _ in range(10):
            socket.create_connection((HOST, port), timeout=5).close()
        with _haproxy_checking(tmp_path, port) as haproxy:
            wait_until(
                lambda: listener.probes >= 20,
                "20 health-check probes from HAProxy",
                details=lambda: f"{listener.probes} probes\n{haproxy.output()}",
            )
            ctx = ssl.create_default_context(cafile=str(pki.ca_file))
            for target in (port, haproxy.port):
                with urllib.request.urlopen(
                    f"https://localhost:{target}/", context=ctx, timeout=10
                ) as r:
                    assert r.read().startswith(b"hello over TLSv1.3")
            assert "DOWN" not in haproxy.output(), haproxy.output()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
    assert thread.is_alive() is False
    assert errors == []

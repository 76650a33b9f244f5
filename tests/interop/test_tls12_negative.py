"""What a TLS 1.2 tessera refuses, and how: real peers that offer old versions, no common suite
or group, plaintext HTTP, or nothing at all (a stalled handshake)."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import (
    HANDSHAKE_DONE,
    HTTP_GET,
    Peer,
    openssl_s_client,
    openssl_s_client_steps,
    openssl_s_server,
    run,
    ssl_alert_numbers,
    tessera_serve,
    wait_for_output,
)

from conftest import Pki, free_port, require_program
from tessera import (
    AlertDescription,
    AlertReceived,
    ClientConfig,
    ProtocolVersion,
    ServerConfig,
    TLSServer,
    TLSSocket,
)
from tessera.crypto.suites import parse_cipher_list
from waiting import wait_until

pytestmark = pytest.mark.interop

TLS12 = ProtocolVersion.TLS1_2


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    require_program("openssl")
    args = [
        *("--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)),
        *("--cert", str(pki.rsa_cert), "--key", str(pki.rsa_key)),
    ]
    logs = tmp_path_factory.mktemp("serve")
    with tessera_serve(free_port(), logs, "--tls1_2", "--www", *args) as peer:
        yield peer


def s_client(peer: Peer, *args: str) -> str:
    assert peer.port is not None
    return openssl_s_client(peer.port, *args)


# -- versions -------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
def test_old_versions_get_protocol_version(server: Peer, flag: str) -> None:
    """OpenSSL 3 offers TLS 1.0/1.1 only at security level 0."""
    before = server.output().count("handshake failed: protocol_version (70)")
    out = s_client(server, flag, "-cipher", "DEFAULT@SECLEVEL=0")
    assert ssl_alert_numbers(out) == [70], out
    assert "alert protocol version" in out, out
    assert "Cipher is (NONE)" in out, out
    # The server says so too, with the client's address.
    log = wait_for_output(server, "handshake failed: protocol_version (70)", before + 1)
    assert re.search(r"127\.0\.0\.1:\d+: handshake failed: protocol_version \(70\)", log), log


def test_tls13_only_client_gets_protocol_version(server: Peer) -> None:
    """The server runs with --tls1_2: a client offering only TLS 1.3 has no version in common."""
    out = s_client(server, "-tls1_3")
    assert ssl_alert_numbers(out) == [70], out


def test_tessera_client_against_tls13_only_server(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require_program("openssl")
    logs = tmp_path_factory.mktemp("s_server13")
    with openssl_s_server(free_port(), logs, pki.ecdsa_cert, pki.ecdsa_key, "-tls1_3") as peer:
        assert peer.port is not None
        config = ClientConfig(cafile=pki.ca_file, max_version=TLS12)
        with pytest.raises(AlertReceived) as e:
            TLSSocket.connect(("127.0.0.1", peer.port), config, "localhost", timeout=10)
        assert e.value.alert == AlertDescription.protocol_version
        wait_for_output(peer, "unsupported protocol")


# -- nothing in common ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["-cipher", "DHE-RSA-AES128-GCM-SHA256"],  # a key exchange tessera does not do
        ["-cipher", "ECDHE-RSA-AES128-SHA:AES128-SHA"],  # legacy suites, not enabled
        ["-groups", "P-521"],  # ECDHE needs a group in common (and ECDSA the cert's curve)
    ],
    ids=["dhe", "legacy", "no-group"],
)
def test_nothing_in_common_is_handshake_failure(server: Peer, args: list[str]) -> None:
    out = s_client(server, "-tls1_2", *args)
    assert ssl_alert_numbers(out) == [40], out
    assert "alert handshake failure" in out, out


def test_sha1_only_signature_algorithms_is_handshake_failure(server: Peer) -> None:
    """A client whose signature_algorithms lists only SHA-1 schemes has no scheme in common with
    tessera: its SHA-1 schemes are meant "only for TLS 1.2 peers that send no
    signature_algorithms at all" (crypto/signatures.py), and RFC 9155 deprecates them. The
    server must refuse, not sign its ServerKeyExchange with SHA-1."""
    out = s_client(
        server, "-tls1_2", "-sigalgs", "RSA+SHA1:ECDSA+SHA1", "-cipher", "DEFAULT@SECLEVEL=0"
    )
    assert "Peer signing digest: SHA1" not in out, out
    assert ssl_alert_numbers(out) == [40], out


def test_tessera_client_no_common_suite(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> None:
    require_program("openssl")
    logs = tmp_path_factory.mktemp("s_server-rsa-only")
    extra = ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]
    with openssl_s_server(free_port(), logs, pki.rsa_cert, pki.rsa_key, *extra) as peer:
        assert peer.port is not None
        suites = parse_cipher_list("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384")
        config = ClientConfig(cafile=pki.ca_file, max_version=TLS12, cipher_suites=suites)
        with pytest.raises(AlertReceived) as e:
            TLSSocket.connect(("127.0.0.1", peer.port), config, "localhost", timeout=10)
        assert e.value.alert == AlertDescription.handshake_failure
        wait_for_output(peer, "no shared cipher")


# -- not TLS at all -------------------------------------------------------------------------


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    start = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - start


def test_plaintext_http_gets_an_alert(server: Peer) -> None:
    assert server.port is not None
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(HTTP_GET)
        data, elapsed = read_until_closed(sock, 5)
    # at once, not after its 10 s handshake timeout (8 s: room for a loaded box)
    assert elapsed < 8, "the server did not answer plaintext promptly"
    # One record: alert (21), TLS 1.x, length 2, fatal (2), unexpected_message (10).
    assert len(data) == 7, data.hex()
    assert data[0] == 21 and data[1] == 3 and data[3:5] == b"\x00\x02", data.hex()
    assert data[5] == 2, data.hex()
    assert data[6] == AlertDescription.unexpected_message, data.hex()


def test_curl_plaintext_http_does_not_hang(server: Peer) -> None:
    """curl speaking http:// to the TLS port gets the alert bytes back and gives up at once."""
    require_program("curl")
    start = time.monotonic()
    proc = run(["curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{server.port}/"], timeout=20)
    elapsed = time.monotonic() - start
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 1, out
    assert "Received HTTP/0.9 when not allowed" in out, out
    assert elapsed < 8, out  # at once, not after the server's 10 s handshake timeout


# -- stalled peers --------------------------------------------------------------------------


def half_client_hello() -> bytes:
    """The first half of a real ClientHello, made by CPython's ssl (OpenSSL) in memory."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    assert hello[0] == 22 and len(hello) > 100
    return hello[: len(hello) // 2]


HANDSHAKE_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def short_timeout_server(pki: Pki) -> Iterator[TLSServer]:
    """The Python API server with a short handshake timeout (the CLI has no option for it)."""
    config = ServerConfig(certificates=(pki.ecdsa, pki.rsa), max_version=TLS12)

    def echo(tls: TLSSocket) -> None:
        while data := tls.recv(65536):
            tls.sendall(data)

    srv = TLSServer(("127.0.0.1", 0), config, echo, handshake_timeout=HANDSHAKE_TIMEOUT)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    thread.join(5)
    assert not thread.is_alive()


@pytest.mark.parametrize("send", [b"", "half-hello"], ids=["silent", "half-client-hello"])
def test_stalled_handshake_is_cut_off(
    short_timeout_server: TLSServer, pki: Pki, send: bytes | str
) -> None:
    payload = half_client_hello() if send == "half-hello" else b""
    failures = short_timeout_server.handshake_failures
    port = short_timeout_server.address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        # While this connection stalls, a real client is served (one thread per connection).
        out = openssl_s_client(port, "-tls1_2", "-CAfile", str(pki.ca_file))
        assert "Protocol  : TLSv1.2" in out and "Verify return code: 0 (ok)" in out, out
        data, elapsed = read_until_closed(sock, 10)
    assert data == b"", data.hex()  # closed without a word: the peer never spoke TLS fully
    assert elapsed < HANDSHAKE_TIMEOUT + 3, elapsed
    wait_until(lambda: short_timeout_server.handshake_failures > failures,
               "the stalled handshake was not counted")  # fmt: skip
    assert short_timeout_server.handshake_failures == failures + 1


def test_stalled_handshake_on_the_cli_server(server: Peer, pki: Pki) -> None:
    """Without --handshake-timeout, the serving engine's default (10 s) applies. Two stalled connections
    must be closed by it, and must not block a real client. The one that sent half a
    ClientHello is reported as a failed handshake; the one that sent nothing (a port probe,
    as far as the server can tell) is not."""
    assert server.port is not None
    timeouts_before = server.output().count("handshake failed: no handshake within")
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    half = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        half.sendall(half_client_hello())
        out = s_client(server, "-tls1_2", "-CAfile", str(pki.ca_file))
        assert "Protocol  : TLSv1.2" in out and "Verify return code: 0 (ok)" in out, out
        for sock in (silent, half):
            data, _ = read_until_closed(sock, 15)
            assert data == b"", data.hex()
        log = wait_for_output(server, "handshake failed: no handshake within", timeouts_before + 1)
        time.sleep(0.2)  # what is tested: no second line for the same connection comes after
        assert server.output().count("handshake failed: no handshake") == timeouts_before + 1, log
    except TimeoutError:
        pytest.fail("tessera serve kept a stalled handshake open for more than 15 s")
    finally:
        silent.close()
        half.close()


# -- renegotiation ----------------------------------------------------------------------------


def test_client_renegotiation_is_declined(pki: Pki, tmp_path: Path) -> None:
    """tessera offers secure renegotiation's renegotiation_info (RFC 5746) but does not
    renegotiate: an interactive s_client ``R`` (a new ClientHello on the open connection) gets
    a warning no_renegotiation alert (100, RFC 5246 §7.2.2). OpenSSL's client then gives up
    with handshake_failure; data sent before went through."""
    port = free_port()
    certs = ["--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)]
    with tessera_serve(port, tmp_path, "--tls1_2", "--echo", *certs):
        out = openssl_s_client_steps(
            port, "-tls1_2", "-CAfile", str(pki.ca_file), "-state",
            steps=[(HANDSHAKE_DONE, b"before renegotiation\n"),
                   ("before renegotiation\n", b"R\n")],
            until="alert read:warning:no renegotiation",
        )  # fmt: skip
    assert "Secure Renegotiation IS supported" in out, out
    head, _, tail = out.partition("RENEGOTIATING")
    # s_client does not print what it sends: the one line is tessera's echo.
    assert head.count("before renegotiation") == 1, out
    assert "SSL_connect:SSLv3/TLS write client hello" in tail, out
    assert "SSL3 alert read:warning:no renegotiation" in tail, out

"""CPython's ``ssl`` module (OpenSSL underneath) against tessera, both ways.

* ``ssl`` client -> ``tessera serve --tls1_2`` (echo mode), in this process.
* tessera client -> an ``ssl`` server running in a thread of this process.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from peers import Peer, tessera_serve, wait_for_output

from conftest import Pki, free_port
from tessera import ClientConfig, ProtocolVersion, TLSSocket
from tessera.crypto.suites import DEFAULT_TLS12_SUITES, Auth, CipherSuite
from tessera.enums import NamedGroup
from waiting import wait_until

pytestmark = pytest.mark.interop

TLS12 = ProtocolVersion.TLS1_2
DEFAULT_NAMES = [s.openssl_name for s in DEFAULT_TLS12_SUITES]


# -- CPython ssl client -> tessera serve ------------------------------------------------------


@pytest.fixture(scope="module")
def echo_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    port = free_port()
    args = [
        *("--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)),
        *("--cert", str(pki.rsa_cert), "--key", str(pki.rsa_key)),
    ]
    with tessera_serve(port, tmp_path_factory.mktemp("serve"), "--tls1_2", *args) as peer:
        yield peer


def client_context(pki: Pki, ciphers: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def ssl_echo(port: int, ctx: ssl.SSLContext, payload: bytes) -> tuple[str | None, str, bytes]:
    """Connect, send ``payload``, read it back; (version, cipher name, echoed bytes)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as s,
    ):
        s.sendall(payload)
        echoed = b""
        while len(echoed) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            echoed += chunk
        cipher = s.cipher()
        assert cipher is not None
        return s.version(), cipher[0], echoed


@pytest.mark.parametrize("suite", DEFAULT_NAMES)
def test_ssl_client_to_tessera_server(echo_server: Peer, pki: Pki, suite: str) -> None:
    assert echo_server.port is not None
    line = f"New, TLSv1.2, Cipher is {suite}"
    before = echo_server.output().count(line)
    payload = b"hello tessera from CPython ssl\n" * 1000  # several records
    version, cipher, echoed = ssl_echo(echo_server.port, client_context(pki, suite), payload)
    assert version == "TLSv1.2"
    assert cipher == suite
    assert echoed == payload
    wait_for_output(echo_server, line, before + 1)  # (its line once the connection ended)


def test_ssl_client_default_offer(echo_server: Peer, pki: Pki) -> None:
    """CPython's own default cipher list, and its hostname check against tessera's chain."""
    assert echo_server.port is not None
    version, cipher, echoed = ssl_echo(echo_server.port, client_context(pki), b"ping")
    assert version == "TLSv1.2"
    assert cipher in DEFAULT_NAMES
    assert echoed == b"ping"


def test_ssl_client_rejects_unknown_issuer(echo_server: Peer) -> None:
    """Without the test CA, CPython's verification must fail (tessera's chain ends in the test
    CA, which the system store does not hold)."""
    assert echo_server.port is not None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(
        ssl.SSLCertVerificationError, match="self-signed certificate in certificate chain"
    ):
        ssl_echo(echo_server.port, ctx, b"ping")


# -- tessera client -> CPython ssl server (threaded) ------------------------------------------


@dataclass
class SslServer:
    """A CPython ``ssl`` echo server in a thread; records what each connection negotiated."""

    sock: socket.socket
    ctx: ssl.SSLContext
    seen: list[tuple[str | None, str, bytes]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                raw, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            raw.settimeout(10)
            try:
                with self.ctx.wrap_socket(raw, server_side=True) as s:
                    data = s.recv(65536)
                    s.sendall(data)
                    cipher = s.cipher()
                    assert cipher is not None
                    self.seen.append((s.version(), cipher[0], data))
                    s.recv(1)  # wait for the client's close_notify (or EOF)
            except (OSError, ssl.SSLError) as e:
                self.errors.append(e)
            finally:
                raw.close()


@pytest.fixture(scope="module")
def ssl_server(pki: Pki) -> Iterator[SslServer]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.ecdsa_cert, pki.ecdsa_key)
    ctx.load_cert_chain(pki.rsa_cert, pki.rsa_key)  # a second key type: both are kept
    # Follow the client's preferences (suite and group), so the parameters below decide.
    ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    server = SslServer(sock, ctx)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield server
    server.stop.set()
    thread.join(5)
    sock.close()
    assert not thread.is_alive()


GROUPS = [NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1]


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
@pytest.mark.parametrize("suite", DEFAULT_TLS12_SUITES, ids=str)
def test_tessera_client_to_ssl_server(
    ssl_server: SslServer, pki: Pki, suite: CipherSuite, group: NamedGroup
) -> None:
    p256 = NamedGroup.secp256r1
    # ECDSA suites: the certificate's curve must be offered too (RFC 8422 §5.3).
    groups = (group,) if suite.auth is Auth.RSA or group == p256 else (group, p256)
    config = ClientConfig(
        cafile=pki.ca_file, max_version=TLS12, cipher_suites=(suite,), groups=groups
    )
    before = len(ssl_server.seen)
    message = f"tessera {suite} {group.name}".encode()
    with TLSSocket.connect(("127.0.0.1", ssl_server.port), config, "localhost", timeout=10) as tls:
        tls.sendall(message)
        assert tls.recv_exactly(len(message)) == message
        info = tls.info
    assert info.version == TLS12
    assert info.cipher_suite == suite
    assert info.group == group
    # The ssl server's view, recorded after it echoed.
    wait_until(
        lambda: len(ssl_server.seen) > before or ssl_server.errors, "the ssl server's record"
    )
    assert not ssl_server.errors, ssl_server.errors
    assert ssl_server.seen[-1] == ("TLSv1.2", suite.openssl_name, message)

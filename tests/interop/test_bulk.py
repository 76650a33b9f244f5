"""Large writes against CPython ``ssl`` (OpenSSL): one ``sendall`` of megabytes leaves tessera
as hundreds of records in vectored writes (``sendmsg``), resumed mid-record whenever the kernel
takes only part; the peer must receive every byte, in order. Both ways, TLS 1.2 and 1.3."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import threading

import pytest

from conftest import Pki
from tessera import ClientConfig, ProtocolVersion, ServerConfig, TLSServer, TLSSocket

pytestmark = pytest.mark.interop

SIZE = 3 * (1 << 20) + 12345  # not a whole number of records
VERSIONS = {
    "tls12": (ProtocolVersion.TLS1_2, ssl.TLSVersion.TLSv1_2),
    "tls13": (ProtocolVersion.TLS1_3, ssl.TLSVersion.TLSv1_3),
}


def read_all(s: ssl.SSLSocket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(1 << 18)
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


@pytest.mark.parametrize("version", list(VERSIONS))
def test_tessera_client_sends_megabytes(pki: Pki, version: str) -> None:
    """The CPython server reads SIZE bytes and answers with their SHA-256."""
    ours, theirs = VERSIONS[version]
    payload = os.urandom(SIZE)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = theirs
    ctx.load_cert_chain(pki.ecdsa_cert, pki.ecdsa_key)
    listener = socket.create_server(("127.0.0.1", 0))
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            raw, _ = listener.accept()
            raw.settimeout(20)
            with ctx.wrap_socket(raw, server_side=True) as s:
                got = read_all(s, SIZE)
                s.sendall(hashlib.sha256(got).digest() + len(got).to_bytes(8, "big"))
        except (OSError, ssl.SSLError) as e:
            errors.append(e)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    config = ClientConfig(cafile=pki.ca_file, min_version=ours, max_version=ours)
    try:
        with TLSSocket.connect(listener.getsockname(), config, "localhost", timeout=20) as tls:
            tls.sock.settimeout(20)
            tls.sendall(payload)
            answer = tls.recv_exactly(40)
    finally:
        thread.join(30)
        listener.close()
    assert not errors, errors
    assert int.from_bytes(answer[32:], "big") == SIZE
    assert answer[:32] == hashlib.sha256(payload).digest()


@pytest.mark.parametrize("version", list(VERSIONS))
def test_tessera_server_sends_megabytes(pki: Pki, version: str) -> None:
    """A TLSServer handler sends SIZE bytes in one sendall; the CPython client reads them."""
    ours, theirs = VERSIONS[version]
    payload = os.urandom(SIZE)

    def handler(tls: TLSSocket) -> None:
        tls.sendall(payload)

    config = ServerConfig(certificates=(pki.ecdsa,), min_version=ours, max_version=ours)
    server = TLSServer(("127.0.0.1", 0), config, handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ctx = ssl.create_default_context(cafile=str(pki.ca_file))
        ctx.minimum_version = ctx.maximum_version = theirs
        with (
            socket.create_connection(server.address, timeout=20) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as s,
        ):
            got = read_all(s, SIZE)
            assert s.version() == ("TLSv1.3" if version == "tls13" else "TLSv1.2")
    finally:
        server.shutdown()
        thread.join(5)
    assert len(got) == SIZE
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()

"""Re-create the golden OpenSSL captures in this directory (run by hand; never by the tests).

    python tests/vectors/capture_openssl.py OUTDIR

* ``openssl_s_client_hello.bin``: the first record ``openssl s_client -servername localhost``
  sends (TLS 1.3-capable ClientHello), recorded by a plain socket server on 127.0.0.1.
* ``openssl_s_client_hello_tls12_alpn.bin``: the same with ``-tls1_2 -alpn h2,http/1.1``.
* ``openssl_s_server_tls12_client_hello.bin`` / ``openssl_s_server_tls12_flight.bin``: a tessera
  TLS 1.2 ClientHello and the first flight of ``openssl s_server -tls1_2 -verify 1`` answering it
  (ServerHello, Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone).

The certificate in the server flight was generated for the capture (tessera.certs); its key was
not kept, but the ServerKeyExchange signature verifies with the certificate's public key.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tessera import ClientConfig, ClientConnection, ProtocolVersion
from tessera.certs import generate_ca, issue_leaf


def _first_record(conn: socket.socket) -> bytes:
    conn.settimeout(5)
    buf = b""
    while len(buf) < 5 or len(buf) < 5 + int.from_bytes(buf[3:5], "big"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf[: 5 + int.from_bytes(buf[3:5], "big")]


def capture_client_hello(out: Path, name: str, args: list[str]) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        proc = subprocess.Popen(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            conn, _ = srv.accept()
            with conn:
                (out / name).write_bytes(_first_record(conn))
        finally:
            proc.kill()
            proc.wait()


def capture_server_flight(out: Path) -> None:
    ca = generate_ca("ec")
    leaf = issue_leaf(ca, ("localhost",), kind="ec")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "ca.pem").write_bytes(ca.to_pem()[0])
        chain, key = leaf.to_pem()
        (tmp / "leaf.pem").write_bytes(chain)
        (tmp / "leaf.key").write_bytes(key)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen(
            ["openssl", "s_server", "-tls1_2", "-accept", str(port), "-cert", str(tmp / "leaf.pem"),
             "-key", str(tmp / "leaf.key"), "-verify", "1", "-CAfile", str(tmp / "ca.pem"),
             "-naccept", "1", "-quiet"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            for _ in range(100):
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                    break
                except OSError:
                    time.sleep(0.05)
            else:
                raise RuntimeError("openssl s_server did not start")
            with sock:
                config = ClientConfig(verify=False, max_version=ProtocolVersion.TLS1_2)
                conn = ClientConnection(config, "localhost")
                conn.start_handshake()
                hello = conn.data_to_send()
                sock.sendall(hello)
                sock.settimeout(5)
                buf = b""
                while b"\x0e\x00\x00\x00" not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
        finally:
            proc.kill()
            proc.wait()
    (out / "openssl_s_server_tls12_client_hello.bin").write_bytes(hello)
    (out / "openssl_s_server_tls12_flight.bin").write_bytes(buf)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    capture_client_hello(out, "openssl_s_client_hello.bin", ["-servername", "localhost"])
    capture_client_hello(
        out,
        "openssl_s_client_hello_tls12_alpn.bin",
        ["-tls1_2", "-servername", "localhost", "-alpn", "h2,http/1.1"],
    )
    capture_server_flight(out)


if __name__ == "__main__":
    main()

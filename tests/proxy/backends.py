"""Plaintext backends for the proxy tests, run as programs: ``python backends.py KIND PORT``.

``http``: the standard library's ``http.server`` (threaded, HTTP/1.1 keep-alive) with
``GET /bytes/N`` (N bytes of a fixed pattern), ``POST /echo`` (the body back) and
``POST /sha256`` (the body's length and SHA-256), ``GET /`` (``hello``), ``GET /split``
(``hello``, sent 5 ms after its head: two small writes).
``echo``: a TCP echo (a thread per connection).
``slow``: waits 3 s before it reads a request (an 8-byte length and that many bytes), then
answers the count it read; meanwhile the proxy must hold back the client.
``pp2 FILE``: reads a PROXY v2 header, appends it as one JSON line to FILE (parsed here,
independently of tessera's encoder), then echoes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import socket
import socketserver
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATTERN = bytes(range(256)) * 4096  # 1 MiB


def pattern(n: int) -> bytes:
    out = PATTERN * (n // len(PATTERN)) + PATTERN[: n % len(PATTERN)]
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK wait

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, body: bytes, ctype: str = "application/octet-stream") -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/split":  # the head, then 5 ms later the body: two small writes
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            time.sleep(0.005)
            self.wfile.write(b"hello\n")
        elif self.path.startswith("/bytes/"):
            self._send(pattern(int(self.path.split("/")[2])))
        else:
            self._send(b"hello\n", "text/plain")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/echo":
            self._send(body)
        else:
            digest = f"{len(body)} {hashlib.sha256(body).hexdigest()}\n".encode()
            self._send(digest, "text/plain")


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        while data := sock.recv(65536):
            sock.sendall(data)


class Slow(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        time.sleep(3)  # what it is for: a backend that reads nothing for 3 s (back-pressure)
        try:
            (n,) = struct.unpack(">Q", read_exactly(sock, 8))
        except ConnectionError:
            return  # a port probe
        got = 0
        while got < n and (chunk := sock.recv(1 << 20)):
            got += len(chunk)
        sock.sendall(f"{got}\n".encode())


def read_exactly(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed inside the PROXY header")
        out += chunk
    return out


def parse_tlvs(data: bytes) -> list[tuple[int, bytes]]:
    out, i = [], 0
    while i < len(data):
        kind, length = struct.unpack_from(">BH", data, i)
        out.append((kind, data[i + 3 : i + 3 + length]))
        i += 3 + length
    return out


def parse_proxy_v2(sock: socket.socket) -> dict[str, object]:
    head = read_exactly(sock, 16)
    assert head[:12] == b"\r\n\r\n\x00\r\nQUIT\n", head
    ver_cmd, fam, length = head[12], head[13], struct.unpack(">H", head[14:16])[0]
    body = read_exactly(sock, length)
    out: dict[str, object] = {"version_command": ver_cmd, "family": fam}
    if fam == 0x11:
        src, dst = ipaddress.IPv4Address(body[0:4]), ipaddress.IPv4Address(body[4:8])
        sport, dport = struct.unpack(">HH", body[8:12])
        rest = body[12:]
    else:
        src, dst = ipaddress.IPv6Address(body[0:16]), ipaddress.IPv6Address(body[16:32])
        sport, dport = struct.unpack(">HH", body[32:36])
        rest = body[36:]
    out.update(source=[str(src), sport], destination=[str(dst), dport])
    for kind, value in parse_tlvs(rest):
        if kind == 0x01:
            out["alpn"] = value.decode()
        elif kind == 0x02:
            out["authority"] = value.decode()
        elif kind == 0x20:
            out["ssl_client"], out["ssl_verify"] = struct.unpack(">BI", value[:5])
            for sub, sval in parse_tlvs(value[5:]):
                out[{0x21: "ssl_version", 0x23: "ssl_cipher"}.get(sub, f"ssl_{sub:#x}")] = (
                    sval.decode()
                )
        else:
            out[f"tlv_{kind:#x}"] = value.hex()
    return out


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    address = ("127.0.0.1", port)
    if kind == "http":
        ThreadingHTTPServer.daemon_threads = True
        ThreadingHTTPServer(address, Handler).serve_forever()
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    if kind in ("echo", "slow"):
        handler = Echo if kind == "echo" else Slow
        socketserver.ThreadingTCPServer(address, handler).serve_forever()
    record_file = sys.argv[3]

    class ProxyEcho(Echo):
        def handle(self) -> None:
            try:
                header = parse_proxy_v2(self.request)
            except (ConnectionError, AssertionError):
                return  # a port probe
            with open(record_file, "a") as f:
                f.write(json.dumps(header) + "\n")
            super().handle()

    socketserver.ThreadingTCPServer(address, ProxyEcho).serve_forever()


if __name__ == "__main__":
    main()

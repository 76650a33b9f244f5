"""Start ``tessera proxy`` and its backends, and talk through it with real clients."""

from __future__ import annotations

import hashlib
import shlex
import socket
import ssl
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from peers import TESSERA, Peer, run
from prometheus_client.parser import text_string_to_metric_families

from conftest import Pki, free_port, require_program

HERE = Path(__file__).resolve().parent
BACKENDS = HERE / "backends.py"
sys.path.insert(0, str(HERE))

from backends import pattern  # noqa: E402

# A Node.js HTTP server: GET /bytes/N sends N bytes of backends.pattern, POST /echo echoes.
NODE_SERVER = r"""
const http = require('http');
const pattern = Buffer.alloc(1 << 20);
for (let i = 0; i < pattern.length; i++) pattern[i] = i % 256;
http.createServer((req, res) => {
  if (req.method === 'POST') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      res.writeHead(200, {'Content-Length': body.length, 'X-Backend': 'node'});
      res.end(body);
    });
    return;
  }
  const m = /^\/bytes\/(\d+)$/.exec(req.url);
  const n = m ? Number(m[1]) : 6;
  const body = m ? Buffer.concat(Array(Math.ceil(n / pattern.length)).fill(pattern)).subarray(0, n)
                 : Buffer.from('hello\n');
  res.writeHead(200, {'Content-Length': body.length, 'X-Backend': 'node'});
  res.end(body);
}).listen(Number(process.argv[1]), '127.0.0.1');
"""


def backend(kind: str, log_dir: Path, *args: str) -> Peer:
    port = free_port()
    argv = [sys.executable, str(BACKENDS), kind, str(port), *args]
    return Peer(argv, port=port, log_dir=log_dir, name=f"backend-{kind}")


def node_backend(log_dir: Path) -> Peer:
    port = free_port()
    node = require_program("node")
    return Peer([node, "-e", NODE_SERVER, str(port)], port=port, log_dir=log_dir,
                name="backend-node")  # fmt: skip


def proxy(pki: Pki, log_dir: Path, backend_port: int, *args: str, port: int | None = None,
          name: str = "proxy", certs: tuple[Path, Path] | None = None,
          shell: str | None = None) -> Peer:  # fmt: skip
    """``tessera proxy`` on a free port in front of ``backend_port`` (the test PKI's ECDSA leaf
    unless ``certs``), with short timeouts; ``shell``: run by ``sh -c "SHELL tessera ..."``
    (``ulimit -n 64 && exec``)."""
    port = port or free_port()
    cert, key = certs or (pki.ecdsa_cert, pki.ecdsa_key)
    short = [
        opt
        for name, value in (("--handshake-timeout", "5"), ("--drain-timeout", "10"))
        if name not in args
        for opt in (name, value)
    ]  # (an option is given once)
    argv = [*TESSERA, "proxy", "--listen", f"127.0.0.1:{port}",
            "--backend", f"127.0.0.1:{backend_port}", "--cert", str(cert), "--key", str(key),
            *short, *args]  # fmt: skip
    if shell is not None:
        argv = ["sh", "-c", f"{shell} {shlex.join(argv)}"]
    return Peer(argv, port=port, log_dir=log_dir, name=name, env={"COLUMNS": "300"})


def port_of(peer: Peer) -> int:
    assert peer.port is not None
    return peer.port


# -- clients ----------------------------------------------------------------------------------
def client_context(pki: Pki, version: str = "1.3") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = v
    return ctx


@dataclass(frozen=True)
class Reply:
    body: bytes
    version: str | None
    session: ssl.SSLSession | None
    session_reused: bool
    peer_cert: bytes | None


def https(port: int, ctx: ssl.SSLContext, method: str, path: str, body: bytes = b"",
          session: ssl.SSLSession | None = None, timeout: float = 30.0) -> Reply:  # fmt: skip
    """One HTTP/1.1 request (Connection: close) over CPython ssl: what came back and what the
    connection negotiated."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    tls = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    head = (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()  # fmt: skip
    tls.sendall(head + body)
    data = b""
    while chunk := tls.recv(1 << 20):
        data += chunk
    reply = (tls.version(), tls.session, tls.session_reused, tls.getpeercert(binary_form=True))
    tls.close()
    header, _, payload = data.partition(b"\r\n\r\n")
    assert header.startswith(b"HTTP/1.1 200"), header[:200]
    return Reply(payload, *reply)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def curl(port: int, pki: Pki, *args: str, timeout: float = 60.0) -> str:
    require_program("curl")
    argv = ["curl", "-sS", "--cacert", str(pki.ca_file), "--resolve",
            f"localhost:{port}:127.0.0.1", *args]  # fmt: skip
    r = run(argv, timeout=timeout)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out
    return out


# -- metrics -----------------------------------------------------------------------------------
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for_metric(port: int, name: str, at_least: float, timeout: float = 15.0,
                    **labels: str) -> Samples:  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if value(samples, name, **labels) >= at_least:
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}{labels} < {at_least}: {value(samples, name, **labels)}")
        time.sleep(0.1)


__all__ = ["pattern"]

"""Helpers for the ``tessera check`` tests: real servers configured on purpose (tessera serve,
openssl s_server, nginx, HAProxy, Node.js, Apache mod_ssl), the check command run as a process,
and its JSON output validated against the schema shipped with the package.

nginx, HAProxy and Apache run from configs written into a temp dir, in the foreground, on free
loopback ports (nginx: one process, no ``user`` directive; Apache: one child, as nobody), and
are always stopped by their fixtures.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from peers import TESSERA, Peer, run

from conftest import Pki, free_port
from tessera.audit import AuditOptions, Endpoint, Mechanism, Report, audit
from tessera.audit.identify import ServerKind
from tessera.audit.mechanisms import MechanismResult
from tessera.audit.report import schema

WIDE = {"COLUMNS": "200"}


def program(name: str) -> str:
    """nginx and haproxy live in /usr/sbin, which a non-root PATH may lack."""
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None
    )
    if path is None:
        pytest.fail(f"{name} is not installed; .ci/run must install it")
    return path


# -- the check command ---------------------------------------------------------------------
def check_cli(*args: str, timeout: float = 90.0,
              env: dict[str, str] | None = None) -> tuple[int, str]:  # fmt: skip
    """``tessera check ARGS`` as a process: (exit code, stdout + stderr)."""
    r = run([*TESSERA, "check", *args], timeout=timeout, env={**WIDE, **(env or {})})
    return r.returncode, r.stdout.decode(errors="replace")


def check_json(*args: str, timeout: float = 90.0) -> tuple[int, dict[str, Any]]:
    """``tessera check ARGS --json``: (exit code, the document), validated against the schema."""
    r = run([*TESSERA, "check", *args, "--json"], timeout=timeout, env=WIDE)
    out = r.stdout.decode(errors="replace")
    start = out.find("{")
    assert start >= 0, f"no JSON in the output (exit {r.returncode}):\n{out}"
    doc = json.loads(out[start:])
    jsonschema.validate(doc, schema())
    assert doc["exit_code"] == r.returncode, out
    return r.returncode, doc


def address(doc: dict[str, Any], label: str, role: str | None = None) -> dict[str, Any]:
    for a in doc["addresses"]:
        if a["address"] == label and (role is None or a["role"] == role):
            return a
    raise AssertionError(f"{label} not in {[a['address'] for a in doc['addresses']]}")


def mechanism(addr: dict[str, Any], name: str) -> dict[str, Any]:
    return next(m for m in addr["mechanisms"] if m["mechanism"] == name)


# -- the auditor in this process (faster than a process per case) ----------------------------
def audit_one(port: int, *mechanisms: Mechanism, attempts: int = 2, sni: str | None = "localhost",
              host: str = "127.0.0.1") -> dict[Mechanism, MechanismResult]:  # fmt: skip
    options = AuditOptions(
        targets=(Endpoint(host, port, sni),),
        attempts=attempts,
        mechanisms=mechanisms or tuple(Mechanism),
        timeout=10.0,
    )
    report = audit(options)
    return {m.mechanism: m for m in report.addresses[0].mechanisms}


def audit_backends(ports: list[int], *mechanisms: Mechanism, attempts: int = 2,
                   target: int | None = None, server_type: ServerKind | None = None,
                   ) -> Report:  # fmt: skip
    return audit(
        AuditOptions(
            targets=(Endpoint("127.0.0.1", target, "localhost"),) if target else (),
            backends=tuple(Endpoint("127.0.0.1", p, "localhost") for p in ports),
            attempts=attempts,
            mechanisms=mechanisms or tuple(Mechanism),
            server_type=server_type,
        )
    )


# -- servers -----------------------------------------------------------------------------------
def tessera_node(log_dir: Path, pki: Pki, *args: str) -> Peer:
    """``tessera serve`` (echo) with the test PKI's ECDSA leaf; it prints New/Reused lines."""
    port = free_port()
    certs = ["--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)]
    argv = [*TESSERA, "serve", "--port", str(port), *certs, *args]
    return Peer(argv, port=port, log_dir=log_dir, name="tessera-node", env=WIDE)


def nginx(log_dir: Path, pki: Pki, directives: str, port: int | None = None) -> Peer:
    """nginx serving TLS 1.2 and 1.3 on a free port (or ``port``, to start it again) with
    ``directives`` in its server block."""
    port = port or free_port()
    prefix = log_dir / f"nginx-{port}"
    prefix.mkdir(exist_ok=True)
    temp = "\n".join(
        f"  {kind}_temp_path {prefix}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 64; }}
http {{
  access_log off;
{temp}
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name localhost;
    ssl_certificate {pki.ecdsa_cert};
    ssl_certificate_key {pki.ecdsa_key};
    ssl_protocols TLSv1.2 TLSv1.3;
    {directives}
    location / {{ return 200 "nginx {port}\\n"; }}
  }}
}}
""")
    argv = [program("nginx"), "-p", str(prefix), "-c", str(conf), "-e", "stderr"]
    return Peer(argv, port=port, log_dir=log_dir, name="nginx")


def haproxy_tls(log_dir: Path, pki: Pki, keys: Path) -> Peer:
    """HAProxy terminating TLS (HTTP mode, answering itself) with a ``tls-ticket-keys`` file."""
    port = free_port()
    conf = log_dir / f"haproxy-tls-{port}.cfg"
    pem = log_dir / f"haproxy-{port}.pem"
    pem.write_bytes(pki.ecdsa_cert.read_bytes() + pki.ecdsa_key.read_bytes())
    conf.write_text(f"""
global
  maxconn 200
defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend tls
  bind 127.0.0.1:{port} ssl crt {pem} tls-ticket-keys {keys}
  http-request return status 200 content-type text/plain string "ok"
""")
    return Peer([program("haproxy"), "-db", "-f", str(conf)], port=port, log_dir=log_dir,
                name="haproxy-tls")  # fmt: skip


NODE_SERVER = """
const tls = require('tls'), fs = require('fs');
const [port, cert, key, ticketKeys, context] = process.argv.slice(1);
const options = {cert: fs.readFileSync(cert), key: fs.readFileSync(key),
                 ticketKeys: fs.readFileSync(ticketKeys)};
if (context) options.sessionIdContext = context;
const server = tls.createServer(options, (socket) => {
  socket.on('error', () => {});
  socket.on('data', (data) => socket.write(data));
  socket.on('end', () => socket.end());
});
server.listen(+port, '127.0.0.1', () => console.log('listening on ' + port));
"""


def node_tls(log_dir: Path, pki: Pki, ticket_keys: Path, context: str | None = None) -> Peer:
    """A Node.js ``tls`` echo server with 48-byte ``ticketKeys`` from a file and, if given, an
    explicit ``sessionIdContext`` (Node derives the default from its command line)."""
    port = free_port()
    argv = ["node", "-e", NODE_SERVER, str(port), str(pki.ecdsa_cert), str(pki.ecdsa_key),
            str(ticket_keys), *([context] if context else [])]  # fmt: skip
    return Peer(argv, port=port, log_dir=log_dir, name="node-tls")


def apache(log_dir: Path, pki: Pki, directives: str) -> Peer:
    """Apache httpd with mod_ssl on a free port, in the foreground, one child process serving
    as nobody, with ``directives`` (SSLSessionCache, SSLSessionTicketKeyFile, ...)."""
    port = free_port()
    root = log_dir / f"apache-{port}"
    (root / "www").mkdir(parents=True)
    (root / "www" / "index.html").write_text(f"apache {port}\n")
    modules = "/usr/lib/apache2/modules"
    loads = "\n".join(
        f"LoadModule {name}_module {modules}/mod_{name}.so"
        for name in ("mpm_event", "authz_core", "socache_shmcb", "ssl")
    )
    conf = root / "httpd.conf"
    conf.write_text(f"""
ServerRoot {root}
Listen 127.0.0.1:{port}
PidFile {root}/httpd.pid
DefaultRuntimeDir {root}
ErrorLog {root}/error.log
LogLevel warn
{loads}
ServerName localhost
User nobody
Group nogroup
StartServers 1
ServerLimit 1
ThreadsPerChild 16
MaxRequestWorkers 16
DocumentRoot {root}/www
SSLEngine on
SSLCertificateFile {pki.ecdsa_cert}
SSLCertificateKeyFile {pki.ecdsa_key}
{directives}
""")
    argv = [program("apache2"), "-DFOREGROUND", "-f", str(conf)]
    return Peer(argv, port=port, log_dir=log_dir, name="apache")


def haproxy(log_dir: Path, backends: list[int]) -> Peer:
    """HAProxy in TCP mode, round robin over ``backends`` (TLS passes through untouched)."""
    port = free_port()
    conf = log_dir / f"haproxy-{port}.cfg"
    servers = "\n".join(f"  server b{i} 127.0.0.1:{p}" for i, p in enumerate(backends))
    conf.write_text(f"""
global
  maxconn 200
defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend tls
  bind 127.0.0.1:{port}
  default_backend fleet
backend fleet
  balance roundrobin
{servers}
""")
    return Peer([program("haproxy"), "-db", "-f", str(conf)], port=port, log_dir=log_dir,
                name="haproxy")  # fmt: skip


def s_server(log_dir: Path, pki: Pki, *args: str) -> Peer:
    """``openssl s_server -www`` (one connection at a time, TLS 1.2 and 1.3) with ``args``."""
    port = free_port()
    argv = ["openssl", "s_server", "-accept", str(port), "-cert", str(pki.ecdsa_cert),
            "-key", str(pki.ecdsa_key), "-www", *args]  # fmt: skip
    return Peer(argv, port=port, log_dir=log_dir, name="s_server")

"""Helpers for the ``tessera check`` tests: real servers configured on purpose (tessera serve,
openssl s_server, nginx, HAProxy), the check command run as a process, and its JSON output
validated against the schema shipped with the package.

nginx and HAProxy run from configs written into a temp dir, in the foreground, on free
loopback ports, without privilege changes (no ``user`` directive, one nginx process), and are
always stopped by their fixtures.
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
def check_cli(*args: str, timeout: float = 90.0) -> tuple[int, str]:
    """``tessera check ARGS`` as a process: (exit code, stdout + stderr)."""
    r = run([*TESSERA, "check", *args], timeout=timeout, env=WIDE)
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
                   target: int | None = None) -> Report:  # fmt: skip
    return audit(
        AuditOptions(
            targets=(Endpoint("127.0.0.1", target, "localhost"),) if target else (),
            backends=tuple(Endpoint("127.0.0.1", p, "localhost") for p in ports),
            attempts=attempts,
            mechanisms=mechanisms or tuple(Mechanism),
        )
    )


# -- servers -----------------------------------------------------------------------------------
def tessera_node(log_dir: Path, pki: Pki, *args: str) -> Peer:
    """``tessera serve`` (echo) with the test PKI's ECDSA leaf; it prints New/Reused lines."""
    port = free_port()
    certs = ["--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)]
    argv = [*TESSERA, "serve", "--port", str(port), *certs, *args]
    return Peer(argv, port=port, log_dir=log_dir, name="tessera-node", env=WIDE)


def nginx(log_dir: Path, pki: Pki, directives: str) -> Peer:
    """nginx serving TLS 1.2 and 1.3 on a free port with ``directives`` in its server block."""
    port = free_port()
    prefix = log_dir / f"nginx-{port}"
    prefix.mkdir()
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

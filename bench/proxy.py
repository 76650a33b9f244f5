"""TLS terminators compared in the same run: ``tessera proxy`` vs hitch and stunnel4, then the
resumption rate of reconnecting clients behind a 2-instance round-robin balancer: two tessera
proxies sharing Redis vs two nginx TLS terminators.

    python bench/proxy.py            # about 3 minutes
    python bench/proxy.py --quick    # a smoke test
    python bench/proxy.py --parts terminators --rounds 5

Needs ``hitch``, ``stunnel4``, ``nginx``, ``haproxy`` and ``redis-server`` (Debian packages:
``apt-get install hitch stunnel4 nginx haproxy redis-server``).

Parts:

* ``terminators``: each terminator is one process (hitch: ``workers = 1``; tessera: one process
  on uvloop; stunnel: its threads) with the same ECDSA P-256 certificate in front of the same
  plaintext backend (``proxy_backend.py``); the client is CPython ``ssl`` in this process, one
  connection after another, verification off. Per connection: handshake, a 1-byte ping through
  to the backend and back, close. Cases: TLS 1.3 full and resumed (a ticket), TLS 1.2 full and
  resumed (a ticket), ECDHE-ECDSA-AES128-GCM-SHA256 for TLS 1.2. Bulk: TLS 1.2, the backend
  sending (download) or receiving (upload) ``--size-mib``. Printed: handshakes/s and MB/s
  (client wall clock) and the terminator's CPU per handshake / per MB (all its processes, from
  /proc), medians over rounds with min..max; rounds alternate the order of the terminators so
  background load hits them alike; ratios tessera/hitch and tessera/stunnel. ``python-ssl``
  (``pyssl_proxy.py``: asyncio on uvloop with CPython ``ssl``, OpenSSL doing all of TLS) is the
  floor under any Python terminator, printed against hitch.
* ``balancer``: HAProxy in TCP mode, round robin, in front of two terminators; ``--clients``
  CPython clients, each reconnecting with the session of its previous connection (as a browser
  does), take turns in a random order, so each reconnection lands on either instance. The
  share of reconnections that resumed, per mode (TLS 1.2 session ids, TLS 1.2 tickets, TLS 1.3
  tickets): two ``tessera proxy`` sharing one Redis (target: at least 99%), and two nginx with
  their defaults (no ``ssl_session_cache``: session ids are not kept; tickets on, under keys of
  their own per instance).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from common import (
    BENCH_DIR,
    CertFiles,
    client_context,
    close_tls,
    environment,
    handshake_once,
    median,
    num,
    open_tls,
    ratio,
    spread,
    table,
    test_certificates,
    transfer,
)

sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "fleet"))
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))  # ports.py, for tests/fleet/redis_server.py
from redis_server import RedisServer

TERMINATORS = ("tessera", "hitch", "stunnel", "python-ssl")
RESUMPTION_TARGET = 0.99
MODES = ("tls12-id", "tls12-ticket", "tls13")
TESSERA = [sys.executable, "-m", "tessera.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def program(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}")
                                  else None)  # fmt: skip
    if path is None:
        sys.exit(f"{name} is not installed: apt-get install hitch stunnel4 nginx haproxy "
                 "redis-server")  # fmt: skip
    return path


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing on port {port}")


@contextlib.contextmanager
def process(argv: list[str], port: int, log: Path, start_timeout: float = 20.0
            ) -> Iterator[subprocess.Popen[bytes]]:  # fmt: skip
    """A background process (its own process group), stopped at the end whatever happens."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        try:
            try:
                wait_port(port, proc, start_timeout)
            except (RuntimeError, TimeoutError) as e:
                raise RuntimeError(f"{e}:\n{log.read_text(errors='replace')[-2000:]}") from None
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) of every live process in a process group. Ticks of 10 ms, as
    /proc/PID/stat counts them: per-thread schedstat would be exact but loses the threads that
    have exited (stunnel's, one per connection)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid:  # pgrp
                total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


# -- terminators -------------------------------------------------------------------------------
def terminator_argv(name: str, port: int, backend: int, certs: CertFiles, d: Path) -> list[str]:
    if name == "tessera":
        return [*TESSERA, "proxy", "--listen", f"127.0.0.1:{port}", "--backend",
                f"127.0.0.1:{backend}", "--cert", str(certs.cert), "--key", str(certs.key),
                "-q"]  # fmt: skip
    if name == "python-ssl":
        return [sys.executable, str(BENCH_DIR / "pyssl_proxy.py"), str(port), str(backend),
                str(certs.cert), str(certs.key)]  # fmt: skip
    if name == "hitch":
        pem = d / "hitch.pem"
        pem.write_bytes(certs.cert.read_bytes() + certs.key.read_bytes())
        conf = d / f"hitch-{port}.conf"
        conf.write_text(f'frontend = "[127.0.0.1]:{port}"\nbackend = "[127.0.0.1]:{backend}"\n'
                        f'pem-file = "{pem}"\nworkers = 1\ndaemon = off\n'
                        'tls-protos = TLSv1.2 TLSv1.3\nbacklog = 1024\n'
                        'user = "nobody"\ngroup = "nogroup"\n')  # fmt: skip
        return [program("hitch"), "--config", str(conf)]
    conf = d / f"stunnel-{port}.conf"
    conf.write_text(f"foreground = yes\npid =\n[proxy]\naccept = 127.0.0.1:{port}\n"
                    f"connect = 127.0.0.1:{backend}\ncert = {certs.cert}\nkey = {certs.key}\n"
                    "sslVersionMin = TLSv1.2\n")  # fmt: skip
    return [program("stunnel4"), str(conf)]


def handshakes(port: int, ctx: ssl.SSLContext, n: int, resume: bool) -> tuple[float, float]:
    """``n`` connections (handshake, ping, close): (seconds, share resumed)."""
    session = handshake_once(port, ctx, ping=True)[1] if resume else None
    resumed = 0
    t0 = time.perf_counter()
    for _ in range(n):
        r, _ = handshake_once(port, ctx, session, ping=True)
        resumed += r
    return time.perf_counter() - t0, resumed / n


def bulk(port: int, direction: str, size: int) -> float:
    s = open_tls(port, client_context("1.2"))
    try:
        return transfer(s, direction, size, b"\x00" * (1 << 18))
    finally:
        close_tls(s)


def part_terminators(certs: CertFiles, d: Path, a: argparse.Namespace) -> None:
    print(f"\n## TLS terminators, same backend, same client ({a.rounds} rounds, "
          f"{a.handshakes} connections per case and round, bulk {a.size_mib} MiB)\n")  # fmt: skip
    backend = free_port()
    ports = {t: free_port() for t in TERMINATORS}
    cases = [("TLS 1.3 full", "1.3", False), ("TLS 1.3 resumed", "1.3", True),
             ("TLS 1.2 full", "1.2", False), ("TLS 1.2 resumed", "1.2", True)]  # fmt: skip
    hs: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    share: dict[tuple[str, str], list[float]] = {}
    size = a.size_mib << 20
    backend_argv = [sys.executable, str(BENCH_DIR / "proxy_backend.py"), str(backend)]
    with contextlib.ExitStack() as stack:
        stack.enter_context(process(backend_argv, backend, d / "backend.log"))
        procs = {t: stack.enter_context(process(terminator_argv(t, ports[t], backend, certs, d),
                                                ports[t], d / f"{t}.log"))
                 for t in TERMINATORS}  # fmt: skip
        for r in range(a.rounds):
            order = TERMINATORS if r % 2 == 0 else tuple(reversed(TERMINATORS))
            for t in order:
                pgid = procs[t].pid
                for label, version, resume in cases:
                    ctx = client_context(version)
                    c0 = group_cpu(pgid)
                    secs, resumed = handshakes(ports[t], ctx, a.handshakes, resume)
                    used = group_cpu(pgid) - c0
                    hs.setdefault((t, label), []).append(a.handshakes / secs)
                    cpu.setdefault((t, label), []).append(used / a.handshakes * 1000)
                    share.setdefault((t, label), []).append(resumed)
                for direction in ("server->client", "client->server"):
                    label = "bulk download" if direction == "server->client" else "bulk upload"
                    c0 = group_cpu(pgid)
                    secs = bulk(ports[t], direction, size)
                    used = group_cpu(pgid) - c0
                    hs.setdefault((t, label), []).append(size / secs / 1e6)
                    cpu.setdefault((t, label), []).append(used / (size / 1e6) * 1000)
    labels = [c[0] for c in cases] + ["bulk download", "bulk upload"]
    rows = []
    for label in labels:
        for t in TERMINATORS:
            k = (t, label)
            unit = "MB/s" if label.startswith("bulk") else "hs/s"
            res = "" if label.startswith("bulk") else f"{median(share[k]):.0%}"
            rows.append([label, t, f"{num(median(hs[k]))} {unit}", spread(hs[k]),
                         num(median(cpu[k])), res])  # fmt: skip
    print(table(["case", "terminator", "rate (median)", "range", "CPU ms per hs / per MB",
                 "resumed"], rows))  # fmt: skip
    print("\nRatios tessera / other, medians of the rounds (rate: higher is better for "
          "tessera; CPU: lower is):\n")  # fmt: skip
    ratio_rows = []
    for label in labels:
        row = [label]
        for o in TERMINATORS[1:]:
            row.append(num(ratio(median(hs[("tessera", label)]), median(hs[(o, label)]))))
            row.append(num(ratio(median(cpu[("tessera", label)]), median(cpu[(o, label)]))))
        ratio_rows.append(row)
    print(table(["case", "rate vs hitch", "CPU vs hitch", "rate vs stunnel", "CPU vs stunnel",
                 "rate vs python-ssl", "CPU vs python-ssl"], ratio_rows))  # fmt: skip
    print("\nThe floor: python-ssl (asyncio on uvloop piping to the backend, CPython ssl doing all")
    print("of TLS in OpenSSL's C) against hitch, CPU per handshake / per MB:\n")
    floor_rows = [[label, num(ratio(median(cpu[("python-ssl", label)]),
                                    median(cpu[("hitch", label)])))] for label in labels]  # fmt: skip
    print(table(["case", "python-ssl CPU vs hitch"], floor_rows))


# -- the balancer ------------------------------------------------------------------------------
def haproxy_argv(port: int, backends: list[int], d: Path) -> list[str]:
    conf = d / f"haproxy-{port}.cfg"
    servers = "\n".join(f"  server b{i} 127.0.0.1:{p}" for i, p in enumerate(backends))
    conf.write_text(f"global\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 2s\n"
                    f"  timeout client 30s\n  timeout server 30s\nfrontend tls\n"
                    f"  bind 127.0.0.1:{port}\n  default_backend fleet\nbackend fleet\n"
                    f"  balance roundrobin\n{servers}\n")  # fmt: skip
    return [program("haproxy"), "-db", "-f", str(conf)]


def nginx_argv(port: int, certs: CertFiles, d: Path) -> list[str]:
    prefix = d / f"nginx-{port}"
    prefix.mkdir()
    temp = "\n".join(f"  {k}_temp_path {prefix}/{k};"
                     for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))  # fmt: skip
    conf = prefix / "nginx.conf"
    conf.write_text(f"""daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr error;
events {{ worker_connections 1024; }}
http {{
  access_log off;
{temp}
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {certs.cert};
    ssl_certificate_key {certs.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{ return 200 "ok\\n"; }}
  }}
}}
""")
    return [program("nginx"), "-p", str(prefix), "-c", str(conf), "-e", "stderr"]


def resumption_rate(port: int, mode: str, clients: int, attempts: int, seed: int) -> float:
    """``clients`` clients take turns in a random order (``seed``); each reconnection offers
    the session of that client's previous connection. The share that resumed."""
    version = "1.3" if mode == "tls13" else "1.2"
    ctx = client_context(version, tickets=mode != "tls12-id")
    sessions = [handshake_once(port, ctx, ping=True)[1] for _ in range(clients)]
    rng = random.Random(seed)
    resumed = 0
    for _ in range(attempts):
        i = rng.randrange(clients)
        r, new = handshake_once(port, ctx, sessions[i], ping=True)
        resumed += r
        sessions[i] = new
    return resumed / attempts


def part_balancer(certs: CertFiles, d: Path, a: argparse.Namespace) -> None:
    print(f"\n## Resumption behind a 2-instance round-robin balancer (HAProxy TCP mode; "
          f"{a.clients} clients, {a.attempts} reconnections per mode and round, "
          f"{a.rounds} rounds)\n")  # fmt: skip
    backend = free_port()
    rates: dict[tuple[str, str], list[float]] = {}
    secret = d / "fleet.secret"
    subprocess.run([*TESSERA, "keys", "fleet-secret", "-o", str(secret)], check=True,
                   capture_output=True)  # fmt: skip
    backend_argv = [sys.executable, str(BENCH_DIR / "proxy_backend.py"), str(backend)]
    with contextlib.ExitStack() as stack:
        stack.enter_context(process(backend_argv, backend, d / "backend-lb.log"))
        redis = stack.enter_context(RedisServer())
        fleets: dict[str, int] = {}
        nodes: dict[str, list[int]] = {"tessera": [free_port(), free_port()],
                                       "nginx": [free_port(), free_port()]}  # fmt: skip
        for i, p in enumerate(nodes["tessera"]):
            fleet = ["--redis", redis.url, "--fleet-secret", str(secret), "--key-refresh", "0.5"]
            argv = [*terminator_argv("tessera", p, backend, certs, d), *fleet]
            stack.enter_context(process(argv, p, d / f"tessera-node{i}.log"))
        for i, p in enumerate(nodes["nginx"]):
            stack.enter_context(process(nginx_argv(p, certs, d), p, d / f"nginx-node{i}.log"))
        for name, ports in nodes.items():
            fleets[name] = free_port()
            stack.enter_context(process(haproxy_argv(fleets[name], ports, d), fleets[name],
                                        d / f"haproxy-{name}.log"))  # fmt: skip
        time.sleep(1.5)  # the fleet's first ticket key encrypts after its lead time (1 s)
        for r in range(a.rounds):
            for name in ("tessera", "nginx") if r % 2 == 0 else ("nginx", "tessera"):
                for mode in MODES:
                    rate = resumption_rate(fleets[name], mode, a.clients, a.attempts, r)
                    rates.setdefault((name, mode), []).append(rate)
    rows = []
    for mode in MODES:
        t, n = rates[("tessera", mode)], rates[("nginx", mode)]
        verdict = "ok" if median(t) >= RESUMPTION_TARGET else "MISS"
        rows.append([mode, f"{median(t):.2%}", f"{min(t):.2%}..{max(t):.2%}",
                     f"{median(n):.2%}", f"{min(n):.2%}..{max(n):.2%}", verdict])  # fmt: skip
    print(table(["mode", "tessera + Redis", "range", "nginx defaults", "range",
                 f"target >= {RESUMPTION_TARGET:.0%}"], rows))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="terminators,balancer")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--handshakes", type=int, default=200)
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--attempts", type=int, default=300)
    ap.add_argument("--quick", action="store_true", help="a smoke test: few of everything")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.handshakes, a.size_mib, a.attempts = 1, 30, 8, 40
    parts: dict[str, Callable[[CertFiles, Path, argparse.Namespace], None]] = {
        "terminators": part_terminators, "balancer": part_balancer,
    }  # fmt: skip
    print(f"# tessera proxy benchmarks\n\n{environment()}")
    with test_certificates(("ecdsa",)) as certs, tempfile.TemporaryDirectory() as tmp:
        for part in a.parts.split(","):
            parts[part](certs["ecdsa"], Path(tmp), a)


if __name__ == "__main__":
    main()

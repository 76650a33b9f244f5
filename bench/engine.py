"""The product as shipped: ``tessera serve`` and ``tessera proxy`` processes, measured from the
outside, against the bare sans-I/O loop (``server.py``: one connection at a time, no engine),
``openssl s_server`` and hitch, in the same run.

    python bench/engine.py                       # serve, latency and fairness; ~4 minutes
    python bench/engine.py --parts serve --rounds 7
    python bench/engine.py --quick               # a smoke test

Parts:

* ``serve``: server CPU per connection — the server process's own CPU (every thread, from
  ``/proc/PID/task/*/schedstat``, nanoseconds) over ``--connections`` sequential connections
  from a CPython ``ssl`` client (handshake, a 16-byte ping answered, close_notify both ways).
  Servers: the bare loop, ``tessera serve`` as installed (uvloop), ``tessera serve --loop
  asyncio``, the library's blocking ``TLSServer`` with its pool of long-lived threads and
  with a thread per connection as before (``tls_server.py``: threads that ended are not in
  ``/proc/PID/task``, so it reports its own ``getrusage`` CPU on SIGUSR1),
  ``openssl s_server -rev``. Cases: TLS 1.2 full, TLS 1.2 resumed (ticket), TLS 1.3
  full, TLS 1.3 resumed (PSK). Rounds interleave the servers, in a different order each round;
  medians with min..max and the ratios to the bare loop (targets: resumed <= 1.15x, full
  <= 1.2x on uvloop; <= 1.4x on asyncio's loop).
* ``latency``: request -> answer through ``tessera proxy --loop asyncio`` (no uvloop) and
  through hitch, minus the backend alone: p50 and p99 of ``--requests`` keep-alive pings.
* ``fairness``: ``tessera serve`` and ``tessera proxy`` (``--max-connections 1000``, the
  default per-client cap) under ``--idle`` idle connections from 50 loopback addresses
  (127.0.1.x; half of them finish a TLS handshake and then say nothing, half never send a
  byte), re-opened as the server cuts them, plus a ``--hog``-connection hog from 127.0.0.2;
  meanwhile a well-behaved client on 127.0.0.1 makes one connection after another (handshake,
  ping, close; 5 s allowed each) for ``--seconds``. Printed: its success rate and p50/p99,
  and the server's descriptors and RSS before, during and after; ``--attacks`` times on the
  same server process (memory after the second attack is not above the first's).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import resource
import selectors
import signal
import socket
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from common import (
    BENCH_DIR,
    CertFiles,
    ServerProcess,
    client_context,
    environment,
    median,
    num,
    spread,
    table,
    test_certificates,
)
from proxy import free_port, process, program, terminator_argv

TESSERA = [sys.executable, "-m", "tessera.cli.main"]
PING = b"P00000000000000\n"  # server.py: a ping; s_server -rev and serve's echo: sent back
CASES = (
    ("TLS 1.2 full", "1.2", False),
    ("TLS 1.2 resumed (ticket)", "1.2", True),
    ("TLS 1.3 full", "1.3", False),
    ("TLS 1.3 resumed (PSK)", "1.3", True),
)
TARGETS = {"serve": (1.2, 1.15), "serve-asyncio": (1.4, 1.4)}  # (full, resumed) vs bare


def process_cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far, in nanoseconds (schedstat's first field);
    a ``tls_server.py`` process tells its own, ended threads included."""
    reported = Path(f"/tmp/tessera-bench-cpu-{pid}")
    if reported.exists() or "tls_server.py" in Path(f"/proc/{pid}/cmdline").read_text():
        return _reported_cpu_ns(pid, reported)
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
    return total


def _reported_cpu_ns(pid: int, path: Path) -> int:
    """Ask a ``tls_server.py`` for its CPU (SIGUSR1: it writes getrusage to ``path``)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not path.exists() or path.stat().st_mtime_ns == before:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{pid} did not report its CPU")
        time.sleep(0.001)
    while not (text := path.read_text()).endswith("\n"):
        time.sleep(0.001)
    return int(text)


def fds_and_rss(pid: int) -> tuple[int, int]:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return fds, rss // 1024


def connect_once(port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None,
                 timeout: float = 10.0, source: str | None = None
                 ) -> tuple[bool, ssl.SSLSession | None]:  # fmt: skip
    """Handshake, ping, the first byte of the answer, close_notify both ways."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                   source_address=(source, 0) if source else None)  # fmt: skip
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    except BaseException:
        raw.close()
        raise
    try:
        s.sendall(PING)
        if not s.recv(64):
            raise ConnectionError("no answer to the ping")
        reused, new = s.session_reused, s.session
        with contextlib.suppress(OSError, ValueError):
            s.unwrap()
        return reused, new
    finally:
        s.close()


# -- serve -------------------------------------------------------------------------------------
@contextlib.contextmanager
def servers(certs: CertFiles, d: Path, names: list[str]
            ) -> Iterator[dict[str, dict[str, tuple[int, int]]]]:  # fmt: skip
    """name -> version -> (port, pid), every server of ``names`` started and always stopped."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    with contextlib.ExitStack() as stack:
        for version in ("1.2", "1.3"):
            bare = stack.enter_context(ServerProcess("tessera", certs, version=version))
            out.setdefault("bare", {})[version] = (bare.port, bare.proc.pid)
        for name, extra in (("serve", []), ("serve-asyncio", ["--loop", "asyncio"])):
            if name not in names:
                continue
            port = free_port()
            argv = [*TESSERA, "serve", "-p", str(port), "--cert", str(certs.cert), "--key",
                    str(certs.key), "-q", *extra]  # fmt: skip
            proc = stack.enter_context(process(argv, port, d / f"{name}.log"))
            out[name] = {"1.2": (port, proc.pid), "1.3": (port, proc.pid)}
        for name, threads in (("TLSServer", "pool"), ("TLSServer-thread", "per-connection")):
            if name not in names:
                continue
            port = free_port()
            argv = [sys.executable, str(BENCH_DIR / "tls_server.py"), str(port), str(certs.cert),
                    str(certs.key), "--threads", threads]  # fmt: skip
            proc = stack.enter_context(process(argv, port, d / f"{name}.log"))
            out[name] = {"1.2": (port, proc.pid), "1.3": (port, proc.pid)}
        port = free_port()
        argv = [program("openssl"), "s_server", "-accept", str(port), "-cert", str(certs.cert),
                "-key", str(certs.key), "-rev", "-quiet", "-ciphersuites",
                "TLS_AES_128_GCM_SHA256"]  # fmt: skip
        proc = stack.enter_context(process(argv, port, d / "s_server.log"))
        out["s_server"] = {"1.2": (port, proc.pid), "1.3": (port, proc.pid)}
        yield out


def part_serve(certs: CertFiles, d: Path, a: argparse.Namespace) -> None:
    print(f"\n## Server CPU per connection, µs ({a.rounds} rounds of {a.connections} "
          "connections per case and server)\n")  # fmt: skip
    cpu: dict[tuple[str, str], list[float]] = {}
    with servers(certs, d, a.servers.split(",")) as srv:
        names = list(srv)
        for r in range(a.rounds):
            random.Random(r).shuffle(names)
            for label, version, resume in CASES:
                ctx = client_context(version)
                for name in names:
                    port, pid = srv[name][version]
                    session = connect_once(port, ctx)[1] if resume else None
                    c0 = process_cpu_ns(pid)
                    resumed = 0
                    for _ in range(a.connections):
                        resumed += connect_once(port, ctx, session)[0]
                    used = process_cpu_ns(pid) - c0
                    if resumed != (a.connections if resume else 0):
                        print(f"WARNING: {name} {label}: {resumed}/{a.connections} resumed")
                    cpu.setdefault((name, label), []).append(used / a.connections / 1000)
    rows = []
    for label, _, resume in CASES:
        bare = median(cpu[("bare", label)])
        order = ("bare", "serve", "serve-asyncio", "TLSServer", "TLSServer-thread", "s_server")
        for name in [n for n in order if n in srv]:
            xs = cpu[(name, label)]
            ratios = [x / bare for x in xs]
            target = TARGETS.get(name)
            verdict = ""
            if target is not None:
                limit = target[1] if resume else target[0]
                verdict = f"{'ok' if median(xs) / bare <= limit else 'MISS'} (<= {limit}x)"
            rows.append([label, name, num(median(xs)), spread(xs),
                         f"{median(xs) / bare:.2f}x", spread(ratios), verdict])  # fmt: skip
    print(table(["case", "server", "CPU µs/conn", "range", "vs bare", "range", "target"], rows))


# -- latency -----------------------------------------------------------------------------------
def _ping_latencies(sock: socket.socket | ssl.SSLSocket, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        sock.sendall(PING)
        if not sock.recv(64):
            raise ConnectionError("closed")
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def part_latency(certs: CertFiles, d: Path, a: argparse.Namespace) -> None:
    print(f"\n## Added latency through the proxy on loopback ({a.requests} pings on one "
          "connection, after a warm-up; ms)\n")  # fmt: skip
    backend = free_port()
    rows = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(process([sys.executable, str(BENCH_DIR / "proxy_backend.py"),
                                     str(backend)], backend, d / "backend.log"))  # fmt: skip
        ports = {"tessera proxy --loop asyncio": free_port(), "tessera proxy": free_port(),
                 "hitch": free_port()}  # fmt: skip
        for name, port in ports.items():
            argv = terminator_argv("hitch" if name == "hitch" else "tessera", port, backend,
                                   certs, d)  # fmt: skip
            if "asyncio" in name:
                argv += ["--loop", "asyncio"]
            stack.enter_context(process(argv, port, d / f"lat-{port}.log"))
        with socket.create_connection(("127.0.0.1", backend)) as plain:
            plain.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _ping_latencies(plain, 50)
            alone = _ping_latencies(plain, a.requests)
        base = statistics.median(alone)
        rows.append(["backend alone", num(base), num(sorted(alone)[int(len(alone) * 0.99)]),
                     "-"])  # fmt: skip
        for name, port in ports.items():
            for version in ("1.2", "1.3"):
                raw = socket.create_connection(("127.0.0.1", port))
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with client_context(version).wrap_socket(raw, server_hostname="localhost") as s:
                    _ping_latencies(s, 50)
                    xs = sorted(_ping_latencies(s, a.requests))
                p50 = statistics.median(xs)
                rows.append([f"{name}, TLS {version}", num(p50), num(xs[int(len(xs) * 0.99)]),
                             num(p50 - base)])  # fmt: skip
    print(table(["path", "p50 ms", "p99 ms", "added p50 ms (target <= 1)"], rows))


# -- fairness ----------------------------------------------------------------------------------
class Crowd:
    """``count`` idle connections from ``sources`` (round robin), kept at that number: the
    ones the server closes are opened again. ``tls``: every other connection finishes a TLS
    handshake first (then sends nothing)."""

    def __init__(self, port: int, count: int, sources: list[str], tls: bool) -> None:
        self.port, self.count, self.sources, self.tls = port, count, sources, tls
        self.sel = selectors.DefaultSelector()
        self.opened = 0
        self.ctx = client_context("1.3")
        self.ctx.options |= ssl.OP_NO_TICKET

    def _open_one(self) -> None:
        source = self.sources[self.opened % len(self.sources)]
        handshake = self.tls and self.opened % 2 == 0
        self.opened += 1
        try:
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=2.0,
                                           source_address=(source, 0))  # fmt: skip
            sock: socket.socket = raw
            if handshake:
                sock = self.ctx.wrap_socket(raw, server_hostname="localhost")
            sock.setblocking(False)
        except (OSError, ssl.SSLError):
            return
        self.sel.register(sock, selectors.EVENT_READ)

    def fill(self, deadline: float) -> None:
        """Open connections until ``count`` are open (or ``deadline`` passes)."""
        while len(self.sel.get_map()) < self.count and time.monotonic() < deadline:
            self._open_one()

    def reap(self) -> None:
        """Drop the connections the server closed."""
        for key, _ in self.sel.select(0):
            sock = key.fileobj
            try:
                data = sock.recv(4096)  # type: ignore[union-attr]
            except ssl.SSLWantReadError:
                continue
            except OSError:
                data = b""
            if not data:
                self.sel.unregister(sock)
                sock.close()  # type: ignore[union-attr]

    def close(self) -> None:
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.sel.close()


def fairness_run(name: str, port: int, pid: int, a: argparse.Namespace) -> list[str]:
    before = fds_and_rss(pid)
    idle = Crowd(port, a.idle, [f"127.0.1.{i}" for i in range(1, 51)], tls=True)
    hog = Crowd(port, a.hog, ["127.0.0.2"], tls=False)
    ctx = client_context("1.3")
    ok, times, peak = 0, [], before
    try:
        fill_until = time.monotonic() + 60
        idle.fill(fill_until)
        hog.fill(fill_until)
        peak = fds_and_rss(pid)
        end = time.monotonic() + a.seconds
        tries = 0
        while time.monotonic() < end:
            tries += 1
            t0 = time.perf_counter()
            with contextlib.suppress(OSError, ssl.SSLError, ConnectionError):
                connect_once(port, ctx, timeout=5.0, source="127.0.0.1")
                ok += 1
                times.append(time.perf_counter() - t0)
            for crowd in (idle, hog):
                crowd.reap()
                crowd.fill(time.monotonic() + 0.05)
            peak = max(peak, fds_and_rss(pid))
    finally:
        idle.close()
        hog.close()
    deadline = time.monotonic() + 30
    after = fds_and_rss(pid)
    while after[0] > before[0] + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        after = fds_and_rss(pid)
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] if times else float("nan")
    return [name, f"{ok}/{tries} = {ok / max(tries, 1):.1%}",
            f"{median(times) * 1e3:.1f}", f"{p99 * 1e3:.1f}",
            f"{before[0]} / {peak[0]} / {after[0]}",
            f"{before[1] // 1024} / {peak[1] // 1024} / {after[1] // 1024}"]  # fmt: skip


def part_fairness(certs: CertFiles, d: Path, a: argparse.Namespace) -> None:
    print(f"\n## Fair slots: {a.idle} idle connections from 50 addresses + a {a.hog}-connection "
          f"hog from one, a well-behaved client for {a.seconds:g} s\n")  # fmt: skip
    need = a.idle + a.hog + 500
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    backend = free_port()
    rows = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(process([sys.executable, str(BENCH_DIR / "proxy_backend.py"),
                                     str(backend)], backend, d / "backend-f.log"))  # fmt: skip
        for name in ("serve", "proxy"):
            port = free_port()
            if name == "serve":
                argv = [*TESSERA, "serve", "-p", str(port), "--cert", str(certs.cert),
                        "--key", str(certs.key), "-q"]  # fmt: skip
            else:
                argv = terminator_argv("tessera", port, backend, certs, d)
            proc = stack.enter_context(process(argv, port, d / f"fair-{name}.log"))
            for attack in range(1, a.attacks + 1):  # the same process: memory stays bounded
                rows.append(fairness_run(f"tessera {name} #{attack}", port, proc.pid, a))
    print(table(["server", "well-behaved served", "p50 ms", "p99 ms",
                 "fds before/peak/after", "RSS MiB before/peak/after"], rows))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="serve,latency,fairness")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--idle", type=int, default=10_000)
    ap.add_argument("--hog", type=int, default=1_500)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--attacks", type=int, default=2, help="fairness: attacks per server")
    ap.add_argument(
        "--servers",
        default="bare,serve,serve-asyncio,TLSServer,TLSServer-thread,s_server",
        help="serve part: which servers",
    )
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.connections, a.requests, a.idle, a.hog, a.seconds = 1, 30, 100, 600, 150, 5
    parts: dict[str, Callable[[CertFiles, Path, argparse.Namespace], None]] = {
        "serve": part_serve, "latency": part_latency, "fairness": part_fairness,
    }  # fmt: skip
    print(f"# tessera serve and proxy, as processes\n\n{environment()}")
    with test_certificates(("ecdsa",)) as certs, tempfile.TemporaryDirectory() as tmp:
        for part in a.parts.split(","):
            parts[part](certs["ecdsa"], Path(tmp), a)


if __name__ == "__main__":
    main()

"""Fleet benchmarks: the Redis store against the memory store, ``--workers 2`` against one
process, and the cross-node resumption rate behind a random balancer.

Every server is a real ``tessera serve`` process (``-q``, echo mode) on 127.0.0.1; Redis is a
real ``redis-server`` started here (no persistence) and always stopped. Clients are CPython
``ssl`` (OpenSSL, no certificate verification so the clients spend little CPU) in client
processes of a few threads each. Rounds alternate between the two sides of each ratio so that
background load hits both alike; medians over rounds are printed.

    python bench/fleet.py                 # about 2 minutes
    python bench/fleet.py --quick         # a smoke test, about 30 s
    python bench/fleet.py --parts store,workers,cross --rounds 5 --seconds 4

Parts:

* ``store``: resumed handshakes per second against one node with the memory store and one with
  the Redis store (TLS 1.2 session ids: a ``GET`` per handshake; TLS 1.3 single-use tickets: a
  ``GETDEL`` and a ``SET`` per handshake); the ratio Redis/memory; the p50/p99 handshake latency
  seen by the clients on each, and the p50/p99 of the Redis hop itself (one store ``get``
  through the circuit breaker, measured in this process).
* ``workers``: handshakes per second (TLS 1.2 ticket resumptions, full TLS 1.3) with
  concurrent ``openssl s_time`` clients against ``--workers 2`` and against a single process;
  the ratio.
* ``cross``: four nodes sharing Redis, each client connection sent to a random node: the share
  of resumption attempts that resumed, per mode (TLS 1.2 ids, TLS 1.2 tickets, TLS 1.3 tickets,
  TLS 1.3 single-use tickets); and, as the anchor, four nodes that share nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from common import BENCH_DIR, environment, median, num, ratio, table, test_certificates

sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "fleet"))
from redis_server import RedisServer

STORE_TARGET = 0.7
WORKERS_TARGET = 1.6
CROSS_TARGET = 0.999
MODES = ("tls12-id", "tls12-ticket", "tls13", "tls13-stateful")
PIDS: dict[int, int] = {}  # port -> tessera serve pid


# -- nodes ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def node(cert: Path, key: Path, *args: str) -> Iterator[int]:
    """A ``tessera serve -q`` process (echo mode); yields its port."""
    port = free_port()
    argv = [sys.executable, "-m", "tessera.cli.main", "serve", "--port", str(port), "-q",
            "--cert", str(cert), "--key", str(key), "--key-refresh", "0.25", *args]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"tessera serve exited: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("tessera serve did not start")
            time.sleep(0.05)
        time.sleep(0.6)  # the first fleet ticket key encrypts 0.5 s after it is published
        PIDS[port] = proc.pid
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- clients ----------------------------------------------------------------------------------
def context(mode: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if mode.startswith("tls12"):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if mode == "tls12-id":
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


def connect(port: int, ctx: ssl.SSLContext,
            session: ssl.SSLSession | None) -> tuple[bool, ssl.SSLSession | None, float]:  # fmt: skip
    """One connection: handshake, one echoed byte (so TLS 1.3 tickets are read), close."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            s.sendall(b"x")
            s.recv(1)
            return s.session_reused, s.session, time.perf_counter() - t0


def _client_process(args: tuple[list[int], str, float, int, bool, int]) -> list[tuple[float, int]]:
    """Threads connecting for ``seconds``; (latency, 1 resumed / 0 full / -1 first) each."""
    ports, mode, seconds, threads, resume, seed = args
    out: list[tuple[float, int]] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run(n: int) -> None:
        rng = random.Random(seed * 100 + n)
        ctx = context(mode)
        session = None
        first = True
        mine = []
        while time.monotonic() < stop:
            try:
                reused, new, dt = connect(rng.choice(ports), ctx, session if resume else None)
            except OSError:
                mine.append((float("nan"), -2))
                continue
            mine.append((dt, -1 if first and resume else int(reused)))
            first = False
            if resume and new is not None:
                session = new
        with lock:
            out.extend(mine)

    ts = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 30)
    return out


def drive(ports: Sequence[int], mode: str, seconds: float, procs: int, threads: int,
          resume: bool) -> list[tuple[float, int]]:  # fmt: skip
    """Client processes x threads against ``ports`` (a random port per connection)."""
    jobs = [(list(ports), mode, seconds, threads, resume, p) for p in range(procs)]
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        parts = pool.map(_client_process, jobs)
    return [r for part in parts for r in part]


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its children (the workers), from /proc."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(d) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def pct(xs: Sequence[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


# -- parts ------------------------------------------------------------------------------------
def part_store(certs: Path, key: Path, redis_url: str, secret: Path, a: argparse.Namespace) -> None:
    print("\n## Redis store vs memory store: resumed handshakes per second (one node)\n")
    fleet = ["--redis", redis_url, "--fleet-secret", str(secret)]
    rows = []
    for mode, extra in (("tls12-id", ()), ("tls13-stateful", ("--stateful-tickets",))):
        rates: dict[str, list[float]] = {"memory": [], "redis": []}
        lat: dict[str, list[float]] = {"memory": [], "redis": []}
        with node(certs, key, *extra) as mem, node(certs, key, *extra, *fleet) as red:
            for _ in range(a.rounds):
                for name, port in (("memory", mem), ("redis", red)):
                    res = drive(
                        [port], mode.replace("-stateful", ""), a.seconds, 1, a.threads, True
                    )
                    ok = [(dt, r) for dt, r in res if r >= 0]
                    resumed = [dt for dt, r in ok if r == 1]
                    if len(resumed) < 0.99 * len(ok):
                        print(f"  warning: {name} {mode}: {len(resumed)}/{len(ok)} resumed")
                    rates[name].append(len(resumed) / a.seconds)
                    lat[name] += resumed
        m, r = median(rates["memory"]), median(rates["redis"])
        p50 = (pct(lat["redis"], 0.5) - pct(lat["memory"], 0.5)) * 1000
        p99 = (pct(lat["redis"], 0.99) - pct(lat["memory"], 0.99)) * 1000
        rows.append([mode, num(m), num(r), f"{ratio(r, m):.2f}",
                     f"{p50:+.2f} / {p99:+.2f}", "ok" if ratio(r, m) >= STORE_TARGET else "miss"])  # fmt: skip
    print(table(["resumed by", "memory /s", "Redis /s", "ratio", "added ms p50 / p99",
                 f">= {STORE_TARGET}"], rows))  # fmt: skip
    hop(redis_url, secret)


def hop(redis_url: str, secret: Path) -> None:
    from tessera.fleet.health import GuardedStore
    from tessera.fleet.redis_store import RedisSessionStore
    from tessera.fleet.secret import FleetSecret
    from tessera.session.store import MemoryStore

    red = GuardedStore(RedisSessionStore.from_url(redis_url, FleetSecret.load(secret), "hop"))
    mem = MemoryStore()
    key = b"sid:" + os.urandom(32)
    value = os.urandom(180)  # about a TLS 1.2 session
    times = {}
    for name, store in (("memory", mem), ("redis", red)):
        store.put(key, value, 60)
        ts = []
        for _ in range(3000):
            t0 = time.perf_counter()
            store.get(key)
            ts.append(time.perf_counter() - t0)
        times[name] = ts
    print("\nThe store hop itself (one get of a 180-byte session, this process, 3,000 times):")
    for name, ts in times.items():
        print(f"  {name}: p50 {pct(ts, 0.5) * 1e6:.0f} us, p99 {pct(ts, 0.99) * 1e6:.0f} us")


def s_time(port: int, args: Sequence[str], seconds: float, clients: int) -> int:
    """Connections ``clients`` parallel ``openssl s_time`` processes completed in ``seconds``
    (C clients: each one costs the box far less CPU than a Python client would)."""
    argv = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-time", str(int(seconds)),
            *args]  # fmt: skip
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(clients)
    ]
    total = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 60)
        for line in out.splitlines():
            if "connections in" in line and "real seconds" in line:
                total += int(line.split()[0])
    return total


def part_workers(cert: Path, key: Path, a: argparse.Namespace) -> None:
    print("\n## --workers 2 vs one process: handshakes per second, concurrent clients\n")
    rows = []
    # The clients are openssl s_time processes: on a 2-core box shared with the clients, a
    # Python client costs as much CPU as the server and hides what a second worker adds.
    cases = (
        ("TLS 1.2 resumed by ticket", ["-tls1_2", "-reuse"]),
        ("TLS 1.3 full", ["-tls1_3", "-new"]),
    )
    seconds = max(2.0, a.seconds)
    for what, args in cases:
        rates: dict[str, list[float]] = {"1": [], "2": []}
        cores: dict[str, list[float]] = {"1": [], "2": []}
        with node(cert, key) as one, node(cert, key, "--workers", "2") as two:
            for _ in range(a.rounds):
                for name, port in (("1", one), ("2", two)):
                    cpu0, t0 = tree_cpu(PIDS[port]), time.monotonic()
                    done = s_time(port, args, seconds, a.s_time_clients)
                    cores[name].append((tree_cpu(PIDS[port]) - cpu0) / (time.monotonic() - t0))
                    rates[name].append(done / int(seconds))
        r1, r2 = median(rates["1"]), median(rates["2"])
        spread = [r2_ / r1_ for r1_, r2_ in zip(rates["1"], rates["2"], strict=True)]
        rows.append([what, num(r1), num(r2), f"{median(cores['1']):.2f} / {median(cores['2']):.2f}",
                     f"{ratio(r2, r1):.2f} ({min(spread):.2f}-{max(spread):.2f})",
                     "ok" if ratio(r2, r1) >= WORKERS_TARGET else "miss"])  # fmt: skip
    print(table(["handshake", "1 process /s", "--workers 2 /s", "server cores used (1 / 2)",
                 "ratio (range)", f">= {WORKERS_TARGET}"], rows))  # fmt: skip
    print(f"({a.s_time_clients} openssl s_time clients on the same 2 cores as the server;"
          f" load average {os.getloadavg()[0]:.2f})")  # fmt: skip


def part_cross(cert: Path, key: Path, redis_url: str, secret: Path, a: argparse.Namespace) -> None:
    print("\n## Cross-node resumption: 4 nodes, a random node per connection\n")
    fleet = ["--redis", redis_url, "--fleet-secret", str(secret)]
    rows = []
    for shared in (True, False):
        for mode in MODES:
            extra = ["--stateful-tickets"] if mode == "tls13-stateful" else []
            if shared:
                extra += [*fleet, "--redis-namespace", f"cross-{mode}"]
            with contextlib.ExitStack() as stack:
                ports = [stack.enter_context(node(cert, key, *extra)) for _ in range(4)]
                res = drive(ports, mode.replace("-stateful", ""), a.cross_seconds, a.procs,
                            a.threads, True)  # fmt: skip
            attempts = [r for _, r in res if r >= 0]
            rate = sum(attempts) / len(attempts) if attempts else float("nan")
            errors = sum(1 for _, r in res if r == -2)
            verdict = ("ok" if rate >= CROSS_TARGET else "miss") if shared else "(anchor)"
            rows.append(["Redis" if shared else "nothing shared", mode, len(attempts),
                         f"{rate * 100:.2f}%", errors, verdict])  # fmt: skip
    print(table(["sharing", "mode", "resumption attempts", "resumed", "errors",
                 f">= {CROSS_TARGET * 100:.1f}%"], rows))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--parts", default="store,workers,cross")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=3.0, help="per round")
    p.add_argument("--cross-seconds", type=float, default=6.0, help="per mode")
    p.add_argument("--procs", type=int, default=2, help="client processes")
    p.add_argument("--threads", type=int, default=4, help="threads per client process")
    p.add_argument(
        "--s-time-clients", type=int, default=12, help="openssl s_time clients (workers part)"
    )
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.rounds, a.seconds, a.cross_seconds = 2, 1.5, 2.0
    parts = set(a.parts.split(","))
    print(f"# tessera fleet benchmarks\n\n{environment()}")
    print(f"rounds {a.rounds} x {a.seconds:g} s; clients: CPython ssl, {a.threads} threads")
    with test_certificates(("ecdsa",)) as certs, RedisServer() as redis_server:
        cert, key = certs["ecdsa"].cert, certs["ecdsa"].key
        secret = redis_server.dir / "fleet.secret"
        from tessera.fleet.secret import FleetSecret

        FleetSecret.generate().write(secret)
        if "store" in parts:
            part_store(cert, key, redis_server.url, secret, a)
        if "workers" in parts:
            part_workers(cert, key, a)
        if "cross" in parts:
            part_cross(cert, key, redis_server.url, secret, a)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

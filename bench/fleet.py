"""Fleet benchmarks: the Redis store against the memory store, ``--workers 2`` against one
process, and the cross-node resumption rate behind a random balancer.

Every server is a real ``tessera serve`` process (``-q``, echo mode) on 127.0.0.1; Redis is a
real ``redis-server`` started here (no persistence) and always stopped. Clients are CPython
``ssl`` (OpenSSL, no certificate verification so the clients spend little CPU) in client
processes of a few threads each. Rounds alternate between the two sides of each ratio so that
background load hits both alike; medians over rounds are printed.

    python bench/fleet.py                 # about 3 minutes
    python bench/fleet.py --quick         # a smoke test, about 1 minute
    python bench/fleet.py --parts store,workers,cross,cluster --rounds 5 --seconds 4
    python bench/fleet.py --parts rotation,failover --soak-seconds 180   # the soak runs

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
* ``cluster``: resumed handshakes per second against one node on a single Redis and one on a
  Redis Cluster (3 masters + 3 replicas), rounds interleaved; the ratio Cluster/single with its
  range over rounds; and the Redis hop's p50/p99 on each (one ``get`` through the breaker).
* ``rotation`` (a soak, not in the default parts): four nodes rotating their ticket key every
  ``--rotation`` seconds for ``--soak-seconds``, clients resuming TLS 1.2 and 1.3 tickets on a
  random node: connections, failures, handshakes that brought no ticket, "ticket key name
  unknown" (scraped from each node's metrics), and whether every key followed the previous one
  on the grid.
* ``failover`` (not in the default parts): three nodes on a Redis Cluster, then on Sentinel,
  under load while a master is killed: connections, failures, handshakes without a ticket,
  fallbacks, and the time until resumption is back (30 resumed connections in a row).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import multiprocessing
import os
import random
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from common import BENCH_DIR, environment, median, num, ratio, table, test_certificates

sys.path.insert(0, str(BENCH_DIR.parent / "tests" / "fleet"))
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))  # ports.py, for tests/fleet/redis_server.py
from load import Load
from redis_server import RedisCluster, RedisSentinel, RedisServer

STORE_TARGET = 0.7
WORKERS_TARGET = 1.6
CROSS_TARGET = 0.999
CLUSTER_TARGET = 0.9
MODES = ("tls12-id", "tls12-ticket", "tls13", "tls13-stateful")
PIDS: dict[int, int] = {}  # port -> tessera serve pid
HOP_CPU: dict[int, float] = {}  # id(store) -> CPU seconds per get in this process


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
        PIDS[port] = proc.pid  # (a new fleet's first ticket key encrypts at once)
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


def hop_times(store: Any, n: int = 3000) -> list[float]:
    """Seconds per ``get`` of a 180-byte session through ``store`` (this process); the CPU
    this thread spent per ``get`` (load-independent: what the client library costs) is kept
    in HOP_CPU."""
    key = b"sid:" + os.urandom(32)
    store.put(key, os.urandom(180), 60)
    ts = []
    cpu0 = time.thread_time()
    for _ in range(n):
        t0 = time.perf_counter()
        store.get(key)
        ts.append(time.perf_counter() - t0)
    HOP_CPU[id(store)] = (time.thread_time() - cpu0) / n
    return ts


def redis_hop(url: str, secret: Path) -> list[float]:
    from tessera.fleet.health import GuardedStore
    from tessera.fleet.redis_store import RedisSessionStore
    from tessera.fleet.secret import FleetSecret

    store = GuardedStore(RedisSessionStore.from_url(url, FleetSecret.load(secret), "hop"))
    times = hop_times(store)
    HOP_CPU[hash(url)] = HOP_CPU.pop(id(store))
    return times


def hop(redis_url: str, secret: Path) -> None:
    from tessera.session.store import MemoryStore

    times = {"memory": hop_times(MemoryStore()), "redis": redis_hop(redis_url, secret)}
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


def part_cluster(cert: Path, key: Path, redis_url: str, secret: Path,
                 a: argparse.Namespace) -> None:  # fmt: skip
    print("\n## Redis Cluster vs single Redis: resumed handshakes per second (one node)\n")
    rows = []
    hops: dict[str, list[float]] = {}
    with RedisCluster() as cluster:
        urls = {"single": redis_url, "cluster": cluster.url}
        for mode, extra in (("tls12-id", ()), ("tls13-stateful", ("--stateful-tickets",))):
            rates: dict[str, list[float]] = {"single": [], "cluster": []}
            cpu: dict[str, list[float]] = {"single": [], "cluster": []}  # server s/handshake
            with contextlib.ExitStack() as stack:
                ports = {name: stack.enter_context(node(
                    cert, key, *extra, "--redis", url, "--fleet-secret", str(secret),
                    "--redis-namespace", f"bench-{mode}")) for name, url in urls.items()}  # fmt: skip
                for i in range(a.rounds):
                    order = ("single", "cluster") if i % 2 == 0 else ("cluster", "single")
                    for name in order:
                        cpu0 = tree_cpu(PIDS[ports[name]])
                        res = drive([ports[name]], mode.replace("-stateful", ""), a.seconds, 1,
                                    a.threads, True)  # fmt: skip
                        done = sum(1 for _, r in res if r == 1)
                        rates[name].append(done / a.seconds)
                        cpu[name].append((tree_cpu(PIDS[ports[name]]) - cpu0) / max(1, done))
            one, many = median(rates["single"]), median(rates["cluster"])
            spread = [c / s_ for s_, c in zip(rates["single"], rates["cluster"], strict=True)]
            by_cpu = ratio(median(cpu["single"]), median(cpu["cluster"]))
            rows.append([mode, num(one), num(many),
                         f"{ratio(many, one):.2f} ({min(spread):.2f}-{max(spread):.2f})",
                         f"{median(cpu['single']) * 1e3:.2f} / {median(cpu['cluster']) * 1e3:.2f}"
                         f" = {by_cpu:.2f}",
                         "ok" if ratio(many, one) >= CLUSTER_TARGET else "miss"])  # fmt: skip
        for _ in range(2):  # interleaved, the second round kept
            for name, url in urls.items():
                hops[name] = redis_hop(url, secret)
    print(table(["resumed by", "single Redis /s", "Redis Cluster /s", "ratio (range)",
                 "server CPU ms/handshake (single / Cluster = rate ratio it implies)",
                 f">= {CLUSTER_TARGET}"], rows))  # fmt: skip
    print("\nThe Redis hop (one get through the breaker, sealed 180-byte value, 3,000 times;"
          " CPU: this client's own per get):")  # fmt: skip
    for name, ts in hops.items():
        cpu = HOP_CPU[hash(urls[name])] * 1e6
        print(f"  {name}: p50 {pct(ts, 0.5) * 1e6:.0f} us, p99 {pct(ts, 0.99) * 1e6:.0f} us,"
              f" CPU {cpu:.0f} us")  # fmt: skip


# -- soak runs: rotation and failover -------------------------------------------------------
def soak(ports: list[int], modes: Sequence[str], seconds: float) -> Load:
    """Clients resuming on random nodes for ``seconds`` (tests/fleet/load.py), echo nodes."""

    def once(port: int, ctx: ssl.SSLContext,
             session: ssl.SSLSession | None) -> tuple[bool, ssl.SSLSession | None]:  # fmt: skip
        reused, new, _ = connect(port, ctx, session)
        return reused, new

    return Load(ports, modes, context, once, pause=(0.0, 0.05), limit=seconds)


def fallbacks(metrics_ports: Sequence[int]) -> Counter[str]:
    """Fallback reasons summed over the nodes' /metrics."""
    total: Counter[str] = Counter()
    for port in metrics_ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        for m in re.finditer(r'^tessera_resumption_fallbacks_total\{reason="([^"]+)"\} (\S+)$',
                             text, re.MULTILINE):  # fmt: skip
            if float(m.group(2)):
                total[m.group(1)] += int(float(m.group(2)))
    return total


@contextlib.contextmanager
def nodes(cert: Path, key: Path, n: int, *args: str) -> Iterator[tuple[list[int], list[int]]]:
    """``n`` nodes with metrics; yields (ports, metrics ports)."""
    with contextlib.ExitStack() as stack:
        metrics = [free_port() for _ in range(n)]
        ports = [stack.enter_context(node(cert, key, *args, "--metrics", f"127.0.0.1:{m}"))
                 for m in metrics]  # fmt: skip
        yield ports, metrics


def part_rotation(cert: Path, key: Path, redis_url: str, secret: Path,
                  a: argparse.Namespace) -> None:  # fmt: skip
    from tessera.fleet.keyring import FleetKeyring
    from tessera.fleet.keys import KeyPolicy
    from tessera.fleet.redis_keys import RedisKeySource
    from tessera.fleet.redis_url import sync_client
    from tessera.fleet.secret import FleetSecret

    print(f"\n## Rotation soak: 4 nodes, a new ticket key every {a.rotation:g} s, "
          f"{a.soak_seconds:g} s\n")  # fmt: skip
    args = ("--redis", redis_url, "--fleet-secret", str(secret), "--redis-namespace", "soak",
            "--ticket-rotation", str(a.rotation), "--ticket-keep", "2")  # fmt: skip
    reader = RedisKeySource(sync_client(redis_url, 1.0), FleetSecret.load(secret), "soak",
                            FleetKeyring(KeyPolicy()))  # fmt: skip
    seen = {}
    with nodes(cert, key, 4, *args) as (ports, metrics):
        modes = ("tls12-ticket", "tls13") * 3
        with soak(ports, modes, a.soak_seconds) as load:
            stop = time.monotonic() + a.soak_seconds
            while time.monotonic() < stop:
                seen.update((k.name, k) for k in reader.read().keys)
                time.sleep(0.5)
        reasons = fallbacks(metrics)
    keys = sorted(seen.values(), key=lambda k: k.encrypts_from)
    gaps = sum(nxt.encrypts_from != prev.encrypts_until for prev, nxt in itertools.pairwise(keys))
    late = sum(k.encrypts_from - k.created < 0.5 for k in keys[1:])  # lead: 2 x 0.25 s
    counts = load.counts()
    print(table(["connections", "failed", "resumed", "without a ticket",
                 '"ticket key name unknown"', "keys minted", "grid gaps", "published late"],
                [[counts["connections"], counts["failed"], counts["resumed"],
                  counts["without a ticket"], reasons["ticket key name unknown"], len(keys),
                  gaps, late]]))  # fmt: skip
    print(f"fallbacks: {dict(reasons) or 'none'} (a ticket outliving its key's decrypt window "
          "is 'ticket expired', as it should)")  # fmt: skip


def failover_run(kind: str, cert: Path, key: Path, secret: Path) -> list[object]:
    """Three nodes on a fresh Cluster or Sentinel under load; kill the master holding the key
    ring's records (Cluster) or the master (Sentinel); the table row."""
    with (RedisCluster() if kind == "cluster" else RedisSentinel()) as redis, \
         nodes(cert, key, 3, "--redis", redis.url, "--fleet-secret", str(secret)) as (
             ports, metrics):  # fmt: skip
        modes = ("tls12-id", "tls12-id", "tls12-ticket", "tls13")
        with soak(ports, modes, 120) as load:
            load.wait(lambda: sum(c.resumed for c in load.results) >= 100, 60)
            if isinstance(redis, RedisCluster):
                victim = redis.master_of(b"tessera:default:ticketkeys")
            else:
                victim = redis.master()
            killed = time.monotonic()
            victim.kill()
            healed = load.healed_after(killed, 30, 40)
            settled = time.monotonic()
            load.wait(lambda: len(load.since(settled)) >= 50, 20)
        reasons = fallbacks(metrics)
    c = load.counts()
    return [kind, c["connections"], c["failed"], c["offered, not resumed"],
            c["without a ticket"], reasons["ticket key name unknown"], f"{healed:.2f} s",
            dict(reasons)]  # fmt: skip


def part_failover(cert: Path, key: Path, secret: Path, a: argparse.Namespace) -> None:
    print("\n## Master failover under load: 3 nodes, a master killed\n")
    rows = [failover_run(kind, cert, key, secret) for kind in ("cluster", "sentinel")]
    print(table(["Redis", "connections", "failed", "not resumed", "without a ticket",
                 '"ticket key name unknown"', "healed after", "fallbacks"], rows))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--parts",
        default="store,workers,cross,cluster",
        help="store, workers, cross, cluster, rotation, failover",
    )
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=3.0, help="per round")
    p.add_argument("--cross-seconds", type=float, default=6.0, help="per mode")
    p.add_argument("--procs", type=int, default=2, help="client processes")
    p.add_argument("--threads", type=int, default=4, help="threads per client process")
    p.add_argument(
        "--s-time-clients", type=int, default=12, help="openssl s_time clients (workers part)"
    )
    p.add_argument("--rotation", type=float, default=5.0, help="rotation part: key rotation, s")
    p.add_argument("--soak-seconds", type=float, default=180.0, help="rotation part: duration")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    if a.quick:
        a.rounds, a.seconds, a.cross_seconds, a.soak_seconds = 2, 1.5, 2.0, 20.0
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
        if "cluster" in parts:
            part_cluster(cert, key, redis_server.url, secret, a)
        if "rotation" in parts:
            part_rotation(cert, key, redis_server.url, secret, a)
        if "failover" in parts:
            part_failover(cert, key, secret, a)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

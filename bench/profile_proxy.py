"""Where ``tessera proxy``'s CPU goes. The proxy runs under cProfile timed by thread CPU time
(``time.thread_time``: waiting in epoll costs nothing, a system call costs its kernel time),
switched on only around the workload; this process drives it (CPython ``ssl`` clients,
``proxy_backend.py`` behind it), one proxy per workload:

* ``handshakes``: ``--handshakes`` connections, each a TLS handshake, a ping through to the
  backend and close_notify (TLS 1.3 full and resumed, TLS 1.2 full and resumed, in turn);
* ``download`` / ``upload``: ``--size-mib`` MiB through one connection;
* ``split``: no profiler: the CPU per connection of the proxy and of hitch (``/proc``), and of
  the sans-I/O core doing the same connection in memory (thread CPU): the core's part and the
  proxy's own.

For the profiled workloads: the proxy's CPU per handshake / per MB (the profiler slows Python
calls: compare the shares), the CPU inside the sans-I/O core (inclusive: what a faster core
would cut) and outside it (the proxy's own: event loop, sockets, relay, pump), and the top
functions by own time.

    python bench/profile_proxy.py [--handshakes 400] [--size-mib 256] [--top 25]
    python bench/profile_proxy.py --parts handshakes --proxy-args="--loop asyncio"
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import pstats
import signal
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import (
    BENCH_DIR,
    CertFiles,
    client_context,
    environment,
    median,
    table,
    test_certificates,
)
from proxy import bulk, free_port, group_cpu, handshakes, process, terminator_argv

CORE = ("tessera/handshake/", "tessera/record/", "tessera/crypto/", "tessera/messages/",
        "tessera/session/", "tessera/connection.py", "tessera/codec.py", "tessera/config.py",
        "tessera/events.py", "tessera/certs.py", "tessera/observe/")  # fmt: skip
CORE_ENTRIES = (
    "receive_data",
    "send_data",
    "data_to_send",
    "records_to_send",
    "close",
    "provide_session",
    "events",
)  # the connection's API: the core below it
# The proxy under cProfile(thread_time): SIGUSR1 starts profiling, SIGUSR2 stops and writes.
PROFILED = """
import cProfile, signal, sys, time, runpy
profile, out = cProfile.Profile(time.thread_time), sys.argv.pop(1)
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
def stop(*_):
    profile.disable()
    profile.dump_stats(out)
signal.signal(signal.SIGUSR2, stop)
sys.argv[0] = "tessera"
runpy.run_module("tessera.cli.main", run_name="__main__")
"""


def core_time(stats: pstats.Stats) -> float:
    """CPU inside the sans-I/O core: the cumulative time of the connection's API methods called
    from outside the core (front end, proxy)."""
    total = 0.0
    for (filename, _, name), (_, _, _, _, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if not filename.endswith("tessera/connection.py") or name not in CORE_ENTRIES:
            continue
        for (caller_file, _, _), (_, _, _, cum) in callers.items():
            if not any(p in caller_file for p in CORE):
                total += cum
    return total


def workload(name: str, certs: CertFiles, d: Path, a: argparse.Namespace,
             drive: Callable[[int], float]) -> None:  # fmt: skip
    backend, port = free_port(), free_port()
    prof = d / f"{name}.prof"
    argv = terminator_argv("tessera", port, backend, certs, d) + a.proxy_args.split()
    argv = [sys.executable, "-c", PROFILED, str(prof), *argv[3:]]  # (argv[:3]: python -m tessera)
    backend_argv = [sys.executable, str(BENCH_DIR / "proxy_backend.py"), str(backend)]
    with contextlib.ExitStack() as stack:
        stack.enter_context(process(backend_argv, backend, d / f"{name}-backend.log"))
        proc = stack.enter_context(process(argv, port, d / f"{name}.log"))
        handshakes(port, client_context("1.3"), 20, False)  # warm up
        os.kill(proc.pid, signal.SIGUSR1)
        c0 = group_cpu(proc.pid)
        units = drive(port)
        used = group_cpu(proc.pid) - c0
        os.kill(proc.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while not prof.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    stats = pstats.Stats(str(prof))
    total = stats.total_tt or 1.0  # type: ignore[attr-defined]
    core = core_time(stats)
    unit = "handshake" if name == "handshakes" else "MB"
    print(f"\n## {name}: proxy CPU {used / units * 1000:.3f} ms per {unit} (profiled)\n")
    print(f"profiled CPU: {total:.3f} s; inside the sans-I/O core: {core / total:.1%}; the "
          f"proxy's own: {1 - core / total:.1%}\n")  # fmt: skip
    stats.sort_stats("tottime").print_stats(a.top)


# -- the split: the core's CPU per handshake vs the proxy's, and hitch's ------------------------
CASES = (("TLS 1.3 full", "1.3", False), ("TLS 1.3 resumed", "1.3", True),
         ("TLS 1.2 full", "1.2", False), ("TLS 1.2 resumed", "1.2", True))  # fmt: skip


def _call(f: Callable[[], object]) -> bool:
    f()
    return True


def core_cpu(certs: CertFiles, version: str, resume: bool, n: int) -> float:
    """Seconds of thread CPU the sans-I/O server spends per connection, in memory, on what the
    proxy's connections do (the same CPython ssl client: handshake, a ping answered, close_notify
    both ways), with the proxy's defaults (memory cache, rotating ticket keys)."""
    from tessera import CertifiedKey, ServerConfig, ServerConnection
    from tessera.session.keyring import TicketKeyring
    from tessera.session.store import MemoryStore

    config = ServerConfig(certificates=(CertifiedKey.load(certs.cert, certs.key),),
                          session_store=MemoryStore(20000), ticket_keyring=TicketKeyring())  # fmt: skip
    ctx = client_context(version)
    session = None
    spent = 0.0
    for i in range(n + 1):
        server = ServerConnection(config)
        into, out_of = ssl.MemoryBIO(), ssl.MemoryBIO()  # the client's incoming / outgoing
        client = ctx.wrap_bio(into, out_of, server_hostname="localhost", session=session)
        used = 0.0

        def step(
            client_call: Callable[[], object],
            server: ServerConnection = server,
            into: ssl.MemoryBIO = into,
            out_of: ssl.MemoryBIO = out_of,
        ) -> object:
            nonlocal used
            while True:
                try:
                    result = client_call()
                except ssl.SSLWantReadError:
                    result = None
                data = out_of.read()
                t0 = time.thread_time()
                if data:
                    server.receive_data(data)
                for event in server.events():
                    if type(event).__name__ == "ApplicationData":
                        server.send_data(b"!")
                reply = server.data_to_send()
                used += time.thread_time() - t0
                into.write(reply)
                if result is not None or (not data and not reply):
                    return result

        step(functools.partial(_call, client.do_handshake))
        client.write(b"P00000000000000\n")
        step(functools.partial(client.read, 1))
        with contextlib.suppress(ssl.SSLError):
            step(functools.partial(_call, client.unwrap))
        t0 = time.thread_time()
        server.receive_data(out_of.read())
        server.events()
        server.close()
        server.data_to_send()
        used += time.thread_time() - t0
        if i == 0:
            session = client.session if resume else None
        else:
            spent += used
    return spent / n


def part_split(certs: CertFiles, d: Path, a: argparse.Namespace) -> None:
    """Process CPU per handshake of tessera proxy and hitch, and the core's share."""
    backend = free_port()
    ports = {"tessera": free_port(), "hitch": free_port()}
    rows = []
    backend_argv = [sys.executable, str(BENCH_DIR / "proxy_backend.py"), str(backend)]
    with contextlib.ExitStack() as stack:
        stack.enter_context(process(backend_argv, backend, d / "split-backend.log"))
        procs = {t: stack.enter_context(process(terminator_argv(t, p, backend, certs, d), p,
                                                d / f"split-{t}.log"))
                 for t, p in ports.items()}  # fmt: skip
        for label, version, resume in CASES:
            cpu: dict[str, list[float]] = {"tessera": [], "hitch": [], "core": []}
            for r in range(a.rounds):
                for t in ("tessera", "hitch") if r % 2 == 0 else ("hitch", "tessera"):
                    c0 = group_cpu(procs[t].pid)
                    handshakes(ports[t], client_context(version), a.handshakes, resume)
                    cpu[t].append((group_cpu(procs[t].pid) - c0) / a.handshakes)
                cpu["core"].append(core_cpu(certs, version, resume, a.handshakes // 4))
            proxy, hitch, core = (median(cpu[k]) * 1000 for k in ("tessera", "hitch", "core"))
            rows.append([label, f"{proxy:.3f}", f"{hitch:.3f}", f"{proxy / hitch:.2f}x",
                         f"{core:.3f}", f"{proxy - core:.3f}", f"{core / hitch:.2f}x",
                         f"{(proxy - core) / hitch:.2f}x"])  # fmt: skip
    print(f"\n## CPU per connection, ms ({a.rounds} rounds of {a.handshakes}; core: in memory, "
          "thread CPU)\n")  # fmt: skip
    print(table(["case", "proxy", "hitch", "proxy/hitch", "core", "proxy - core",
                 "core/hitch", "(proxy - core)/hitch"], rows))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--handshakes", type=int, default=400)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--parts", default="split,handshakes,download,upload")
    ap.add_argument("--rounds", type=int, default=3, help="split: rounds, interleaved")
    ap.add_argument("--proxy-args", default="", help="more tessera proxy options (--loop ...)")
    a = ap.parse_args()
    print(f"# tessera proxy under cProfile (thread CPU time)\n\n{environment()}")

    def hs(port: int) -> float:
        n = 0
        for version, resume in (("1.3", False), ("1.3", True), ("1.2", False), ("1.2", True)):
            handshakes(port, client_context(version), a.handshakes // 4, resume)
            n += a.handshakes // 4
        return n

    def transfer(direction: str) -> Callable[[int], float]:
        def run(port: int) -> float:
            bulk(port, direction, a.size_mib << 20)
            return (a.size_mib << 20) / 1e6

        return run

    drives = {"handshakes": hs, "download": transfer("server->client"),
              "upload": transfer("client->server")}  # fmt: skip
    with test_certificates(("ecdsa",)) as certs, tempfile.TemporaryDirectory() as tmp:
        for part in a.parts.split(","):
            if part == "split":
                part_split(certs["ecdsa"], Path(tmp), a)
            else:
                workload(part, certs["ecdsa"], Path(tmp), a, drives[part])


if __name__ == "__main__":
    main()

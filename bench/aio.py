"""asyncio servers: tessera (``tessera.aio.start_server``) vs CPython ``ssl``
(``asyncio.start_server(ssl=...)``), the same handler, the same loop kind, in the same run.

    python bench/aio.py                  # about a minute
    python bench/aio.py --quick          # a smoke test
    python bench/aio.py --loop uvloop    # both servers under uvloop

Each server runs in its own process (``aio_server.py``) and reports its process CPU between
rounds. This process is the client for both: CPython ``ssl``, one connection after another,
verification off. Handshake cases: TLS 1.3 full and resumed (psk_dhe_ke, a ticket of the round's
first connection), TLS 1.2 full and resumed (RFC 5077 ticket); each connection is a handshake,
a 1-byte ping and a close_notify exchange. Bulk: TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256, the
server sending (``server->client``) or receiving (``client->server``) ``--size-mib``.

Printed: server CPU per connection (ms) and handshakes/s (client wall clock), MB/s (client wall
clock) and server-CPU MB/s, medians over rounds with min..max; then the ratios tessera/ssl with
the targets (full and resumed handshakes: CPU <= 1.5x; bulk: MB/s >= 0.5x). Rounds alternate
the order of the servers so background load hits both alike.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import (
    IMPLS,
    ServerProcess,
    client_context,
    close_tls,
    environment,
    handshake_once,
    median,
    open_tls,
    ratio,
    spread,
    table,
    test_certificates,
    transfer,
)

AIO_SERVER = Path(__file__).resolve().parent / "aio_server.py"
HANDSHAKE_MAX_RATIO = 1.5
BULK_MIN_RATIO = 0.5
CHUNK = 1 << 20


class AioServerProcess(ServerProcess):
    """``aio_server.py`` in its own process (the control protocol of ``server.py``)."""

    def __init__(self, impl: str, cert: Path, key: Path, version: str, loop: str) -> None:
        self.impl = impl
        argv = [sys.executable, str(AIO_SERVER), "--impl", impl, "--cert", str(cert),
                "--key", str(key), "--version", version, "--loop", loop]  # fmt: skip
        self._start(argv)


@dataclass(frozen=True)
class Case:
    name: str
    version: str
    resume: bool


CASES = (
    Case("TLS 1.3 full", "1.3", False),
    Case("TLS 1.3 resumed (psk_dhe_ke)", "1.3", True),
    Case("TLS 1.2 full", "1.2", False),
    Case("TLS 1.2 resumed (ticket)", "1.2", True),
)


def handshake_round(
    srv: AioServerProcess, case: Case, ctx: ssl.SSLContext, count: int, seconds: float
) -> tuple[float, float, int, int]:
    """(server CPU ms per connection, connections/s, connections, resumed by the server)."""
    session = None
    if case.resume:
        _, session = handshake_once(srv.port, ctx, ping=True)
    srv.stats()
    n = 0
    t0 = time.perf_counter()
    while n < count and time.perf_counter() - t0 < seconds:
        handshake_once(srv.port, ctx, session, ping=True)
        n += 1
    wall = time.perf_counter() - t0
    st = srv.stats()
    if st["failures"] or int(st["conns"]) != n:  # type: ignore[call-overload]
        raise SystemExit(f"{srv.impl} {case.name}: server reported {st}")
    cpu = float(st["cpu_total"])  # type: ignore[arg-type]
    return 1000 * cpu / n, n / wall, n, int(st["resumed"])  # type: ignore[call-overload]


def bulk_run(
    srv: AioServerProcess, ctx: ssl.SSLContext, direction: str, size: int, payload: bytes
) -> tuple[float, float]:
    """(client MB/s, server-CPU MB/s) for one transfer of ``size`` bytes."""
    s = open_tls(srv.port, ctx)
    srv.stats()
    try:
        wall = transfer(s, direction, size, payload)
    finally:
        close_tls(s)
    time.sleep(0.02)  # let the server finish the close before its CPU is read
    st = srv.stats()
    cpu = float(st["cpu_total"])  # type: ignore[arg-type]
    if st["failures"] or int(st["bytes"]) != size:  # type: ignore[call-overload]
        raise SystemExit(f"{srv.impl} {direction}: server reported {st}")
    return size / 1e6 / wall, size / 1e6 / cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 rounds x 50 connections, 8 MiB")
    p.add_argument("--rounds", type=int, help="rounds per case and server (default 7)")
    p.add_argument("--handshakes", type=int, help="connections per round (default 200)")
    p.add_argument("--seconds", type=float, default=10.0, help="time cap per round")
    p.add_argument("--size-mib", type=int, help="bulk payload per run (default 32)")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--skip-bulk", action="store_true")
    args = p.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    count = args.handshakes or (50 if args.quick else 200)
    size = (args.size_mib or (8 if args.quick else 32)) << 20

    print(f"asyncio server benchmark ({args.loop} loop): {environment()}")
    print("the box may be shared with other work: compare the ratios, read the ranges")
    hs: dict[tuple[str, Case], list[tuple[float, float, int, int]]] = {
        (i, c): [] for i in IMPLS for c in CASES
    }
    directions = ("server->client", "client->server")
    bulk: dict[tuple[str, str], list[tuple[float, float]]] = {
        (i, d): [] for i in IMPLS for d in directions
    }
    payload = os.urandom(CHUNK)
    t_start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        files = stack.enter_context(test_certificates(["ecdsa"]))["ecdsa"]
        servers = {
            (impl, v): stack.enter_context(
                AioServerProcess(impl, files.cert, files.key, v, args.loop)
            )
            for impl in IMPLS
            for v in ("1.2", "1.3")
        }
        contexts = {v: client_context(v, "ecdsa") for v in ("1.2", "1.3")}
        for case in CASES:  # warm-up
            for impl in IMPLS:
                handshake_round(servers[impl, case.version], case, contexts[case.version], 10, 5)
        for r in range(rounds):
            order = IMPLS if r % 2 == 0 else IMPLS[::-1]
            for case in CASES:
                for impl in order:
                    srv = servers[impl, case.version]
                    hs[impl, case].append(
                        handshake_round(srv, case, contexts[case.version], count, args.seconds)
                    )
            if not args.skip_bulk:
                for d in directions:
                    for impl in order:
                        bulk[impl, d].append(
                            bulk_run(servers[impl, "1.2"], contexts["1.2"], d, size, payload)
                        )
            print(f"  round {r + 1}/{rounds} done ({time.perf_counter() - t_start:.0f} s)")
            sys.stdout.flush()
    report(hs, bulk, directions, args.skip_bulk)
    print(f"total {time.perf_counter() - t_start:.0f} s")


def report(
    hs: dict[tuple[str, Case], list[tuple[float, float, int, int]]],
    bulk: dict[tuple[str, str], list[tuple[float, float]]],
    directions: tuple[str, ...],
    skip_bulk: bool,
) -> None:
    rows = []
    ratio_rows = []
    for case in CASES:
        cpu_med = {}
        for impl in IMPLS:
            samples = hs[impl, case]
            cpus = [s[0] for s in samples]
            rates = [s[1] for s in samples]
            total = sum(s[2] for s in samples)
            resumed = sum(s[3] for s in samples)
            cpu_med[impl] = median(cpus)
            rows.append([case.name, impl, total, f"{median(rates):.0f}", f"{median(cpus):.3f}",
                         spread(cpus), f"{100 * resumed / total:.0f}%"])  # fmt: skip
            if resumed != (total if case.resume else 0):
                print(f"WARNING: {impl} {case.name}: {resumed} of {total} resumed")
        per_round = [
            ratio(a[0], b[0]) for a, b in zip(hs["tessera", case], hs["openssl", case], strict=True)
        ]
        r = ratio(cpu_med["tessera"], cpu_med["openssl"])
        ok = "ok" if r <= HANDSHAKE_MAX_RATIO else "MISS"
        ratio_rows.append([case.name, "server CPU", f"{r:.2f}", spread(per_round),
                           f"<= {HANDSHAKE_MAX_RATIO}", ok])  # fmt: skip
    print()
    print("Handshakes: server CPU per connection (handshake, ping, close_notify exchange)")
    print(table(["case", "server", "conns", "conn/s", "cpu ms", "spread", "resumed"], rows))
    if not skip_bulk:
        rows = []
        for d in directions:
            med = {}
            for impl in IMPLS:
                rates = [s[0] for s in bulk[impl, d]]
                cpu_rates = [s[1] for s in bulk[impl, d]]
                med[impl] = median(rates)
                rows.append([d, impl, f"{median(rates):.0f}", spread(rates),
                             f"{median(cpu_rates):.0f}"])  # fmt: skip
            per_round = [
                ratio(a[0], b[0])
                for a, b in zip(bulk["tessera", d], bulk["openssl", d], strict=True)
            ]
            r = ratio(med["tessera"], med["openssl"])
            ok = "ok" if r >= BULK_MIN_RATIO else "MISS"
            ratio_rows.append([f"bulk {d}", "MB/s", f"{r:.2f}", spread(per_round),
                               f">= {BULK_MIN_RATIO}", ok])  # fmt: skip
        print()
        print("Bulk, TLS 1.2 AES-128-GCM: MB/s (client wall clock) and server-CPU MB/s")
        print(table(["direction", "server", "MB/s", "spread", "server-CPU MB/s"], rows))
    print()
    print("Ratios tessera/ssl (median of rounds; spread = per-round ratios min..max)")
    print(table(["case", "measure", "ratio", "spread", "target", ""], ratio_rows))


if __name__ == "__main__":
    main()

"""Bulk throughput over loopback: tessera vs CPython ssl (OpenSSL), TLS 1.2
ECDHE-ECDSA-AES128-GCM-SHA256 (``--tls13``: TLS_AES_128_GCM_SHA256), in both directions, the
same CPython ssl client for both.

    python bench/throughput.py            # 64 MiB x 31 runs per direction and server
    python bench/throughput.py --quick    # 16 MiB x 5 runs, a smoke test
    python bench/throughput.py --size-mib 128 --runs 9

``server->client``: the server writes the payload in 1 MiB ``sendall`` calls, the client reads
with ``recv_into``. ``client->server``: the client writes 1 MiB ``sendall`` calls, the server
reads (``recv_into`` for ssl, ``recv`` for tessera, which has no ``recv_into``) and answers one
byte when it has everything. Wall clock is the client's, from the request to the last byte (or
the answer); the handshake is excluded. MB is 10^6 bytes.

"server CPU MB/s" is bytes / server CPU seconds for the data phase: what the server could do if
it had a core to itself. It separates the server's cost from the client's (the client is the
same CPython ssl program for both, so any client limit shows in both rows).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import ssl
import time

from common import (
    IMPLS,
    ServerProcess,
    client_context,
    close_tls,
    environment,
    median,
    open_tls,
    ratio,
    spread,
    table,
    test_certificates,
    transfer,
)

TARGET_RATIO = 0.5  # tessera >= 50% of CPython ssl
CHUNK = 1 << 20
DIRECTIONS = ("server->client", "client->server")


def one_run(
    srv: ServerProcess, ctx: ssl.SSLContext, direction: str, size: int, payload: bytes
) -> tuple[float, float]:
    """(client wall seconds, server data-phase CPU seconds) for one transfer of ``size`` bytes."""
    srv.stats()  # reset the server's counters (it reports the data phase separately)
    s = open_tls(srv.port, ctx)
    try:
        wall = transfer(s, direction, size, payload)
    finally:
        close_tls(s)
    st = srv.stats()
    if st["failures"] or st["bytes"] != size:
        raise SystemExit(f"{srv.impl} {direction}: server error {st}")
    return wall, float(st["cpu_data"])  # type: ignore[arg-type]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="16 MiB x 5 runs")
    p.add_argument("--size-mib", type=int, help="payload per run in MiB (default 64)")
    p.add_argument("--runs", type=int, help="runs per direction and server (default 31)")
    p.add_argument("--directions", default=",".join(DIRECTIONS))
    p.add_argument("--tls13", action="store_true", help="TLS 1.3 instead of TLS 1.2")
    p.add_argument("--max-seconds", type=float, default=300.0, help="stop starting runs after")
    args = p.parse_args()
    size = (args.size_mib or (16 if args.quick else 64)) << 20
    runs = args.runs or (5 if args.quick else 31)
    directions = [d for d in args.directions.split(",") if d]
    version = "1.3" if args.tls13 else "1.2"

    print(f"throughput benchmark: {environment()}")
    print(f"TLS {version}, ECDSA P-256 certificate, {size >> 20} MiB per run, {runs} runs")
    payload = os.urandom(CHUNK)
    walls: dict[tuple[str, str], list[float]] = {(i, d): [] for i in IMPLS for d in directions}
    cpus: dict[tuple[str, str], list[float]] = {(i, d): [] for i in IMPLS for d in directions}
    t_start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        certs = stack.enter_context(test_certificates(["ecdsa"]))
        servers = {
            i: stack.enter_context(ServerProcess(i, certs["ecdsa"], version=version)) for i in IMPLS
        }
        ctx = client_context(version, "ecdsa")
        for impl in IMPLS:  # warm-up, not recorded
            for d in directions:
                one_run(servers[impl], ctx, d, 1 << 20, payload)
        s = open_tls(servers["tessera"].port, ctx)
        negotiated = f"{s.version()} {s.cipher()[0]}"  # type: ignore[index]
        close_tls(s)
        for r in range(runs):
            if time.perf_counter() - t_start > args.max_seconds:
                print(f"  stopping after {r} runs (--max-seconds)")
                break
            order = IMPLS if r % 2 == 0 else IMPLS[::-1]
            for d in directions:
                for impl in order:
                    wall, cpu = one_run(servers[impl], ctx, d, size, payload)
                    walls[impl, d].append(wall)
                    cpus[impl, d].append(cpu)
            print(f"  run {r + 1}/{runs} done ({time.perf_counter() - t_start:.0f} s)", flush=True)

    mb = size / 1e6
    rows = []
    ratio_rows = []
    for d in directions:
        med = {}
        for impl in IMPLS:
            rates = [mb / w for w in walls[impl, d]]
            cpu_rates = [mb / c for c in cpus[impl, d] if c > 0]
            med[impl] = (median(rates), median(cpu_rates))
            cpu_ms_per_mib = [1000 * c / (size >> 20) for c in cpus[impl, d]]
            rows.append(
                [
                    d,
                    impl,
                    len(rates),
                    f"{median(rates):.0f}",
                    spread(rates),
                    f"{median(cpu_rates):.0f}",
                    f"{median(cpu_ms_per_mib):.2f}",
                ]
            )
        r_wall = ratio(med["tessera"][0], med["openssl"][0])
        r_cpu = ratio(med["tessera"][1], med["openssl"][1])
        ratio_rows.append(
            [
                d,
                f"{r_wall:.2f}",
                f"{r_cpu:.2f}",
                f">= {TARGET_RATIO}",
                "ok" if r_wall >= TARGET_RATIO else "MISS",
            ]
        )
    print()
    print(f"negotiated: {negotiated}")
    print(
        table(
            [
                "direction",
                "server",
                "runs",
                "MB/s",
                "spread",
                "server CPU MB/s",
                "server CPU ms/MiB",
            ],
            rows,
        )
    )
    print()
    print("Ratios tessera/OpenSSL (higher is better; the target applies to MB/s)")
    print(table(["direction", "MB/s ratio", "CPU MB/s ratio", "target", "verdict"], ratio_rows))
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()

"""Session cache density: sessions per MiB of resident memory, tessera vs OpenSSL.

    python bench/cache_memory.py            # about two minutes
    python bench/cache_memory.py --quick    # a smoke test, under ~20 s

1. tessera ``MemoryStore``, in a fresh interpreter per variant: RSS growth (/proc/self/statm)
   over 100,000 ``put`` calls of real TLS 1.2 session encodings, exactly as
   ``handshake/server12.py`` stores them: a 32-byte random session id as the key,
   ``ServerSession(...).to_bytes()`` (48-byte master secret, EMS, lifetime = session_timeout)
   as the value, ``session_timeout + EXPIRED_GRACE`` as the ttl. Variants: SNI "localhost"
   (the target case), a 30-character SNI, and no SNI.
2. OpenSSL's internal server session cache, through CPython ``ssl``: RSS growth of the server
   process over N full handshakes (distinct sessions; the client sets OP_NO_TICKET, since an
   OpenSSL server that issues a ticket does not cache the session), minus the growth of a
   baseline server whose cache is off (SSL_CTX_set_session_cache_mode via ctypes), divided by
   the sessions ``session_stats()`` says were added.
3. The same over the network for tessera's server process (MemoryStore on vs no store), as a
   cross-check of (1) that includes everything a real handshake leaves behind.

RSS moves in pages and the allocators keep freed memory, so small N are noisy; the default N
are large enough for two significant digits.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import time

from common import (
    ServerProcess,
    client_context,
    environment,
    handshake_once,
    num,
    table,
    test_certificates,
)

TARGET_PER_MIB = 4000
PAGE = os.sysconf("SC_PAGE_SIZE")
LONG_SNI = "shop-eu-west.example-store.com"  # 30 characters
assert len(LONG_SNI) == 30


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


# -- 1. tessera MemoryStore, in-process (run in a child interpreter) ---------------------------
def store_child(n: int, sni: str | None) -> dict[str, object]:
    from tessera import MemoryStore, ProtocolVersion, ServerSession
    from tessera.handshake.server12 import EXPIRED_GRACE

    session_timeout = 300.0  # ServerConfig's default
    suite = 0xC02B  # TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256

    def session_bytes() -> bytes:
        return ServerSession(
            version=ProtocolVersion.TLS1_2,
            cipher_suite=suite,
            secret=os.urandom(48),
            extended_master_secret=True,
            created=time.time(),
            lifetime=int(session_timeout),
            server_name=sni,
            alpn=None,
            peer_chain=(),
        ).to_bytes()

    sample = session_bytes()
    store = MemoryStore(max_entries=n)
    gc.collect()
    before = rss_bytes()
    t0 = time.perf_counter()
    for _ in range(n):
        store.put(os.urandom(32), session_bytes(), session_timeout + EXPIRED_GRACE)
    elapsed = time.perf_counter() - t0
    gc.collect()
    after = rss_bytes()
    data = getattr(store, "_data", None)  # MemoryStore internals, for the entry size only
    entry = next(iter(data)) if data else b""  # one stored object (key, expiry and value)
    assert len(store) == n and store.evictions == 0
    return {
        "n": n,
        "growth": after - before,
        "value_len": len(sample),
        "entry_len": len(entry),
        "entry_sizeof": sys.getsizeof(entry),
        "dict_sizeof": sys.getsizeof(data) if data is not None else 0,
        "put_us": 1e6 * elapsed / n,
    }


def measure_store(n: int, sni: str | None) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, "--child-store", str(n), "--sni", sni or ""],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


# -- 2 and 3. a server process, over the network -----------------------------------------------
def measure_server(impl: str, certs: object, n: int, warmup: int, cache: bool) -> dict[str, float]:
    """RSS growth of a server process over ``n`` full handshakes (after ``warmup``)."""
    ctx = client_context("1.2", "ecdsa", tickets=False)
    deadline = time.monotonic() + 600
    with ServerProcess(impl, certs, cache=cache, cache_size=n + warmup + 100) as srv:  # type: ignore[arg-type]
        for _ in range(warmup):
            handshake_once(srv.port, ctx)
        before = srv.command("rss")
        done = 0
        while done < n and time.monotonic() < deadline:
            handshake_once(srv.port, ctx)
            done += 1
        after = srv.command("rss")
        st = srv.stats()
    if st["failures"]:
        raise SystemExit(f"{impl}: {st['failures']} failed handshakes: {st['first_error']}")
    return {
        "n": done,
        "growth": 1024 * (int(after["rss_kib"]) - int(before["rss_kib"])),  # type: ignore[call-overload]
        "entries": int(after["entries"]) - int(before["entries"]),  # type: ignore[call-overload]
    }


def server_row(
    label: str, impl: str, certs: object, n: int, warmup: int
) -> tuple[list[object], float]:
    on = measure_server(impl, certs, n, warmup, cache=True)
    off = measure_server(impl, certs, n, warmup, cache=False)
    cached = on["entries"]
    extra = on["growth"] - off["growth"]
    per = extra / cached if cached else float("nan")
    per_mib = (1 << 20) / per if per > 0 else float("nan")
    row = [
        label,
        int(cached),
        f"{on['growth'] / 1024:.0f} - {off['growth'] / 1024:.0f}",
        num(per),
        num(per_mib),
    ]
    return row, per_mib


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer sessions, a smoke test")
    p.add_argument("--sessions", type=int, help="MemoryStore sessions (default 100,000)")
    p.add_argument(
        "--handshakes",
        type=int,
        help="full handshakes per server process (default 20,000; OpenSSL's cache holds 20,480)",
    )
    p.add_argument("--skip-network", action="store_true", help="only the in-process store")
    p.add_argument("--child-store", type=int, help=argparse.SUPPRESS)
    p.add_argument("--sni", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_store:
        print(json.dumps(store_child(args.child_store, args.sni or None)))
        return

    n_store = args.sessions or (100_000 if not args.quick else 50_000)
    n_hs = args.handshakes or (20_000 if not args.quick else 1_500)
    warmup = 300 if not args.quick else 100
    print(f"session cache memory: {environment()}")
    t_start = time.perf_counter()

    rows = []
    verdicts = []
    for label, sni in (
        ("SNI 'localhost'", "localhost"),
        (f"SNI {len(LONG_SNI)} chars", LONG_SNI),
        ("no SNI", None),
    ):
        r = measure_store(n_store, sni)
        per = int(r["growth"]) / int(r["n"])  # type: ignore[call-overload]
        per_mib = (1 << 20) / per
        rows.append(
            [
                f"tessera MemoryStore, {label}",
                r["n"],
                f"{int(r['growth']) / 1024:.0f}",  # type: ignore[call-overload]
                r["value_len"],
                f"{r['entry_len']} ({r['entry_sizeof']})",
                num(per),
                num(per_mib),
                f"{float(r['put_us']):.1f}",  # type: ignore[arg-type]
            ]
        )
        if sni == "localhost":
            verdicts.append(
                f"tessera MemoryStore, SNI 'localhost': {per_mib:.0f} sessions/MiB, target >= "
                f"{TARGET_PER_MIB}: {'ok' if per_mib >= TARGET_PER_MIB else 'MISS'}"
            )
    print()
    print("1. tessera MemoryStore, in-process (a fresh interpreter per row)")
    print(
        table(
            [
                "variant",
                "sessions",
                "RSS growth KiB",
                "value B",
                "entry B (sizeof)",
                "B/session",
                "sessions/MiB",
                "put us",
            ],
            rows,
        )
    )

    if not args.skip_network:
        print()
        print(
            f"2./3. server processes over the network: {n_hs} full TLS 1.2 handshakes each "
            f"(after {warmup} warm-up), client OP_NO_TICKET; growth = cache on - cache off"
        )
        net_rows = []
        with test_certificates(["ecdsa"]) as certs:
            for label, impl in (
                ("OpenSSL server cache (CPython ssl)", "openssl"),
                ("tessera server, MemoryStore", "tessera"),
            ):
                row, per_mib = server_row(label, impl, certs["ecdsa"], n_hs, warmup)
                net_rows.append(row)
                verdicts.append(f"{label}: {per_mib:.0f} sessions/MiB")
                print(f"  {label}: done ({time.perf_counter() - t_start:.0f} s)", flush=True)
        print(
            table(
                ["server", "sessions added", "RSS growth KiB", "B/session", "sessions/MiB"],
                net_rows,
            )
        )
    print()
    for v in verdicts:
        print(v)
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()

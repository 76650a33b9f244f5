"""Where tessera's server spends its time: cProfile of the server side of TLS 1.2 handshakes
(full ECDHE-ECDSA, resumed by session id, resumed by ticket), of TLS 1.3 handshakes (``full13``,
``psk13``: psk_dhe_ke) and of the bulk data path.

    python bench/profile_tessera.py                 # all scenarios, top 15 functions each
    python bench/profile_tessera.py --quick
    python bench/profile_tessera.py --scenarios full,resume-ticket --top 25 --save /tmp/prof

Everything runs in this one process, in memory, with no sockets: the peer is CPython ``ssl``
over ``MemoryBIO``s and the profiler is on only while tessera's server code runs, so neither the
client's work nor waiting shows up, and the profiler keeps its cheap wall-clock timer.

* handshakes: the sans-I/O ``ServerConnection`` (``receive_data`` / ``events`` /
  ``data_to_send``, then ``close``), exactly what ``TLSSocket`` calls between socket reads;
* bulk: a real ``TLSSocket`` over an in-memory stand-in for the socket (``sendall`` discards,
  ``recv`` hands out ciphertext the client produced beforehand), 1 MiB ``sendall`` calls and
  ``recv(2**18)`` calls, as in throughput.py.

Before the profiles it prints the same scenarios timed without the profiler, tessera against an
OpenSSL server in the same harness (``SSLObject`` over ``MemoryBIO``): the protocol cost alone,
without the kernel's TCP work that both servers pay in handshake.py. cProfile slows Python
code much more than C code (OpenSSL, hashlib, AES-GCM), so read the profiles as "where the
Python time goes" and the timing table for the real costs.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import (
    BENCH_DIR,
    SNI,
    CertFiles,
    client_context,
    environment,
    in_memory_servers,
    median,
    num,
    ratio,
    table,
    test_certificates,
)

HANDSHAKES = {  # name: (TLS version, client offers tickets, how it resumes)
    "full": ("1.2", True, None),
    "resume-id": ("1.2", False, "id"),
    "resume-ticket": ("1.2", True, "ticket"),
    "full13": ("1.3", True, None),
    "psk13": ("1.3", True, "psk"),
}
BULK = ("server->client", "client->server")
CHUNK = 1 << 20
RECV_SIZE = 1 << 18


# -- the two servers, sans-I/O ------------------------------------------------------------------
class MemPeer:
    """A CPython ssl endpoint over memory BIOs (the client, or the OpenSSL server)."""

    def __init__(
        self,
        ctx: ssl.SSLContext,
        server_side: bool = False,
        session: ssl.SSLSession | None = None,
    ) -> None:
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(
            self.inc,
            self.out,
            server_side=server_side,
            server_hostname=None if server_side else SNI,
            session=session,
        )
        self.done = False

    def step(self, data: bytes) -> bytes:
        if data:
            self.inc.write(data)
        if not self.done:
            try:
                self.obj.do_handshake()
                self.done = True
            except ssl.SSLWantReadError:
                pass
        elif data and not self.obj.server_side:
            # TLS 1.3 tickets come after the handshake: a read processes them.
            with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                self.obj.read(1)
        return self.out.read()

    def close(self) -> bytes:
        with contextlib.suppress(ssl.SSLWantReadError):
            self.obj.unwrap()  # close_notify; OpenSSL drops sessions of unclean shutdowns
        return self.out.read()


class TesseraEnd:
    def __init__(self, config: object) -> None:
        from tessera import ServerConnection

        self.conn = ServerConnection(config)  # type: ignore[arg-type]

    @property
    def done(self) -> bool:
        return self.conn.handshake_complete

    def step(self, data: bytes) -> bytes:
        if data:
            self.conn.receive_data(data)
            self.conn.events()
        return self.conn.data_to_send()

    def close(self) -> bytes:
        self.conn.close()
        return self.conn.data_to_send()


class OpenSSLEnd(MemPeer):
    def __init__(self, ctx: ssl.SSLContext) -> None:
        super().__init__(ctx, server_side=True)


def servers(
    certs: CertFiles, version: str = "1.2"
) -> dict[str, Callable[[], TesseraEnd | OpenSSLEnd]]:
    config, sctx = in_memory_servers(certs, version)
    return {"tessera": lambda: TesseraEnd(config), "openssl": lambda: OpenSSLEnd(sctx)}


class Timer:
    """Accumulates the time spent in server code (and profiles it, if given a profiler)."""

    def __init__(self, prof: cProfile.Profile | None = None) -> None:
        self.prof = prof
        self.total = 0.0

    def run(self, fn: Callable[[], bytes]) -> bytes:
        t0 = time.perf_counter()
        if self.prof is not None:
            self.prof.enable()
        try:
            return fn()
        finally:
            if self.prof is not None:
                self.prof.disable()
            self.total += time.perf_counter() - t0


def handshake(
    make_server: Callable[[], TesseraEnd | OpenSSLEnd],
    cctx: ssl.SSLContext,
    session: ssl.SSLSession | None,
    timer: Timer,
) -> tuple[MemPeer, TesseraEnd | OpenSSLEnd]:
    client = MemPeer(cctx, session=session)
    data = client.step(b"")
    server: list[TesseraEnd | OpenSSLEnd] = []

    def first() -> bytes:
        server.append(make_server())
        return server[0].step(data)

    out = timer.run(first)
    srv = server[0]
    for _ in range(8):
        data = client.step(out)
        if srv.done and client.done and not data:
            break
        out = timer.run(lambda d=data: srv.step(d))  # type: ignore[misc]
    else:
        raise RuntimeError("the in-memory handshake did not finish")
    return client, srv


def handshake_batch(
    make_server: Callable[[], TesseraEnd | OpenSSLEnd],
    name: str,
    certs: CertFiles,
    n: int,
    prof: cProfile.Profile | None = None,
) -> tuple[float, int]:
    """(server seconds per handshake, resumed count) over ``n`` handshakes."""
    version, tickets, resume = HANDSHAKES[name]
    cctx = client_context(version, "ecdsa", tickets=tickets)
    session = None
    if resume is not None:
        client, srv = handshake(make_server, cctx, None, Timer())
        session = client.obj.session
        srv.close()
    timer = Timer(prof)
    resumed = 0
    for _ in range(n):
        client, srv = handshake(make_server, cctx, session, timer)
        timer.run(srv.close)
        resumed += client.obj.session_reused
    return timer.total / n, resumed


# -- bulk ---------------------------------------------------------------------------------------
class MemSocket:
    """What TLSSocket needs of a socket, in memory: sendall discards (counting), recv hands out
    ``incoming`` in pieces of at most the requested size."""

    def __init__(self, incoming: bytes = b"") -> None:
        self.sent = 0
        self.first_sent = b""
        self._in = memoryview(incoming)
        self._pos = 0

    def sendall(self, data: bytes) -> None:
        if not self.first_sent:
            self.first_sent = bytes(data)
        self.sent += len(data)

    def sendmsg(self, buffers: list[bytes]) -> int:
        n = 0
        for b in buffers:
            self.sendall(b)
            n += len(b)
        return n

    def recv(self, n: int) -> bytes:
        piece = bytes(self._in[self._pos : self._pos + n])
        self._pos += len(piece)
        return piece

    def recv_into(self, buf: bytearray) -> int:
        n = min(len(buf), len(self._in) - self._pos)
        buf[:n] = self._in[self._pos : self._pos + n]
        self._pos += n
        return n

    def settimeout(self, t: float | None) -> None:
        pass

    def gettimeout(self) -> float | None:
        return None

    def close(self) -> None:
        pass


def bulk_run(
    impl: str,
    make_server: Callable[[], TesseraEnd | OpenSSLEnd],
    direction: str,
    size: int,
    payload: bytes,
    prof: cProfile.Profile | None = None,
) -> float:
    """Server seconds to move ``size`` bytes in ``direction`` (after an untimed handshake)."""
    from tessera import TLSSocket

    client, srv = handshake(make_server, client_context("1.2", "ecdsa"), None, Timer())
    timer = Timer(prof)
    chunks = size // CHUNK
    if direction == "client->server":
        pieces = []
        for _ in range(chunks):
            client.obj.write(payload)
            pieces.append(client.out.read())
        ciphertext = b"".join(pieces)
        del pieces
    if isinstance(srv, TesseraEnd):
        sock = MemSocket(ciphertext if direction == "client->server" else b"")
        tls = TLSSocket(sock, srv.conn, None)  # type: ignore[arg-type]

        def send_all() -> bytes:
            for _ in range(chunks):
                tls.sendall(payload)
            return b""

        def recv_all() -> bytes:
            got = 0
            while got < size:
                data = tls.recv(RECV_SIZE)
                if not data:
                    raise RuntimeError(f"tessera: stream ended after {got} bytes")
                got += len(data)
            return b""

        timer.run(send_all if direction == "server->client" else recv_all)
        if direction == "server->client":  # spot check: the client can read what was sent
            client.inc.write(sock.first_sent[: 5 + 8 + 16384 + 16])
            assert client.obj.read(16384) == payload[:16384], "tessera sent garbage"
    else:
        obj, out, inc = srv.obj, srv.out, srv.inc
        buf = bytearray(RECV_SIZE)

        def ossl_send() -> bytes:
            for _ in range(chunks):
                obj.write(payload)
                out.read()
            return b""

        def ossl_recv() -> bytes:
            got = 0
            view = memoryview(ciphertext)
            for pos in range(0, len(ciphertext), RECV_SIZE):
                inc.write(view[pos : pos + RECV_SIZE])
                while True:
                    try:
                        got += obj.read(RECV_SIZE, buf)
                    except ssl.SSLWantReadError:
                        break
            if got != size:
                raise RuntimeError(f"openssl: got {got} of {size} bytes")
            return b""

        timer.run(ossl_send if direction == "server->client" else ossl_recv)
    return timer.total


# -- output -------------------------------------------------------------------------------------
def _short(fn: str) -> str:
    """``tessera/handshake/server.py`` rather than ``server.py`` (strip_dirs would make several
    tessera modules look alike), ``bench/...`` for ours, the base name otherwise."""
    if "/tessera/" in fn:
        return "tessera/" + fn.rsplit("/tessera/", 1)[1]
    if fn.startswith(str(BENCH_DIR)):
        return "bench/" + Path(fn).name
    return Path(fn).name if "/" in fn else fn


def print_profile(path: Path, top: int) -> None:
    def key(k: tuple[str, int, str]) -> tuple[str, int, str]:
        return (_short(k[0]), k[1], k[2])

    for order in ("cumulative", "tottime"):
        stats = pstats.Stats(str(path), stream=sys.stdout)
        raw = stats.stats  # type: ignore[attr-defined]
        stats.stats = {  # type: ignore[attr-defined]
            key(k): (cc, nc, tt, ct, {key(c): v for c, v in callers.items()})
            for k, (cc, nc, tt, ct, callers) in raw.items()
        }
        stats.fcn_list = None  # type: ignore[attr-defined]
        print(f"--- top {top} by {order}")
        stats.sort_stats(order).print_stats(top)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--scenarios",
        default=",".join([*HANDSHAKES, *BULK]),
        help="comma-separated: " + ",".join([*HANDSHAKES, *BULK]),
    )
    p.add_argument("--handshakes", type=int, help="handshakes per scenario (default 1000)")
    p.add_argument("--size-mib", type=int, help="bulk payload (default 64)")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--save", type=Path, help="keep the .prof files in this directory")
    args = p.parse_args()
    n = args.handshakes or (200 if args.quick else 1000)
    size = (args.size_mib or (16 if args.quick else 64)) << 20
    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in scenarios:
        if s not in HANDSHAKES and s not in BULK:
            raise SystemExit(f"unknown scenario {s!r}")
    out_dir = args.save or Path(tempfile.mkdtemp(prefix="tessera-prof-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = os.urandom(CHUNK)
    print(f"tessera server profile (in memory, no sockets): {environment()}")
    t_start = time.perf_counter()

    with test_certificates(["ecdsa"]) as certs:
        by_version = {v: servers(certs["ecdsa"], v) for v in ("1.2", "1.3")}

        def makers_for(name: str) -> dict[str, Callable[[], TesseraEnd | OpenSSLEnd]]:
            return by_version[HANDSHAKES[name][0] if name in HANDSHAKES else "1.2"]

        # 1. timing without the profiler, tessera vs OpenSSL, batches alternating.
        rows = []
        batches = 5
        for name in scenarios:
            per: dict[str, list[float]] = {"tessera": [], "openssl": []}
            unit = "us/handshake"
            makers = makers_for(name)
            for impl, make in makers.items():  # warm-up
                if name in HANDSHAKES:
                    handshake_batch(make, name, certs["ecdsa"], 10)
                else:
                    bulk_run(impl, make, name, CHUNK, payload)
            for b in range(batches):
                for impl in ("tessera", "openssl") if b % 2 == 0 else ("openssl", "tessera"):
                    make = makers[impl]
                    if name in HANDSHAKES:
                        t, resumed = handshake_batch(make, name, certs["ecdsa"], n // batches)
                        want = n // batches if HANDSHAKES[name][2] else 0
                        if resumed != want:
                            raise SystemExit(f"{impl} {name}: {resumed} resumed, want {want}")
                        per[impl].append(1e6 * t)
                    else:
                        unit = "MB/s"
                        per[impl].append(size / bulk_run(impl, make, name, size, payload) / 1e6)
            t_med, o_med = median(per["tessera"]), median(per["openssl"])
            rows.append([name, unit, num(t_med), num(o_med), f"{ratio(t_med, o_med):.2f}"])
        print()
        print("Server time without the profiler, in memory (medians of 5 batches)")
        print(table(["scenario", "unit", "tessera", "openssl", "tessera/openssl"], rows))

        # 2. the profiles (tessera only).
        for name in scenarios:
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            if name in HANDSHAKES:
                t, _ = handshake_batch(makers_for(name)["tessera"], name, certs["ecdsa"], n, prof)
                what = f"{n} handshakes ({name}): {1e6 * t:.0f} us each under the profiler"
            else:
                t = bulk_run("tessera", makers_for(name)["tessera"], name, size, payload, prof)
                what = f"{size >> 20} MiB {name}: {size / t / 1e6:.0f} MB/s under the profiler"
            path = out_dir / f"{name.replace('->', '_to_')}.prof"
            prof.dump_stats(path)
            print()
            print("=" * 100)
            print(f"{what} ({time.perf_counter() - t0:.1f} s); {path}")
            print_profile(path, args.top)
    if args.save is None:
        for f in out_dir.iterdir():
            f.unlink()
        out_dir.rmdir()
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()

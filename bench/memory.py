"""Server cost per connection in memory: tessera's sans-I/O server vs OpenSSL, no sockets.

    python bench/memory.py                    # all cases, 7 rounds of 200 connections
    python bench/memory.py --quick            # a smoke test
    python bench/memory.py --cases 1.2-ticket,1.3-psk --rounds 9 --profile 10

One connection is what a real one does: a handshake, a 2-byte request echoed back (``x\\n``),
and a close_notify exchange. The client is CPython ``ssl`` over ``MemoryBIO``s, the same for
both servers; the servers are tessera's ``ServerConnection`` (``receive_data`` / ``events`` /
``send_data`` / ``data_to_send``, exactly what a front end's pump calls) and OpenSSL's
``SSLObject`` over ``MemoryBIO``s. Only the server's calls are timed, with the thread's CPU
clock (``time.thread_time_ns``), so neither the client's work nor the scheduler shows up.
Rounds alternate the order of the two servers.

On a loaded 2-core box socket benchmarks swing by a third between rounds; this one holds to a
few percent, so judge a change here first and confirm it over sockets (``handshake.py``). It
leaves out the kernel's TCP work and the socket pump, which both servers pay there.

``calls/conn`` is the number of function calls (Python and C, as cProfile counts them) tessera's
server makes per connection. ``--profile N`` prints the top N functions of each case, by own
time and by cumulative time (``--save DIR`` keeps the ``.prof`` files).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import (
    SNI,
    CertFiles,
    client_context,
    environment,
    in_memory_servers,
    median,
    num,
    ratio,
    spread,
    table,
    test_certificates,
)
from tessera import (
    ApplicationData,
    ConnectionClosed,
    ServerConfig,
    ServerConnection,
)

REQUEST = b"x\n"


@dataclass(frozen=True)
class Case:
    name: str
    version: str  # "1.2" | "1.3"
    resume: str | None  # None (full), "id", "ticket", "psk"
    cert: str = "ecdsa"

    @property
    def tickets(self) -> bool:
        return self.resume != "id"


CASES = {
    c.name: c
    for c in (
        Case("1.2-full", "1.2", None),
        Case("1.2-id", "1.2", "id"),
        Case("1.2-ticket", "1.2", "ticket"),
        Case("1.3-full", "1.3", None),
        Case("1.3-psk", "1.3", "psk"),
        Case("1.2-full-rsa", "1.2", None, "rsa"),
        Case("1.3-full-rsa", "1.3", None, "rsa"),
    )
}
DEFAULT_CASES = ("1.2-full", "1.2-id", "1.2-ticket", "1.3-full", "1.3-psk")


# -- the client ---------------------------------------------------------------------------------
class Client:
    """CPython ssl over memory BIOs: handshake, send the request, read the echo, close_notify."""

    def __init__(self, ctx: ssl.SSLContext, session: ssl.SSLSession | None) -> None:
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=SNI, session=session)
        self.phase = 0
        self.echo = b""

    def step(self, data: bytes) -> bytes:
        if data:
            self.inc.write(data)
        with contextlib.suppress(ssl.SSLWantReadError):
            if self.phase == 0:
                self.obj.do_handshake()
                self.obj.write(REQUEST)
                self.phase = 1
            if self.phase == 1:
                while len(self.echo) < len(REQUEST):
                    self.echo += self.obj.read(16)
                self.phase = 2
                self.obj.unwrap()  # sends close_notify; raises until the server's arrives
            if self.phase == 2:
                self.obj.unwrap()
                self.phase = 3
        return self.out.read()

    @property
    def done(self) -> bool:
        return self.phase == 3


# -- the two servers ----------------------------------------------------------------------------
class TesseraServer:
    """The pump a front end runs: bytes in, events handled, bytes out."""

    def __init__(self, config: ServerConfig) -> None:
        self.conn = ServerConnection(config)

    def step(self, data: bytes) -> bytes:
        conn = self.conn
        conn.receive_data(data)
        for ev in conn.events():
            if isinstance(ev, ApplicationData):
                conn.send_data(ev.data)
            elif isinstance(ev, ConnectionClosed):
                conn.close()
        return conn.data_to_send()

    @property
    def resumed(self) -> bool:
        info = self.conn.info
        return info is not None and info.resumed


class OpenSSLServer:
    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=True)
        self.hs_done = False

    def step(self, data: bytes) -> bytes:
        self.inc.write(data)
        obj = self.obj
        try:
            if not self.hs_done:
                obj.do_handshake()
                self.hs_done = True
            while got := obj.read(4096):
                obj.write(got)
            obj.unwrap()  # read() returns b"" once close_notify arrived: answer it
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
        return self.out.read()

    @property
    def resumed(self) -> bool:
        return self.obj.session_reused


Server = TesseraServer | OpenSSLServer


def make_servers(certs: CertFiles, version: str) -> dict[str, Callable[[], Server]]:
    config, sctx = in_memory_servers(certs, version)
    if version == "1.3":
        from server import set_tls13_suites

        set_tls13_suites(sctx, "TLS_AES_128_GCM_SHA256")  # tessera's first choice
    return {"tessera": lambda: TesseraServer(config), "openssl": lambda: OpenSSLServer(sctx)}


# -- one connection, batches ------------------------------------------------------------------
def connection(
    make: Callable[[], Server],
    cctx: ssl.SSLContext,
    session: ssl.SSLSession | None,
    prof: cProfile.Profile | None = None,
) -> tuple[int, Client, bool]:
    """One connection; (server thread CPU ns, the client, resumed as the server saw it)."""
    clock = time.thread_time_ns
    client = Client(cctx, session)
    data = client.step(b"")
    spent = 0
    server: Server | None = None
    for _ in range(12):
        t0 = clock()
        if prof is not None:
            prof.enable()
        if server is None:
            server = make()
        out = server.step(data)
        if prof is not None:
            prof.disable()
        spent += clock() - t0
        data = client.step(out)
        if client.done and not data:
            break
    else:
        raise RuntimeError("the in-memory connection did not finish")
    if client.echo != REQUEST:
        raise RuntimeError(f"the server echoed {client.echo!r}")
    assert server is not None
    return spent, client, server.resumed


def batch(
    make: Callable[[], Server], case: Case, cctx: ssl.SSLContext, n: int,
    prof: cProfile.Profile | None = None,
) -> float:  # fmt: skip
    """Server CPU microseconds per connection over ``n`` connections."""
    session = None
    if case.resume is not None:
        _, client, _ = connection(make, cctx, None)
        session = client.obj.session
    total = 0
    for _ in range(n):
        spent, _, resumed = connection(make, cctx, session, prof)
        if resumed != (case.resume is not None):
            raise SystemExit(f"{case.name}: the server resumed={resumed}")
        total += spent
    return total / n / 1000


def calls_per_connection(make: Callable[[], Server], case: Case, cctx: ssl.SSLContext,
                         n: int, save: Path | None, top: int) -> float:  # fmt: skip
    prof = cProfile.Profile()
    batch(make, case, cctx, n, prof)
    stats = pstats.Stats(prof, stream=sys.stdout)
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        prof.dump_stats(save / f"{case.name}.prof")
    if top:
        print(f"\n=== {case.name}: tessera server, {n} connections under cProfile")
        for order in ("tottime", "cumulative"):
            print(f"--- top {top} by {order}")
            stats.sort_stats(order).print_stats(top)
    return stats.total_calls / n  # type: ignore[attr-defined, no-any-return]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--cases", default=",".join(DEFAULT_CASES), help=", ".join(CASES))
    p.add_argument("--rounds", type=int, help="rounds per case and server (default 7)")
    p.add_argument("--connections", type=int, help="connections per round (default 200)")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="print the top N")
    p.add_argument("--save", type=Path, help="keep the .prof files here")
    p.add_argument("--tessera-only", action="store_true", help="skip the OpenSSL server")
    args = p.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    n = args.connections or (40 if args.quick else 200)
    cases = [CASES[c] for c in args.cases.split(",") if c]
    impls = ("tessera",) if args.tessera_only else ("tessera", "openssl")
    print(f"in-memory server cost per connection: {environment()}")
    print(f"{rounds} rounds x {n} connections per case and server (handshake, 2-byte echo, close)")
    kinds = sorted({c.cert for c in cases})
    rows = []
    with test_certificates(kinds) as certs:
        for case in cases:
            makers = make_servers(certs[case.cert], case.version)
            cctx = client_context(case.version, case.cert, tickets=case.tickets)
            per: dict[str, list[float]] = {i: [] for i in impls}
            for impl in impls:
                batch(makers[impl], case, cctx, max(5, n // 10))  # warm-up
            for r in range(rounds):
                for impl in impls if r % 2 == 0 else impls[::-1]:
                    per[impl].append(batch(makers[impl], case, cctx, n))
            calls = calls_per_connection(
                makers["tessera"], case, cctx, max(20, n // 4), args.save, args.profile
            )
            t = median(per["tessera"])
            row = [case.name, num(t), spread(per["tessera"]), f"{calls:.0f}"]
            if "openssl" in per:
                o = median(per["openssl"])
                rs = [ratio(a, b) for a, b in zip(per["tessera"], per["openssl"], strict=True)]
                row += [num(o), spread(per["openssl"]), f"{ratio(t, o):.2f}", spread(rs)]
            rows.append(row)
            sys.stdout.flush()
    print()
    headers = ["case", "tessera us", "spread", "calls/conn"]
    if len(impls) == 2:
        headers += ["openssl us", "spread", "ratio", "ratio spread"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()

"""Server CPU per connection: tessera vs ``openssl s_server`` and CPython ``ssl`` (OpenSSL).

Each server runs in its own process, one connection at a time: tessera (``server.py``:
``TLSSocket.wrap_server``), CPython ``ssl`` (``server.py`` too) and ``openssl s_server -rev``,
OpenSSL's own server. A fourth, ``no-tls``, is ``server.py`` with no TLS at all (the same line
echoed over bare TCP): the floor a Python server pays per connection before any cryptography,
printed against s_server with CPython ssl's ratio to it. This process is the client for all three, with CPython ``ssl``. A server's
CPU is read from ``/proc/<pid>/task/*/schedstat`` (ns, all threads) before and after each round,
once the server sleeps again: the whole process, accept and syscalls included, measured the
same way for all three. Rounds rotate the order of the servers, so background load hits them
alike; the ratios are taken per round and their medians and ranges printed.

    python bench/handshake.py            # TLS 1.2 and 1.3, ECDSA, a few minutes
    python bench/handshake.py --quick    # a smoke test
    python bench/handshake.py --versions 1.2 --certs ecdsa,rsa --cases full,resume-ticket

One connection (``--workload echo``, the default) is what real connections do: the handshake,
a 2-byte line ``x\n`` sent back by the server, and a close_notify exchange; ``--workload
handshake`` closes right after the handshake.

Cases (TLS 1.2): ``full`` (the client offers tickets, as browsers do), ``resume-id``
(OP_NO_TICKET: session ids), ``resume-ticket`` (RFC 5077). TLS 1.3: ``full``, ``psk_dhe_ke``,
``psk_ke`` (all servers pinned to TLS_AES_128_GCM_SHA256; an OpenSSL client always offers
psk_dhe_ke too and an OpenSSL server then picks it, so OpenSSL's ``psk_ke`` rows are psk_dhe_ke
handshakes; tessera's server, configured with ``psk_ke=True``, takes psk_ke).

Targets (issue 20), server CPU in the same run: resumed TLS 1.2 <= 1.6x s_server; TLS 1.3 PSK
<= 1.5x s_server and at least 15% cheaper than tessera's own full TLS 1.3; full handshakes
<= 1.4x CPython ssl.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from common import (
    HOST,
    ServerProcess,
    SServerProcess,
    client_context,
    close_tls,
    environment,
    median,
    num,
    open_tls,
    ratio,
    recv_exactly,
    spread,
    table,
    test_certificates,
)

IMPLS = ("tessera", "cpython", "s_server", "no-tls")
TLS12_RESUMED_MAX_VS_S_SERVER = 1.6
TLS13_PSK_MAX_VS_S_SERVER = 1.5
TLS13_PSK_MAX_OF_OWN_FULL = 0.85
FULL_MAX_VS_CPYTHON = 1.4
LINE = b"x\n"


@dataclass(frozen=True)
class Case:
    """One kind of handshake. ``resume`` is None for a full handshake, else how the client
    resumes: "id" (TLS 1.2 session id), "ticket" (TLS 1.2 RFC 5077), "psk" (TLS 1.3)."""

    name: str
    cert: str  # "ecdsa" | "rsa"
    version: str  # "1.2" | "1.3"
    resume: str | None = None
    tickets: bool = True  # the client offers session tickets
    psk_ke: bool = False  # TLS 1.3: the client offers psk_ke (resumption without ECDHE)

    @property
    def label(self) -> str:
        return f"TLS{self.version} {self.cert} {self.name}"

    def context(self, group: str | None) -> ssl.SSLContext:
        return client_context(
            self.version, self.cert, tickets=self.tickets, psk_ke=self.psk_ke, group=group
        )


def build_cases(version: str, certs: list[str], names: list[str] | None) -> list[Case]:
    per_cert: list[tuple[str, dict[str, object]]]
    if version == "1.2":
        per_cert = [
            ("full", {}),
            ("resume-id", {"resume": "id", "tickets": False}),
            ("resume-ticket", {"resume": "ticket"}),
        ]
    else:
        # OpenSSL picks psk_ke only when both sides set SSL_OP_ALLOW_NO_DHE_KEX; check the
        # server's reported mode once tessera's TLS 1.3 server exists.
        per_cert = [
            ("full", {}),
            ("psk_dhe_ke", {"resume": "psk"}),
            ("psk_ke", {"resume": "psk", "psk_ke": True}),
        ]
    cases = [
        Case(name, cert, version, **kw)  # type: ignore[arg-type]
        for cert in certs
        for name, kw in per_cert
        if names is None or name in names
    ]
    if not cases:
        raise SystemExit(f"no cases left; known: {', '.join(n for n, _ in per_cert)}")
    return cases


@dataclass
class Sample:
    """One round of one case against one server."""

    n: int
    wall: float
    cpu_us: float  # server process CPU per connection
    resumed: int  # as the client saw it
    failures: int
    error: str | None


Server = ServerProcess | SServerProcess


def connect_once(
    port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None, echo: bool
) -> tuple[bool, ssl.SSLSession | None]:
    """One connection: handshake, the echoed line (if ``echo``), close_notify both ways."""
    s = open_tls(port, ctx, session)
    try:
        if echo:
            s.sendall(LINE)
            if recv_exactly(s, len(LINE)) != LINE:
                raise ConnectionError("the server did not send the line back")
        return s.session_reused, s.session
    finally:
        close_tls(s)


def connect_plain(port: int) -> None:
    """The no-TLS floor: the same line echoed over bare TCP, then both sides close."""
    with socket.create_connection((HOST, port), timeout=10.0) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(LINE)
        got = b""
        while len(got) < len(LINE):
            chunk = s.recv(len(LINE) - len(got))
            if not chunk:
                raise ConnectionError("the server closed before sending the line back")
            got += chunk
        s.shutdown(socket.SHUT_WR)
        while s.recv(64):
            pass


def run_round(
    srv: Server, case: Case, ctx: ssl.SSLContext, count: int, seconds: float, echo: bool
) -> Sample:
    session = None
    if srv.impl == "plain":
        return plain_round(srv, count, seconds)
    if case.resume is not None:
        # A fresh session every round (a long run never meets a session timeout); the echo
        # lets a TLS 1.3 client read its tickets.
        _, session = connect_once(srv.port, ctx, None, True)
        if session is None:
            raise SystemExit(f"{srv.impl}: no session to resume for {case.label}")
    srv.stats()  # a tessera/CPython server resets its counters
    n, errors, resumed, first_error, wall, cpu = timed(
        srv, count, seconds, lambda: connect_once(srv.port, ctx, session, echo)[0]
    )
    st = srv.stats()
    failures = int(st.get("failures", 0)) + errors  # type: ignore[call-overload]
    return Sample(n, wall, cpu / max(n, 1) / 1000, resumed, failures,
                  first_error or st.get("first_error"))  # type: ignore[arg-type]  # fmt: skip


def timed(srv: Server, count: int, seconds: float, connect: Callable[[], bool]
          ) -> tuple[int, int, int, str | None, float, int]:  # fmt: skip
    """Up to ``count`` connections (or ``seconds``): (done, client errors, resumed, the first
    error, wall seconds, server CPU ns). ``connect`` makes one and says whether it resumed."""
    n = errors = resumed = 0
    first_error = None
    cpu0 = srv.cpu_ns()
    t0 = time.perf_counter()
    while n + errors < count and time.perf_counter() - t0 < seconds:
        try:
            resumed += connect()
            n += 1
        except (OSError, ssl.SSLError) as e:
            errors += 1
            first_error = first_error or f"client: {type(e).__name__}: {e}"
            if errors > 10:
                break
    return n, errors, resumed, first_error, time.perf_counter() - t0, srv.cpu_ns() - cpu0


def plain_round(srv: Server, count: int, seconds: float) -> Sample:
    srv.stats()

    def connect() -> bool:
        connect_plain(srv.port)
        return False

    n, errors, _, first_error, wall, cpu = timed(srv, count, seconds, connect)
    return Sample(n, wall, cpu / max(n, 1) / 1000, 0, errors, first_error)


def build_all(versions: list[str], certs: list[str], names: list[str] | None) -> list[Case]:
    cases = []
    for v in versions:
        known = build_cases(v, certs, None)
        cases += [c for c in known if names is None or c.name in names]
    if not cases:
        raise SystemExit("no cases left")
    return cases


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke test: few rounds, few handshakes")
    p.add_argument("--rounds", type=int, help="measured rounds per case and server (default 9)")
    p.add_argument("--handshakes", type=int, help="connections per round (default 300)")
    p.add_argument("--seconds", type=float, help="time cap per round (default 5)")
    p.add_argument("--certs", default="ecdsa", help="ecdsa,rsa")
    p.add_argument("--versions", default="1.2,1.3", help="1.2,1.3")
    p.add_argument("--cases", help="comma-separated case names (default: all)")
    p.add_argument("--workload", choices=("echo", "handshake"), default="echo")
    p.add_argument(
        "--group",
        help="the only ECDHE group the client offers, e.g. prime256v1 (default: OpenSSL's "
        "list, so the servers pick X25519)",
    )
    args = p.parse_args()
    rounds = args.rounds or (3 if args.quick else 9)
    count = args.handshakes or (50 if args.quick else 300)
    seconds = args.seconds or (1.0 if args.quick else 5.0)
    echo = args.workload == "echo"
    versions = [v for v in args.versions.split(",") if v]
    cert_kinds = [c for c in args.certs.split(",") if c]
    cases = build_all(versions, cert_kinds, args.cases.split(",") if args.cases else None)

    print(f"handshake benchmark: {environment()}")
    print(
        f"{rounds} rounds x up to {count} connections (or {seconds:g} s) per case and server; "
        f"workload {args.workload}; client: CPython ssl, verification off, SNI localhost"
    )
    samples: dict[tuple[str, Case], list[Sample]] = {(i, c): [] for i in IMPLS for c in cases}
    t_start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        certs = stack.enter_context(test_certificates(cert_kinds))
        servers: dict[tuple[str, str, str], Server] = {}
        for v in versions:
            for kind in cert_kinds:
                for impl, py_impl in (("tessera", "tessera"), ("cpython", "openssl")):
                    servers[impl, kind, v] = stack.enter_context(
                        ServerProcess(py_impl, certs[kind], version=v, psk_ke=v == "1.3",
                                      echo=True)
                    )  # fmt: skip
                servers["no-tls", kind, v] = stack.enter_context(
                    ServerProcess("plain", certs[kind], version=v, echo=True)
                )
                servers["s_server", kind, v] = stack.enter_context(
                    SServerProcess(certs[kind], version=v, psk_ke=v == "1.3")
                )
        contexts = {c: c.context(args.group) for c in cases}
        for case in cases:  # warm-up (imports, first-use costs), not recorded
            for impl in IMPLS:
                run_round(servers[impl, case.cert, case.version], case, contexts[case], 5, 2.0,
                          echo)  # fmt: skip
        for r in range(rounds):
            k = r % len(IMPLS)
            order = IMPLS[k:] + IMPLS[:k]
            order = order if r % 2 == 0 else order[::-1]
            for case in cases:
                for impl in order:
                    srv = servers[impl, case.cert, case.version]
                    samples[impl, case].append(
                        run_round(srv, case, contexts[case], count, seconds, echo)
                    )
            print(f"  round {r + 1}/{rounds} done ({time.perf_counter() - t_start:.0f} s)")
            sys.stdout.flush()

    report(cases, samples)
    print(f"total {time.perf_counter() - t_start:.0f} s")


def _ratios(a: list[Sample], b: list[Sample]) -> list[float]:
    return [ratio(x.cpu_us, y.cpu_us) for x, y in zip(a, b, strict=True) if x.n and y.n]


def verdict(case: Case, cases: list[Case], samples: dict[tuple[str, Case], list[Sample]]
            ) -> tuple[str, str, bool]:  # fmt: skip
    """(the target, what this run measured, met?) for ``case``."""
    t = samples["tessera", case]
    if case.resume is None:
        r = median(_ratios(t, samples["cpython", case]))
        return f"<= {FULL_MAX_VS_CPYTHON}x CPython ssl", f"{r:.2f}", r <= FULL_MAX_VS_CPYTHON
    r = median(_ratios(t, samples["s_server", case]))
    if case.version == "1.2":
        limit = TLS12_RESUMED_MAX_VS_S_SERVER
        return f"<= {limit}x s_server", f"{r:.2f}", r <= limit
    limit = TLS13_PSK_MAX_VS_S_SERVER
    target, got, ok = f"<= {limit}x s_server", f"{r:.2f}", r <= limit
    full = next((c for c in cases if c.version == "1.3" and c.resume is None
                 and c.cert == case.cert), None)  # fmt: skip
    if full is not None and not case.psk_ke:
        own = median(_ratios(t, samples["tessera", full]))
        target += f", <= {TLS13_PSK_MAX_OF_OWN_FULL} x own full"
        got += f", {own:.2f}"
        ok = ok and own <= TLS13_PSK_MAX_OF_OWN_FULL
    return target, got, ok


def report(cases: list[Case], samples: dict[tuple[str, Case], list[Sample]]) -> None:
    rows = []
    warnings = []
    for case in cases:
        for impl in IMPLS:
            ss = samples[impl, case]
            rates = [s.n / s.wall for s in ss if s.wall > 0]
            cpus = [s.cpu_us for s in ss if s.n]
            total = sum(s.n for s in ss)
            resumed = sum(s.resumed for s in ss)
            failures = sum(s.failures for s in ss)
            rows.append([case.label, impl, total, f"{median(rates):.0f}", num(median(cpus)),
                         spread(cpus), f"{100 * resumed / total:.0f}%" if total else "-",
                         failures])  # fmt: skip
            want = total if case.resume and impl != "no-tls" else 0
            if resumed != want:
                warnings.append(f"{impl} {case.label}: {resumed} of {total} resumed, want {want}")
            if failures:
                errs = {s.error for s in ss if s.error}
                warnings.append(f"{impl} {case.label}: {failures} failures: {errs}")
    print()
    print("Server CPU per connection (whole process, /proc schedstat), medians over rounds;")
    print("spread is min..max of the rounds.")
    print(table(["case", "server", "conns", "conn/s", "cpu us/conn", "spread", "resumed",
                 "fail"], rows))  # fmt: skip
    print()
    ratio_rows = []
    for case in cases:
        t = samples["tessera", case]
        vs_s = _ratios(t, samples["s_server", case])
        vs_c = _ratios(t, samples["cpython", case])
        target, got, ok = verdict(case, cases, samples)
        ratio_rows.append([case.label, f"{median(vs_s):.2f}", spread(vs_s), f"{median(vs_c):.2f}",
                           spread(vs_c), target, got, "ok" if ok else "MISS"])  # fmt: skip
    print("CPU ratios tessera / anchor, per round (lower is better)")
    print(table(["case", "/s_server", "range", "/CPython ssl", "range", "target", "measured",
                 "verdict"], ratio_rows))  # fmt: skip
    print()
    print("The floor: the same Python loop serving OpenSSL (CPython ssl) or no TLS at all, per")
    print("round, against s_server. A pure-Python TLS server cannot cost less than the no-TLS")
    print("loop plus its own handshake code; CPython ssl is OpenSSL's C driven by that loop.")
    floor_rows = []
    for case in cases:
        c_s = [ratio(x.cpu_us, y.cpu_us) for x, y in
               zip(samples["cpython", case], samples["s_server", case], strict=True)
               if x.n and y.n]  # fmt: skip
        f_s = [ratio(x.cpu_us, y.cpu_us) for x, y in
               zip(samples["no-tls", case], samples["s_server", case], strict=True)
               if x.n and y.n]  # fmt: skip
        floor_rows.append([case.label, f"{median(c_s):.2f}", spread(c_s), f"{median(f_s):.2f}",
                           spread(f_s)])  # fmt: skip
    print(table(["case", "CPython ssl/s_server", "range", "no-TLS loop/s_server", "range"],
                floor_rows))  # fmt: skip
    if any(c.psk_ke for c in cases):
        print("note: OpenSSL's servers pick psk_dhe_ke whenever the client offers it (an OpenSSL")
        print("client always does), so their psk_ke rows are psk_dhe_ke handshakes.")
    for w in warnings:
        print(f"WARNING: {w}")


if __name__ == "__main__":
    main()

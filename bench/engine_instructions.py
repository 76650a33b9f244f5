"""Instructions per connection of ``tessera serve`` / ``tessera proxy`` processes and the bare
sans-I/O loop (``server.py``), counted by valgrind (user space only; load-independent, where
``engine.py``'s CPU times swing by a third on a loaded box). Each server runs under
``valgrind --tool=callgrind``; after a warm-up its counters are zeroed, ``--connections``
connections are made (as ``engine.py``: handshake, ping, close_notify), and the dump's total is
divided by their number. Slow: a few minutes per server.

    python bench/engine_instructions.py                         # serve, both loops, vs bare
    python bench/engine_instructions.py --cases "TLS 1.2 resumed (ticket)" --connections 40
    python bench/engine_instructions.py --proxy                 # tessera proxy, both loops
    python bench/engine_instructions.py --src /tmp/old/src      # also an older tree, alongside

hitch drops its worker's privileges, which callgrind_control cannot follow: compare it by CPU
time (``proxy.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import (
    SERVER_PROGRAM,
    CertFiles,
    ServerProcess,
    client_context,
    table,
    test_certificates,
)
from engine import CASES, TESSERA, connect_once
from proxy import free_port, handshakes, process, terminator_argv

VALGRIND = ["valgrind", "--tool=callgrind", "--vgdb=yes", "--dump-instr=no"]


def control(pid: int, flag: str) -> None:
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True,
                   timeout=300)  # fmt: skip


def instructions(pid: int, out: Path, drive: Callable[[int], object], n: int) -> float:
    """Instructions per unit of ``drive`` in process ``pid`` (dumps to ``out``.PID.N)."""
    drive(5)
    before = set(out.parent.glob(f"{out.name}.{pid}*"))
    control(pid, "-z")
    drive(n)
    control(pid, "-d")
    deadline = time.monotonic() + 120
    while not (dumps := set(out.parent.glob(f"{out.name}.{pid}*")) - before):
        if time.monotonic() > deadline:
            raise TimeoutError(f"callgrind wrote no dump for {pid}")
        time.sleep(0.2)
    time.sleep(0.5)  # (written whole)
    for line in max(dumps, key=os.path.getmtime).read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1]) / n
    raise RuntimeError("no totals in the callgrind dump")


def connections(port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None, n: int
                ) -> None:  # fmt: skip
    for _ in range(n):
        connect_once(port, ctx, session, timeout=120)


def bare_loop(vg: list[str], cert: CertFiles, version: str) -> ServerProcess:
    """``server.py`` (the bare loop) under valgrind (whose start takes minutes, not seconds)."""
    bare = ServerProcess.__new__(ServerProcess)
    bare.impl = "bare"
    bare.proc = subprocess.Popen(
        [*vg, sys.executable, str(SERVER_PROGRAM), "--impl", "tessera", "--cert", str(cert.cert),
         "--key", str(cert.key), "--version", version],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    bare._buf = b""
    try:
        bare.port = int(str(bare._read_line(timeout=900)["port"]))
    except BaseException:
        bare.stop()
        raise
    return bare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=40)
    ap.add_argument("--cases", default="TLS 1.2 resumed (ticket),TLS 1.3 resumed (PSK)")
    ap.add_argument("--proxy", action="store_true", help="tessera proxy instead of serve")
    ap.add_argument("--src", action="append", default=[], help="another source tree")
    a = ap.parse_args()
    cases = [c for c in CASES if c[0] in a.cases.split(",")]
    trees = [("", "this tree"), *((s, s) for s in a.src)]
    rows = []
    with test_certificates(("ecdsa",)) as certs, tempfile.TemporaryDirectory() as tmp, \
            contextlib.ExitStack() as stack:  # fmt: skip
        cert, d = certs["ecdsa"], Path(tmp)
        out = d / "callgrind"
        vg = [*VALGRIND, f"--callgrind-out-file={out}.%p"]
        backend = free_port()
        stack.enter_context(
            process(
                [sys.executable, str(Path(__file__).parent / "proxy_backend.py"), str(backend)],
                backend,
                d / "b.log",
            )
        )
        servers = []
        for src, tree in trees:
            for loop in ("uvloop", "asyncio"):
                port = free_port()
                if a.proxy:
                    argv = terminator_argv("tessera", port, backend, cert, d)
                else:
                    argv = [*TESSERA, "serve", "-p", str(port), "--cert", str(cert.cert),
                            "--key", str(cert.key), "-q"]  # fmt: skip
                os.environ["PYTHONPATH"] = src
                proc = stack.enter_context(
                    process(
                        [*vg, *argv, "--loop", loop], port, d / f"{port}.log", start_timeout=900
                    )
                )
                servers.append((f"{'proxy' if a.proxy else 'serve'} {loop} ({tree})", port,
                                proc.pid))  # fmt: skip
        os.environ.pop("PYTHONPATH", None)
        for label, version, resume in cases:
            ctx = client_context(version)
            bare = stack.enter_context(bare_loop(vg, cert, version))
            base = 0.0
            for name, port, pid in [("bare loop", bare.port, bare.proc.pid), *servers]:
                session = connect_once(port, ctx, timeout=120)[1] if resume else None
                drive: Callable[[int], object] = (
                    functools.partial(handshakes, port, ctx, resume=resume)
                    if a.proxy and name != "bare loop"
                    else functools.partial(connections, port, ctx, session)
                )
                per = instructions(pid, out, drive, a.connections)
                base = base or per
                rows.append([label, name, f"{per / 1e6:.3f}", f"{per / base:.3f}x"])
                print(*rows[-1], sep="  ", flush=True)
    print(table(["case", "server", "M instructions / connection", "vs bare loop"], rows))


if __name__ == "__main__":
    main()

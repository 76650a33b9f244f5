"""Instructions per connection, counted by valgrind (load-independent): the in-memory connection
of ``memory.py`` (handshake, 2-byte echo, close_notify), client and server together.

    python bench/instructions.py                     # the five default cases
    python bench/instructions.py --cases 1.2-ticket --connections 40

Each case runs twice under ``valgrind --tool=callgrind`` (``--connections`` and 5 connections,
after the same warm-up); the difference divided by the extra connections is one connection's
cost, start-up excluded. The client (CPython ssl) is the same for both servers, so
tessera - OpenSSL is what tessera's server costs beyond OpenSSL's; a change to tessera shows
as a change of the tessera column alone. Slow (about a minute per case and server), but the
counts repeat to a fraction of a percent on a loaded box, where timings swing by a third.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from common import table

BENCH = Path(__file__).resolve().parent
DEFAULT = ("1.2-full", "1.2-id", "1.2-ticket", "1.3-full", "1.3-psk")
_RUN = """
import sys
sys.path.insert(0, {bench!r})
import memory
from common import client_context, test_certificates
case = memory.CASES[{case!r}]
with test_certificates([case.cert]) as certs:
    make = memory.make_servers(certs[case.cert], case.version)[{impl!r}]
    cctx = client_context(case.version, case.cert, tickets=case.tickets)
    memory.batch(make, case, cctx, 5)
    memory.batch(make, case, cctx, {n})
"""


def instructions(case: str, impl: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "run.py")
        script.write_text(_RUN.format(bench=str(BENCH), case=case, impl=impl, n=n))
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
             sys.executable, str(script)],
            capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
        m = re.search(r"Collected : (\d+)", out.stderr)
        if out.returncode or m is None:
            raise SystemExit(f"valgrind failed for {case} {impl}:\n{out.stderr[-2000:]}")
        return int(m.group(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cases", default=",".join(DEFAULT))
    p.add_argument("--connections", type=int, default=40)
    p.add_argument("--tessera-only", action="store_true")
    args = p.parse_args()
    impls = ("tessera",) if args.tessera_only else ("tessera", "openssl")
    rows = []
    for case in args.cases.split(","):
        per = {}
        for impl in impls:
            big = instructions(case, impl, args.connections + 5)
            small = instructions(case, impl, 5)
            per[impl] = (big - small) / args.connections
        row = [case, f"{per['tessera'] / 1e6:.3f}"]
        if "openssl" in per:
            row += [f"{per['openssl'] / 1e6:.3f}", f"{(per['tessera'] - per['openssl']) / 1e6:.3f}"]
        rows.append(row)
        print(row, flush=True)
    headers = ["case", "tessera M instr/conn"]
    if len(impls) == 2:
        headers += ["openssl M instr/conn", "tessera - openssl"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()

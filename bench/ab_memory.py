"""Before/after of a change in memory: ``memory.py``'s connection (handshake, 2-byte echo,
close) timed for two source trees of tessera, in alternating subprocesses.

    git archive main src | tar -x -C /tmp/base          # the "before" tree
    python bench/ab_memory.py /tmp/base/src --cases 1.3-psk,1.2-ticket --pairs 9

"A" is the given tree (put first on ``PYTHONPATH``), "B" the installed tessera (this
worktree). Each subprocess times ``--connections`` connections with the thread's CPU clock
after a warm-up; pairs alternate which side goes first. It prints, per case, the medians and
ranges of both sides and of the per-pair ratio B/A, so a few percent show through the load of a
shared box (a ratio's spread is far narrower than either side's).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import table

BENCH = Path(__file__).resolve().parent
_RUN = """
import sys
sys.path.insert(0, {bench!r})
import memory
from common import client_context, test_certificates
case = memory.CASES[{case!r}]
with test_certificates([case.cert]) as certs:
    make = memory.make_servers(certs[case.cert], case.version)["tessera"]
    cctx = client_context(case.version, case.cert, tickets=case.tickets)
    memory.batch(make, case, cctx, 20)
    print(min(memory.batch(make, case, cctx, {n}) for _ in range(3)))
"""


def run(tree: str | None, case: str, n: int) -> float:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = tree + os.pathsep + env.get("PYTHONPATH", "")
    code = _RUN.format(bench=str(BENCH), case=case, n=n)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"the {case} run failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("before", help="the src directory of the 'before' tree")
    p.add_argument("--cases", default="1.3-full,1.3-psk,1.2-ticket,1.2-id")
    p.add_argument("--pairs", type=int, default=7)
    p.add_argument("--connections", type=int, default=150)
    args = p.parse_args()
    rows = []
    for case in args.cases.split(","):
        a: list[float] = []
        b: list[float] = []
        for i in range(args.pairs):
            if i % 2:
                b.append(run(None, case, args.connections))
                a.append(run(args.before, case, args.connections))
            else:
                a.append(run(args.before, case, args.connections))
                b.append(run(None, case, args.connections))
        ratios = sorted(y / x for x, y in zip(a, b, strict=True))
        rows.append([
            case, f"{statistics.median(a):.1f}", f"{min(a):.0f}..{max(a):.0f}",
            f"{statistics.median(b):.1f}", f"{min(b):.0f}..{max(b):.0f}",
            f"{statistics.median(ratios):.3f}", f"{ratios[0]:.3f}..{ratios[-1]:.3f}",
        ])  # fmt: skip
        print(rows[-1], flush=True)
    print(table(["case", "A us", "A range", "B us", "B range", "B/A", "B/A range"], rows))


if __name__ == "__main__":
    main()

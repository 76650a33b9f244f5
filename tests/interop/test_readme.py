"""Every ``sh`` and ``python`` block of README.md runs as written (issue 14.11).

The blocks run in a temporary directory, in order. ``tessera serve`` from the quick start is
started by this test (on a free port instead of 4433); the commands after it talk to that
server; each Python block runs in its own interpreter and must end by itself. A block that starts
servers of its own in the background (``... &``) runs whole, with every port it names moved to a
free one, and whatever it left running is stopped when it ends.
``tessera`` means this tree's ``python -m tessera.cli.main``. The set-up commands are not run
here, but checked: making and activating the virtual environment, ``pip install`` (a test must
not install packages) and ``scripts/test`` (this very run; ``.ci/run`` runs it on a fresh
machine).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import TESSERA, Peer, run

from conftest import free_port, require_program

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCKS = [(m[1], m[2]) for m in re.finditer(r"^```(\w*)\n(.*?)^```", README, re.M | re.S)]
RUNNABLE = [(lang, code) for lang, code in BLOCKS if lang in ("sh", "python")]
DEFAULT_PORT = "4433"
SETUP = ("python3 -m venv .venv", ". .venv/bin/activate", "pip install -e .", "scripts/test")
# ``tessera`` on the blocks' PATH: this tree's CLI (exec'd, so a background job is the server).
WRAPPER = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m tessera.cli.main "$@"\n'


def commands(code: str) -> Iterator[str]:
    """The commands of an sh block: one per line (a trailing backslash continues it),
    ``a && b`` split."""
    for line in code.replace("\\\n", " ").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            command = line.split("  # ", 1)[0]  # a comment after the command
            yield from (part.strip() for part in command.split(" && "))


def test_the_readme_has_examples_of_both_kinds() -> None:
    langs = [lang for lang, _ in RUNNABLE]
    assert langs.count("python") >= 2 and langs.count("sh") >= 3, BLOCKS
    assert all(lang in ("sh", "python", "text", "") for lang, _ in BLOCKS), BLOCKS


def test_setup_commands_are_the_ones_ci_runs() -> None:
    """Two set-up commands: the server's (venv, install, serve) and the tests' (scripts/test),
    which CI runs too."""
    ci = (ROOT / ".ci" / "run").read_text()
    setup = [c for _, code in RUNNABLE for c in commands(code) if c in SETUP]
    assert setup == [*SETUP[:3], SETUP[1], "scripts/test"], setup
    assert not [
        c for _, code in RUNNABLE for c in commands(code) if c.startswith("pip ") and c not in SETUP
    ], "a pip command that is not the quick start's"
    assert "\nscripts/test\n" in ci


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The quick-start server, started as the README says, on a free port."""
    d = tmp_path_factory.mktemp("readme")
    serve = [
        c
        for _, code in RUNNABLE
        for c in commands(code)
        if c.startswith("tessera serve") and not c.endswith("&")
    ]
    assert len(serve) == 1, serve
    port = str(free_port())
    # Relative paths are the blocks' working directory (the server runs in this process's).
    args = [str(d / a) if a.endswith(".pem") else a for a in shlex.split(serve[0])[1:]]
    argv = [*TESSERA, *args, "--port", port]
    with Peer(
        argv, port=int(port), log_dir=d, name="readme-serve", env={"COLUMNS": "300"}
    ) as server:
        assert (d / "tessera-cert.pem").exists(), server.output()
        yield d, port
        assert "Traceback" not in server.output()


def own_servers(code: str) -> bool:
    """A block that starts its own servers in the background."""
    return any(c.endswith("&") for c in commands(code))


def remap_ports(code: str) -> str:
    """Every 4-digit port the block names (``:4434``, ``-p 4433``, ``--port 6390``,
    ``http.server 8080``) moved to a free one, consistently within the block."""
    ports: dict[str, str] = {}

    def new(m: re.Match[str]) -> str:
        ports.setdefault(m[2], str(free_port()))
        return m[1] + ports[m[2]]

    return re.sub(r"(:|-p |--port |http\.server )(\d{4})\b", new, code)


def run_block(lang: str, code: str, d: Path, port: str) -> str:
    mine = lang == "sh" and own_servers(code)
    code = remap_ports(code) if mine else code.replace(DEFAULT_PORT, port)
    if lang == "python":
        argv = [sys.executable, "-c", code]
    else:
        lines = [c for c in commands(code) if c not in SETUP]
        if not mine:
            lines = [c for c in lines if not c.startswith("tessera serve")]
        if not lines:
            return ""
        for c in lines:
            if not c.startswith(("tessera", "sleep", "kill")):
                require_program(shlex.split(c)[0])
        # Background jobs the block leaves behind are stopped when it ends.
        cleanup = "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
        argv = ["bash", "-euo", "pipefail", "-c", cleanup + "\n".join(lines)]
    bin_dir = d / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "tessera"
    wrapper.write_text(WRAPPER)
    wrapper.chmod(0o755)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    # (peers.run: whatever the block leaves running dies with it, even when it times out)
    proc = run(argv, cwd=d, timeout=240 if mine else 60, env=env, merge=False)
    out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, f"{lang} block failed:\n{code}\n{out}\n{err}"
    return out


@pytest.mark.parametrize(
    ("lang", "code"), RUNNABLE, ids=[f"{i}-{lang}" for i, (lang, _) in enumerate(RUNNABLE)]
)
def test_block_runs(workdir: tuple[Path, str], lang: str, code: str) -> None:
    d, port = workdir
    out = run_block(lang, code, d, port)
    if "-reconnect" in code:
        assert out.count("Reused, TLSv1.2") == 5 and "New, TLSv1.2" in out, out
    if "conn.start_handshake()" in code and "socket.create_connection" in code:  # sans-I/O
        assert re.search(r"^TLSv1\.3 TLS_AES_\w+ False$", out, re.M), out
        assert "HTTP/1.0 200 ok" in out, out
    if "TLSSocket.connect" in code:  # two connections, the second resumed
        assert out.splitlines() == ["b'HTTP/1.0 200 ok' None", "b'HTTP/1.0 200 ok' psk"], out

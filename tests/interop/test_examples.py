"""Every code block of README.md and docs/**/*.md runs as written, or is checked as what it is.

Blocks by language:

* ``sh`` and ``python`` run, page by page, in order, in one temporary directory per page. A
  ``tessera serve`` line that is not a background job (the quick start's) is the page's server:
  this test starts it (on a free port instead of 4433) and the page's blocks talk to it (a
  ``tessera serve ... || echo`` line shows an error, and runs). A block that starts servers of
  its own in the background (``... &``) runs whole, every port it names (in a here-document
  too: ``port = 4434``) moved to a free one, and whatever it left running is stopped when it
  ends. Each Python block runs in its own interpreter and must end by itself. ``tessera`` is
  this tree's CLI.
* ``toml`` and ``json`` are parsed, ``javascript`` is checked by ``node --check``.
* ``text`` (output, usage), ``ini``, ``nginx`` (configuration excerpts) and ``mermaid``
  (diagrams) are not run; any other language, or a fence that is indented (inside a list or an
  admonition, where it would escape these rules), fails.

What else holds: no block waits with a fixed ``sleep`` (it waits for a port, a banner or a
condition, with a timeout); the set-up commands (venv, ``pip install``, ``scripts/test``) are
not run but must be the quick start's, word for word, and the install lines from the package
index (``pip install 'tessera-tls[fleet]'``, not run either) name extras that exist; every file
an example writes is one ``.gitignore`` covers in the repository root, and a page writes files
only after ``cd "$(mktemp -d)"`` unless they are the quick start's own.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from peers import TESSERA, Peer
from peers import run as run_isolated

from conftest import free_port, require_program

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^([ \t]*)```([\w+-]*)[^\n]*\n(.*?)^\1```[ \t]*$", re.M | re.S)
RUN = ("sh", "python")
CHECK = ("toml", "json", "javascript")
SHOWN = ("text", "ini", "nginx", "mermaid")
DEFAULT_PORT = "4433"
SETUP = ("python3 -m venv .venv", ". .venv/bin/activate", "pip install -e .", "scripts/test")
# pip install tessera-tls, pip install 'tessera-tls[fleet]': from the index, never run here.
INSTALL = re.compile(r"pip install (tessera-tls|'tessera-tls\[([a-z,]+)\]')")
# Commands the suite runs itself (tests/docs/test_site.py builds the site), not run again here.
SUITE = ('mkdocs build --strict --site-dir "$(mktemp -d)"',)
TEMP_DIR = 'cd "$(mktemp -d)"'
# ``tessera`` on the blocks' PATH: this tree's CLI (exec'd, so a background job is the server).
WRAPPER = f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m tessera.cli.main "$@"\n'
# Shell words that are no program to look for.
SHELL = {"cd", "kill", "wait", "export", "set", "trap", "echo", "printf", "until", "while", "for",
         "if", "[", "test", "true", "false", "tessera", "mkdir", "head", "timeout"}  # fmt: skip


@dataclass(frozen=True)
class Block:
    page: Path
    index: int  # the block's position among the page's fenced blocks
    lang: str
    code: str
    indent: str

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}-{self.index}-{self.lang or 'none'}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return [Block(page, i, m[2], m[3], m[1]) for i, m in enumerate(FENCE.finditer(text))]


ALL = [b for page in PAGES for b in blocks(page)]
RUNNABLE = [b for b in ALL if b.lang in RUN]


HEREDOC = re.compile(r"<<-?\s*'?(\w+)'?")


def commands(code: str) -> Iterator[str]:
    """The commands of an sh block: one per line (a trailing backslash continues it),
    ``a && b`` split; a here-document (``cat > f <<'EOF'`` ... ``EOF``) is one command, its
    lines and all."""
    lines = iter(code.replace("\\\n", " ").splitlines())
    for line in lines:
        heredoc = HEREDOC.search(line)
        if heredoc:
            body = []
            for body_line in lines:
                body.append(body_line)
                if body_line.strip() == heredoc[1]:
                    break
            yield "\n".join([line.strip(), *body])
        elif line.strip() and not line.lstrip().startswith("#"):
            command = line.split("  # ", 1)[0]  # a comment after the command
            yield from (part.strip() for part in command.split(" && "))


def page_commands(page: Path) -> list[str]:
    return [c for b in blocks(page) if b.lang == "sh" for c in commands(b.code)]


def page_server(command: str) -> bool:
    """The quick start's ``tessera serve``: in the foreground, serving until stopped (not a
    background job, nor a line that shows an error: ``tessera serve --bad || echo ...``)."""
    return (
        command.startswith("tessera serve") and not command.endswith("&") and " || " not in command
    )


def own_servers(code: str) -> bool:
    """A block that starts its own servers in the background."""
    return any(c.endswith("&") for c in commands(code))


def remap_ports(code: str) -> str:
    """Every 4-digit port the block names (``:4434``, ``-p 4433``, ``--port 6390``,
    ``-accept 4433``, ``http.server 8080``) moved to a free one, consistently in the block."""
    ports: dict[str, str] = {}

    def new(m: re.Match[str]) -> str:
        ports.setdefault(m[2], str(free_port()))
        return m[1] + ports[m[2]]

    return re.sub(r"(:|-p |--port |-accept |http\.server |port = )(\d{4})\b", new, code)


# -- what every page must be --------------------------------------------------------------------


def test_pages_have_examples_of_both_kinds() -> None:
    langs = [b.lang for b in RUNNABLE if b.page.name == "README.md"]
    assert langs.count("python") >= 2 and langs.count("sh") >= 3, langs
    # Each concepts and library page shows what it explains with something that runs.
    for page in PAGES:
        if page.parent.name in ("concepts", "library"):
            assert any(b.page == page for b in RUNNABLE), f"{page.name} has no runnable example"


@pytest.mark.parametrize("block", ALL, ids=[b.name for b in ALL])
def test_every_block_is_run_checked_or_shown(block: Block) -> None:
    assert block.indent == "", f"{block.name}: an indented fence (write it at the margin)"
    assert block.lang in RUN + CHECK + SHOWN, f"{block.name}: say what the block is: {block.code}"


def test_no_fixed_sleeps() -> None:
    """A block waits for a port, a banner or a condition, never for a fixed time."""
    sleeps = [(b.name, c) for b in RUNNABLE if b.lang == "sh" for c in commands(b.code)
              if c.startswith("sleep ")]  # fmt: skip
    assert not sleeps, sleeps


def test_own_servers_leave_the_quick_start_port_alone() -> None:
    """A reader who follows the quick start has a server on 4433: blocks that start servers of
    their own use other ports."""
    clash = [b.name for b in RUNNABLE if own_servers(b.code) and DEFAULT_PORT in b.code]
    assert not clash, clash


def test_setup_commands_are_the_ones_ci_runs() -> None:
    """Two set-up commands: the server's (venv, install, serve) and the tests' (scripts/test),
    which CI runs too; every page that repeats them says them word for word."""
    ci = (ROOT / ".ci" / "run").read_text()
    readme = [c for c in page_commands(ROOT / "README.md") if c in SETUP]
    assert readme == [*SETUP[:3], SETUP[1], "scripts/test"], readme
    assert "\nscripts/test\n" in ci
    for page in PAGES:
        pip = [c for c in page_commands(page) if c.startswith(("pip ", "python3 -m venv"))]
        assert {c for c in pip if not INSTALL.fullmatch(c)} <= set(SETUP), (
            f"{page.name}: a set-up command that is not the quick start's"
        )


def test_install_lines_name_the_distribution_and_its_extras() -> None:
    """``pip install tessera-tls`` (tessera on the index is another project), with extras that
    pyproject.toml defines."""
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                 ["optional-dependencies"])  # fmt: skip
    lines = [c for page in PAGES for c in page_commands(page) if c.startswith("pip install t")]
    assert lines, "no page says how to install from the package index"
    for line in lines:
        m = INSTALL.fullmatch(line)
        assert m, f"{line!r}: install the distribution tessera-tls"
        named = set(m[2].split(",")) if m[2] else set()
        assert named <= extras, f"{line!r}: no such extra (there are {sorted(extras)})"


# -- running them -------------------------------------------------------------------------------


@dataclass
class PageRun:
    """A page's working directory (what the blocks see), its tools (the ``tessera`` wrapper,
    logs) and its quick-start server's port, if it has one."""

    work: Path
    tools: Path
    port: str | None
    in_temp_dir: bool = False  # the page said cd "$(mktemp -d)"


@pytest.fixture(scope="module")
def page(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[PageRun]:  # fmt: skip
    path: Path = request.param
    work = tmp_path_factory.mktemp(path.stem.lower())
    tools = tmp_path_factory.mktemp(f"{path.stem.lower()}-tools")
    (tools / "bin").mkdir()
    wrapper = tools / "bin" / "tessera"
    wrapper.write_text(WRAPPER)
    wrapper.chmod(0o755)
    serve = [c for c in page_commands(path) if page_server(c)]
    assert len(serve) <= 1, serve
    if not serve:
        yield PageRun(work, tools, None)
        return
    port = str(free_port())
    # Relative paths are the blocks' working directory (the server runs in this process's).
    args = [str(work / a) if a.endswith(".pem") else a for a in shlex.split(serve[0])[1:]]
    argv = [*TESSERA, *args, "--port", port]
    with Peer(argv, port=int(port), log_dir=tools, name="page-serve",
              env={"COLUMNS": "300"}) as server:  # fmt: skip
        assert (work / "tessera-cert.pem").exists(), server.output()
        yield PageRun(work, tools, port)
        assert "Traceback" not in server.output()


# A server of the block's found its port taken between free_port() and its start (the box is
# shared with other suites): the block runs again on other ports, what it wrote removed.
PORT_TAKEN = re.compile(r"address already in use", re.I)
ATTEMPTS = 3


def block_argv(block: Block, run: PageRun, code: str, mine: bool) -> list[str] | None:
    """The program that runs ``code`` (``block`` with its ports set), None when nothing in it
    is to be run here."""
    if block.lang == "python":
        return [sys.executable, "-c", code]
    lines = []
    for c in commands(code):
        if c == TEMP_DIR:
            run.in_temp_dir = True  # the test's directory is one already
        elif INSTALL.fullmatch(c):
            continue  # (from the package index: the suite runs this tree)
        elif c not in SETUP + SUITE and (mine or not page_server(c)):
            lines.append(c)
    if not lines:
        return None
    for c in lines:
        word = shlex.split(c.splitlines()[0])[0]
        if word not in SHELL:
            require_program(word)
    # Background jobs the block leaves behind are stopped when it ends.
    cleanup = "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
    return ["bash", "-euo", "pipefail", "-c", cleanup + "\n".join(lines)]


def run_block(block: Block, run: PageRun) -> str:
    mine = block.lang == "sh" and own_servers(block.code)
    if not mine:
        assert run.port is not None or DEFAULT_PORT not in block.code, (
            f"{block.name} talks to port {DEFAULT_PORT}, and its page starts no server there"
        )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "PATH": f"{run.tools / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for attempt in range(1, ATTEMPTS + 1):
        code = (
            remap_ports(block.code)
            if mine
            else block.code.replace(DEFAULT_PORT, run.port or DEFAULT_PORT)
        )
        argv = block_argv(block, run, code, mine)
        if argv is None:
            return ""
        before = set(run.work.rglob("*"))
        # (peers.run: whatever the block leaves running dies with it, even when it times out)
        proc = run_isolated(argv, cwd=run.work, timeout=240 if mine else 60, env=env, merge=False)
        out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        if proc.returncode == 0:
            return out
        if not (mine and PORT_TAKEN.search(out + err)) or attempt == ATTEMPTS:
            break
        for path in sorted(set(run.work.rglob("*")) - before, reverse=True):  # children first
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink()
    pytest.fail(f"{block.name} failed:\n{code}\n{out}\n{err}")


def files(d: Path) -> set[Path]:
    return {p.relative_to(d) for p in d.rglob("*") if p.is_file()}


def ignored_in_root(path: Path) -> bool:
    """``.gitignore`` covers ``path`` placed in the repository root."""
    argv = ["git", "-C", str(ROOT), "check-ignore", "-q", "--no-index", str(path)]
    return subprocess.run(argv, check=False).returncode == 0


def check_output(block: Block, out: str) -> None:
    """What some examples must print, beyond ending well."""
    code = block.code
    if re.search(r"s_client .*-reconnect", code):
        assert out.count("Reused, TLSv1.2") == 5 and "New, TLSv1.2" in out, out
    if "conn.start_handshake()" in code and "socket.create_connection" in code:  # sans-I/O
        assert re.search(r"^TLSv1\.3 TLS_AES_\w+ False$", out, re.M), out
        assert "HTTP/1.0 200 ok" in out, out
    if "TLSSocket.connect" in code and "ClientSessionCache" in code:  # the second one resumed
        assert out.splitlines() == ["b'HTTP/1.0 200 ok' None", "b'HTTP/1.0 200 ok' psk"], out
    if "-sess_in" in code:  # a session made on one node resumes on the other
        assert "Reused, TLSv1.2" in out, out
    if "tessera connect" in code and "--json" in code:  # an object a line, each handshake
        handshakes = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        resumed = [False] + [True] * 5 if "--reconnect" in code else [False]
        assert [h["resumed"] for h in handshakes] == resumed, out
        assert all(h["certificates"][0]["subject"] == "CN=localhost" for h in handshakes), out
        if "-fingerprint -sha256" in code:  # the same certificate, as openssl reads its PEM
            fingerprint = re.search(r"^sha256 Fingerprint=([0-9A-F:]+)$", out, re.M)
            assert fingerprint, out
            sha256 = handshakes[0]["certificates"][0]["sha256"]
            assert fingerprint[1].replace(":", "") == sha256, out
    if "--showcerts" in code and "x509 -noout -subject" in code:  # a PEM chain openssl reads
        assert re.search(r"^subject=CN ?= ?localhost$", out, re.M), out
        assert "notAfter=" in out, out
    if "--config" in code and "--tls1-2" in code:  # the command line overrides the file
        assert "New, TLSv1.2" in out, out
    if "tessera proxy --config" in code:  # the file's backend, log format and version
        assert "200" in out.splitlines() and '"version":"TLSv1.3"' in out, out
    if "tessera keys sync --config" in code:  # the files of the table's "to"
        assert "haproxy.keys" in out and "ticket.2.key" in out, out
    if "tessera connect 127.0.0.1:9 " in code:  # errors name the target or the option
        assert "127.0.0.1:9: connection refused\nexit status 3" in out, out
        assert "--port takes one value, given 2 times: give it once\nexit status 2" in out, out
    if "prot = " in code:  # a mistake in a file: where, what, and the usage status
        assert "tessera.toml, line 3: unknown key 'prot'" in out and "exit status 2" in out, out


@pytest.mark.parametrize(
    ("page", "block"),
    [(b.page, b) for b in RUNNABLE],
    ids=[b.name for b in RUNNABLE],
    indirect=["page"],
    scope="module",
)
def test_block_runs(page: PageRun, block: Block) -> None:
    before = files(page.work)
    out = run_block(block, page)
    check_output(block, out)
    written = files(page.work) - before
    stray = sorted(str(p) for p in written if not ignored_in_root(p))
    assert not stray, f"{block.name} writes {stray}, which .gitignore does not cover"
    if written and not page.in_temp_dir:
        quick_start = {Path("tessera-cert.pem")}
        assert written <= quick_start, (
            f"{block.name} writes {sorted(map(str, written))} in the current directory: say "
            f"{TEMP_DIR} first on the page"
        )


def test_toml_json_and_javascript_blocks_parse() -> None:
    for block in ALL:
        if block.lang == "toml":
            tomllib.loads(block.code)
        elif block.lang == "json":
            json.loads(block.code)
        elif block.lang == "javascript":
            node = require_program("node")
            proc = subprocess.run([node, "--check"], input=block.code, capture_output=True,
                                  text=True, timeout=30, check=False)  # fmt: skip
            assert proc.returncode == 0, f"{block.name}:\n{block.code}\n{proc.stderr}"

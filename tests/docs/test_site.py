"""The documentation site builds with ``mkdocs build --strict`` (issue 22): every page in the
navigation, every link and anchor resolving, the API reference rendered from the docstrings and
the command-line reference generated from the click commands, with no warning.

MkDocs and its plugins come with the ``[docs]`` extra, which ``[dev]`` includes: a missing one is
a setup error, never a skip.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

import tessera
from tessera.cli import command
from tessera.cli.config_file import options_by_key
from tessera.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{module} is not installed: pip install -e '.[docs]' (scripts/test does)")
    out = tmp_path_factory.mktemp("site")
    argv = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
                          check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_every_page_is_built(site: Path) -> None:
    for page in (ROOT / "docs").rglob("*.md"):
        relative = page.relative_to(ROOT / "docs").with_suffix("")
        directory = relative.parent if relative.name == "index" else relative
        assert (site / directory / "index.html").is_file(), f"{page} was not built"


def test_the_cli_reference_has_every_command_and_option(site: Path) -> None:
    html = (site / "cli" / "index.html").read_text()

    def walk(command: click.Command, ctx: click.Context) -> None:
        assert f'id="{ctx.command_path.replace(" ", "-")}"' in html, ctx.command_path
        for param in command.params:
            for opt in getattr(param, "opts", []) if isinstance(param, click.Option) else []:
                assert opt in html, f"{ctx.command_path} {opt} is not in the CLI reference"
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, click.Context(sub, info_name=name, parent=ctx))

    walk(cli, click.Context(cli, info_name="tessera"))


def test_the_api_reference_documents_the_public_names(site: Path) -> None:
    html = "".join(p.read_text() for p in (site / "api").rglob("index.html"))
    missing = [name for name in tessera.__all__ if f'id="tessera.{name}"' not in html]
    assert not missing, f"not in the API reference: {missing}"


def anchors(page: Path) -> set[str]:
    """The heading anchors of a Markdown page, as GitHub and MkDocs make them."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).strip().replace(" ", "-") for h in headings}


def test_readme_links_resolve() -> None:
    """The README's relative links (into docs/, read on GitHub or locally) reach a page and,
    when they name one, a heading of it."""
    links = re.findall(r"\]\(([^)#:]+)(?:#([^)]+))?\)", (ROOT / "README.md").read_text())
    assert len(links) >= 20, links
    for path, anchor in links:
        target = ROOT / path
        assert target.is_file(), f"README links to {path}, which does not exist"
        if anchor:
            assert anchor in anchors(target), f"README links to {path}#{anchor}: no such heading"


# -- what the pages quote from the program ------------------------------------------------------

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def quoted(pattern: str) -> list[tuple[str, str]]:
    """(page, line) for every line of the pages that matches ``pattern``."""
    return [(page.name, m[0]) for page in PAGES
            for m in re.finditer(pattern, page.read_text(), re.M)]  # fmt: skip


def test_the_missing_extra_lines_are_what_the_program_prints(tmp_path: Path) -> None:
    """The pages quote the one line a feature prints when its extra is not installed: run the
    program with redis-py and prometheus-client unimportable and compare."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nsys.modules['redis'] = None\nsys.modules['prometheus_client'] = None\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), *sys.path])}
    printed = set()
    for args in (["--redis", "redis://127.0.0.1:9", "--fleet-secret", "none"],
                 ["--metrics", "127.0.0.1:0"]):  # fmt: skip
        argv = [sys.executable, "-m", "tessera.cli.main", "serve", "--port", "0", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env,
                              check=False)  # fmt: skip
        assert proc.returncode == 2, proc.stdout + proc.stderr
        printed.add(proc.stderr.strip())
    lines = quoted(r"^tessera serve: error: .* is not installed: pip install .*$")
    assert len(lines) >= 2, lines
    for page, line in lines:
        assert line in printed, f"{page} quotes {line!r}; the program prints {printed}"


def test_the_exit_code_tables_are_the_program_s() -> None:
    """README and the command-line page list the exit statuses tessera.cli.command defines."""
    codes = {
        command.EXIT_OK, command.EXIT_FAILURE, command.EXIT_USAGE, command.EXIT_UNREACHABLE,
        command.EXIT_INTERRUPTED,
    }  # fmt: skip
    for page in (ROOT / "README.md", ROOT / "docs" / "cli.md"):
        table = re.search(r"^\| status \| meaning \|\n\|---\|---\|\n((?:\|.*\n)+)", page.read_text(),
                          re.M)  # fmt: skip
        assert table, f"{page.name} has no exit status table"
        rows = {int(row.split("|")[1]) for row in table[1].splitlines()}
        assert rows == codes, f"{page.name}: {sorted(rows)}, the program: {sorted(codes)}"


def test_the_readme_stays_a_front_page() -> None:
    """What it is, why, the quick start, an example per capability and links (issue 22: at most
    25 KB); the manual is the site."""
    size = len((ROOT / "README.md").read_bytes())
    assert size <= 25 * 1024, f"README.md is {size} bytes: move detail into docs/"


def test_the_configuration_keys_the_pages_name_exist() -> None:
    """Every ``key = value`` a page shows in prose is a key of the [serve], [proxy] or
    [keys.sync] table (a renamed option would leave the page naming a key that is refused)."""
    keys: set[str] = set()
    for path in (["serve"], ["proxy"], ["keys", "sync"]):
        ctx = click.Context(cli, info_name="tessera")
        found: click.Command | None = cli
        for name in path:
            assert isinstance(found, click.Group)
            found = found.get_command(ctx, name)
        assert found is not None, path
        keys |= set(options_by_key(found))
    named = quoted(r"`([a-z][a-z0-9-]*) = [^`]+`")
    assert len(named) >= 10, named
    for page, text in named:
        key = text.strip("`").split(" = ")[0]
        assert key in keys, f"{page} shows {text}: no option is called --{key}"

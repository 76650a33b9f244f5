"""MkDocs hook: the command-line reference, generated from the click commands at build time.

A page that holds the line ``<!-- tessera-cli-reference -->`` gets, in its place, one section
per command (``tessera``, ``tessera serve``, ``tessera keys sync``...): its help text, its
usage line and a table of its options as ``--help`` shows them (click's own help records, so
the defaults, ranges and ``[required]`` marks are the ones the program prints). Nothing is
copied by hand: a new option appears in the site with the next build.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import Any

import click

from tessera.cli.main import cli

MARKER = "<!-- tessera-cli-reference -->"
# Characters that Markdown would read as markup inside help text.
_MARKUP = re.compile(r"([\\`*_\[\]<>|])")


def escape(text: str) -> str:
    """Help text as literal Markdown (table cells included)."""
    return _MARKUP.sub(r"\\\1", text).replace("\n", " ")


def context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    """A context as the program makes it (its help option names included), parsing nothing."""
    return click.Context(command, info_name=name, parent=parent, **command.context_settings)


def commands(command: click.Command, ctx: click.Context) -> Iterator[click.Context]:
    """The context of ``command`` and of every command under it, depth first."""
    yield ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from commands(sub, context(sub, name, ctx))


def section(ctx: click.Context) -> Iterator[str]:
    """One command's heading, help, usage and options, as Markdown lines."""
    command = ctx.command
    depth = len(ctx.command_path.split())
    yield f"{'#' * min(depth + 1, 4)} `{ctx.command_path}`"
    yield ""
    for paragraph in inspect.cleandoc(command.help or "").split("\n\n"):
        yield escape(paragraph.replace("\b\n", ""))
        yield ""
    usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
    yield f"Usage: `{usage}`"
    yield ""
    if isinstance(command, click.Group):
        yield "| command | what it does |"
        yield "|---|---|"
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                path = f"{ctx.command_path} {name}"
                anchor = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")
                yield f"| [`{path}`](#{anchor}) | {escape(sub.get_short_help_str(300))} |"
        yield ""
    records = [r for p in command.get_params(ctx) if (r := p.get_help_record(ctx)) is not None]
    if records:
        yield "| option | description |"
        yield "|---|---|"
        for opts, help_text in records:
            yield f"| `{opts}` | {escape(help_text)} |"
        yield ""


def reference() -> str:
    root = context(cli, "tessera", None)
    return "\n".join(line for ctx in commands(cli, root) for line in section(ctx))


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, reference())

"""``--config FILE.toml`` for ``tessera serve``, ``tessera proxy`` and ``tessera keys sync``.

One file may hold a table per command::

    [serve]
    port = 4433
    www = true
    cert = ["/etc/tessera/cert.pem"]      # a repeatable option takes a list (or one value)
    key = ["/etc/tessera/key.pem"]

    [proxy]
    listen = "0.0.0.0:443"
    backend = "127.0.0.1:8080"
    redis = "redis://10.0.0.5:6379"

    [keys.sync]
    redis = "redis://10.0.0.5:6379"
    to = ["nginx:/run/tessera-keys"]

A key is an option's long name without the dashes (``max-connections``, ``tls1-2``); a flag
takes ``true`` or ``false`` (``echo = true`` is ``www = false``). Every value goes through the
same checks as on the command line, and the command line overrides the file (click's
``default_map``: what the file says is the option's default). An unknown key, a key of a table
that does not exist, or a value an option refuses is a usage error naming the file and the line.
Paths are taken as on the command line: relative to the working directory.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Iterable
from typing import TypeVar

import click

from ..errors import ConfigError
from ..files import read_bounded

Command = TypeVar("Command", bound=Callable[..., object])

# The tables a file may hold: [serve], [proxy], [keys.sync], with an example of each's keys.
TABLES = (("serve",), ("proxy",), ("keys", "sync"))
_EXAMPLES = {
    "serve": "port = 4433, www = true",
    "proxy": 'listen = "0.0.0.0:443", backend = "127.0.0.1:8080"',
    "keys.sync": 'to = ["nginx:/run/tessera-keys"], once = true',
}
MAX_CONFIG_FILE = 1 << 20

_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*="""
)


def config_option(*table: str) -> Callable[[Command], Command]:
    """The ``--config FILE`` option of the command whose table is ``table``."""
    name = ".".join(table)

    def load(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value is not None:
            ctx.default_map = {**(ctx.default_map or {}), **read_config(ctx, value, table)}

    return click.option(
        "--config",
        metavar="FILE.toml",
        type=click.Path(exists=True, dir_okay=False),
        is_eager=True,
        expose_value=False,
        callback=load,
        help=f"Read options from the [{name}] table of a TOML file (keys are the long option "
        f"names: {_EXAMPLES[name]}); the command line overrides the file.",
    )


def read_config(ctx: click.Context, path: str, table: tuple[str, ...]) -> dict[str, object]:
    """The values of ``table`` in ``path`` by parameter name (for click's ``default_map``),
    each checked as the command line checks it; click.UsageError names the file and line."""
    try:
        text = read_bounded(path, "config file", MAX_CONFIG_FILE).decode("utf-8")
    except ConfigError as e:
        raise click.UsageError(str(e), ctx) from None
    except UnicodeDecodeError:
        raise click.UsageError(f"{path}: not a TOML file (not UTF-8 text)", ctx) from None
    try:
        data: dict[str, object] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise click.UsageError(f"{path}: not valid TOML: {e}", ctx) from None
    lines = key_lines(text)
    _check_tables(path, data, lines, ctx)
    section: object = data
    for part in table:
        section = section.get(part) if isinstance(section, dict) else None
    if not isinstance(section, dict):
        raise click.UsageError(f"{path} has no [{'.'.join(table)}] table", ctx)
    return _values(ctx, path, ".".join(table), section, lines)


def _check_tables(path: str, data: dict[str, object], lines: dict[tuple[str, str], int],
                  ctx: click.Context) -> None:  # fmt: skip
    """Every top-level name is one of the tables; nothing stands outside them."""
    known = {t[0] for t in TABLES}
    for name, value in data.items():
        where = _where(path, lines, "", name)
        if name not in known:
            hint = _suggest(name, known)
            raise click.UsageError(
                f"{where}: unknown table [{name}]{hint}; the tables are [serve], [proxy] and "
                "[keys.sync]",
                ctx,
            )
        if not isinstance(value, dict):
            raise click.UsageError(f"{where}: {name} must be a table ([{name}])", ctx)
    keys = data.get("keys", {})
    for name, value in keys.items() if isinstance(keys, dict) else ():
        if name != "sync" or not isinstance(value, dict):
            where = _where(path, lines, "keys", name)
            raise click.UsageError(f"{where}: unknown table [keys.{name}]; it is [keys.sync]", ctx)


def _values(ctx: click.Context, path: str, table: str, section: dict[str, object],
            lines: dict[tuple[str, str], int]) -> dict[str, object]:  # fmt: skip
    """The file's values by parameter name, each checked by the option's own type."""
    by_key = options_by_key(ctx.command)
    values: dict[str, object] = {}
    keys_of: dict[str, str] = {}
    for key, given in section.items():
        where = _where(path, lines, table, key)
        found = by_key.get(key)
        if found is None:
            hint = _suggest(key, by_key)
            raise click.UsageError(f"{where}: unknown key {key!r} in [{table}]{hint}", ctx)
        param, negated = found
        name = param.name or key
        if name in keys_of:
            raise click.UsageError(
                f"{where}: {key!r} and {keys_of[name]!r} set the same option: keep one", ctx
            )
        keys_of[name] = key
        value = [given] if param.multiple and not isinstance(given, list) else given
        try:
            checked = param.type_cast_value(ctx, value)
            if param.callback is not None:
                param.callback(ctx, param, checked)
        except click.BadParameter as e:
            raise click.UsageError(f"{where}: {key} = {value!r}: {e.message}", ctx) from None
        values[name] = (not checked) if negated else value
    return values


def options_by_key(command: click.Command) -> dict[str, tuple[click.Option, bool]]:
    """The keys a config file may use for ``command``: each long option name without its
    dashes, and whether it is the negative side of a flag pair (``echo`` of ``--www/--echo``)."""
    keys: dict[str, tuple[click.Option, bool]] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or not param.expose_value or param.is_eager:
            continue
        for opt in param.opts:
            if opt.startswith("--"):
                keys[opt[2:]] = (param, False)
        for opt in param.secondary_opts:
            if opt.startswith("--"):
                keys[opt[2:]] = (param, True)
    return keys


def key_lines(text: str) -> dict[tuple[str, str], int]:
    """(table, key) -> the line where the key is set (a table's own line under key ""); a
    best effort, for messages: tomllib does not say where a value was."""
    lines: dict[tuple[str, str], int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            table = ".".join(_dotted(header.group(1)))
            for i, part in enumerate(_dotted(header.group(1))):
                lines.setdefault((".".join(_dotted(header.group(1))[:i]), part), number)
            continue
        key = _KEY.match(line)
        if key:
            parts = _dotted(key.group(1))
            for i, part in enumerate(parts):
                where = ".".join([p for p in (table, *parts[:i]) if p])
                lines.setdefault((where, part), number)
    return lines


def _dotted(text: str) -> list[str]:
    return [
        p.strip().strip("\"'") for p in re.split(r"\.(?=(?:[^\"']|\"[^\"]*\"|'[^']*')*$)", text)
    ]


def _where(path: str, lines: dict[tuple[str, str], int], table: str, key: str) -> str:
    line = lines.get((table, key))
    return f"{path}, line {line}" if line else path


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""

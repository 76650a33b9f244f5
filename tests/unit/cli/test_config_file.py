"""``--config FILE.toml`` (issue 22, item 6): every option of ``serve``, ``proxy`` and ``keys
sync`` can be set in its table under its long name, with the command line's own checks; the
command line overrides the file; unknown keys, tables and bad values name the file and line.

The commands are parsed with click (``make_context``), not run: what a command does with its
options is tested where it runs (tests/interop/test_cli_config.py)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.core import ParameterSource

from tessera.cli.config_file import key_lines, options_by_key
from tessera.cli.keys import keys
from tessera.cli.proxy import proxy
from tessera.cli.serve import serve

SYNC = keys.commands["sync"]
COMMANDS = {"serve": serve, "proxy": proxy, "keys.sync": SYNC}
# Values the option's own type cannot make up (a URL, an address, a password spec...).
SPECIAL: dict[str, object] = {
    "redis_url": "redis://127.0.0.1:6379",
    "listen": "127.0.0.1:4433",
    "backend": "127.0.0.1:8080",
    "password": "pass:secret",
    "metrics": "127.0.0.1:9100",
    "specs": ["nginx:/run/tessera-keys"],
    "commands": ["nginx -s reload"],
    "alpn": "h2,http/1.1",
}


def parse(command: click.Command, *args: str) -> click.Context:
    return command.make_context(command.name or "tessera", list(args))


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "tessera.toml"
    path.write_text(text)
    return str(path)


def sample(param: click.Option, tmp_path: Path, default: object) -> object:
    """A valid value for ``param`` other than its default (``default``: the value the command
    gets without the option; click 8.5 no longer keeps a flag's False in ``param.default``)."""
    if param.name in SPECIAL:
        return SPECIAL[param.name]
    kind = param.type
    if param.is_flag:
        value: object = not default
    elif isinstance(kind, click.Choice):
        value = kind.choices[-1]
    elif isinstance(kind, click.IntRange):
        value = (kind.min or 0) + 1
    elif isinstance(kind, click.FloatRange):
        value = (kind.min or 0) + 1.5
    elif isinstance(kind, click.Path):
        existing = tmp_path / f"{param.name}.pem"
        existing.write_text("x")
        value = str(existing)
    elif kind is click.INT:
        value = 3
    else:
        value = "text"
    return [value] if param.multiple else value


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


@pytest.mark.parametrize("table", list(COMMANDS))
def test_every_option_can_be_set_in_its_table(table: str, tmp_path: Path) -> None:
    command = COMMANDS[table]
    keys_of = {p.name: k for k, (p, negated) in options_by_key(command).items() if not negated}
    params = {p.name: p for p, _ in options_by_key(command).values()}
    assert len(params) >= {"serve": 45, "proxy": 35, "keys.sync": 13}[table]
    defaults = command.make_context("tessera", [], resilient_parsing=True).params
    values = {name: sample(p, tmp_path, defaults.get(name)) for name, p in params.items()}
    lines = [f"[{table}]"] + [f"{keys_of[n]} = {toml_value(v)}" for n, v in values.items()]
    ctx = parse(command, "--config", write(tmp_path, "\n".join(lines)))
    for name, value in values.items():
        param = params[name]
        assert ctx.get_parameter_source(name) is ParameterSource.DEFAULT_MAP, name
        assert ctx.params[name] == param.type_cast_value(ctx, value), name
        assert ctx.params[name] != defaults.get(name), name  # (really the file's value)


def test_keys_are_the_long_option_names(tmp_path: Path) -> None:
    path = write(tmp_path, '[serve]\nport = 8443\nwww = true\ntls1-3 = true\n'
                           'max-connections = 10\ncert = "/dev/null"\n')  # fmt: skip
    ctx = parse(serve, "--config", path)
    assert ctx.params["port"] == 8443 and ctx.params["www"] is True
    assert ctx.params["tls1_3"] is True and ctx.params["max_connections"] == 10
    assert ctx.params["certs"] == ("/dev/null",)  # one value for a repeatable option
    # OpenSSL's spelling is a key too, and the other side of a flag pair sets it false.
    ctx = parse(serve, "--config", write(tmp_path, "[serve]\ntls1_2 = true\necho = true\n"))
    assert ctx.params["tls1_2"] is True and ctx.params["www"] is False


def test_the_command_line_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[serve]\nport = 8443\nwww = true\nalpn = "h2"\n')
    ctx = parse(serve, "--port", "9443", "--echo", "--config", path)
    assert ctx.params["port"] == 9443 and ctx.params["www"] is False
    assert ctx.get_parameter_source("port") is ParameterSource.COMMANDLINE
    assert ctx.params["alpn"] == "h2"  # the rest still from the file


def test_one_file_holds_every_table(tmp_path: Path) -> None:
    path = write(tmp_path, '[serve]\nport = 1\n\n[proxy]\nlisten = "127.0.0.1:2"\n'
                           'backend = "127.0.0.1:3"\n\n[keys.sync]\nredis = "redis://h:4"\n'
                           'to = ["nginx:/tmp"]\n')  # fmt: skip
    assert parse(serve, "--config", path).params["port"] == 1
    assert parse(proxy, "--config", path).params["backend"] == "127.0.0.1:3"
    ctx = parse(SYNC, "--config", path)
    assert ctx.params["redis_url"] == "redis://h:4" and ctx.params["specs"] == ("nginx:/tmp",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[serve]\nport = 1\nprot = 2\n", ", line 3: unknown key 'prot' in [serve] (did you "
                                          "mean 'port'?)"),
        ("[serve]\n\nmax_connections = 2\n", ", line 3: unknown key 'max_connections' in "
                                             "[serve] (did you mean 'max-connections'?)"),
        ("[serve]\np = 2\n", ", line 2: unknown key 'p'"),  # long names only
        ("[serve]\nconfig = 'x.toml'\n", ", line 2: unknown key 'config'"),
        ("port = 1\n[serve]\n", ", line 1: unknown table [port]"),
        ("[serv]\nport = 1\n", ", line 1: unknown table [serv] (did you mean 'serve'?)"),
        ("[keys.synk]\n", ", line 1: unknown table [keys.synk]; it is [keys.sync]"),
        ("[serve]\nport = 70000\n", ", line 2: port = 70000: 70000 is not in the range "
                                    "0<=x<=65535"),
        ("[serve]\nhandshake-timeout = nan\n", ", line 2: handshake-timeout = nan: nan is not "
                                               "a finite number"),
        ("[serve]\nclient-ca = '/nonexistent/ca.pem'\n", ", line 2: client-ca = "
                                                         "'/nonexistent/ca.pem': File"),
        ("[serve]\nwww = true\necho = false\n", ", line 3: 'echo' and 'www' set the same "
                                            "option"),
        ("[serve]\ntls1-2 = true\ntls1_2 = true\n", ", line 3: 'tls1_2' and 'tls1-2' set "
                                                    "the same option"),
        ("[serve]\nredis = 'http://x'\n", ", line 2: redis = 'http://x': "),
        ("[serve]\nport = \n", ": not valid TOML: Invalid value (at line 2, column 8)"),
        ("[proxy]\nlisten = '127.0.0.1:1'\n", " has no [serve] table"),
    ],
)  # fmt: skip
def test_mistakes_name_the_file_and_line(text: str, message: str, tmp_path: Path) -> None:
    path = write(tmp_path, text)
    with pytest.raises(click.UsageError) as e:
        parse(serve, "--config", path)
    assert f"{path}{message}" in e.value.format_message(), e.value.format_message()


def test_what_the_file_gives_counts_as_given(tmp_path: Path) -> None:
    """--ticket-rotation in a file beside --ticket-keys is refused as on the command line."""
    from tessera.cli.command import given_by_user
    from tessera.cli.serve_config import ServeOptions
    from tessera.errors import ConfigError

    keyfile = tmp_path / "t.key"
    keyfile.write_bytes(bytes(80))
    ctx = parse(serve, "--ticket-keys", str(keyfile), "--config",
                write(tmp_path, "[serve]\nticket-rotation = 60\n"))  # fmt: skip
    opts = ServeOptions(ticket_rotation=60.0, ticket_keys=(str(keyfile),))
    with pytest.raises(ConfigError, match="--ticket-rotation applies to generated keys"):
        opts.check(lambda name: given_by_user(ctx, name))


def test_key_lines() -> None:
    text = 'a = 1\n[serve]\nport = 4433  # x\n"www" = true\ncert = [\n  "a.pem",\n]\n' \
           '[keys.sync]\nredis = "x"\n'  # fmt: skip
    assert key_lines(text) == {
        ("", "a"): 1, ("", "serve"): 2, ("serve", "port"): 3, ("serve", "www"): 4,
        ("serve", "cert"): 5, ("", "keys"): 8, ("keys", "sync"): 8, ("keys.sync", "redis"): 9,
    }  # fmt: skip

"""What every command shares (issue 22, item 6): one error line ``tessera COMMAND: error: ...``
naming the option or the target, documented exit codes, a single-valued option given twice
refused (click would keep the last one silently), hyphenated option names with OpenSSL's
spellings as aliases, and numbers that must be finite."""

from __future__ import annotations

import errno
import socket

import click
import pytest
from click.testing import CliRunner

from tessera.addresses import describe_os_error, host_port
from tessera.cli.command import (
    EXIT_UNREACHABLE,
    FiniteFloatRange,
    is_unreachable,
    option_name,
    target_error,
)
from tessera.cli.main import cli, command_path, main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``tessera ARGS`` in this process: (exit status, stderr)."""
    with pytest.raises(SystemExit) as e:
        main(list(args))
    code = e.value.code
    return code if isinstance(code, int) else 1, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["proxy", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2", "--backend",
          "127.0.0.1:3"], "tessera proxy: error: --backend takes one value, given 2 times"),
        (["serve", "--www", "--echo"], "tessera serve: error: --www/--echo are one choice, "
                                       "given 2 times"),
        (["serve", "-p", "1", "--port", "2"], "tessera serve: error: --port takes one value"),
        (["serve", "--tls1-2", "--tls1_2"], "tessera serve: error: --tls1-2 is a flag, given 2"),
        (["connect", "--sni", "a", "--sni", "b", "x:1"], "tessera connect: error: --sni takes"),
        (["check", "--attempts", "1", "--attempts", "2", "x:1"], "tessera check: error: "
                                                                 "--attempts takes one value"),
        (["keys", "generate", "-o", "a", "-o", "b"], "tessera keys generate: error: --out "
                                                     "takes one value"),
        (["keys", "sync", "--redis", "redis://a:1", "--redis", "redis://b:1", "--to",
          "nginx:/tmp"], "tessera keys sync: error: --redis takes one value, given 2 times"),
        (["keys", "rotate", "--redis", "redis://a:1", "--lead", "1", "--lead", "2"],
         "tessera keys rotate: error: --lead takes one value"),
    ],
)  # fmt: skip
def test_a_single_valued_option_given_twice_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, err = run(capsys, *args)
    assert code == 2 and err.startswith(message), err
    assert err.count("\n") == 1, err  # one line


def test_repeatable_options_stay_repeatable() -> None:
    from tessera.cli.serve import serve

    ctx = serve.make_context("serve", ["--cert", "/dev/null", "--cert", "/dev/null", "--key",
                                       "/dev/null", "--key", "/dev/null"])  # fmt: skip
    assert ctx.params["certs"] == ("/dev/null", "/dev/null")


@pytest.mark.parametrize("spelling", ["--tls1-2", "--tls1_2"])
def test_hyphenated_names_and_openssl_spellings(spelling: str) -> None:
    from tessera.cli.serve import serve

    assert serve.make_context("serve", [spelling]).params["tls1_2"] is True


def test_no_option_name_has_an_underscore_but_openssl_aliases() -> None:
    """Every long option is hyphenated; an underscore only in an OpenSSL alias beside it."""
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        subs = command.commands.values() if isinstance(command, click.Group) else [command]
        for sub in subs:
            for param in sub.params:
                if not isinstance(param, click.Option):
                    continue
                for opt in param.opts:
                    if "_" in opt:
                        assert opt.replace("_", "-") in param.opts, (sub.name, opt)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["serve", "-p", "70000"], 2, "tessera serve: error: Invalid value for '-p' / '--port': "
                                      "70000 is not in the range 0<=x<=65535"),
        (["serve", "--session-timeout", "nan"], 2, "'nan' is not a finite number"),
        (["serve", "--idle-timeout", "inf"], 2, "'inf' is not a finite number"),
        (["serve", "--stateful-tickets", "--no-cache"], 2, "--stateful-tickets keeps TLS 1.3 "
                                                           "tickets in the session cache"),
        (["nosuch"], 2, "tessera: error: No such command 'nosuch'"),
        (["connect", "localhost"], 2, "tessera connect: error: Invalid value for TARGET"),
    ],
)  # fmt: skip
def test_errors_are_one_line_with_the_command_prefix(
    capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    got, err = run(capsys, *args)
    assert got == code and message in err, err
    assert err.startswith(command_path(args) + ": error: ") and err.count("\n") == 1, err


def test_exit_codes_are_listed_in_the_help() -> None:
    help_text = " ".join(cli.get_help(click.Context(cli, info_name="tessera")).split())
    assert "Exit status: 0 done, 1 failed, 2 usage error" in help_text
    assert "3 a target could not be reached, 130 interrupted" in help_text


def test_command_path() -> None:
    assert command_path(["keys", "sync", "--once"]) == "tessera keys sync"
    assert command_path(["--help"]) == "tessera"
    assert command_path(["serve", "--port", "1"]) == "tessera serve"


@pytest.mark.parametrize(
    ("error", "words", "unreachable"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "connection refused",
         True),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
         "no such host (the name does not resolve)", True),
        (TimeoutError("timed out"), "timed out", True),
        (OSError(errno.EADDRINUSE, "Address already in use"), "address already in use", False),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "connection reset",
         False),
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied", False),
    ],
)  # fmt: skip
def test_os_errors_in_words(error: OSError, words: str, unreachable: bool) -> None:
    assert describe_os_error(error) == words
    assert "Errno" not in describe_os_error(error)
    assert is_unreachable(error) is unreachable
    exc = target_error("127.0.0.1:4433", error)
    assert exc.message == f"127.0.0.1:4433: {words}"
    assert (exc.exit_code == EXIT_UNREACHABLE) is unreachable


def test_finite_float_range() -> None:
    kind = FiniteFloatRange(min=0, min_open=True)
    assert kind.convert("2.5", None, None) == 2.5
    for bad in ("nan", "inf", "-inf", "0"):
        with pytest.raises(click.BadParameter):
            kind.convert(bad, None, None)


def test_option_name_prefers_the_long_name() -> None:
    option = click.Option(["-p", "--port"])
    assert option_name(option) == "--port"
    assert option_name(click.Option(["-q"])) == "-q"


def test_addresses_are_written_as_on_a_command_line() -> None:
    assert host_port(("127.0.0.1", 4433)) == "127.0.0.1:4433"
    assert host_port(("::1", 4433)) == "[::1]:4433"


@pytest.mark.parametrize(
    ("path", "example"),
    [(("serve",), "port = 4433"), (("proxy",), 'listen = "0.0.0.0:443"'),
     (("keys", "sync"), 'to = ["nginx:')],
)  # fmt: skip
def test_config_help_shows_the_commands_own_keys(path: tuple[str, ...], example: str) -> None:
    """--config's help gives keys of the command's own table, not serve's for every command."""
    runner = CliRunner()
    result = runner.invoke(cli, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"[{'.'.join(path)}] table" in text and example in text, text

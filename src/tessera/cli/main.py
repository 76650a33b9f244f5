"""``tessera``: serve, connect, check resumption and manage ticket keys; no protocol logic.

Each command's module is imported only when that command runs (or shows its help), so that
``tessera --help`` starts quickly.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import click

from ..addresses import describe_os_error
from ..errors import ConfigError, TLSError
from ..extras import MissingExtra
from .command import (
    EXIT_CODES_HELP,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Group,
)

# name: (module, attribute, the one-line help shown by ``tessera --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": (
        "tessera.cli.serve",
        "serve",
        "Run a TLS server with session resumption on (session cache and tickets).",
    ),
    "connect": (
        "tessera.cli.connect",
        "connect",
        "Connect to TARGET, print the handshake, relay stdin and stdout.",
    ),
    "proxy": (
        "tessera.cli.proxy",
        "proxy",
        "Terminate TLS and relay plaintext to a TCP backend, with fleet-wide resumption.",
    ),
    "keys": ("tessera.cli.keys", "keys", "Session ticket keys."),
    "check": (
        "tessera.cli.check",
        "check",
        "Audit session resumption: which mechanisms resume, where, why not, and what to change.",
    ),
}


class LazyGroup(Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        command = getattr(importlib.import_module(entry[0]), entry[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, entry[2]) for name, entry in COMMANDS.items()])


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(package_name="tessera-tls")
def cli() -> None:
    """TLS 1.2/1.3 with session resumption you can see and control."""


def command_path(args: Sequence[str]) -> str:
    """``tessera keys sync`` from the command line: who says an error."""
    path = ["tessera"]
    command: click.Command | None = cli
    ctx = click.Context(cli)
    for arg in args:
        if arg.startswith("-") or not isinstance(command, click.Group):
            continue
        try:
            command = command.get_command(ctx, arg)
        except ImportError:  # (the command's module could not load: said elsewhere)
            command = None
        if command is None:
            break
        path.append(arg)
    return " ".join(path)


def fail(args: Sequence[str], message: str, status: int) -> None:
    """``tessera serve: error: MESSAGE`` on stderr, then exit with ``status``."""
    click.echo(f"{command_path(args)}: error: {message}", err=True)
    sys.exit(status)


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``tessera`` with ``argv`` (default: the command line); every error is one line
    that starts with the command and ``error:``, with an exit status from
    :mod:`tessera.cli.command`."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        status = cli.main(args, prog_name="tessera", standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as e:
        fail(args, e.format_message(), e.exit_code)
    except (MissingExtra, ConfigError) as e:
        fail(args, str(e), EXIT_USAGE)
    except TLSError as e:
        fail(args, str(e), EXIT_FAILURE)
    except OSError as e:
        fail(args, describe_os_error(e) + (f": {e.filename}" if e.filename else ""), EXIT_FAILURE)
    if isinstance(status, int) and status:
        sys.exit(status)  # (click.exceptions.Exit in a command)


if __name__ == "__main__":
    main()

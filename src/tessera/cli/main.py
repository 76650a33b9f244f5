"""``tessera``: serve, connect, check resumption and manage ticket keys; no protocol logic.

Each command's module is imported only when that command runs (or shows its help), so that
``tessera --help`` starts quickly.
"""

from __future__ import annotations

import importlib
import sys

import click

from ..errors import ConfigError, TLSError

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


class LazyGroup(click.Group):
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


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tessera-tls")
def cli() -> None:
    """TLS 1.2/1.3 with session resumption you can see and control."""


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except ConfigError as e:
        click.echo(f"tessera: configuration error: {e}", err=True)
        sys.exit(2)
    except TLSError as e:
        click.echo(f"tessera: {type(e).__name__}: {e}", err=True)
        sys.exit(1)
    except OSError as e:
        click.echo(f"tessera: {e}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()

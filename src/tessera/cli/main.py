"""``tessera``: serve, connect, and manage ticket keys. No protocol logic lives here."""

from __future__ import annotations

import sys

import click

from ..errors import ConfigError, TLSError
from .check import check
from .connect import connect
from .keys import keys
from .serve import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tessera")
def cli() -> None:
    """TLS 1.2/1.3 with session resumption you can see and control."""


cli.add_command(serve)
cli.add_command(connect)
cli.add_command(keys)
cli.add_command(check)


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

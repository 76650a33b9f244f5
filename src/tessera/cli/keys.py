"""``tessera keys``: make and inspect ticket key files (written only when asked)."""

from __future__ import annotations

import time

import click

from ..fleet.cli import fleet_secret_command, list_command, rotate_command
from ..session.keyring import KeyFileFormat, TicketKey, read_key_file, write_key_file
from .files import write_private

FORMATS = click.Choice([f.value for f in KeyFileFormat])
# The name tessera serve uses; --format is the old name, still accepted.
format_option = click.option(
    "--ticket-key-format",
    "--format",
    "fmt",
    type=FORMATS,
    default="native",
    show_default=True,
    help="Byte layout: native (OpenSSL/Node.js), nginx, haproxy, apache (48 bytes only) "
    "(--format: the old name).",
)


@click.group()
def keys() -> None:
    """Session ticket keys."""


keys.add_command(fleet_secret_command)
keys.add_command(rotate_command)
keys.add_command(list_command)


@keys.command()
@click.option(
    "-o",
    "--out",
    "path",
    required=True,
    type=click.Path(dir_okay=False),
    help="File to write (mode 0600; an existing file only with --force).",
)
@click.option("--force", is_flag=True, help="Replace FILE if it exists (it ends at mode 0600).")
@click.option(
    "--size",
    type=click.Choice(["48", "80"]),
    default="80",
    show_default=True,
    help="48: AES-128 + 16-byte HMAC key; 80: AES-256 + 32-byte HMAC key.",
)
@format_option
@click.option(
    "--count",
    default=1,
    show_default=True,
    type=int,
    help="Keys to write (haproxy files hold several).",
)
def generate(path: str, force: bool, size: str, fmt: str, count: int) -> None:
    """Write a new random ticket key file."""
    kf = KeyFileFormat(fmt)
    if count < 1 or (kf is not KeyFileFormat.HAPROXY and count != 1):
        raise click.UsageError(f"a {fmt} key file holds exactly one key; use --count with haproxy")
    if int(size) not in kf.sizes:
        raise click.UsageError(f"an {fmt} key file holds a 48-byte key; pass --size 48")
    new = [TicketKey.generate(time.time(), int(size)) for _ in range(count)]
    write_private(path, lambda tmp: write_key_file(tmp, new, kf), overwrite=force)
    names = ", ".join(k.name.hex() for k in new)
    click.echo(f"wrote {count} {size}-byte {fmt} ticket key(s) to {path}: {names}", err=True)


@keys.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@format_option
def show(path: str, fmt: str) -> None:
    """List the key names in a key file (never the secrets), the encrypting key first."""
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("name", style="cyan", no_wrap=True)
    table.add_column("cipher")
    table.add_column("role")
    for i, k in enumerate(read_key_file(path, KeyFileFormat(fmt), time.time())):
        role = "encrypts" if i == 0 else "decrypts only"
        cipher = "AES-256-CBC" if len(k.aes_key) == 32 else "AES-128-CBC"
        table.add_row(k.name.hex(), cipher, role, style="bold" if i == 0 else None)
    Console(highlight=False, soft_wrap=True).print(table)

"""``tessera keys``: make and inspect ticket key files (written only when asked)."""

from __future__ import annotations

import logging
import sys
import time

import click

from ..fleet.cli import fleet_secret_command, list_command, redis_url_option, rotate_command
from ..fleet.keyring import SourceState
from ..fleet.secret import SOURCE_HELP
from ..session.keyring import KeyFileFormat, TicketKey, read_key_file, write_key_file
from .command import FiniteFloatRange, Group, Unreachable
from .config_file import config_option
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


@click.group(cls=Group)
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


# -- tessera keys sync ---------------------------------------------------------------------------
@keys.command("sync")
@config_option("keys", "sync")
@click.option("--redis", "redis_url", required=True, metavar="URL", callback=redis_url_option,
              help="The fleet's Redis, as the nodes are given it (redis://, rediss://, unix://, "
                   "redis-cluster://, redis-sentinel://).")  # fmt: skip
@click.option("--fleet-secret", metavar="FILE", type=click.Path(dir_okay=False),
              help=SOURCE_HELP)  # fmt: skip
@click.option("--redis-namespace", default="default", show_default=True, metavar="NS")
@click.option("--redis-timeout", default=0.5, show_default=True, type=FiniteFloatRange(min=0.01),
              help="Seconds each Redis operation may take.")  # fmt: skip
@click.option("--to", "specs", multiple=True, required=True, metavar="FORMAT:PATH",
              help="Keys to write: nginx:DIR (ticket.0.key, ticket.1.key, ticket.2.key), "
                   "haproxy:FILE (tls-ticket-keys), node:FILE, apache:FILE. Repeatable; "
                   "use a tmpfs directory, e.g. under /run.")  # fmt: skip
@click.option("--exec", "commands", multiple=True, metavar="CMD",
              help="Run CMD (with /bin/sh) after each change, e.g. 'nginx -s reload'; "
                   "a failure is logged and retried. Repeatable.")  # fmt: skip
@click.option("--exec-timeout", default=30.0, show_default=True, type=FiniteFloatRange(min=0.1),
              help="Seconds a command may run.")  # fmt: skip
@click.option("--haproxy-socket", "sockets", multiple=True, metavar="PATH",
              type=click.Path(dir_okay=False),
              help="HAProxy's admin socket: push each change of the haproxy: files with "
                   "'set ssl tls-key' (no reload). Repeatable.")  # fmt: skip
@click.option("--once", is_flag=True, help="Sync once and exit (1 if anything failed).")
@click.option("--key-refresh", default=5.0, show_default=True, type=FiniteFloatRange(min=0.05),
              help="Seconds between refreshes; a key encrypts here only once it was "
                   "published twice this long ago. Give the nodes' value.")  # fmt: skip
@click.option("--ticket-rotation", default=3600.0, show_default=True,
              type=FiniteFloatRange(min=1.0),
              help="Seconds a key this agent mints encrypts (at most 3600); the nodes' "
                   "value.")  # fmt: skip
@click.option("--ticket-keep", default=2, show_default=True, type=click.IntRange(min=0),
              help="Rotations a key decrypts after that (at most 2 h); the nodes' "
                   "value.")  # fmt: skip
@click.option("--metrics", metavar="HOST:PORT",
              help="Serve Prometheus metrics at http://HOST:PORT/metrics.")  # fmt: skip
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")
def sync_command(redis_url: str, fleet_secret: str | None, redis_namespace: str,
                 redis_timeout: float, specs: tuple[str, ...], commands: tuple[str, ...],
                 exec_timeout: float, sockets: tuple[str, ...], once: bool, key_refresh: float,
                 ticket_rotation: float, ticket_keep: int, metrics: str | None,
                 quiet: bool) -> None:  # fmt: skip
    """Keep nginx, HAProxy, Node.js and Apache ticket keys in step with the fleet's."""
    from ..fleet.sync import runner

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")  # fmt: skip
    options = runner.SyncOptions(
        redis_url=redis_url, fleet_secret=fleet_secret, namespace=redis_namespace,
        redis_timeout=redis_timeout, specs=specs, commands=commands, exec_timeout=exec_timeout,
        sockets=sockets, key_refresh=key_refresh, rotation=ticket_rotation, keep=ticket_keep,
        metrics=metrics,
    )  # fmt: skip
    try:
        agent, refresher = runner.build(options)
    except runner.UsageProblem as e:
        raise click.BadParameter(str(e), param_hint=e.option) from None
    if once:
        problem = runner.sync_once(agent, refresher)
        if problem and agent.keyring.state is SourceState.UNAVAILABLE:
            raise Unreachable(problem)  # exit status 3, as for any target out of reach
        if problem:
            raise click.ClickException(problem)
        return
    runner.run(agent, refresher, options)

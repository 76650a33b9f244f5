"""``tessera check``: audit whether, where and why servers resume TLS sessions.

Only option parsing and output here; the audit lives in :mod:`tessera.audit` (imported when
the command runs, so other commands do not pay for it).
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..audit import AuditOptions, Report
    from ..audit.probe import Endpoint

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, option: str) -> float:
    """``10m``, ``30s``, ``1.5h``, ``90`` (seconds) -> seconds."""
    m = _DURATION.match(text)
    if not m or float(m[1]) <= 0:
        raise click.BadParameter(
            f"{text!r} is not a duration; write e.g. 30s, 10m, 2h", param_hint=option
        )
    return float(m[1]) * _UNITS[m[2] or "s"]


def split_address(text: str, option: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{text!r}: expected HOST:PORT", param_hint=option)
    return host.strip("[]"), int(port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def endpoints(
    targets: tuple[str, ...], backends: str | None, sni: str | None, resolve_all: bool
) -> tuple[list[Endpoint], list[Endpoint]]:
    """(targets, backends) to audit. The SNI is --sni, else the target's name (none for an IP);
    --resolve-all makes every address of each target's name a backend."""
    from ..audit.probe import Endpoint

    parsed = [split_address(t, "TARGET") for t in targets]
    name = sni or next((h for h, _ in parsed if not _is_ip(h)), None)
    main = [Endpoint(h, p, sni or (None if _is_ip(h) else h)) for h, p in parsed]
    extra: list[Endpoint] = []
    for item in (backends or "").split(","):
        if item.strip():
            h, p = split_address(item, "--backends")
            extra.append(Endpoint(h, p, name if name else (None if _is_ip(h) else h)))
    if resolve_all:
        for t in main:
            try:
                infos = socket.getaddrinfo(t.host, t.port, type=socket.SOCK_STREAM)
            except OSError as e:
                raise click.BadParameter(
                    f"cannot resolve {t.host}: {e}", param_hint="--resolve-all"
                ) from None
            for addr in dict.fromkeys(str(i[4][0]) for i in infos):
                extra.append(Endpoint(addr, t.port, t.sni))
        if resolve_all and not backends:
            main = []  # every address is audited as a backend; the name adds nothing
    if not main and not extra:
        raise click.UsageError("give at least one TARGET (HOST:PORT) or --backends")
    return main, extra


@click.command()
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@click.option(
    "--backends",
    metavar="A:PORT,B:PORT",
    help="Backends of one service: each is audited, and sessions from each are "
    "offered to every other (the cross-backend matrix).",
)
@click.option(
    "--resolve-all", is_flag=True, help="Audit every address of each TARGET's name as a backend."
)
@click.option("--sni", metavar="NAME", help="Server name to send (default: the target's name).")
@click.option(
    "--attempts",
    default=3,
    show_default=True,
    type=click.IntRange(1, 50),
    help="Full handshakes and resumption attempts per mechanism.",
)
@click.option(
    "--expect",
    "expect_text",
    default="any",
    show_default=True,
    metavar="LIST",
    help="Mechanisms that must resume N/N everywhere (id, ticket, psk, psk_ke, 0rtt; "
    "'any': one at least, and across backends whatever works on both; "
    "'none').",
)
@click.option(
    "--mechanisms",
    "mechanisms_text",
    metavar="LIST",
    help="Probe only these (default: id,ticket,psk,psk_ke,0rtt).",
)
@click.option(
    "--watch",
    "watch_text",
    metavar="DURATION",
    help="Then watch ticket key names for DURATION (e.g. 10m): a key census.",
)
@click.option(
    "--interval",
    "interval_text",
    default="60s",
    show_default=True,
    metavar="DURATION",
    help="Seconds between census probes.",
)
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    type=float,
    help="Seconds allowed for each connection.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (see the schema) instead.")
def check(
    targets: tuple[str, ...],
    backends: str | None,
    resolve_all: bool,
    sni: str | None,
    attempts: int,
    expect_text: str,
    mechanisms_text: str | None,
    watch_text: str | None,
    interval_text: str,
    timeout: float,
    as_json: bool,
) -> None:
    """Audit session resumption: which mechanisms resume, where, and why not.

    Audits TARGET(s) (HOST:PORT): TLS 1.2 session ids and
    tickets, TLS 1.3 PSK (psk_dhe_ke, psk_ke) and 0-RTT with a replay probe; with several
    backends, whether each resumes the others' sessions. Exit status: 0 when every expected
    mechanism resumes, 1 when a check fails (each one named), 2 for bad usage.
    Certificates are not validated: this audits resumption."""
    from ..audit import AuditOptions, Mechanism
    from ..audit.checks import parse_expect

    try:
        expect = parse_expect(expect_text)
        mechanisms = (
            tuple(Mechanism(m) for m in parse_expect(mechanisms_text) if m not in ("any", "none"))
            if mechanisms_text
            else tuple(Mechanism)
        )
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    watch = parse_duration(watch_text, "--watch") if watch_text else None
    interval = parse_duration(interval_text, "--interval")
    main, extra = endpoints(targets, backends, sni, resolve_all)
    options = AuditOptions(
        tuple(main), tuple(extra), attempts, expect, mechanisms, watch, interval, timeout
    )
    report = _run(options)
    if as_json:
        from ..audit.report import to_json

        click.echo(json.dumps(to_json(report), indent=2, ensure_ascii=False))
    else:
        from rich.console import Console

        from ..audit.report import render

        render(report, Console(highlight=False))
    sys.exit(report.exit_code)


def _run(options: AuditOptions) -> Report:
    """Run the audit, with a progress bar on stderr when it is a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..audit import audit

    err = Console(stderr=True)
    if not err.is_terminal:
        return audit(options)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("auditing", total=options.steps())
        return audit(options, lambda what: progress.update(task, advance=1, description=what))

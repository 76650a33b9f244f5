"""``tessera check``: audit whether, where and why servers resume TLS sessions, what to change,
and (``--every``) keep watching them.

Only option parsing and output here; the audit lives in :mod:`tessera.audit` (imported when
the command runs, so other commands do not pay for it).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .command import Command, FiniteFloatRange

if TYPE_CHECKING:
    from ..audit import AuditOptions, Report
    from ..audit.identify import ServerKind
    from ..audit.mechanisms import Step
    from ..audit.probe import Endpoint

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
SERVER_TYPES = ("auto", "nginx", "haproxy", "node", "apache", "openssl", "tessera", "generic")


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
    targets: Sequence[str], backends: str | None, sni: str | None, resolve_all: bool
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
        if not backends:
            main = []  # every address is audited as a backend; the name adds nothing
    if not main and not extra:
        raise click.UsageError("give at least one TARGET (HOST:PORT), --backends or --targets")
    return main, extra


@dataclass(frozen=True, slots=True)
class ServiceLine:
    """One service of a ``--targets`` file."""

    target: str
    sni: str | None = None
    backends: str | None = None
    name: str | None = None
    server_type: str | None = None


_LINE_KEYS = {"sni", "backends", "name", "server-type"}


def read_targets(path: str) -> list[ServiceLine]:
    """``--targets FILE``: one service a line, ``HOST:PORT [sni=NAME] [backends=A:PORT,B:PORT]
    [name=LABEL] [server-type=TYPE]``; blank lines and ``#`` comments are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise click.BadParameter(
            f"cannot read {path}: {e.strerror}", param_hint="--targets"
        ) from None
    out = []
    for number, raw in enumerate(text.splitlines(), 1):
        words = shlex.split(raw, comments=True)
        if not words:
            continue
        where = f"{path}, line {number}"
        fields: dict[str, str] = {}
        for word in words[1:]:
            key, sep, value = word.partition("=")
            if not sep or key not in _LINE_KEYS or not value:
                raise click.BadParameter(
                    f"{where}: {word!r} is not one of {', '.join(sorted(_LINE_KEYS))} as KEY=VALUE",
                    param_hint="--targets",
                )
            fields[key] = value
        split_address(words[0], f"--targets ({where})")
        kind = fields.get("server-type")
        if kind is not None and kind not in SERVER_TYPES:
            raise click.BadParameter(
                f"{where}: server-type {kind!r}: use {', '.join(SERVER_TYPES)}",
                param_hint="--targets",
            )
        out.append(
            ServiceLine(
                words[0], fields.get("sni"), fields.get("backends"), fields.get("name"), kind
            )
        )
    if not out:
        raise click.BadParameter(f"{path} lists no target", param_hint="--targets")
    return out


def _server_kind(text: str | None) -> ServerKind | None:
    from ..audit.identify import ServerKind

    return None if text in (None, "auto") else ServerKind(text)


@click.command(cls=Command)
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
@click.option(
    "--targets",
    "targets_file",
    metavar="FILE",
    help="Audit many services, one a line: HOST:PORT [sni=NAME] [backends=A:PORT,B:PORT] "
    "[name=LABEL] [server-type=TYPE].",
)
@click.option(
    "--concurrency",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Services audited at once (--targets).",
)
@click.option("--sni", metavar="NAME", help="Server name to send (default: the target's name).")
@click.option(
    "--server-type",
    type=click.Choice(SERVER_TYPES),
    default="auto",
    show_default=True,
    help="The server software, for remedies in its own terms ('auto': identify it from its "
    "HTTP answer, over one extra connection).",
)
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
    help="What must resume for exit status 0: mechanisms that must resume N/N everywhere and "
    "across every pair of backends (id, ticket, psk, psk_ke, 0rtt); 'any': each address "
    "resumes by one at least, and tickets/PSKs that resume on two backends also resume across "
    "them (session ids that do not: a warning, caches are per host); 'none'. A correctly "
    "shared fleet without a shared session cache: --expect ticket,psk.",
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
    metavar="DURATION",
    help="Time between census probes (--watch; default 60s).",
)
@click.option(
    "--every",
    "every_text",
    metavar="DURATION",
    help="Keep auditing, every DURATION (e.g. 5m), until stopped; one line per service and "
    "round (with --json: one JSON document a line; with --csv: rows under one header).",
)
@click.option(
    "--metrics",
    "metrics_text",
    metavar="HOST:PORT",
    help="With --every: serve the latest results as Prometheus gauges on HOST:PORT/metrics.",
)
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    type=FiniteFloatRange(0.1, 300),
    help="Seconds allowed for each connection.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (see the schema) instead.")
@click.option(
    "--csv", "as_csv", is_flag=True, help="Print CSV (one row per address and mechanism)."
)
def check(
    targets: tuple[str, ...],
    backends: str | None,
    resolve_all: bool,
    targets_file: str | None,
    concurrency: int,
    sni: str | None,
    server_type: str,
    attempts: int,
    expect_text: str,
    mechanisms_text: str | None,
    watch_text: str | None,
    interval_text: str | None,
    every_text: str | None,
    metrics_text: str | None,
    timeout: float,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Audit session resumption: which mechanisms resume, where, why not, and what to change.

    Audits TARGET(s) (HOST:PORT): TLS 1.2 session ids and tickets, TLS 1.3 PSK (psk_dhe_ke,
    psk_ke) and 0-RTT with a replay probe; with several backends, whether each resumes the
    others' sessions. Each failed check or warning ends with a remedy for the server software
    found (or given by --server-type).

    Exit status: 0 when every check passes (warnings allowed), 1 when a check fails (each one
    named), 2 for bad usage, 3 when a target cannot be reached or fails every TLS handshake,
    130 when interrupted (what was gathered is printed first). Certificates are not validated:
    this audits resumption."""
    from ..audit import AuditOptions, Mechanism
    from ..audit.auditor import EXIT_INTERRUPTED
    from ..audit.checks import contradiction, parse_expect

    if as_json and as_csv:
        raise click.UsageError("--json and --csv are two output formats: choose one")
    if metrics_text and not every_text:
        raise click.UsageError("--metrics serves the results of --every: add --every DURATION")
    if every_text and watch_text:
        raise click.UsageError(
            "--watch (a key census within one audit) and --every (audits again and again) "
            "do not combine: --every already follows the keys (tessera_check_ticket_key_age_"
            "seconds)"
        )
    if interval_text and not watch_text:
        raise click.UsageError("--interval sets the pace of --watch: add --watch DURATION")
    try:
        expect = parse_expect(expect_text)
        mechanisms = (
            tuple(Mechanism(m) for m in parse_expect(mechanisms_text, keywords=()))
            if mechanisms_text
            else tuple(Mechanism)
        )
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    problem = contradiction(expect, mechanisms)
    if problem:
        raise click.UsageError(problem)
    watch = parse_duration(watch_text, "--watch") if watch_text else None
    interval = parse_duration(interval_text, "--interval") if interval_text else 60.0
    base = AuditOptions(
        attempts=attempts,
        expect=expect,
        mechanisms=mechanisms,
        watch_s=watch,
        interval_s=interval,
        timeout=timeout,
        server_type=_server_kind(server_type),
    )
    services = _services(base, targets, backends, sni, resolve_all, targets_file)
    output = Output(as_json, as_csv)
    if every_text:
        every = parse_duration(every_text, "--every")
        _continuous(services, every, metrics_text, concurrency, output)
    reports, interrupted = _run(services, concurrency)
    output.final(reports)
    sys.exit(EXIT_INTERRUPTED if interrupted else run_exit_code(reports))


def _services(
    base: AuditOptions,
    targets: Sequence[str],
    backends: str | None,
    sni: str | None,
    resolve_all: bool,
    targets_file: str | None,
) -> list[AuditOptions]:
    out = []
    if targets or backends or not targets_file:
        main, extra = endpoints(targets, backends, sni, resolve_all)
        out.append(replace(base, targets=tuple(main), backends=tuple(extra)))
    for line in read_targets(targets_file) if targets_file else ():
        main, extra = endpoints([line.target], line.backends, line.sni or sni, False)
        kind = _server_kind(line.server_type) if line.server_type else base.server_type
        out.append(
            replace(
                base,
                targets=tuple(main),
                backends=tuple(extra),
                name=line.name,
                server_type=kind,
            )
        )
    return out


def run_exit_code(reports: Sequence[Report]) -> int:
    """130 interrupted, 3 when a target could not be audited, 1 when a check failed, else 0."""
    from ..audit.auditor import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_UNREACHABLE

    codes = {r.exit_code for r in reports}
    for code in (EXIT_INTERRUPTED, EXIT_UNREACHABLE, EXIT_FAILED):
        if code in codes:
            return code
    return EXIT_OK


class Output:
    """Where the reports go: rich tables (plain text when not a terminal), JSON or CSV."""

    def __init__(self, as_json: bool, as_csv: bool) -> None:
        self.as_json = as_json
        self.as_csv = as_csv
        self.rounds = 0

    def final(self, reports: Sequence[Report]) -> None:
        from ..audit.report import services_json, to_json, write_csv

        if self.as_json:
            doc = to_json(reports[0]) if len(reports) == 1 else None
            if doc is None:
                doc = services_json(reports, run_exit_code(reports))
            click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        elif self.as_csv:
            write_csv(reports, sys.stdout)
        else:
            from ..audit.render import console_for, print_plain, render_all

            print_plain(console_for(), lambda console: render_all(reports, console))

    def round(self, reports: Sequence[Report]) -> None:
        """Continuous mode: one line (or JSON document) per service; CSV rows under one header
        (the ``started`` column says which round)."""
        from ..audit.render import one_line
        from ..audit.report import to_json, write_csv

        if self.as_csv:
            write_csv(reports, sys.stdout, header=not self.rounds)
        self.rounds += 1
        for r in reports:
            if self.as_csv:
                continue
            if self.as_json:
                click.echo(json.dumps(to_json(r), ensure_ascii=False))
            else:
                when = datetime.fromtimestamp(r.started, UTC).isoformat(timespec="seconds")
                click.echo(f"{when} {one_line(r)}")
        sys.stdout.flush()


def _run(services: Sequence[AuditOptions], concurrency: int) -> tuple[list[Report], bool]:
    """Run the audits, with a progress bar on stderr when it is a terminal. Ctrl-C stops them
    and returns what they gathered."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..audit.watcher import run_services

    stop = threading.Event()
    err = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    progress = Progress(*columns, console=err, transient=True, disable=not err.is_terminal)
    with progress:
        task = progress.add_task("auditing", total=sum(s.steps() for s in services))

        def step(what: str) -> None:
            progress.update(task, advance=1, description=what)

        if len(services) == 1:
            reports = run_services(services, concurrency, step, stop)
            return reports, reports[0].interrupted
        return _run_threads(services, concurrency, step, stop)


def _run_threads(
    services: Sequence[AuditOptions],
    concurrency: int,
    step: Step,
    stop: threading.Event,
) -> tuple[list[Report], bool]:
    """Several services in worker threads, stopped early by Ctrl-C (see :func:`_join`)."""
    from ..audit.watcher import run_services

    result: list[list[Report]] = []

    def work() -> None:
        result.append(run_services(services, concurrency, step, stop))

    interrupted = _join(threading.Thread(target=work, name="tessera-check", daemon=True), stop)
    return result[0], interrupted


def _join(thread: threading.Thread, stop: threading.Event) -> bool:
    """Start ``thread`` and wait for it; Ctrl-C (which reaches the main thread) sets ``stop``
    and keeps waiting for the thread to return what it has. True when interrupted."""
    thread.start()
    interrupted = False
    while thread.is_alive():
        try:
            thread.join(0.2)
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
    return interrupted


def _continuous(
    services: Sequence[AuditOptions],
    every: float,
    metrics_text: str | None,
    concurrency: int,
    output: Output,
) -> None:
    """``--every``: rounds until SIGTERM (exit 0) or Ctrl-C (the last round's report, 130)."""
    from ..addresses import parse_address
    from ..audit.auditor import EXIT_INTERRUPTED, EXIT_OK
    from ..audit.watcher import Watcher

    watcher = Watcher(services, every, concurrency)
    server = None
    if metrics_text:
        from ..audit import gauges  # (prometheus-client, the metrics extra: only here)

        try:
            host, port = parse_address(metrics_text, "--metrics")
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--metrics") from None
        try:
            server, _ = gauges.serve(watcher, host, port)
        except OSError as e:
            raise click.BadParameter(
                f"cannot serve metrics on {metrics_text}: {e.strerror or e}",
                param_hint="--metrics",
            ) from None
        click.echo(f"metrics on http://{host}:{server.server_address[1]}/metrics", err=True)
    stop = threading.Event()
    terminated: list[bool] = []

    def on_term(signum: int, frame: object) -> None:
        terminated.append(True)
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    last: list[Sequence[Report]] = []

    def on_round(reports: Sequence[Report]) -> None:
        last[:] = [reports]
        output.round(reports)

    runner = threading.Thread(
        target=watcher.run, args=(stop, on_round), name="tessera-check-every", daemon=True
    )
    interrupted = _join(runner, stop)
    if server is not None:
        server.shutdown()
        server.server_close()
    if interrupted and last:
        output.final(last[0])
    sys.exit(EXIT_INTERRUPTED if interrupted and not terminated else EXIT_OK)

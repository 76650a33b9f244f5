"""The audit for people: rich tables that fit the width they are given.

Cells and headings wrap between words (rich's own layout) instead of being cut, each column is
at least as wide as the longest word of its heading, and long prose (reasons, evidence,
remedies) is set in two-column grids so that continuation lines stay indented. On a terminal
the tables have rich's box drawing and colour; anything else (a pipe, a log file) gets plain
ASCII tables and no escape codes, at ``COLUMNS`` or 80 columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from .auditor import AddressReport, Report
from .census import Census
from .checks import Check, Status
from .keynames import KeyNameStatus, label
from .matrix import Cell
from .mechanisms import MechanismResult
from .report import NO_RTT_SAVED, saved

_VERDICT_STYLE = {
    "resumes": "green",
    "partly": "yellow",
    "does not resume": "red",
    "not offered": "dim",
    "not enabled": "dim",
    "failed": "red",
}
_MARK = {Status.FAILED: ("✗", "red"), Status.WARNING: ("!", "yellow")}


def console_for(stdout: bool = True) -> Console:
    """A console on stdout (or stderr): plain text when it is not a terminal."""
    return Console(highlight=False, stderr=not stdout, emoji=False)


def print_plain(console: Console, draw: Callable[[Console], None]) -> None:
    """``draw`` on ``console``; for a pipe or a file, without the spaces rich pads lines with."""
    if console.is_terminal:
        draw(console)
        return
    with console.capture() as captured:
        draw(console)
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def render(report: Report, console: Console) -> None:
    plain = not console.is_terminal
    if report.interrupted:
        console.print(_interrupted())
    for a in report.addresses:
        if a.reachable:
            _render_address(a, console, plain)
    if report.matrix:
        console.print(_matrix_tables(report.matrix, plain))
        console.print()
    if report.census is not None:
        console.print(_census_table(report.census, plain))
        console.print()
    for w in report.warnings:
        console.print(_hanging("warning:", w, "bold yellow"))
    _render_checks(report, console)


def _interrupted() -> Text:
    return Text(
        "interrupted: what the audit had gathered before it was stopped (partial)",
        style="bold yellow",
    )


def _render_address(a: AddressReport, console: Console, plain: bool) -> None:
    console.print(_address_table(a, plain))
    why = _why_not(a)
    if why is not None:
        console.print(why)
    if any(m.resumed for m in a.mechanisms):
        console.print(_timing_table(a, plain))
    if any(m.mechanism.tls13 and saved(m)[0] == 0 for m in a.mechanisms if m.resumed):
        console.print(_hanging("note:", f"{NO_RTT_SAVED}.", "italic"))
    console.print(_hanging("ticket key names:", _key_text(a)))
    console.print()


def _render_checks(report: Report, console: Console) -> None:
    for error in report.errors:
        console.print(_hanging("error:", error, "bold red"))
    failed, warned = report.failed_checks, report.warned_checks
    if not report.checks and report.errors:
        return
    if failed or warned:
        parts = [f"{len(failed)} check(s) failed"] if failed else []
        if warned:
            parts.append(f"{len(warned)} warning(s)")
        passed = len(report.checks) - len(failed) - len(warned)
        console.print(
            Text(f"{', '.join(parts)} ({passed} passed):", style="bold red" if failed else "bold")
        )
        shown: set[str] = set()
        for c in (*failed, *warned):
            console.print(_check(c, shown))
    else:
        console.print(Text(f"all {len(report.checks)} check(s) passed", style="bold green"))


def _check(c: Check, shown: set[str]) -> RenderableType:
    """A check: its name, what was seen, and what to change (a remedy printed once; later
    checks that need it refer to it)."""
    mark, style = _MARK[c.status]
    parts: list[RenderableType] = [
        Text(f"{mark} {c.name}", style=f"bold {style}"),
        Padding(Text(c.detail), (0, 0, 0, 4)),
    ]
    for text in c.remedies:
        parts.append(Padding(_hanging("fix:", "as above" if text in shown else text), (0, 0, 0, 4)))
        shown.add(text)
    return Group(*parts)


def _hanging(head: str, text: str, style: str = "bold") -> Table:
    """``head text`` with the text's continuation lines indented under its start."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row(Text(head, style=style), Text(text))
    return grid


def _why_not(a: AddressReport) -> Table | None:
    """One row per mechanism that did not resume every time: the reason and its evidence."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for m in a.mechanisms:
        if m.reason is not None:
            text = Text(m.reason.text, style="red" if m.supported else "") + Text(
                f" — {m.evidence}"
            )
            grid.add_row(Text(f"  {m.mechanism.value}:", style="bold"), text)
        if m.replay is not None:
            style = "bold red" if m.replay.replay_accepted else ""
            grid.add_row(Text("  0rtt replay:", style="bold"), Text(m.replay.evidence, style=style))
    return grid if grid.row_count else None


def _table(columns: Iterable[str], plain: bool) -> Table:
    """A table whose headings are never cut: each column at least as wide as the longest word
    of its heading; cells wrap between words."""
    t = Table(box=box.ASCII if plain else box.HEAVY_HEAD)
    for col in columns:
        t.add_column(col, min_width=max(len(w) for w in col.split()), overflow="fold")
    return t


def _titled(title: str, table: Table, plain: bool) -> Group:
    """A table under its title, the title wrapped at the console's width (not the table's)."""
    return Group(Text(title, style="" if plain else "bold"), table)


def _address_table(a: AddressReport, plain: bool) -> Group:
    sni = f"SNI {a.endpoint.sni}" if a.endpoint.sni else "no SNI"
    server = ""
    if a.contact is not None:
        identity = a.contact.identity
        server = f" — {identity.label} ({identity.evidence})"
    title = f"{a.endpoint.label} ({a.role}, {sni}){server}"
    t = _table(("mechanism", "resumed", "lifetime", "ticket", "per conn.", "renews", "EMS"), plain)
    for m in a.mechanisms:
        shown = f"{m.resumed}/{m.attempts}" if m.supported else m.verdict
        t.add_row(
            m.mechanism.title,
            Text(shown, style=_VERDICT_STYLE.get(m.verdict, "")),
            _lifetime(m),
            f"{m.issued.ticket_size} B" if m.issued.ticket_size else "—",
            _per_connection(m),
            _renews(m),
            _yes_no(m.extended_master_secret),
        )
    return _titled(title, t, plain)


def _lifetime(m: MechanismResult) -> str:
    hint = m.issued.lifetime_hint
    if hint is None:
        return "—"
    return "unspecified" if hint == 0 else f"{hint} s"


def _per_connection(m: MechanismResult) -> str:
    if m.mechanism.value == "id":
        return "id" if m.issued.session_id else "—"
    n = m.issued.tickets_per_connection
    return "—" if n is None else str(n)


def _renews(m: MechanismResult) -> str:
    """Whether a resumed connection brought a new ticket (TLS 1.3: how many)."""
    if m.renews and m.renewed_tickets:
        return f"yes, {m.renewed_tickets}"
    return _yes_no(m.renews)


def _yes_no(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "no")


def _timing_table(a: AddressReport, plain: bool) -> Group:
    t = _table(("mechanism", "full RTT", "full ms", "resumed RTT", "resumed ms", "saved"), plain)
    for m in a.mechanisms:
        if not m.resumed:
            continue
        rtt, ms = saved(m)
        t.add_row(
            m.mechanism.title,
            str(m.full.data_round_trips),
            f"{m.full.median_ms:.2f}",
            str(m.resumed_timing.data_round_trips),
            f"{m.resumed_timing.median_ms:.2f}",
            _saved_text(rtt, ms),
        )
    return _titled("round trips and time: full vs resumed handshakes", t, plain)


def _saved_text(rtt: int | None, ms: float | None) -> str:
    if rtt is None or ms is None:
        return "—"
    return f"{rtt} RTT, {ms:.2f} ms" if ms > 0 else f"{rtt} RTT, none measured"


def _key_text(a: AddressReport) -> str:
    k = a.key_names
    if k.status is KeyNameStatus.KEY_NAME:
        owners = dict(a.key_owners)
        names = ", ".join(
            label(n) + (f" (from {' and '.join(owners[n]) or 'no backend'})" if owners else "")
            for n in k.names
        )
        return f"{names} — {k.evidence}"
    if k.status is KeyNameStatus.NO_KEY_NAME:
        return f"no key name — {k.evidence}"
    return f"{k.status.value.replace('_', ' ')} — {k.evidence}"


def _matrix_tables(cells: Sequence[Cell], plain: bool) -> Group:
    """One table per mechanism; with more than two backends the columns are numbered (#1,
    #2, ...) after the rows, so that each heading stays whole."""
    tables = []
    for m in dict.fromkeys(c.mechanism for c in cells):
        mine = [c for c in cells if c.mechanism is m]
        targets = list(dict.fromkeys(c.target for c in mine))
        sources = list(dict.fromkeys(c.source for c in mine))
        numbered = len(targets) > 2
        headings = [f"#{i}" for i in range(1, len(targets) + 1)] if numbered else targets
        t = _table(("from \\ to", *headings), plain)
        for source in sources:
            row: list[RenderableType] = [
                f"#{targets.index(source) + 1} {source}"
                if numbered and source in targets
                else source
            ]
            for target in targets:
                c = next(x for x in mine if x.source == source and x.target == target)
                if c.resumed:
                    row.append(Text("resumed", style="green"))
                else:
                    why = c.outcome.reason.text if c.outcome.reason else "no"
                    row.append(Text(why, style="red" if c.issued else "dim"))
            t.add_row(*row)
        title = f"cross-backend matrix, {m.title}: session from row, offered to column"
        tables.append(_titled(title, t, plain))
    return Group(*tables)


def _census_table(c: Census, plain: bool) -> Group:
    title = (
        f"ticket key census: {c.rounds} rounds over {c.duration_s:g} s, every {c.interval_s:g} s"
    )
    t = _table(("address", "key names", "keys (first - last seen, s)", "rotation period"), plain)
    for a in c.addresses:
        if a.key_names.status is not KeyNameStatus.KEY_NAME:
            t.add_row(
                a.address, a.key_names.status.value.replace("_", " "), a.key_names.evidence, "—"
            )
            continue
        keys = "; ".join(f"{label(k.name)} {k.first_seen:g}-{k.last_seen:g}" for k in a.keys)
        if a.alternating:
            period = "n/a: several keys at once"
        elif a.period_s is not None:
            period = f"≈ {a.period_s:g} s (± {c.interval_s:g} s)"
        else:
            period = f"≥ {a.period_at_least_s:g} s ({len(a.rotations)} rotation(s) seen)"
        t.add_row(a.address, str(len(a.keys)), keys, period)
    return _titled(title, t, plain)


def render_summary(reports: Sequence[Report], console: Console) -> None:
    """Several services (``--targets``): one row each."""
    plain = not console.is_terminal
    t = _table(("service", "result", "resumes by", "checks"), plain)
    for r in reports:
        t.add_row(r.options.service, _result(r), _resumes_by(r), _counts(r))
    console.print(_titled("services", t, plain))


def _result(r: Report) -> Text:
    if r.interrupted:
        return Text("interrupted", style="yellow")
    if r.errors:
        return Text("unreachable", style="red")
    if r.failed_checks:
        return Text("failed", style="red")
    return Text(
        "warnings" if r.warned_checks else "ok", style="yellow" if r.warned_checks else "green"
    )


def _resumes_by(r: Report) -> str:
    ok = dict.fromkeys(m.mechanism.value for a in r.addresses for m in a.mechanisms if m.passed)
    return ", ".join(ok) or "—"


def _counts(r: Report) -> str:
    return (
        f"{len(r.failed_checks)} failed, {len(r.warned_checks)} warnings, "
        f"{len(r.checks) - len(r.failed_checks) - len(r.warned_checks)} passed"
    )


def one_line(r: Report) -> str:
    """Continuous mode: one line per service and round."""
    head = f"{r.options.service} {_result(r).plain}"
    if r.errors:
        return f"{head}: {'; '.join(r.errors)}"
    parts = [f"resumes by {_resumes_by(r)}"]
    cross: dict[str, tuple[int, int]] = {}
    for c in r.matrix:
        if c.source != c.target:
            done, total = cross.get(c.mechanism.value, (0, 0))
            cross[c.mechanism.value] = (done + c.resumed, total + 1)
    if cross:
        parts.append(
            "across backends "
            + ", ".join(f"{m} {done}/{total}" for m, (done, total) in cross.items())
        )
    if r.failed_checks:
        parts.append("failed: " + ", ".join(c.name for c in r.failed_checks))
    return f"{head}: {'; '.join(parts)}"


def render_all(reports: Sequence[Report], console: Console) -> None:
    """One service's report, or several with a rule before each and a summary after."""
    for r in reports:
        if len(reports) > 1:
            console.rule(r.options.service, characters="=")
        render(r, console)
        if len(reports) > 1:
            console.print()
    if len(reports) > 1:
        render_summary(reports, console)

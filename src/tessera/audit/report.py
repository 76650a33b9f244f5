"""The audit as JSON (``--json``, described by ``schema.json``) and as rich tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .auditor import AddressReport, Report
from .census import Census
from .classify import Mechanism, Outcome
from .keynames import KeyNames, KeyNameStatus, label
from .matrix import Cell
from .mechanisms import Issued, MechanismResult, ReplayProbe, Timing

SCHEMA_VERSION = 1
NO_RTT_SAVED = (
    "TLS 1.3 resumption without 0-RTT takes one round trip, like a full TLS 1.3 handshake: it "
    "saves no round trip, only the certificate and its signature (and with psk_ke the key "
    "exchange)"
)


def schema() -> dict[str, Any]:
    """The JSON Schema of ``tessera check --json`` output."""
    text = resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


# -- JSON -------------------------------------------------------------------------------------
def to_json(report: Report) -> dict[str, Any]:
    o = report.options
    return {
        "schema_version": SCHEMA_VERSION,
        "started": datetime.fromtimestamp(report.started, UTC).isoformat(timespec="seconds"),
        "duration_s": report.duration_s,
        "options": {
            "attempts": o.attempts,
            "expect": list(o.expect),
            "mechanisms": [m.value for m in o.mechanisms],
            "watch_s": o.watch_s,
            "interval_s": o.interval_s if o.watch_s is not None else None,
            "timeout_s": o.timeout,
        },
        "addresses": [_address(a) for a in report.addresses],
        "matrix": [_cell(c) for c in report.matrix],
        "census": _census(report.census) if report.census is not None else None,
        "warnings": list(report.warnings),
        "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in report.checks],
        "exit_code": report.exit_code,
    }


def _address(a: AddressReport) -> dict[str, Any]:
    return {
        "address": a.endpoint.label,
        "host": a.endpoint.host,
        "port": a.endpoint.port,
        "sni": a.endpoint.sni,
        "role": a.role,
        "mechanisms": [_mechanism(m) for m in a.mechanisms],
        "key_names": _key_names(a.key_names),
        "key_owners": [{"key_name": n.hex(), "backends": list(b)} for n, b in a.key_owners],
    }


def _key_names(k: KeyNames) -> dict[str, Any]:
    return {
        "status": k.status.value,
        "names": [n.hex() for n in k.names],
        "tickets": k.tickets,
        "evidence": k.evidence,
    }


def _outcome(o: Outcome) -> dict[str, Any]:
    return {
        "resumed": o.resumed,
        "reason": o.reason.value if o.reason else None,
        "reason_text": o.reason.text if o.reason else None,
        "evidence": o.evidence,
    }


def _timing(t: Timing) -> dict[str, Any]:
    return {
        "samples": t.samples,
        "round_trips": t.round_trips,
        "data_round_trips": t.data_round_trips,
        "median_ms": t.median_ms,
        "median_connect_ms": t.median_connect_ms,
    }


def _issued(i: Issued) -> dict[str, Any]:
    return {
        "session_id": i.session_id,
        "tickets_per_connection": i.tickets_per_connection,
        "ticket_size": i.ticket_size,
        "lifetime_hint_s": i.lifetime_hint,
        "max_early_data": i.max_early_data,
    }


def _replay(r: ReplayProbe | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "tested": r.tested,
        "first_accepted": r.first_accepted,
        "replay_accepted": r.replay_accepted,
        "identical_first_flight": r.identical_first_flight,
        "evidence": r.evidence,
    }


def saved(m: MechanismResult) -> tuple[int | None, float | None]:
    """Round trips and milliseconds a resumption saved against a full handshake."""
    full, res = m.full, m.resumed_timing
    rtt = None
    if full.data_round_trips is not None and res.data_round_trips is not None:
        rtt = full.data_round_trips - res.data_round_trips
    ms = None
    if full.median_ms is not None and res.median_ms is not None:
        ms = round(full.median_ms - res.median_ms, 2)
    return rtt, ms


def _note(m: MechanismResult) -> str | None:
    rtt, _ = saved(m)
    if m.mechanism.tls13 and rtt == 0:
        return NO_RTT_SAVED
    return None


def _mechanism(m: MechanismResult) -> dict[str, Any]:
    rtt, ms = saved(m)
    return {
        "mechanism": m.mechanism.value,
        "title": m.mechanism.title,
        "supported": m.supported,
        "verdict": m.verdict,
        "attempts": m.attempts,
        "resumed": m.resumed,
        "reason": m.reason.value if m.reason else None,
        "reason_text": m.reason.text if m.reason else None,
        "evidence": m.evidence,
        "version": m.version,
        "cipher_suite": m.cipher_suite,
        "extended_master_secret": m.extended_master_secret,
        "issued": _issued(m.issued),
        "renews_ticket": m.renews,
        "tickets_per_resumption": m.renewed_tickets,
        "attempt_outcomes": [_outcome(o) for o in m.outcomes],
        "timing": {
            "full": _timing(m.full),
            "resumed": _timing(m.resumed_timing),
            "round_trips_saved": rtt,
            "ms_saved": ms,
            "note": _note(m),
        },
        "replay": _replay(m.replay),
    }


def _cell(c: Cell) -> dict[str, Any]:
    return {
        "mechanism": c.mechanism.value,
        "from": c.source,
        "to": c.target,
        "issued": c.issued,
        **_outcome(c.outcome),
    }


def _census(c: Census) -> dict[str, Any]:
    return {
        "duration_s": c.duration_s,
        "interval_s": c.interval_s,
        "rounds": c.rounds,
        "addresses": [
            {
                "address": a.address,
                "key_names": _key_names(a.key_names),
                "keys": [
                    {
                        "key_name": k.name.hex(),
                        "first_seen_s": k.first_seen,
                        "last_seen_s": k.last_seen,
                        "samples": k.samples,
                    }
                    for k in a.keys
                ],
                "rotations_at_s": list(a.rotations),
                "estimated_rotation_period_s": a.period_s,
                "period_resolution_s": c.interval_s,
                "key_in_use_at_least_s": a.period_at_least_s,
                "several_keys_at_once": a.alternating,
                "samples": a.samples,
                "failures": a.failures,
            }
            for a in c.addresses
        ],
        "shared": [{"key_name": n.hex(), "addresses": list(a)} for n, a in c.shared],
        "timeline": [
            {
                "at_s": s.at,
                "address": s.address,
                "version": s.version,
                "prefix": s.prefix.hex() if s.prefix else None,
                "error": s.error,
            }
            for s in c.samples
        ],
        "warnings": list(c.warnings),
    }


# -- rich -------------------------------------------------------------------------------------
_VERDICT_STYLE = {
    "resumes": "green",
    "partly": "yellow",
    "does not resume": "red",
    "not offered": "dim",
    "failed": "red",
}


def render(report: Report, console: Console) -> None:
    for a in report.addresses:
        console.print(_address_table(a))
        for line in _why_not(a):
            console.print(line)
        console.print(_timing_table(a))
        if any(_note(m) for m in a.mechanisms if m.resumed):
            console.print(Text(f"note: {NO_RTT_SAVED}.", style="italic"))
        console.print(_key_line(a))
        console.print()
    if report.matrix:
        console.print(_matrix_table(report.matrix))
        console.print()
    if report.census is not None:
        console.print(_census_table(report.census))
        console.print()
    for w in report.warnings:
        console.print(Text("warning: ", style="bold yellow") + Text(w))
    failed = report.failed_checks
    if failed:
        console.print(Text(f"{len(failed)} check(s) failed:", style="bold red"))
        for c in failed:
            console.print(Text(f"  ✗ {c.name}: ", style="red") + Text(c.detail))
    else:
        console.print(Text(f"all {len(report.checks)} check(s) passed", style="bold green"))


def _why_not(a: AddressReport) -> list[Text]:
    """One line per mechanism that did not resume every time: the reason and its evidence."""
    lines = []
    for m in a.mechanisms:
        if m.reason is not None:
            lines.append(
                Text(f"  {m.mechanism.title}: ", style="bold")
                + Text(m.reason.text, style="red" if m.supported else "")
                + Text(f" — {m.evidence}")
            )
        if m.replay is not None:
            style = "bold red" if m.replay.replay_accepted else ""
            lines.append(
                Text("  0-RTT replay probe: ", style="bold") + Text(m.replay.evidence, style=style)
            )
    return lines


def _lifetime(m: MechanismResult) -> str:
    hint = m.issued.lifetime_hint
    if hint is None:
        return "—"
    return "unspecified" if hint == 0 else f"{hint} s"


def _address_table(a: AddressReport) -> Table:
    sni = f", SNI {a.endpoint.sni}" if a.endpoint.sni else ", no SNI"
    t = Table(title=f"{a.endpoint.label} ({a.role}{sni})", title_justify="left")
    for col in ("mechanism", "resumed", "lifetime", "ticket", "per conn.", "renews", "EMS"):
        t.add_column(col, no_wrap=True)
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
    return t


def _per_connection(m: MechanismResult) -> str:
    if m.mechanism is Mechanism.SESSION_ID:
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


def _timing_table(a: AddressReport) -> Table:
    t = Table(title="round trips and time: full vs resumed handshakes", title_justify="left")
    for col in ("mechanism", "full RTT", "full ms", "resumed RTT", "resumed ms", "saved"):
        t.add_column(col)
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
            f"{rtt} RTT, {ms:.2f} ms" if rtt is not None and ms is not None else "—",
        )
    return t


def _key_line(a: AddressReport) -> Text:
    k = a.key_names
    if k.status is KeyNameStatus.KEY_NAME:
        names = ", ".join(
            label(n)
            + (
                f" (from {' and '.join(dict(a.key_owners)[n]) or 'no backend'})"
                if a.key_owners
                else ""
            )
            for n in k.names
        )
        return Text(f"ticket key names: {names} — {k.evidence}")
    if k.status is KeyNameStatus.NO_KEY_NAME:
        return Text(f"ticket key names: no key name — {k.evidence}")
    return Text(f"ticket key names: {k.status.value.replace('_', ' ')} — {k.evidence}")


def _matrix_table(cells: tuple[Cell, ...]) -> Group:
    tables = []
    for m in dict.fromkeys(c.mechanism for c in cells):
        mine = [c for c in cells if c.mechanism is m]
        targets = list(dict.fromkeys(c.target for c in mine))
        t = Table(
            title=f"cross-backend matrix, {m.title}: session from row, offered to column",
            title_justify="left",
        )
        t.add_column("from \\ to")
        for target in targets:
            t.add_column(target, overflow="fold")
        for source in dict.fromkeys(c.source for c in mine):
            row = []
            for target in targets:
                c = next(x for x in mine if x.source == source and x.target == target)
                if c.resumed:
                    row.append(Text("resumed", style="green"))
                else:
                    why = c.outcome.reason.text if c.outcome.reason else "no"
                    row.append(Text(why, style="red" if c.issued else "dim"))
            t.add_row(source, *row)
        tables.append(t)
    return Group(*tables)


def _census_table(c: Census) -> Table:
    t = Table(
        title=f"ticket key census: {c.rounds} rounds over {c.duration_s:g} s, every "
        f"{c.interval_s:g} s",
        title_justify="left",
    )
    for col in ("address", "key names", "keys (first - last seen, s)", "rotation period"):
        t.add_column(col, overflow="fold")
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
    return t

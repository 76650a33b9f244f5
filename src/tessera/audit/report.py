"""The audit in machine formats: JSON (``--json``, described by ``schema.json``, versioned by
``SCHEMA_VERSION``) and CSV (``--csv``, one row per address and mechanism and per cross-backend
cell). The tables for people are in :mod:`.render`."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import Any, TextIO

from .auditor import AddressReport, Report
from .census import Census
from .classify import Outcome
from .keynames import KeyNames
from .matrix import Cell
from .mechanisms import Issued, MechanismResult, ReplayProbe, Timing

SCHEMA_VERSION = 2
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
        "service": o.service,
        "options": {
            "attempts": o.attempts,
            "expect": list(o.expect),
            "mechanisms": [m.value for m in o.mechanisms],
            "watch_s": o.watch_s,
            "interval_s": o.interval_s if o.watch_s is not None else None,
            "timeout_s": o.timeout,
            "server_type": o.server_type.value if o.server_type else None,
        },
        "addresses": [_address(a) for a in report.addresses],
        "matrix": [_cell(c) for c in report.matrix],
        "census": _census(report.census) if report.census is not None else None,
        "warnings": list(report.warnings),
        "checks": [
            {
                "name": c.name,
                "passed": c.passed,
                "status": c.status.value,
                "detail": c.detail,
                "remedies": list(c.remedies),
            }
            for c in report.checks
        ],
        "errors": list(report.errors),
        "interrupted": report.interrupted,
        "exit_code": report.exit_code,
    }


def services_json(reports: Sequence[Report], exit_code: int) -> dict[str, object]:
    """Several services (``--targets FILE``): one document each, and the run's exit code."""
    return {
        "schema_version": SCHEMA_VERSION,
        "services": [to_json(r) for r in reports],
        "exit_code": exit_code,
    }


def _address(a: AddressReport) -> dict[str, Any]:
    contact = a.contact
    identity = contact.identity if contact is not None else None
    return {
        "address": a.endpoint.label,
        "host": a.endpoint.host,
        "port": a.endpoint.port,
        "sni": a.endpoint.sni,
        "role": a.role,
        "reachable": a.reachable,
        "error": contact.error if contact is not None else None,
        "server": {
            "kind": identity.kind.value,
            "product": identity.product,
            "evidence": identity.evidence,
        }
        if identity is not None
        else None,
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
    """Round trips and milliseconds a resumption saved against a full handshake; never
    negative (a resumption measured slower than a full handshake saved nothing: noise, or a
    HelloRetryRequest; both medians are in the JSON)."""
    full, res = m.full, m.resumed_timing
    rtt = None
    if full.data_round_trips is not None and res.data_round_trips is not None:
        rtt = max(0, full.data_round_trips - res.data_round_trips)
    ms = None
    if full.median_ms is not None and res.median_ms is not None:
        ms = max(0.0, round(full.median_ms - res.median_ms, 2))
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
        "offered_key_name": c.offered_key.hex() if c.offered_key else None,
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


# -- CSV --------------------------------------------------------------------------------------
CSV_COLUMNS = (
    "started",
    "service",
    "row",
    "address",
    "role",
    "server",
    "mechanism",
    "from",
    "to",
    "verdict",
    "resumed",
    "attempts",
    "reason",
    "evidence",
    "check",
    "remedy",
)


def write_csv(reports: Sequence[Report], out: TextIO, header: bool = True) -> None:
    """One row per address and mechanism (an unreachable address: one row), and one per
    cross-backend cell; ``check`` is the status of the check about that row, if any."""
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    for report in reports:
        started = datetime.fromtimestamp(report.started, UTC).isoformat(timespec="seconds")
        writer.writerows({"started": started, **row} for row in csv_rows(report))


def csv_rows(report: Report) -> list[dict[str, str | int]]:
    checks = {c.name: c for c in report.checks}
    service = report.options.service
    rows: list[dict[str, str | int]] = []
    for a in report.addresses:
        base: dict[str, str | int] = {
            "service": service,
            "row": "address",
            "address": a.endpoint.label,
            "role": a.role,
            "server": a.contact.identity.label if a.contact else "",
        }
        if a.contact is not None and not a.contact.reachable:
            rows.append({**base, "verdict": "unreachable", "evidence": a.contact.error or ""})
            continue
        for m in a.mechanisms:
            check = checks.get(f"{a.endpoint.label} {m.mechanism.value}")
            rows.append(
                {
                    **base,
                    "mechanism": m.mechanism.value,
                    "verdict": m.verdict,
                    "resumed": m.resumed,
                    "attempts": m.attempts,
                    "reason": m.reason.value if m.reason else "",
                    "evidence": m.evidence,
                    "check": check.status.value if check else "",
                    "remedy": " / ".join(check.remedies) if check else "",
                }
            )
    for c in report.matrix:
        check = checks.get(f"{c.mechanism.value} {c.source} → {c.target}")
        rows.append(
            {
                "service": service,
                "row": "cross",
                "mechanism": c.mechanism.value,
                "from": c.source,
                "to": c.target,
                "verdict": "resumed" if c.resumed else "not resumed",
                "reason": c.outcome.reason.value if c.outcome.reason else "",
                "evidence": c.outcome.evidence,
                "check": check.status.value if check else "",
                "remedy": " / ".join(check.remedies) if check else "",
            }
        )
    return rows

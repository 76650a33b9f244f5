"""One log line per connection: when, who, what was negotiated, how it resumed or why not.

``text``::

    2026-12-01T10:00:00.123Z 127.0.0.1:51234 sni=example.com TLSv1.3 TLS_AES_128_GCM_SHA256
    resumed=psk handshake=1.8ms in=517 out=2048 duration=0.031s

    ... resumed=no reason="ticket key name unknown" ...

``json``: the same fields as one JSON object per line. No secret is ever logged (the session
id is public; key names are the first 8 hex digits of a public name).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..events import ConnectionInfo

Field = str | int | float | None  # a value of a log record


@dataclass(frozen=True, slots=True)
class ConnectionRecord:
    """What a front end knows about one finished (or failed) connection."""

    peer: tuple[str, int] | None
    info: ConnectionInfo | None  # None: the handshake did not complete
    bytes_in: int = 0
    bytes_out: int = 0
    duration: float = 0.0
    error: str | None = None  # why the connection failed, if it did
    started: float = 0.0  # wall-clock time the connection was accepted


def peer_address(value: object) -> tuple[str, int] | None:
    """A transport's ``peername`` as (host, port), None when it is not an IP address."""
    if isinstance(value, tuple) and len(value) >= 2:
        try:
            return str(value[0]), int(value[1])
        except (TypeError, ValueError):
            return None
    return None


def peer_text(peer: tuple[str, int] | None) -> str:
    """``host:port``, ``[v6]:port``, or ``?``."""
    if peer is None:
        return "?"
    host = f"[{peer[0]}]" if ":" in peer[0] else peer[0]
    return f"{host}:{peer[1]}"


def session_line(info: ConnectionInfo) -> str:
    """``New|Reused, VERSION, Cipher is SUITE`` (what ``openssl s_client`` prints)."""
    word = "Reused" if info.resumed else "New"
    return f"{word}, {info.version.label}, Cipher is {info.cipher_suite.openssl_name}"


def resumption_note(info: ConnectionInfo) -> str:
    """``(resumed by HOW)``, ``(resumption fell back: WHY)`` or nothing."""
    if info.resumed:
        return f"(resumed by {info.resumed_by})"
    decision = info.resumption
    if decision is not None and decision.fallback is not None:
        return f"(resumption fell back: {decision.fallback.value})"
    return ""


def handshake_line(peer: tuple[str, int] | None, info: ConnectionInfo) -> str:
    """``TIME PEER New|Reused, VERSION, Cipher is SUITE [how resumed | why it fell back]``:
    ``tessera serve``'s line per connection."""
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {peer_text(peer)} {session_line(info)}"
    note = resumption_note(info)
    return f"{line} {note}" if note else line


def _timestamp(t: float) -> str:
    ms = int((t - int(t)) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}Z"


def fields(rec: ConnectionRecord) -> dict[str, Field]:
    """The record as a flat dict (the JSON form)."""
    out: dict[str, Field] = {
        "time": _timestamp(rec.started or time.time()),
        "peer": f"{rec.peer[0]}:{rec.peer[1]}" if rec.peer else None,
    }
    info = rec.info
    if info is not None:
        out["sni"] = info.server_name
        out["version"] = info.version.label
        out["cipher"] = info.cipher_suite.name
        out["alpn"] = info.alpn_protocol
        d = info.resumption
        out["resumed"] = d.kind if d is not None else (info.resumed_by or "no")
        if d is not None and not d.resumed:
            out["resumed"] = "no"
            if d.fallback is not None:
                out["reason"] = d.fallback.value
                out["offered"] = d.offered.value if d.offered is not None else None
        if d is not None and d.key_name:
            out["ticket_key"] = d.key_name.hex()[:8]
        if d is not None and d.early_data_offered and not d.early_data_accepted:
            out["early_data"] = (
                "refused: " + d.early_data_refusal.value if d.early_data_refusal else "refused"
            )
        if info.handshake_time is not None:
            out["handshake_ms"] = round(info.handshake_time * 1000, 3)
    out["bytes_in"] = rec.bytes_in
    out["bytes_out"] = rec.bytes_out
    out["duration_s"] = round(rec.duration, 6)
    if rec.error is not None:
        out["error"] = rec.error
    return out


def format_record(rec: ConnectionRecord, fmt: str = "text") -> str:
    """One line, ``text`` or ``json``."""
    f = fields(rec)
    if fmt == "json":
        return json.dumps(f, separators=(",", ":"))
    parts = [f["time"], f["peer"] or "-"]
    if "version" in f:
        parts += [f"sni={f['sni'] or '-'}", f["version"], f["cipher"]]
        if f.get("alpn"):
            parts.append(f"alpn={f['alpn']}")
        parts.append(f"resumed={f['resumed']}")
        if "reason" in f:
            parts.append(f"reason={json.dumps(f['reason'])}")
        if "early_data" in f:
            parts.append(f"early_data={json.dumps(f['early_data'])}")
        if "ticket_key" in f:
            parts.append(f"ticket_key={f['ticket_key']}")
        if "handshake_ms" in f:
            parts.append(f"handshake={f['handshake_ms']}ms")
    parts += [f"in={f['bytes_in']}", f"out={f['bytes_out']}", f"duration={f['duration_s']}s"]
    if "error" in f:
        parts.append(f"error={json.dumps(f['error'])}")
    return " ".join(str(p) for p in parts)

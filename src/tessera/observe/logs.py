"""One log line per connection: when, who, what was negotiated, how it resumed or why not.

``text``::

    2026-12-01T10:00:00.123Z 127.0.0.1:51234 sni=example.com TLSv1.3 TLS_AES_128_GCM_SHA256
    resumed=psk handshake=1.8ms in=517 out=2048 duration=0.031s

    ... resumed=no reason="ticket key name unknown" ...

``json``: the same fields as one JSON object per line. No secret is ever logged (the session
id is public; key names are the first 8 hex digits of a public name). What is said about the
connection comes from the one renderer of a connection (:mod:`tessera.observe.render`), in its
vocabulary, under the log's own long-standing key names.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..addresses import host_port
from ..session.resumption import HandshakeKind
from . import render
from .render import by_key, connection_fields, resumption_note, session_line

if TYPE_CHECKING:
    from ..events import ConnectionInfo

LogValue = str | int | float | None  # a value of a log record


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
    return "?" if peer is None else host_port(peer)


def handshake_line(peer: tuple[str, int] | None, info: ConnectionInfo) -> str:
    """``TIME PEER New|Reused, VERSION, Cipher is SUITE [how resumed | why it fell back]``:
    ``tessera serve``'s line per connection."""
    found = by_key(connection_fields(info, keys=render.LINE_KEYS))
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {peer_text(peer)} {session_line(found)}"
    note = resumption_note(found)
    return f"{line} {note}" if note else line


def _timestamp(t: float) -> str:
    ms = int((t - int(t)) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{ms:03d}Z"


# The log record's keys for the renderer's fields (the log's names predate the renderer and
# are what log pipelines parse: ``version``, ``sni``, ``cipher`` is the IANA name).
LOG_KEYS = (("server_name", "sni"), ("protocol", "version"), ("cipher_iana", "cipher"),
            ("alpn", "alpn"))  # fmt: skip
OMITTED_WHEN_EMPTY = ("reason", "offered", "ticket_key", "handshake_ms")
_RECORD_KEYS = (*(key for key, _ in LOG_KEYS), "kind", *OMITTED_WHEN_EMPTY, "early_data")


def info_fields(info: ConnectionInfo) -> dict[str, LogValue]:
    """The connection's part of a log record, from the one renderer."""
    found = by_key(connection_fields(info, keys=_RECORD_KEYS))
    out: dict[str, LogValue] = {log: found[key].value for key, log in LOG_KEYS}
    kind = found["kind"].value
    out["resumed"] = "no" if kind == HandshakeKind.FULL.value else kind
    for key in OMITTED_WHEN_EMPTY:
        if found[key].shown:
            out[key] = found[key].value
    if found["early_data"].value == render.REJECTED:
        out["early_data"] = found["early_data"].text
    return out


def fields(rec: ConnectionRecord) -> dict[str, LogValue]:
    """The record as a flat dict (the JSON form)."""
    out: dict[str, LogValue] = {
        "time": _timestamp(rec.started or time.time()),
        "peer": f"{rec.peer[0]}:{rec.peer[1]}" if rec.peer else None,
    }
    if rec.info is not None:
        out.update(info_fields(rec.info))
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

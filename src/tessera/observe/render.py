"""The one renderer of a connection: a :class:`~tessera.events.ConnectionInfo` (and the few
facts an edge adds) as one ordered list of typed fields.

Every edge formats this list and nothing else: ``tessera serve --www``'s page, ``tessera
connect``'s summary and ``--json`` record, and the log lines of ``serve`` and ``proxy``. So a
version, a suite, how a connection resumed and what became of its early data are spelled the
same everywhere: versions as ``TLSv1.3``, suites by their OpenSSL name (``cipher``) and their
IANA name (``cipher_iana``), how it resumed by the resumption vocabulary (:class:`Mechanism`
for ``resumed_by``, :class:`HandshakeKind` for ``kind``), early data as ``accepted`` or
``rejected``. No secret is ever a field (the session id and a ticket key's name are public).

Each field has a machine ``key`` (the JSON key), a ``label`` for people and a typed ``value``;
``text`` is the value as a person reads it (``(none)``, ``yes``/``no``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from ..enums import NamedGroup, ProtocolVersion, SignatureScheme, code_name
from ..session.resumption import FallbackReason, HandshakeKind

if TYPE_CHECKING:
    from ..events import ConnectionInfo

Value = str | int | float | bool | None

NONE = "(none)"
ACCEPTED = "accepted"
REJECTED = "rejected"


class Field(NamedTuple):
    """One fact about a connection (a named tuple: a connection's twenty are made on every
    log line, and a tuple is the cheapest record to make)."""

    key: str  # the machine key (JSON), e.g. ``resumed_by``
    label: str  # what a person reads, e.g. ``Resumed by``
    value: Value
    shown_as: str | None = None  # the text, when not the value's usual spelling

    @property
    def text(self) -> str:
        """The value for a person: ``(none)`` for nothing, ``yes``/``no`` for a boolean."""
        if self.shown_as is not None:
            return self.shown_as
        value = self.value
        if value is None or value == "":
            return NONE
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)

    @property
    def shown(self) -> bool:
        """Whether a summary that leaves out what is unknown or empty shows it (``False`` is
        shown: it says no)."""
        return self.value is not None and self.value != ""


@dataclass(frozen=True, slots=True)
class Extra:
    """What an edge knows beyond ``ConnectionInfo``."""

    target: str | None = None  # the address a client connected to
    verified: bool | None = None  # the client checked the server's certificate
    early_data_rejected: bool = False  # client: the server refused the 0-RTT data it sent


def early_data(info: ConnectionInfo, extra: Extra) -> tuple[str | None, str | None]:
    """``accepted``, ``rejected`` or None (none offered), and why it was rejected (server side:
    the refusal the resumption decision recorded)."""
    if info.early_data_accepted:
        return ACCEPTED, None
    d = info.resumption
    if d is not None and d.early_data_offered:
        return REJECTED, d.early_data_refusal.value if d.early_data_refusal else None
    return (REJECTED if extra.early_data_rejected else None), None


# One builder per field, in the order the page and the summary show them. An edge asks for the
# fields it shows: a log line makes its handful, not all twenty (each is a few tenths of a µs,
# and serve writes a line for every connection).
def _session_id(info: ConnectionInfo, extra: Extra) -> Field:
    return Field("session_id", "Session-ID", info.session_id.hex().upper())


def _resumed_by(info: ConnectionInfo) -> str | None:
    return info.resumed_by.value if info.resumed_by is not None else None


def _resumed(info: ConnectionInfo, extra: Extra) -> Field:
    by = _resumed_by(info)
    return Field("resumed", "Resumed", info.resumed, f"yes, by {by}" if by else "no")


def _kind(info: ConnectionInfo, extra: Extra) -> Field:
    kind = HandshakeKind.of(info.resumed_by, info.early_data_accepted)
    return Field("kind", "Handshake", kind.value)


def _resumption(info: ConnectionInfo, extra: Extra) -> Field:
    d = info.resumption
    return Field("resumption", "Resumption", d.describe() if d is not None else None)


def _fallback(info: ConnectionInfo) -> FallbackReason | None:
    d = info.resumption
    return d.fallback if d is not None and not d.resumed else None


def _reason(info: ConnectionInfo, extra: Extra) -> Field:
    fallback = _fallback(info)
    return Field("reason", "Fallback reason", fallback.value if fallback else None)


def _offered(info: ConnectionInfo, extra: Extra) -> Field:
    d = info.resumption
    offered = d.offered if d is not None and _fallback(info) is not None else None
    return Field("offered", "Offered", offered.value if offered else None)


def _ticket_key(info: ConnectionInfo, extra: Extra) -> Field:
    d = info.resumption
    name = d.key_name.hex()[:8] if d is not None and d.key_name else None
    return Field("ticket_key", "Ticket key", name)


def _ems(info: ConnectionInfo, extra: Extra) -> Field:
    ems = None if info.version == ProtocolVersion.TLS1_3 else info.extended_master_secret
    return Field("extended_master_secret", "Extended master secret", ems,
                 "n/a (TLS 1.3)" if ems is None else None)  # fmt: skip


def _early_data(info: ConnectionInfo, extra: Extra) -> Field:
    early, refusal = early_data(info, extra)
    return Field("early_data", "Early data", early,
                 f"{early} ({refusal})" if refusal else early or "no")  # fmt: skip


def _group(info: ConnectionInfo, extra: Extra) -> Field:
    group = info.group
    return Field("group", "Group", code_name(NamedGroup, group) if group is not None else None)


def _signature_scheme(info: ConnectionInfo, extra: Extra) -> Field:
    scheme = info.signature_scheme
    name = code_name(SignatureScheme, scheme) if scheme is not None else None
    return Field("signature_scheme", "Signature scheme", name)


def _handshake_ms(info: ConnectionInfo, extra: Extra) -> Field:
    ms = round(info.handshake_time * 1000, 3) if info.handshake_time is not None else None
    return Field("handshake_ms", "Handshake time", ms, f"{ms} ms" if ms is not None else None)


_BUILDERS: dict[str, Callable[[ConnectionInfo, Extra], Field]] = {
    "target": lambda info, extra: Field("target", "Target", extra.target),
    "server_name": lambda info, extra: Field("server_name", "SNI", info.server_name),
    "protocol": lambda info, extra: Field("protocol", "Protocol", info.version.label),
    "cipher": lambda info, extra: Field("cipher", "Cipher", info.cipher_suite.openssl_name),
    "cipher_iana": lambda info, extra: Field(
        "cipher_iana", "Cipher (IANA)", info.cipher_suite.name
    ),
    "group": _group,
    "signature_scheme": _signature_scheme,
    "alpn": lambda info, extra: Field("alpn", "ALPN", info.alpn_protocol),
    "session_id": _session_id,
    "resumed": _resumed,
    "resumed_by": lambda info, extra: Field("resumed_by", "Resumed by", _resumed_by(info)),
    "kind": _kind,
    "resumption": _resumption,
    "reason": _reason,
    "offered": _offered,
    "ticket_key": _ticket_key,
    "extended_master_secret": _ems,
    "early_data": _early_data,
    "handshake_ms": _handshake_ms,
    "verified": lambda info, extra: Field("verified", "Certificate verified", extra.verified),
}
KEYS = tuple(_BUILDERS)  # every field, in order


def connection_fields(info: ConnectionInfo, extra: Extra = Extra(),
                      keys: Iterable[str] = KEYS) -> tuple[Field, ...]:  # fmt: skip
    """The fields ``keys`` of one connection (by default every field, in the order the page and
    the summary show them)."""
    return tuple(_BUILDERS[k](info, extra) for k in keys)


def by_key(fields: Iterable[Field]) -> dict[str, Field]:
    return {f.key: f for f in fields}


def values(fields: Iterable[Field], keys: Iterable[str]) -> dict[str, Value]:
    """``{key: value}`` for ``keys``, in their order (a JSON record)."""
    found = by_key(fields)
    return {k: found[k].value for k in keys}


def rows(fields: Iterable[Field], keys: Iterable[str]) -> list[tuple[str, str]]:
    """``(label, text)`` for ``keys``, in their order (a page or a summary)."""
    found = by_key(fields)
    return [(found[k].label, found[k].text) for k in keys]


LINE_KEYS = ("resumed", "protocol", "cipher", "resumed_by", "reason")  # session_line + note


def session_line(info: ConnectionInfo | Mapping[str, Field]) -> str:
    """``New|Reused, VERSION, Cipher is SUITE`` (what ``openssl s_client`` prints), from a
    connection or its fields by key."""
    found = info if isinstance(info, Mapping) else by_key(connection_fields(info, keys=LINE_KEYS))
    word = "Reused" if found["resumed"].value else "New"
    return f"{word}, {found['protocol'].text}, Cipher is {found['cipher'].text}"


def resumption_note(found: Mapping[str, Field]) -> str:
    """``(resumed by HOW)``, ``(resumption fell back: WHY)`` or nothing."""
    if found["resumed_by"].shown:
        return f"(resumed by {found['resumed_by'].text})"
    if found["reason"].shown:
        return f"(resumption fell back: {found['reason'].text})"
    return ""

"""Ticket key names, read only where the tickets show they have one.

RFC 5077 §4 recommends ``key_name[16] | iv[16] | encrypted_state | mac[32]``, and OpenSSL,
nginx, HAProxy, BoringSSL, Node.js, Go before 1.21 and tessera follow it: every ticket sealed
under one key starts with the same 16 bytes. Other servers seal differently (Go 1.21 and later
start with a random IV; stateful TLS 1.3 tickets are random ids), so the first 16 bytes are
called a key name only when the tickets prove it: prefixes that recur. A prefix seen once
beside them is a key seen once (a rotation, possibly between two tickets of one connection).
Three or more tickets that all differ prove there is no key name; one or two prove nothing:
"unverified".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from ..enums import ProtocolVersion
from .probe import KEY_NAME_LEN, TicketSeen

# The shortest RFC 5077 ticket: key name, IV, one AES block, HMAC-SHA256. A shorter ticket
# cannot carry a sealed session: it is an id into the server's session cache.
MIN_RFC5077_LEN = KEY_NAME_LEN + 16 + 16 + 32


class KeyNameStatus(Enum):
    KEY_NAME = "key_name"  # tickets share prefixes: those are key names
    NO_KEY_NAME = "no_key_name"  # the tickets prove the first bytes are no key name
    UNVERIFIED = "unverified"  # too few tickets to tell
    NO_TICKETS = "no_tickets"


@dataclass(frozen=True, slots=True)
class KeyNames:
    status: KeyNameStatus
    names: tuple[bytes, ...]  # distinct key names, in the order first seen (KEY_NAME only)
    tickets: int
    evidence: str


def analyse(tickets: Sequence[TicketSeen]) -> KeyNames:
    """What ``tickets`` (from one address) say about its ticket key names. TLS 1.2 and TLS 1.3
    tickets are judged apart (a server may seal one kind under key names and make the other
    stateful ids); key names found in either are reported."""
    groups: dict[int, list[TicketSeen]] = {}
    for t in tickets:
        groups.setdefault(t.session.version, []).append(t)
    if len(groups) < 2:
        return _analyse(tickets)
    parts = [(ProtocolVersion(v).label, _analyse(g)) for v, g in sorted(groups.items())]
    evidence = "; ".join(f"{version}: {k.evidence}" for version, k in parts)
    named = [k for _, k in parts if k.status is KeyNameStatus.KEY_NAME]
    if named:
        names = tuple(dict.fromkeys(n for k in named for n in k.names))
        return KeyNames(KeyNameStatus.KEY_NAME, names, len(tickets), evidence)
    statuses = {k.status for _, k in parts}
    status = (
        KeyNameStatus.NO_KEY_NAME
        if KeyNameStatus.NO_KEY_NAME in statuses
        else KeyNameStatus.UNVERIFIED
    )
    return KeyNames(status, (), len(tickets), evidence)


def _analyse(tickets: Sequence[TicketSeen]) -> KeyNames:
    n = len(tickets)
    if not n:
        return KeyNames(KeyNameStatus.NO_TICKETS, (), 0, "no tickets were issued")
    short = [t for t in tickets if len(t.ticket) < MIN_RFC5077_LEN]
    if short:
        return KeyNames(
            KeyNameStatus.NO_KEY_NAME,
            (),
            n,
            f"{len(short[0].ticket)}-byte tickets are too short for key_name | iv | "
            "encrypted state | mac (a stateful ticket: a session id)",
        )
    counts = Counter(t.prefix for t in tickets)
    order = tuple(dict.fromkeys(t.prefix for t in tickets))
    repeated = sum(1 for c in counts.values() if c > 1)
    if repeated:
        # Singletons beside repeated names are keys seen once (just after a rotation).
        return KeyNames(
            KeyNameStatus.KEY_NAME,
            order,
            n,
            f"{n} tickets, {len(order)} distinct 16-byte prefix(es), {repeated} of them on "
            "several tickets",
        )
    by_connection: dict[int, set[bytes]] = {}
    for t in tickets:
        by_connection.setdefault(t.connection, set()).add(t.prefix)
    within = any(len(p) > 1 for p in by_connection.values())
    if n >= 3:
        where = " (even tickets of one connection)" if within else ""
        return KeyNames(
            KeyNameStatus.NO_KEY_NAME,
            (),
            n,
            f"all {n} tickets start with different bytes{where}: not an RFC 5077 key name "
            "(e.g. Go 1.21+ seals with a leading random IV)",
        )
    return KeyNames(
        KeyNameStatus.UNVERIFIED, (), n, f"{n} ticket(s), no two alike: too few to tell"
    )


def label(name: bytes) -> str:
    """A key name as shown in tables: its first 6 bytes in hex."""
    return name[:6].hex() + "…"

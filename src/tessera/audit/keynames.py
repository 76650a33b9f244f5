"""Ticket key names, read only where the tickets show they have one.

RFC 5077 §4 recommends ``key_name[16] | iv[16] | encrypted_state | mac[32]``, and OpenSSL,
nginx, HAProxy, BoringSSL, Node.js, Go before 1.21 and tessera follow it: every ticket sealed
under one key starts with the same 16 bytes. Other servers seal differently (Go 1.21 and later
start with a random IV; stateful TLS 1.3 tickets are random ids), so the first 16 bytes are
called a key name only when the tickets prove it: tickets that share a prefix. Tickets of one
connection with different prefixes, or three or more tickets that all differ, prove there is
no key name. One ticket, or two that differ, prove nothing: "unverified".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from .probe import KEY_NAME_LEN, TicketSeen

# The shortest RFC 5077 ticket: key name, IV, one AES block, HMAC-SHA256.
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
    """What ``tickets`` (from one address) say about its ticket key names."""
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
    by_connection: dict[int, set[bytes]] = {}
    for t in tickets:
        by_connection.setdefault(t.connection, set()).add(t.prefix)
    mixed = [p for p in by_connection.values() if len(p) > 1]
    if mixed:
        a, b = sorted(mixed[0])[:2]
        return KeyNames(
            KeyNameStatus.NO_KEY_NAME,
            (),
            n,
            f"tickets from one connection start differently ({a.hex()[:12]}… and "
            f"{b.hex()[:12]}…): not an RFC 5077 key name",
        )
    counts = Counter(t.prefix for t in tickets)
    order = tuple(dict.fromkeys(t.prefix for t in tickets))
    if len(counts) == n:
        if n >= 3:
            return KeyNames(
                KeyNameStatus.NO_KEY_NAME,
                (),
                n,
                f"all {n} tickets start with different bytes: not an RFC 5077 "
                "key name (e.g. Go 1.21+ seals with a leading random IV)",
            )
        return KeyNames(
            KeyNameStatus.UNVERIFIED,
            (),
            n,
            f"{n} ticket(s), no two alike: too few to tell a key name",
        )
    return KeyNames(
        KeyNameStatus.KEY_NAME,
        order,
        n,
        f"{n} tickets, {len(order)} distinct 16-byte prefix(es), shared by "
        f"{max(counts.values())} ticket(s) at most",
    )


def label(name: bytes) -> str:
    """A key name as shown in tables: its first 6 bytes in hex."""
    return name[:6].hex() + "…"

"""The server's TLS 1.3 NewSessionTickets (RFC 8446 §4.6.1), as many as the decision says.

Stateless tickets are sealed sessions. Single-use (stateful) tickets are ids into the store, and
each is written there before its ticket leaves: the writes are *answered* (the handshake waits
for them, inline for a synchronous store), and a ticket whose write failed is not issued — a
client would only find it missing — but counted. The randomness for a flight of tickets (each
one's ticket_age_add and IV or id) is drawn at once, and the flight is reported once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from ..enums import ProtocolVersion
from ..frozen import quick_init
from ..messages import extensions as X
from ..messages import extensions_block, new_session_ticket13_bytes
from ..observe.facts import NotIssued, TicketsIssued
from ..session.model import ServerSession
from ..session.resumption import LookupAnswer, stateful_ticket_key
from ..session.resumption import NotIssued as Why
from ..session.resumption.operations import StoreLookup
from .context import ServerContext, ServerState
from .lookup import ask
from .traffic13 import MAX_TICKET_LIFETIME, Keys13


@quick_init
@dataclass(frozen=True, slots=True)
class _Ticket:
    session: ServerSession = field(repr=False)
    nonce: bytes
    identity: bytes = field(repr=False)  # the store id (stateful) or the sealed session


def issue_tickets(ctx: ServerContext, keys: Keys13, count: int, then: ServerState) -> ServerState:
    """Send ``count`` tickets (after their store writes, if single-use); then ``then``."""
    if count <= 0:
        return then
    config = ctx.config
    sealer = config.sealer
    lifetime = min(config.ticket_lifetime, MAX_TICKET_LIFETIME)
    if not config.stateful_tickets:
        assert sealer is not None
        lifetime = sealer.lifetime(lifetime, ctx.now())
    n = keys.n
    created = ctx.now()
    random = ctx.rng((4 + 32) * count)  # per ticket: ticket_age_add, then an IV or an id
    tickets: list[_Ticket] = []
    for i in range(count):
        nonce = i.to_bytes(1, "big")
        r = random[36 * i : 36 * (i + 1)]
        session = ServerSession(
            version=ProtocolVersion.TLS1_3,
            cipher_suite=n.suite.code,
            secret=keys.ks.resumption_psk(keys.resumption_master, nonce),
            extended_master_secret=False,
            created=created,
            lifetime=lifetime,
            server_name=n.server_name,
            alpn=n.alpn,
            peer_chain=n.peer_chain_der,
            ticket_age_add=int.from_bytes(r[:4], "big"),
            max_early_data=config.max_early_data_size,
        )
        if config.stateful_tickets:
            tickets.append(_Ticket(session, nonce, r[4:]))
            continue
        assert sealer is not None
        sealed = sealer.seal(session.to_bytes(), r[4:20])
        if sealed is None:
            ctx.observe(NotIssued("ticket", Why.NO_TICKET_KEY, count - i))
            break  # every ticket key has expired: simply no (more) tickets
        tickets.append(_Ticket(session, nonce, sealed))
    if not config.stateful_tickets:
        _send(ctx, tickets)
        return then
    puts = tuple(
        StoreLookup("put", stateful_ticket_key(t.identity), t.session.to_bytes(), lifetime)
        for t in tickets
    )
    return ask(ctx, puts, TicketsStored(tuple(tickets), then), handshake_done=True)


@quick_init
@dataclass(frozen=True, slots=True)
class TicketsStored:
    """Single-use tickets: waiting for their store writes; those written are issued."""

    tickets: tuple[_Ticket, ...]
    then: ServerState

    def resume(self, ctx: ServerContext, answers: tuple[LookupAnswer, ...]) -> ServerState:
        stored = [t for t, ok in zip(self.tickets, answers, strict=True) if ok is True]
        if len(stored) < len(self.tickets):
            ctx.observe(NotIssued("ticket", Why.STORE_FAILED, len(self.tickets) - len(stored)))
        _send(ctx, stored)
        return self.then


def _send(ctx: ServerContext, tickets: list[_Ticket]) -> None:
    if not tickets:
        return
    exts = _ticket_extensions(ctx.config.max_early_data_size)
    port = ctx.port
    for t in tickets:
        s = t.session
        port.send(new_session_ticket13_bytes(s.lifetime, s.ticket_age_add, t.nonce, t.identity,
                                             exts))  # fmt: skip
    ctx.observe(TicketsIssued(len(tickets), ProtocolVersion.TLS1_3))


@lru_cache(maxsize=16)
def _ticket_extensions(max_early_data: int) -> bytes:
    """The encoded extensions of each ticket: early_data with the limit, when 0-RTT is on."""
    return extensions_block((X.EarlyDataLimit(max_early_data),) if max_early_data else ())

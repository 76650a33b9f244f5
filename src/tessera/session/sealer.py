"""Ticket sealing: the :class:`TicketSealer` seam and the RFC 5077 §4 sealer.

A sealer turns a session's bytes into an opaque ticket and back; ``ServerConfig.ticket_sealer``
takes any object with these methods (the shape of rustls' ``ProducesTickets`` and Go's
``WrapSession``). The default, :class:`Rfc5077Sealer`, seals
``key_name[16] | iv[16] | AES-CBC(state) | HMAC-SHA256[32]`` under the keys of a
:class:`~tessera.session.keyring.TicketKeySource` (a rotating keyring, a fleet keyring fed from
Redis, a key file). The MAC covers name, IV and ciphertext, and is checked in constant time
before anything is decrypted. Input of an impossible length is rejected before any cryptography
runs.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..crypto.mac import hmac_digest
from ..frozen import quick_init
from .keyring import TicketKeySource
from .model import ServerSession, SessionDecodeError
from .resumption.vocabulary import FallbackReason

MIN_TICKET = 16 + 16 + 16 + 32
MAX_TICKET = 16 * 1024


@quick_init
@dataclass(frozen=True, slots=True)
class Opened:
    state: bytes = field(repr=False)  # the session, secret included
    key_is_current: bool  # False: sealed under an older key, so a fresh ticket is due
    key_name: bytes | None = None
    # ``state`` decoded, when the sealer did it (else the resolver decodes it).
    session: ServerSession | None = field(default=None, repr=False, compare=False)


@runtime_checkable
class TicketSealer(Protocol):
    def seal(self, state: bytes, iv: bytes) -> bytes | None:
        """The ticket for ``state`` (``iv``: 16 fresh random bytes), or None when no ticket
        can be issued now (say, every key has expired)."""

    def open(self, ticket: bytes) -> Opened | FallbackReason:
        """The sealed state, or the reason the ticket cannot be used."""

    def lifetime(self, requested: int, now: float) -> int:
        """The longest lifetime, up to ``requested`` seconds, that a ticket sealed now can be
        honoured for (a ticket must not outlive the key that opens it)."""


class Rfc5077Sealer:
    """The RFC 5077 §4 sealer over a key source. A ticket it opened is remembered, decoded, on
    the key that opened it (:class:`~.memo.SessionMemo`), so the same ticket presented again
    — a client resuming several connections with it — is not unsealed and decoded again;
    ``clock`` says when a remembered session has expired."""

    def __init__(self, keys: TicketKeySource, clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.clock = clock

    def __repr__(self) -> str:
        return f"Rfc5077Sealer({type(self.keys).__name__})"

    def seal(self, state: bytes, iv: bytes) -> bytes | None:
        key = self.keys.encryption_key()
        if key is None:
            return None
        pad = 16 - len(state) % 16
        body = key.name + iv + key.cbc_encrypt(iv, state + bytes((pad,)) * pad)
        return body + hmac_digest(key.hmac_key, body, "sha256")

    def open(self, ticket: bytes) -> Opened | FallbackReason:
        n = len(ticket)
        if n < MIN_TICKET or n > MAX_TICKET or (n - 64) % 16:
            return FallbackReason.TICKET_MALFORMED
        name = ticket[:16]
        found = self.keys.decryption_key(name)
        if found is None:
            return FallbackReason.TICKET_UNKNOWN_KEY
        key, current = found
        now = self.clock()
        known = key.opened.get(ticket, now)  # these exact bytes passed the MAC before
        if known is not None:
            return Opened(known[0], current, name, known[1])
        body, mac = ticket[:-32], ticket[-32:]
        if not hmac.compare_digest(hmac_digest(key.hmac_key, body, "sha256"), mac):
            return FallbackReason.TICKET_MAC_FAILED
        padded = key.cbc_decrypt(ticket[16:32], ticket[32:-32])
        pad = padded[-1]
        if not 1 <= pad <= 16 or padded[-pad:] != bytes((pad,)) * pad:
            return FallbackReason.TICKET_MAC_FAILED  # a valid MAC over bad padding: a key bug
        state = padded[:-pad]
        try:
            session = ServerSession.from_bytes(state)
        except SessionDecodeError:
            return Opened(state, current, name)  # the resolver says why it is unusable
        key.opened.put(ticket, state, session, now)
        return Opened(state, current, name, session)

    def lifetime(self, requested: int, now: float) -> int:
        key = self.keys.encryption_key()
        if key is None:
            return 0
        until = self.keys.decrypts_until(key)
        if until is None:
            return requested
        return max(0, min(requested, math.floor(until - now)))

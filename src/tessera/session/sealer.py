"""RFC 5077 §4 tickets: ``key_name[16] | iv[16] | AES-CBC(state) | HMAC-SHA256[32]``.

The MAC covers name, IV and ciphertext, and is checked in constant time before anything is
decrypted. Input of an impossible length is rejected before any cryptography runs.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from ..crypto.key_schedule import hmac_digest
from .keyring import TicketKeyring
from .stats import FallbackReason

MIN_TICKET = 16 + 16 + 16 + 32
MAX_TICKET = 16 * 1024


@dataclass(frozen=True, slots=True)
class Opened:
    state: bytes = field(repr=False)  # the session, secret included
    key_is_current: bool


class TicketSealer:
    def __init__(self, keyring: TicketKeyring) -> None:
        self.keyring = keyring

    def seal(self, state: bytes, iv: bytes) -> bytes | None:
        """The ticket for ``state``, or None when the keyring has no usable key."""
        key = self.keyring.encryption_key()
        if key is None:
            return None
        pad = 16 - len(state) % 16
        body = key.name + iv + key.cbc_encrypt(iv, state + bytes((pad,)) * pad)
        return body + hmac_digest(key.hmac_key, body, "sha256")

    def open(self, ticket: bytes) -> Opened | FallbackReason:
        """The sealed state, or the reason the ticket cannot be used."""
        n = len(ticket)
        if n < MIN_TICKET or n > MAX_TICKET or (n - 64) % 16:
            return FallbackReason.TICKET_MALFORMED
        found = self.keyring.decryption_key(ticket[:16])
        if found is None:
            return FallbackReason.TICKET_UNKNOWN_KEY
        key, current = found
        body, mac = ticket[:-32], ticket[-32:]
        if not hmac.compare_digest(hmac_digest(key.hmac_key, body, "sha256"), mac):
            return FallbackReason.TICKET_MAC_FAILED
        padded = key.cbc_decrypt(ticket[16:32], ticket[32:-32])
        pad = padded[-1]
        if not 1 <= pad <= 16 or padded[-pad:] != bytes((pad,)) * pad:
            return FallbackReason.TICKET_MAC_FAILED  # a valid MAC over bad padding: a key bug
        return Opened(padded[:-pad], current)

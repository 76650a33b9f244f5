"""Store operations as values: what a resolution asks the store, and the writes it makes.

Keys are namespaced by what they hold, so one store (and one Redis) serves session ids,
single-use tickets and the 0-RTT strike register.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from ...frozen import quick_init

SESSION_ID_PREFIX = b"sid:"
STATEFUL_TICKET_PREFIX = b"stk:"
EARLY_DATA_MARK_PREFIX = b"0rtt:"
MAX_STORE_KEY = 255


def session_id_key(session_id: bytes) -> bytes:
    return SESSION_ID_PREFIX + session_id


def stateful_ticket_key(identity: bytes) -> bytes:
    return STATEFUL_TICKET_PREFIX + identity


def early_data_mark_key(identity: bytes) -> bytes:
    return EARLY_DATA_MARK_PREFIX + hashlib.sha256(identity).digest()[:24]


@quick_init
@dataclass(frozen=True, slots=True)
class StoreLookup:
    """A store operation whose answer the handshake waits for: ``get`` and ``take`` answer
    bytes or None, ``add`` True (stored) or False (already present), ``put`` True once stored
    (a put whose result decides what the client receives: a session id it may resume with, a
    single-use ticket)."""

    op: Literal["get", "take", "add", "put"]
    key: bytes
    value: bytes = field(default=b"", repr=False)
    ttl: float = 0.0


@quick_init
@dataclass(frozen=True, slots=True)
class StoreWrite:
    """A store operation nobody waits for: ``put`` or ``delete``."""

    op: Literal["put", "delete"]
    key: bytes
    value: bytes = field(default=b"", repr=False)
    ttl: float = 0.0


# What the store said: bytes/None (get, take), bool (add, put), or the exception it raised.
LookupAnswer = bytes | bool | None | BaseException


def failed(answer: LookupAnswer) -> bool:
    return isinstance(answer, BaseException)

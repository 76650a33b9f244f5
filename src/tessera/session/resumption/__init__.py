"""Resumption as a sub-protocol: plan, ask the store, decide — in one package.

* :mod:`.vocabulary` — the words: :class:`Mechanism`, :class:`HandshakeKind`,
  :class:`FallbackReason`, :class:`EarlyDataRefusal`, :class:`NotIssued`;
* :mod:`.hello` — the ClientHello summary the decision reads;
* :mod:`.operations` — store operations as values, and the store keys;
* :mod:`.decision` — the frozen :class:`ResumptionDecision`, and :func:`unusable`, the one copy
  of "can this session be resumed here" (TLS 1.2 server, TLS 1.3 server and the client);
* :mod:`.decide` — the pure resolvers :func:`resolve12` / :func:`resolve13`, which return a
  decision or a :class:`Pending` (store operations and a named continuation);
* :mod:`.inline` and :mod:`.awaited` — the adapters that answer store operations from a
  synchronous store (inside ``receive_data``) or an async one (awaited by a front end).

The handshake states drive a resolution and act on the decision; the server connection pauses
for an async store (``SessionLookupRequired`` / ``provide_session``) and reports every decision
to the observers.
"""

from .decide import (
    BinderCheck,
    Continuation,
    Outcome,
    Pending,
    Psk13Context,
    psk_modes,
    resolve12,
    resolve13,
    tickets13,
)
from .decision import ResumptionDecision, unusable
from .hello import MAX_PSK_IDENTITIES, HelloSummary, summarize
from .operations import (
    EARLY_DATA_MARK_PREFIX,
    MAX_STORE_KEY,
    SESSION_ID_PREFIX,
    STATEFUL_TICKET_PREFIX,
    LookupAnswer,
    StoreLookup,
    StoreWrite,
    early_data_mark_key,
    session_id_key,
    stateful_ticket_key,
)
from .vocabulary import EarlyDataRefusal, FallbackReason, HandshakeKind, Mechanism, NotIssued

__all__ = [
    "EARLY_DATA_MARK_PREFIX",
    "MAX_PSK_IDENTITIES",
    "MAX_STORE_KEY",
    "SESSION_ID_PREFIX",
    "STATEFUL_TICKET_PREFIX",
    "BinderCheck",
    "Continuation",
    "EarlyDataRefusal",
    "FallbackReason",
    "HandshakeKind",
    "HelloSummary",
    "LookupAnswer",
    "Mechanism",
    "NotIssued",
    "Outcome",
    "Pending",
    "Psk13Context",
    "ResumptionDecision",
    "StoreLookup",
    "StoreWrite",
    "early_data_mark_key",
    "psk_modes",
    "resolve12",
    "resolve13",
    "session_id_key",
    "stateful_ticket_key",
    "summarize",
    "tickets13",
    "unusable",
]

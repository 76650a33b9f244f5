"""The one pump: what a front end does with the events of a sans-I/O connection.

Every front end runs the same loop — read bytes, ``conn.receive_data``, handle the events,
write ``conn.data_to_send()`` — and differs only in how it waits and what it does with each
event. The waiting is the front end's (a blocking socket, an asyncio transport, the auditor's
probe); the events go through :func:`pump_events`, the one place that tells them apart, to the
front end's :class:`EventHandler`. No protocol decision is made here or in a handler.

Handlers override what they need; the rest is ignored (a blocking client has no store to
answer, a server receives no tickets). ``KeyUpdated`` and ``ResumptionDecided`` are facts for
observers, which the connection already told.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, assert_never

from ..events import (
    ApplicationData,
    ConnectionClosed,
    EarlyDataRejected,
    Event,
    HandshakeCompleted,
    KeyUpdated,
    PostHandshakeAuthCompleted,
    RenegotiationCompleted,
    RenegotiationDeclined,
    ResumptionDecided,
    ServerHelloReceived,
    SessionLookupRequired,
    SessionStoreUpdate,
    SessionTicketReceived,
)

if TYPE_CHECKING:
    from ..connection import ClientConnection, ServerConnection
    from ..events import ConnectionInfo
    from ..session.resumption import StoreLookup, StoreWrite

Reauthentication = RenegotiationCompleted | RenegotiationDeclined | PostHandshakeAuthCompleted


class EventHandler:
    """A front end's answer to each kind of event; each does nothing unless overridden.
    :func:`pump_events` stops early once ``halted`` (the connection failed meanwhile)."""

    __slots__ = ()

    @property
    def halted(self) -> bool:
        return False

    def on_application_data(self, data: bytes, early: bool) -> None:
        """Plaintext from the peer (``early``: TLS 1.3 0-RTT data, which may be a replay)."""

    def on_handshake_completed(self, info: ConnectionInfo) -> None:
        """The first handshake completed."""

    def on_peer_closed(self, close_notify: bool) -> None:
        """The peer will send no more (``close_notify`` False: a bare end of stream)."""

    def on_lookup_required(self, operations: tuple[StoreLookup, ...]) -> None:
        """A server paused for store lookups: answer with ``provide_session``."""

    def on_store_update(self, operations: tuple[StoreWrite, ...]) -> None:
        """Store writes to make before the next ``data_to_send()`` leaves."""

    def on_session_ticket(self, event: SessionTicketReceived) -> None:
        """A client learned a resumable session."""

    def on_server_hello(self, event: ServerHelloReceived) -> None:
        """A client saw the server's hello (or HelloRetryRequest)."""

    def on_early_data_rejected(self) -> None:
        """The server refused the client's 0-RTT data (it may be sent again)."""

    def on_reauthenticated(self, event: Reauthentication) -> None:
        """A renegotiation or post-handshake authentication ended (or was declined)."""


def dispatch(event: Event, handler: EventHandler) -> None:
    """Hand one event to the handler method for its kind (most frequent first)."""
    match event:
        case ApplicationData():
            handler.on_application_data(event.data, event.early)
        case HandshakeCompleted():
            handler.on_handshake_completed(event.info)
        case SessionStoreUpdate():
            handler.on_store_update(event.operations)
        case SessionLookupRequired():
            handler.on_lookup_required(event.operations)
        case SessionTicketReceived():
            handler.on_session_ticket(event)
        case ConnectionClosed():
            handler.on_peer_closed(event.close_notify)
        case ServerHelloReceived():
            handler.on_server_hello(event)
        case EarlyDataRejected():
            handler.on_early_data_rejected()
        case RenegotiationCompleted() | RenegotiationDeclined() | PostHandshakeAuthCompleted():
            handler.on_reauthenticated(event)
        case KeyUpdated() | ResumptionDecided():
            pass
        case _:
            assert_never(event)


def pump_events(conn: ClientConnection | ServerConnection, handler: EventHandler) -> bool:
    """Hand every pending event to ``handler``, oldest first, until none is left (answering a
    lookup may queue more) or the handler is ``halted``. True if there was any event: progress,
    for an idle clock (bytes that complete no record are none)."""
    progressed = False
    while events := conn.events():
        progressed = True
        for event in events:
            dispatch(event, handler)
            if handler.halted:
                return True
    return progressed

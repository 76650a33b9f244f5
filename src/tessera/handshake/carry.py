"""What a TLS 1.2 renegotiation carries from the handshake before it (RFC 5746, RFC 7627), and
the per-connection limits on client-initiated renegotiation. Data only: the checks and the
restart live in :mod:`.renegotiation` and the connection."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from ..enums import ClientAuth
from ..frozen import quick_init

# With client renegotiation enabled: at most this many per connection in any window.
CLIENT_RENEGOTIATIONS_PER_WINDOW = 3
RENEGOTIATION_WINDOW = 60.0

Initiator = Literal["server", "client"]


@quick_init
@dataclass(frozen=True, slots=True)
class Renegotiation:
    """What a renegotiation handshake carries from the handshake before it."""

    initiator: Initiator
    client_verify_data: bytes = field(repr=False)
    server_verify_data: bytes = field(repr=False)
    extended_master_secret: bool
    # Server: what this handshake asks of the client (None: the config's client_auth).
    client_auth: ClientAuth | None = None
    allow_resumption: bool = True


@quick_init
@dataclass(frozen=True, slots=True)
class RenegotiationRequest:
    """What the server asked for when it sent its HelloRequest."""

    client_auth: ClientAuth
    allow_resumption: bool


class RenegotiationLimits:
    """Per connection: client-initiated renegotiations refused, and those accepted recently."""

    __slots__ = ("accepted", "refusals")

    def __init__(self) -> None:
        self.refusals = 0
        self.accepted: deque[float] = deque()

    def admit(self, now: float) -> str | None:
        """Admit one client-initiated renegotiation now, or say why not."""
        accepted = self.accepted
        while accepted and now - accepted[0] >= RENEGOTIATION_WINDOW:
            accepted.popleft()
        if len(accepted) >= CLIENT_RENEGOTIATIONS_PER_WINDOW:
            return (
                f"more than {CLIENT_RENEGOTIATIONS_PER_WINDOW} client-initiated renegotiations "
                f"in {RENEGOTIATION_WINDOW:g} s"
            )
        accepted.append(now)
        return None

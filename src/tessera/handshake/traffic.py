"""After the TLS 1.2 handshake: application data flows; renegotiation is declined."""

from __future__ import annotations

from ..enums import AlertDescription, AlertLevel, HandshakeType
from ..messages import HelloRequest, decode_message
from .context import HandshakeContext, State, unexpected


class Traffic12(State):
    accepts_application_data = True
    handshake_done = True

    def handle(self, ctx: HandshakeContext, msg_type: int, body: bytes, raw: bytes) -> State:  # type: ignore[type-arg]
        if ctx.is_client and msg_type == HandshakeType.HELLO_REQUEST:
            decode_message(HelloRequest, body)
            ctx.send_alert(AlertLevel.WARNING, AlertDescription.no_renegotiation)
            return self
        if not ctx.is_client and msg_type == HandshakeType.CLIENT_HELLO:
            # RFC 5746 §4.4 / RFC 5246 §7.2.2: decline renegotiation with a warning.
            ctx.send_alert(AlertLevel.WARNING, AlertDescription.no_renegotiation)
            return self
        unexpected(self, msg_type)

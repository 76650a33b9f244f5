"""After the TLS 1.2 handshake: application data flows; a renegotiation may start (see
:mod:`.renegotiation`)."""

from __future__ import annotations

from typing import Any

from ..enums import HandshakeType
from ..messages import HelloRequest, decode_message
from . import renegotiation
from .context import State, unexpected
from .renegotiation import RenegotiationRequest


class Traffic12(State):
    accepts_application_data = True
    handshake_done = True
    request: RenegotiationRequest | None = None  # the server's HelloRequest is out

    def handle(self, ctx: Any, msg_type: int, body: bytes, raw: bytes) -> State:
        if ctx.is_client and msg_type == HandshakeType.HELLO_REQUEST:
            decode_message(HelloRequest, body)
            return renegotiation.on_hello_request(ctx, self)
        if not ctx.is_client and msg_type == HandshakeType.CLIENT_HELLO:
            return renegotiation.on_client_hello(ctx, self, self.request, body, raw)
        unexpected(self, msg_type)


class HelloRequested(Traffic12):
    """Server: our HelloRequest is out; application data flows until the client's ClientHello
    starts the renegotiation (or its warning no_renegotiation declines it)."""

    def __init__(self, request: RenegotiationRequest) -> None:
        self.request = request

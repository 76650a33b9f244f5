"""After the TLS 1.2 handshake: application data flows; a renegotiation may start (see
:mod:`.renegotiation`). One open state per role: the server answers a renegotiation
ClientHello, the client a HelloRequest; the connection injects the restart into the context."""

from __future__ import annotations

from ..enums import HandshakeType
from ..messages import HelloRequest, decode_message
from . import renegotiation
from .carry import Renegotiation, RenegotiationRequest
from .context import ClientContext, ClientState, ServerContext, ServerState, State, X, unexpected
from .negotiated import Negotiated12


class Traffic12(State[X]):
    """The open connection, with what a renegotiation would carry from this handshake."""

    __slots__ = ("client_verify_data", "master_secret", "negotiated", "server_verify_data")
    accepts_application_data = True
    handshake_done = True

    def __init__(self, negotiated: Negotiated12, master_secret: bytes,
                 client_verify_data: bytes, server_verify_data: bytes) -> None:  # fmt: skip
        self.negotiated = negotiated
        self.master_secret = master_secret
        self.client_verify_data = client_verify_data
        self.server_verify_data = server_verify_data

    def carry(self, initiator: renegotiation.Initiator, request: RenegotiationRequest | None = None
              ) -> Renegotiation:  # fmt: skip
        """What a renegotiation of this connection carries (RFC 5746, RFC 7627)."""
        return Renegotiation(
            initiator, self.client_verify_data, self.server_verify_data, self.negotiated.ems,
            None if request is None else request.client_auth,
            True if request is None else request.allow_resumption,
        )  # fmt: skip


class ServerTraffic12(Traffic12[ServerContext]):
    __slots__ = ("request",)

    def __init__(self, negotiated: Negotiated12, master_secret: bytes,
                 client_verify_data: bytes, server_verify_data: bytes,
                 request: RenegotiationRequest | None = None) -> None:  # fmt: skip
        super().__init__(negotiated, master_secret, client_verify_data, server_verify_data)
        self.request = request  # our HelloRequest is out (see HelloRequested)

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> ServerState:
        if msg_type != HandshakeType.CLIENT_HELLO:
            unexpected(self, msg_type)
        why = renegotiation.refusal_to_request(self.negotiated)
        if why is None and self.request is None:
            why = renegotiation.refuse_client_initiated(ctx)
        if why is not None:
            renegotiation.refuse(ctx, why)
            return self
        initiator: renegotiation.Initiator = "client" if self.request is None else "server"
        return ctx.restart(ctx, self.carry(initiator, self.request), body, raw)

    def requested(self, request: RenegotiationRequest) -> HelloRequested:
        return HelloRequested(
            self.negotiated, self.master_secret, self.client_verify_data,
            self.server_verify_data, request,
        )  # fmt: skip

    def declined(self) -> ServerTraffic12:
        """The client answered our HelloRequest with no_renegotiation."""
        return ServerTraffic12(
            self.negotiated, self.master_secret, self.client_verify_data, self.server_verify_data
        )


class HelloRequested(ServerTraffic12):
    """Server: our HelloRequest is out; application data flows until the client's ClientHello
    starts the renegotiation (or its warning no_renegotiation declines it)."""

    __slots__ = ()


class ClientTraffic12(Traffic12[ClientContext]):
    __slots__ = ()

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> ClientState:
        if msg_type != HandshakeType.HELLO_REQUEST:
            unexpected(self, msg_type)
        decode_message(HelloRequest, body)
        if renegotiation.client_refusal(ctx.config, self.negotiated) is not None:
            renegotiation.decline(ctx)
            return self
        return ctx.restart(ctx, self.carry("server"))

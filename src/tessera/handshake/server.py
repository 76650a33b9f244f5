"""The server's entry point: decode the ClientHello once, pick the version, hand over."""

from __future__ import annotations

from ..enums import HandshakeType, ProtocolVersion
from ..messages import ClientHello, decode_message
from ..session.resumption import summarize
from . import renegotiation, server12, server13
from .context import ServerContext, ServerState, require
from .negotiation import negotiate_version, select_alpn


class ExpectClientHello(ServerState):
    __slots__ = ()

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> ServerState:
        require(self, msg_type, HandshakeType.CLIENT_HELLO)
        started = ctx.now()
        hello = summarize(decode_message(ClientHello, body), raw)
        if ctx.carry is None:
            version = negotiate_version(ctx.config, hello.hello)
            ctx.port.plaintext(ProtocolVersion.TLS1_2)  # records carry 0x0303 from now on
        else:  # records stay under the current keys until the new ChangeCipherSpec
            version = renegotiation.version(hello.hello)
        alpn = select_alpn(ctx.config, hello.hello)
        ctx.transcript.add(raw)
        if version == ProtocolVersion.TLS1_3:
            return server13.start(ctx, hello, alpn, started)
        # A TLS 1.2 record layer must carry 0x0303 from now on.
        ctx.port.expect_record_version(ProtocolVersion.TLS1_2)
        return server12.start(ctx, hello, alpn, started)

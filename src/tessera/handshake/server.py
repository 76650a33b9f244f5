"""The server's entry point: decode the ClientHello once, pick the version, hand over."""

from __future__ import annotations

from ..enums import HandshakeType, ProtocolVersion
from ..messages import ClientHello, decode_message
from ..record.protection import NullProtection
from . import renegotiation, server12, server13
from .context import ServerContext, State, require
from .negotiation import negotiate_version, select_alpn
from .summary import summarize


class ExpectClientHello(State):
    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.CLIENT_HELLO)
        ctx.started = ctx.now()
        hello = summarize(decode_message(ClientHello, body), raw)
        if ctx.renegotiation is None:
            version = negotiate_version(ctx.config, hello.hello)
            ctx.records.write = NullProtection(b"\x03\x03")
        else:  # records stay under the current keys until the new ChangeCipherSpec
            version = renegotiation.version(hello.hello)
        ctx.client_random = hello.hello.random
        ctx.server_name = hello.server_name
        ctx.alpn = select_alpn(ctx.config, hello.hello)
        ctx.transcript.add(raw)
        if version == ProtocolVersion.TLS1_3:
            return server13.start(ctx, hello)
        # A TLS 1.2 record layer must carry 0x0303 from now on.
        ctx.records.check_version = ProtocolVersion.TLS1_2
        return server12.start(ctx, hello)

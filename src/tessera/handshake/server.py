"""The server's entry point: decode the ClientHello, pick the version, hand over."""

from __future__ import annotations

from ..enums import HandshakeType, ProtocolVersion
from ..messages import ClientHello, decode_message
from ..record.protection import NullProtection
from . import server12, server13
from .context import ServerContext, State, require
from .negotiation import negotiate_version, select_alpn, sni_of


class ExpectClientHello(State):
    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.CLIENT_HELLO)
        ch = decode_message(ClientHello, body)
        version = negotiate_version(ctx.config, ch)
        ctx.client_random = ch.random
        ctx.server_name = sni_of(ch)
        ctx.alpn = select_alpn(ctx.config, ch)
        ctx.transcript.add(raw)
        ctx.records.write = NullProtection(b"\x03\x03")
        if version == ProtocolVersion.TLS1_3:
            return server13.start(ctx, ch, raw)
        # A TLS 1.2 record layer must carry 0x0303 from now on.
        ctx.records.check_version = ProtocolVersion.TLS1_2
        return server12.start(ctx, ch)

"""The client's first flight and the ServerHello that decides the version.

The ClientHello offers every enabled version; the ServerHello's supported_versions (TLS 1.3)
or legacy_version (TLS 1.2) picks the state machine that continues.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from ..enums import HandshakeType, ProtocolVersion
from ..errors import IllegalParameter, LocalProtocolError, ProtocolVersionError
from ..messages import ClientHello, ServerHello, decode_message
from ..messages import extensions as X
from ..messages.extensions import Extension
from ..messages.hello import DOWNGRADE_TLS11, DOWNGRADE_TLS12
from ..session.model import ClientSession
from . import client12, renegotiation

if TYPE_CHECKING:
    from . import client13
from .context import ClientContext, State, require


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def client_hello_12_extensions(
    ctx: ClientContext, session: ClientSession | None
) -> list[Extension]:
    """Extensions every ClientHello carries (the TLS 1.3 ones are added by client13)."""
    config = ctx.config
    offer12 = ProtocolVersion.TLS1_2 in ctx.versions
    exts: list[Extension] = []
    if ctx.sni and not _is_ip(ctx.sni):
        exts.append(X.ServerName(ctx.sni))
    exts.append(X.SupportedGroups(tuple(config.groups)))
    if offer12:
        exts.append(X.ECPointFormats((0,)))
    exts.append(X.SignatureAlgorithms(tuple(config.signature_schemes)))
    if config.alpn_protocols:
        exts.append(X.ALPN(config.alpn_protocols))
    if offer12:
        if config.encrypt_then_mac and any(
            not s.is_aead for s in config.suites_for(ProtocolVersion.TLS1_2)
        ):
            exts.append(X.EncryptThenMac())
        if config.extended_master_secret:
            exts.append(X.ExtendedMasterSecret())
        if config.session_tickets:
            ticket = b""
            if session is not None and session.version == ProtocolVersion.TLS1_2:
                ticket = session.ticket
            exts.append(X.SessionTicketExt(ticket))
        exts.append(X.RenegotiationInfo(renegotiation.client_hello_info(ctx)))
    return exts


def start(ctx: ClientContext, early_data: bytes | None = None) -> State:
    """Send the ClientHello; returns the state that waits for the ServerHello."""
    config = ctx.config
    versions = ctx.versions  # a renegotiation: TLS 1.2 only
    session = ctx.offered_session
    if session is not None and session.version not in versions:
        session = ctx.offered_session = None
    ctx.client_random = ctx.rng(32)
    if config.certificate is not None:
        ctx.transcript.keep_messages()
    suites = [s.code for v in versions for s in config.suites_for(v)]
    if ProtocolVersion.TLS1_3 in versions:
        from . import client13

        return client13.start(ctx, session, suites, early_data)
    if early_data is not None:
        raise LocalProtocolError("0-RTT early data needs TLS 1.3")
    if session is not None and session.ticket and config.session_tickets:
        session_id = ctx.rng(32)  # RFC 5077 §3.4: echoed back if the ticket is accepted
    elif session is not None:
        session_id = session.session_id
    else:
        session_id = b""
    ch = ClientHello(
        ProtocolVersion.TLS1_2,
        ctx.client_random,
        session_id,
        tuple(suites),
        (0,),
        tuple(client_hello_12_extensions(ctx, session)),
    )
    ctx.send(ch)
    return ExpectServerHello(ch, session)


class ExpectServerHello(State):
    def __init__(self, ch: ClientHello, offered: ClientSession | None,
                 offer13: client13._Offer | None = None) -> None:  # fmt: skip
        self.ch = ch
        self.offered = offered
        self.offer13 = offer13  # what a ClientHello offering TLS 1.3 sent
        # After a HelloRetryRequest the server's compatibility ChangeCipherSpec may come first.
        self.ignores_ccs = offer13 is not None and offer13.retried

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.SERVER_HELLO)
        sh = decode_message(ServerHello, body)
        config = ctx.config
        offered13 = ProtocolVersion.TLS1_3 in ctx.versions
        selected = sh.find(X.SupportedVersionSelected)
        if sh.is_hello_retry_request or selected is not None:
            if not offered13 or selected is None:
                raise IllegalParameter("the server selected TLS 1.3 features we did not offer")
            if selected.version != ProtocolVersion.TLS1_3 or sh.legacy_version != 0x0303:
                raise IllegalParameter(
                    f"supported_versions selects 0x{selected.version:04x}; only TLS 1.3 may be"
                )
            from . import client13

            return client13.handle_server_hello(ctx, self, sh, raw)
        if (
            sh.legacy_version != ProtocolVersion.TLS1_2
            or ProtocolVersion.TLS1_2 not in ctx.versions
        ):
            raise ProtocolVersionError(
                f"the server chose version 0x{sh.legacy_version:04x}; we allow "
                + ", ".join(v.label for v in config.versions)
            )
        if self.offer13 is not None and self.offer13.retried:
            raise IllegalParameter("TLS 1.2 chosen after a TLS 1.3 HelloRetryRequest")
        if offered13 and sh.random[-8:] in (DOWNGRADE_TLS12, DOWNGRADE_TLS11):
            raise IllegalParameter(
                "the server negotiated TLS 1.2 but its random says it supports TLS 1.3: "
                "a downgrade attack (RFC 8446 §4.1.3)"
            )
        ctx.transcript.add(raw)
        return client12.handle_server_hello(ctx, self.ch, sh, self.offered)

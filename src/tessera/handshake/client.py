"""The client's ClientHello (both versions), the HelloRetryRequest, and the ServerHello that
decides the version.

The ClientHello offers every enabled version; the ServerHello's supported_versions (TLS 1.3)
or legacy_version (TLS 1.2) picks the state machine that continues (:mod:`.client13` or
:mod:`.client12`). A HelloRetryRequest sends a second ClientHello from here.
"""

from __future__ import annotations

import hashlib
import ipaddress

from ..crypto.key_exchange import KeyShare
from ..crypto.key_schedule import KeySchedule, psk_binder
from ..crypto.suites import BY_CODE, CipherSuite
from ..enums import HandshakeType, ProtocolVersion
from ..errors import IllegalParameter, LocalProtocolError, ProtocolVersionError, UnexpectedMessage
from ..events import EarlyDataRejected
from ..messages import ClientHello, ServerHello, decode_message, encode_handshake
from ..messages import extensions as X
from ..messages.hello import DOWNGRADE_TLS11, DOWNGRADE_TLS12
from ..session.model import ClientSession
from ..session.resumption import FallbackReason, unusable
from . import client12, client13, renegotiation
from .client13 import Offer13
from .context import ClientContext, ClientState, require
from .port import Direction, Epoch


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def client_hello_12_extensions(
    ctx: ClientContext, session: ClientSession | None
) -> list[X.Extension]:
    """Extensions every ClientHello carries (the TLS 1.3 ones are added after them)."""
    config = ctx.config
    offer12 = ProtocolVersion.TLS1_2 in ctx.versions
    exts: list[X.Extension] = []
    sni = ctx.server_name
    if sni and not _is_ip(sni):
        exts.append(X.ServerName(sni))
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


def _psk_usable(ctx: ClientContext, session: ClientSession | None) -> CipherSuite | None:
    """The suite to offer ``session`` with, if the shared rules say it can resume here."""
    if session is None or not session.ticket:
        return None
    reason = unusable(
        session.state,
        version=ProtocolVersion.TLS1_3,
        now=ctx.now(),
        server_name=ctx.server_name,
        suites=ctx.config.suite_codes_for(ProtocolVersion.TLS1_3),
        expired_reason=FallbackReason.TICKET_EXPIRED,
    )
    if reason is not None:
        return None
    return BY_CODE[session.cipher_suite]


def early_data_allowance(ctx: ClientContext, session: ClientSession | None) -> int:
    """How many bytes of 0-RTT data offering ``session`` would allow (0: none)."""
    return session.state.max_early_data if _psk_usable(ctx, session) and session else 0


def start(ctx: ClientContext, early_data: bytes | None = None) -> ClientState:
    """Send the ClientHello; returns the state that waits for the ServerHello."""
    config = ctx.config
    started = ctx.now()
    versions = ctx.versions  # a renegotiation: TLS 1.2 only
    session = ctx.offered_session
    if session is not None and session.version not in versions:
        session = ctx.offered_session = None
    random = ctx.rng(32)
    if config.certificate is not None:
        ctx.transcript.keep_messages()
    suites = tuple(s.code for v in versions for s in config.suites_for(v))
    if ProtocolVersion.TLS1_3 in versions:
        return _start13(ctx, random, session, suites, early_data, started)
    if early_data is not None:
        raise LocalProtocolError("0-RTT early data needs TLS 1.3")
    if session is not None and session.ticket and config.session_tickets:
        session_id = ctx.rng(32)  # RFC 5077 §3.4: echoed back if the ticket is accepted
    elif session is not None:
        session_id = session.session_id
    else:
        session_id = b""
    exts = tuple(client_hello_12_extensions(ctx, session))
    ch = ClientHello(ProtocolVersion.TLS1_2, random, session_id, suites, (0,), exts)
    ctx.send(ch)
    ctx.port.flush()
    return ExpectServerHello(ch, session, None, started)


def _start13(
    ctx: ClientContext,
    random: bytes,
    session: ClientSession | None,
    suites: tuple[int, ...],
    early_data: bytes | None,
    started: float,
) -> ClientState:
    """Send the first ClientHello offering TLS 1.3 (and TLS 1.2 if enabled)."""
    config = ctx.config
    psk_suite = _psk_usable(ctx, session)
    usable_early = early_data_allowance(ctx, session)
    if early_data is not None and usable_early < len(early_data):
        raise LocalProtocolError(
            "0-RTT needs a TLS 1.3 session whose ticket allows this much early data"
        )
    if session is not None and session.version == ProtocolVersion.TLS1_2:
        session_id = session.session_id if not (session.ticket and config.session_tickets) else b""
        session_id = session_id or ctx.rng(32)
    else:
        session_id = ctx.rng(32)  # middlebox compatibility mode (RFC 8446 §D.4)
    share_groups = config.key_share_groups or config.groups[:1]
    shares = {g: KeyShare(g, ctx.rng) for g in share_groups}
    offer = Offer13(None, shares, session, psk_suite, early_data, started)
    ch = _build_hello(ctx, offer, random, session_id, suites)
    ch_raw = _send_hello(ctx, offer, ch, b"")
    ctx.transcript.add(ch_raw)
    port = ctx.port
    # Only the first ClientHello may carry record version 0x0301 (RFC 8446 §5.1).
    port.plaintext(ProtocolVersion.TLS1_2)
    if early_data is not None and psk_suite is not None and session is not None:
        ks = KeySchedule(psk_suite, session.state.secret)
        h = hashlib.new(psk_suite.prf_hash, ch_raw).digest()
        secret = ks.derive(b"c e traffic", h)
        ctx.keylog("CLIENT_EARLY_TRAFFIC_SECRET", random, secret)
        port.send_ccs()  # middlebox compatibility: right after the first ClientHello
        port.install_keys(Direction.WRITE, Epoch.EARLY, psk_suite, secret)
        port.send_early_data(early_data)
    assert offer.ch is not None
    return ExpectServerHello(offer.ch, session, offer, started)


def _build_hello(ctx: ClientContext, offer: Offer13, random: bytes, session_id: bytes,
                 suites: tuple[int, ...], cookie: bytes | None = None) -> ClientHello:  # fmt: skip
    config = ctx.config
    versions = tuple(int(v) for v in config.versions)
    exts = client_hello_12_extensions(ctx, offer.session)
    exts.append(X.SupportedVersionsOffer(versions))
    exts.append(
        X.KeyShareOffer(tuple(X.KeyShareEntry(g, s.public) for g, s in offer.shares.items()))
    )
    if cookie is not None:
        exts.append(X.Cookie(cookie))
    if config.offers_post_handshake_auth:
        exts.append(X.PostHandshakeAuth())
    exts.append(X.PskKeyExchangeModes(config.offered_psk_modes))
    if offer.early_data is not None and not offer.retried:
        exts.append(X.EarlyDataIndication())
    if offer.psk_suite is not None and offer.session is not None:
        s = offer.session
        age = max(0, int((ctx.now() - s.state.created) * 1000))
        obfuscated = (age + s.state.ticket_age_add) & 0xFFFFFFFF
        placeholder = bytes(offer.psk_suite.hash_len)
        exts.append(X.OfferedPsks((X.PskIdentity(s.ticket, obfuscated),), (placeholder,)))
    return ClientHello(0x0303, random, session_id, suites, (0,), tuple(exts))


def _send_hello(ctx: ClientContext, offer: Offer13, ch: ClientHello, prefix: bytes) -> bytes:
    """Fill in the PSK binder (over ``prefix`` + the truncated hello), queue the hello and
    return its bytes for the transcript."""
    psks = ch.find(X.OfferedPsks)
    if psks is not None and offer.psk_suite is not None and offer.session is not None:
        raw = encode_handshake(ch)
        h = hashlib.new(offer.psk_suite.prf_hash, prefix)
        h.update(raw[: len(raw) - psks.binders_length()])
        binder = psk_binder(offer.psk_suite, offer.session.state.secret, h.digest())
        exts = (*ch.extensions[:-1], X.OfferedPsks(psks.identities, (binder,)))
        ch = ClientHello(ch.legacy_version, ch.random, ch.session_id, ch.cipher_suites,
                         ch.compression_methods, exts)  # fmt: skip
    offer.ch = ch
    raw = ctx.send_untranscribed(ch)
    ctx.port.flush()
    return raw


class ExpectServerHello(ClientState):
    __slots__ = ("ch", "ignores_ccs", "offer13", "offered", "started", "tls13")

    def __init__(self, ch: ClientHello, offered: ClientSession | None,
                 offer13: Offer13 | None, started: float | None) -> None:  # fmt: skip
        self.ch = ch
        self.offered = offered
        self.offer13 = offer13  # what a ClientHello offering TLS 1.3 sent
        self.started = started
        # After a HelloRetryRequest the server's compatibility ChangeCipherSpec may come first
        # (and the connection speaks TLS 1.3).
        self.ignores_ccs = self.tls13 = offer13 is not None and offer13.retried

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> ClientState:
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
            return self._tls13(ctx, sh, raw)
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
        return client12.handle_server_hello(ctx, self.ch, sh, self.offered, self.started)

    def _tls13(self, ctx: ClientContext, sh: ServerHello, raw: bytes) -> ClientState:
        offer = self.offer13
        assert offer is not None and offer.ch is not None
        ch = offer.ch
        if sh.session_id != ch.session_id:
            raise IllegalParameter("the server did not echo our legacy_session_id")
        if sh.compression_method != 0:
            raise IllegalParameter("the server chose a compression method other than null")
        suite = BY_CODE.get(sh.cipher_suite)
        if suite is None or not suite.is_tls13 or suite.code not in ch.cipher_suites:
            raise IllegalParameter(
                f"the server chose cipher suite 0x{sh.cipher_suite:04x}, not offered"
            )
        if offer.retry_suite is not None and suite is not offer.retry_suite:
            raise IllegalParameter("the ServerHello suite differs from the HelloRetryRequest's")
        client13.server_hello_received(ctx, ch, sh, suite)
        if not ctx.transcript.hash_ready:
            ctx.transcript.set_hash(suite.prf_hash)
        if sh.is_hello_retry_request:
            return _handle_retry(ctx, offer, sh, raw, suite)
        return client13.handle_server_hello(ctx, offer, sh, raw, suite)


def _handle_retry(ctx: ClientContext, offer: Offer13, hrr: ServerHello, raw: bytes,
                  suite: CipherSuite) -> ClientState:  # fmt: skip
    assert offer.ch is not None
    if offer.retried:
        raise UnexpectedMessage("a second HelloRetryRequest")
    retry = hrr.find(X.KeyShareRetry)
    cookie = hrr.find(X.Cookie)
    groups = offer.ch.find(X.SupportedGroups)
    if retry is not None:
        if groups is None or retry.group not in groups.groups or retry.group in offer.shares:
            raise IllegalParameter(
                "the HelloRetryRequest asks for a group we cannot or already did"
            )
    elif cookie is None:
        raise IllegalParameter("a HelloRetryRequest that would not change the ClientHello")
    ctx.transcript.replace_with_message_hash()
    ctx.transcript.add(raw)
    if offer.early_data is not None:
        ctx.events.append(EarlyDataRejected())
        ctx.port.plaintext(ProtocolVersion.TLS1_2)
    offer.retried = True
    offer.retry_suite = suite
    if retry is not None:
        offer.shares = {retry.group: KeyShare(retry.group, ctx.rng)}
    if offer.psk_suite is not None and offer.psk_suite.prf_hash != suite.prf_hash:
        offer.psk_suite = None  # the PSK cannot be used with this hash
    # The prefix for the binder: message_hash(ClientHello1) | HelloRetryRequest.
    ch1_hash = hashlib.new(suite.prf_hash, encode_handshake(offer.ch)).digest()
    prefix = bytes((HandshakeType.MESSAGE_HASH, 0, 0, len(ch1_hash))) + ch1_hash + raw
    ch2 = _build_hello(ctx, offer, offer.ch.random, offer.ch.session_id, offer.ch.cipher_suites,
                       cookie.cookie if cookie else None)  # fmt: skip
    if offer.early_data is None:
        ctx.port.send_ccs()  # middlebox compatibility, before the second flight
    ctx.transcript.add(_send_hello(ctx, offer, ch2, prefix))
    return ExpectServerHello(ch2, offer.session, offer, offer.started)

"""TLS 1.3 client handshake (RFC 8446 §2), and the ClientHello that offers TLS 1.3.

::

    ClientHello (+key_share, +psk_key_exchange_modes, +pre_shared_key)  -->
    (0-RTT application data, when resuming a ticket that allows it)
                                  <--  HelloRetryRequest   (then a second ClientHello)
                                  <--  ServerHello, {EncryptedExtensions},
                                       {CertificateRequest*}, {Certificate*},
                                       {CertificateVerify*}, {Finished}
    {EndOfEarlyData} (0-RTT accepted), {Certificate*}, {CertificateVerify*},
    {Finished}                    -->
                                  <--  [NewSessionTicket]*   (post-handshake)

The ClientHello also carries the TLS 1.2 extensions when TLS 1.2 is enabled, so the server may
pick either version; client.py hands a TLS 1.2 ServerHello to client12.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from ..config import ClientConfig
from ..crypto import signatures
from ..crypto.key_exchange import KeyShare
from ..crypto.key_schedule import KeySchedule, psk_binder
from ..crypto.suites import BY_CODE, CipherSuite
from ..crypto.x509 import parse_chain
from ..enums import ContentType, HandshakeType, ProtocolVersion, PskKeyExchangeMode
from ..errors import (
    DecodeError,
    HandshakeFailure,
    IllegalParameter,
    LocalProtocolError,
    MissingExtension,
    UnexpectedMessage,
    UnsupportedExtension,
)
from ..events import EarlyDataRejected, ServerHelloReceived, SessionTicketReceived
from ..messages import (
    Certificate13,
    CertificateEntry,
    CertificateRequest13,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    EndOfEarlyData,
    Finished,
    NewSessionTicket13,
    ServerHello,
    decode_message,
    encode_handshake,
)
from ..messages import extensions as X
from ..record.protection import NullProtection
from ..session.model import ClientSession, ServerSession
from ..session.resumption import unusable
from ..session.stats import FallbackReason
from .client12 import verify_peer
from .common13 import (
    CLIENT_CV_CONTEXT,
    MAX_TICKET_LIFETIME,
    SERVER_CV_CONTEXT,
    Traffic13,
    application_secrets,
    cv_content,
    handshake_secrets,
    protection,
    require_leaf_fits,
    verify_cv,
)
from .context import ClientContext, State, require, verify_finished


@dataclass(slots=True)
class _Offer:
    """What the (latest) ClientHello offered."""

    ch: ClientHello | None
    shares: dict[int, KeyShare]
    session: ClientSession | None  # the session offered (TLS 1.3 PSK or TLS 1.2 id/ticket)
    psk_suite: CipherSuite | None  # set when a TLS 1.3 PSK was offered
    early_data: bytes | None
    retried: bool = False
    retry_suite: CipherSuite | None = None


def offered_psk_modes(config: ClientConfig) -> tuple[PskKeyExchangeMode, ...]:
    """psk_dhe_ke, and psk_ke too with ``config.psk_ke``. A config that names its own
    ``psk_modes`` (the resumption auditor's, which offers psk_ke alone to see whether a server
    accepts it) offers exactly those."""
    named: tuple[PskKeyExchangeMode, ...] | None = getattr(config, "psk_modes", None)
    if named:
        return named
    if config.psk_ke:
        return (PskKeyExchangeMode.psk_dhe_ke, PskKeyExchangeMode.psk_ke)
    return (PskKeyExchangeMode.psk_dhe_ke,)


def _age_ms(session: ClientSession, now: float) -> int:
    return max(0, int((now - session.state.created) * 1000))


def _psk_usable(ctx: ClientContext, session: ClientSession | None) -> CipherSuite | None:
    """The suite to offer ``session`` with, if the shared rules say it can resume here."""
    if session is None or not session.ticket:
        return None
    reason = unusable(
        session.state,
        version=ProtocolVersion.TLS1_3,
        now=ctx.now(),
        server_name=ctx.sni,
        suites=ctx.config.suite_codes_for(ProtocolVersion.TLS1_3),
        expired_reason=FallbackReason.TICKET_EXPIRED,
    )
    if reason is not None:
        return None
    return BY_CODE[session.cipher_suite]


def early_data_allowance(ctx: ClientContext, session: ClientSession | None) -> int:
    """How many bytes of 0-RTT data offering ``session`` would allow (0: none)."""
    return session.state.max_early_data if _psk_usable(ctx, session) and session else 0


def start(ctx: ClientContext, session: ClientSession | None, suites: list[int],
          early_data: bytes | None = None) -> State:  # fmt: skip
    """Send the first ClientHello offering TLS 1.3 (and TLS 1.2 if enabled)."""
    from .client import ExpectServerHello

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
    offer = _Offer(None, shares, session, psk_suite, early_data)
    ch_raw = _send_hello(ctx, offer, _build_hello(ctx, offer, session_id, tuple(suites)), b"")
    ctx.transcript.add(ch_raw)
    # Only the first ClientHello may carry record version 0x0301 (RFC 8446 §5.1).
    ctx.records.write = NullProtection(b"\x03\x03")
    if early_data is not None and psk_suite is not None and session is not None:
        ks = KeySchedule(psk_suite, session.state.secret)
        h = hashlib.new(psk_suite.prf_hash, ch_raw).digest()
        secret = ks.derive(b"c e traffic", h)
        ctx.keylog("CLIENT_EARLY_TRAFFIC_SECRET", secret)
        ctx.send_ccs()  # middlebox compatibility: right after the first ClientHello
        ctx.set_write_protection(protection(ks, secret))
        ctx.records.write_records(ContentType.APPLICATION_DATA, early_data)
    assert offer.ch is not None
    return ExpectServerHello(offer.ch, session, offer)


def _build_hello(ctx: ClientContext, offer: _Offer, session_id: bytes, suites: tuple[int, ...],
                 cookie: bytes | None = None) -> ClientHello:  # fmt: skip
    from .client import client_hello_12_extensions

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
    exts.append(X.PskKeyExchangeModes(offered_psk_modes(config)))
    if offer.early_data is not None and not offer.retried:
        exts.append(X.EarlyDataIndication())
    if offer.psk_suite is not None and offer.session is not None:
        s = offer.session
        age = (_age_ms(s, ctx.now()) + s.state.ticket_age_add) & 0xFFFFFFFF
        placeholder = bytes(offer.psk_suite.hash_len)
        exts.append(X.OfferedPsks((X.PskIdentity(s.ticket, age),), (placeholder,)))
    return ClientHello(0x0303, ctx.client_random, session_id, suites, (0,), tuple(exts))


def _send_hello(ctx: ClientContext, offer: _Offer, ch: ClientHello, prefix: bytes) -> bytes:
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
    raw = encode_handshake(ch)
    ctx.send_untranscribed(ch)
    ctx.flush()
    return raw


def handle_server_hello(ctx: ClientContext, waiting: State, sh: ServerHello, raw: bytes) -> State:
    from .client import ExpectServerHello

    assert isinstance(waiting, ExpectServerHello)
    offer = waiting.offer13
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
    ctx.events.append(
        ServerHelloReceived(ProtocolVersion.TLS1_3, suite.code, ch.session_id, sh.session_id,
                            tuple(X.ext_code(e) for e in sh.extensions),
                            sh.is_hello_retry_request)
    )  # fmt: skip
    ctx.version = ProtocolVersion.TLS1_3
    ctx.suite = suite
    if not ctx.transcript.hash_ready:
        ctx.transcript.set_hash(suite.prf_hash)
    if sh.is_hello_retry_request:
        return _handle_retry(ctx, offer, sh, raw, suite)
    ctx.transcript.add(raw)
    ctx.server_random = sh.random
    ctx.session_id = sh.session_id

    psk, shared = _server_psk_and_share(ctx, offer, sh, suite)

    ks = KeySchedule(suite, psk)
    c_hs, s_hs = handshake_secrets(ctx, ks, shared)
    ctx.set_read_protection(protection(ks, s_hs))
    if psk is not None:
        ctx.resumed_by = "psk"
        assert offer.session is not None
        if offer.session.state.peer_chain:
            ctx.peer_chain_der = offer.session.state.peer_chain
            ctx.peer_chain = tuple(parse_chain(offer.session.state.peer_chain))
    return ExpectEncryptedExtensions(_Keys(ks, c_hs, s_hs, offer))


def _server_psk_and_share(
    ctx: ClientContext, offer: _Offer, sh: ServerHello, suite: CipherSuite
) -> tuple[bytes | None, bytes | None]:
    """The PSK the server selected (if any) and the (EC)DHE shared secret (if any)."""
    psk_sel = sh.find(X.PreSharedKeySelected)
    psk: bytes | None = None
    if psk_sel is not None:
        if offer.psk_suite is None or offer.session is None or psk_sel.selected_identity != 0:
            raise IllegalParameter("the server selected a PSK we did not offer")
        if offer.psk_suite.prf_hash != suite.prf_hash:
            raise IllegalParameter("the server resumed with a suite of a different hash")
        psk = offer.session.state.secret
    share = sh.find(X.KeyShareSelected)
    shared: bytes | None = None
    if share is not None:
        mine = offer.shares.get(share.entry.group)
        if mine is None:
            raise IllegalParameter("the server's key share is for a group we did not send")
        shared = mine.exchange(share.entry.key_exchange)
        ctx.group = share.entry.group
    elif psk is None:
        raise MissingExtension("the server sent neither a key share nor a PSK")
    modes = offered_psk_modes(ctx.config)
    if psk is not None and share is None and PskKeyExchangeMode.psk_ke not in modes:
        raise HandshakeFailure("the server chose psk_ke, which we did not offer")
    if psk is not None and share is not None and PskKeyExchangeMode.psk_dhe_ke not in modes:
        raise IllegalParameter("the server chose psk_dhe_ke, but we offered psk_ke only")
    return psk, shared


def _handle_retry(ctx: ClientContext, offer: _Offer, hrr: ServerHello, raw: bytes,
                  suite: CipherSuite) -> State:  # fmt: skip
    from .client import ExpectServerHello

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
        ctx.set_write_protection(NullProtection(b"\x03\x03"))
    offer.retried = True
    offer.retry_suite = suite
    if retry is not None:
        offer.shares = {retry.group: KeyShare(retry.group, ctx.rng)}
    if offer.psk_suite is not None and offer.psk_suite.prf_hash != suite.prf_hash:
        offer.psk_suite = None  # the PSK cannot be used with this hash
    # The prefix for the binder: message_hash(ClientHello1) | HelloRetryRequest.
    ch1_hash = hashlib.new(suite.prf_hash, encode_handshake(offer.ch)).digest()
    prefix = bytes((HandshakeType.MESSAGE_HASH, 0, 0, len(ch1_hash))) + ch1_hash + raw
    ch2 = _build_hello(ctx, offer, offer.ch.session_id, offer.ch.cipher_suites,
                       cookie.cookie if cookie else None)  # fmt: skip
    if offer.early_data is None:
        ctx.send_ccs()  # middlebox compatibility, before the second flight
    ctx.transcript.add(_send_hello(ctx, offer, ch2, prefix))
    return ExpectServerHello(ch2, offer.session, offer)


@dataclass(slots=True)
class _Keys:
    ks: KeySchedule
    c_hs: bytes = field(repr=False)  # traffic secrets: never in a repr
    s_hs: bytes = field(repr=False)
    offer: _Offer
    cert_request: CertificateRequest13 | None = None


class _Handshake13(State):
    ignores_ccs = True

    def __init__(self, keys: _Keys) -> None:
        self.keys = keys


class ExpectEncryptedExtensions(_Handshake13):
    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.ENCRYPTED_EXTENSIONS)
        ee = decode_message(EncryptedExtensions, body)
        assert self.keys.offer.ch is not None
        offered = {X.ext_code(e) for e in self.keys.offer.ch.extensions}
        for ext in ee.extensions:
            if X.ext_code(ext) not in offered:
                raise UnsupportedExtension(
                    f"EncryptedExtensions has extension {X.ext_code(ext)} we did not offer"
                )
        alpn = ee.find(X.ALPN)
        if alpn is not None:
            if len(alpn.protocols) != 1 or alpn.protocols[0] not in ctx.config.alpn_protocols:
                raise IllegalParameter("the server selected an ALPN protocol we did not offer")
            ctx.alpn = alpn.protocols[0]
        offer = self.keys.offer
        if ee.find(X.EarlyDataIndication) is not None:
            if offer.early_data is None or offer.retried or ctx.resumed_by is None:
                raise IllegalParameter("the server accepted early data we did not send")
            ctx.early_data_accepted = True
        elif offer.early_data is not None and not offer.retried:
            ctx.events.append(EarlyDataRejected())
        ctx.transcript.add(raw)
        if ctx.resumed_by is not None:
            return ExpectFinished(self.keys)
        return ExpectCertificate(self.keys)


class ExpectCertificate(_Handshake13):
    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> State:
        if msg_type == HandshakeType.CERTIFICATE_REQUEST and self.keys.cert_request is None:
            req = decode_message(CertificateRequest13, body)
            if req.find_schemes() is None:
                raise DecodeError("CertificateRequest without signature_algorithms")
            self.keys.cert_request = req
            ctx.transcript.add(raw)
            return self
        require(self, msg_type, HandshakeType.CERTIFICATE)
        msg = decode_message(Certificate13, body)
        if msg.context:
            raise IllegalParameter("the server's Certificate has a non-empty request context")
        if not msg.entries:
            raise DecodeError("the server sent an empty certificate chain")
        chain = parse_chain(msg.chain)
        verify_peer(ctx, chain)
        ctx.peer_chain = tuple(chain)
        ctx.peer_chain_der = msg.chain
        require_leaf_fits(ctx, ctx.config.signature_schemes)
        ctx.transcript.add(raw)
        return ExpectCertificateVerify(self.keys)


class ExpectCertificateVerify(_Handshake13):
    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.CERTIFICATE_VERIFY)
        cv = decode_message(CertificateVerify, body)
        verify_cv(ctx, cv.scheme, cv.signature, SERVER_CV_CONTEXT, ctx.transcript.digest(),
                  ctx.config.signature_schemes)  # fmt: skip
        ctx.signature_scheme = cv.scheme
        ctx.transcript.add(raw)
        return ExpectFinished(self.keys)


class ExpectFinished(_Handshake13):
    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.FINISHED)
        k = self.keys
        ks = k.ks
        expected = ks.finished_mac(k.s_hs, ctx.transcript.digest())
        verify_finished(decode_message(Finished, body).verify_data, expected)
        ctx.server_verify_data = expected
        ctx.transcript.add(raw)
        c_ap, s_ap = application_secrets(ctx, ks)
        # Our second flight.
        if ctx.early_data_accepted:
            ctx.send(EndOfEarlyData())
        elif k.offer.early_data is None and not k.offer.retried:
            ctx.send_ccs()  # middlebox compatibility, before the second flight
        ctx.set_write_protection(protection(ks, k.c_hs))
        if k.cert_request is not None:
            _send_client_certificate(ctx, k.cert_request)
        ctx.client_verify_data = ks.finished_mac(k.c_hs, ctx.transcript.digest())
        ctx.send(Finished(ctx.client_verify_data))
        ctx.set_write_protection(protection(ks, c_ap))
        ctx.set_read_protection(protection(ks, s_ap))
        res_master = ks.derive(b"res master", ctx.transcript.digest())
        ctx.complete()
        return Traffic13(ks, s_ap, c_ap, res_master)


def _send_client_certificate(ctx: ClientContext, req: CertificateRequest13) -> None:
    cert = ctx.config.certificate
    schemes = req.find_schemes() or ()
    scheme = None
    if cert is not None:
        scheme = signatures.choose_scheme(cert.key, schemes, ctx.config.signature_schemes, True)
    if cert is None or scheme is None:
        ctx.send(Certificate13(req.context, ()))
        return
    ctx.send(Certificate13(req.context, tuple(CertificateEntry(d) for d in cert.chain_der)))
    content = cv_content(CLIENT_CV_CONTEXT, ctx.transcript.digest())
    ctx.send(CertificateVerify(scheme, signatures.sign(cert.key, scheme, content)))


def receive_ticket(ctx: ClientContext, traffic: Traffic13, nst: NewSessionTicket13) -> None:
    """Turn a NewSessionTicket into a session we can resume (RFC 8446 §4.6.1)."""
    if nst.lifetime == 0:
        return  # "discard immediately"
    if nst.lifetime > MAX_TICKET_LIFETIME:
        raise IllegalParameter("a ticket lifetime over seven days")
    assert ctx.suite is not None
    limit = nst.find(X.EarlyDataLimit)
    state = ServerSession(
        version=ProtocolVersion.TLS1_3,
        cipher_suite=ctx.suite.code,
        secret=traffic.ks.resumption_psk(traffic.resumption_master, nst.nonce),
        extended_master_secret=False,
        created=ctx.now(),
        lifetime=nst.lifetime,
        server_name=ctx.server_name,
        alpn=ctx.alpn,
        peer_chain=ctx.peer_chain_der,
        ticket_age_add=nst.age_add,
        max_early_data=limit.max_early_data_size if limit else 0,
    )
    session = ClientSession(state, b"", nst.ticket)
    ctx.new_session(session)
    ctx.events.append(SessionTicketReceived(session, nst.lifetime))

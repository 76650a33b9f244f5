"""TLS 1.3 client handshake, from the ServerHello on (RFC 8446 §2).

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

The ClientHello (both versions) and the HelloRetryRequest are in :mod:`.client`; it hands a
TLS 1.3 ServerHello to :func:`handle_server_hello`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..crypto.key_exchange import KeyShare
from ..crypto.key_schedule import KeySchedule
from ..crypto.suites import CipherSuite
from ..crypto.x509 import parse_chain
from ..enums import HandshakeType, ProtocolVersion, PskKeyExchangeMode
from ..errors import (
    DecodeError,
    HandshakeFailure,
    IllegalParameter,
    MissingExtension,
    UnsupportedExtension,
)
from ..events import EarlyDataRejected, ServerHelloReceived, SessionTicketReceived
from ..messages import (
    Certificate13,
    CertificateRequest13,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    EndOfEarlyData,
    Finished,
    NewSessionTicket13,
    ServerHello,
    decode_message,
)
from ..messages import extensions as X
from ..session.model import ClientSession, ServerSession
from ..session.resumption import Mechanism
from . import post_auth
from .client12 import verify_peer
from .context import ClientContext, ClientState, require, unexpected, verify_finished
from .negotiated import Negotiated13
from .port import Direction, Epoch
from .traffic13 import (
    MAX_TICKET_LIFETIME,
    SERVER_CV_CONTEXT,
    Keys13,
    Traffic13,
    application_secrets,
    handshake_secrets,
    require_leaf_fits,
    verify_cv,
)


@dataclass(slots=True)
class Offer13:
    """What the (latest) ClientHello offered."""

    ch: ClientHello | None
    shares: dict[int, KeyShare] = field(repr=False)
    session: ClientSession | None = field(repr=False)  # TLS 1.3 PSK or TLS 1.2 id/ticket
    psk_suite: CipherSuite | None  # set when a TLS 1.3 PSK was offered
    early_data: bytes | None = field(repr=False)
    started: float | None
    retried: bool = False
    retry_suite: CipherSuite | None = None


def handle_server_hello(ctx: ClientContext, offer: Offer13, sh: ServerHello, raw: bytes,
                        suite: CipherSuite) -> ClientState:  # fmt: skip
    """A TLS 1.3 ServerHello (not a HelloRetryRequest)."""
    assert offer.ch is not None
    ctx.transcript.add(raw)
    psk, shared, group = _server_psk_and_share(ctx, offer, sh, suite)
    session = offer.session
    chain_der = session.state.peer_chain if psk is not None and session is not None else ()
    n = Negotiated13(
        suite, offer.ch.random, sh.session_id, ctx.server_name, None,
        Mechanism.PSK if psk is not None else None, group,
        peer_chain=tuple(parse_chain(chain_der)) if chain_der else (), peer_chain_der=chain_der,
    )  # fmt: skip
    ks = KeySchedule(suite, psk)
    c_hs, s_hs = handshake_secrets(ctx, ks, shared, n.client_random)
    ctx.port.install_keys(Direction.READ, Epoch.HANDSHAKE, suite, s_hs)
    return ExpectEncryptedExtensions(Keys13Handshake(n, ks, c_hs, s_hs, offer))


def _server_psk_and_share(
    ctx: ClientContext, offer: Offer13, sh: ServerHello, suite: CipherSuite
) -> tuple[bytes | None, bytes | None, int | None]:
    """The PSK the server selected (if any), the (EC)DHE shared secret (if any) and its
    group."""
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
    group: int | None = None
    if share is not None:
        mine = offer.shares.get(share.entry.group)
        if mine is None:
            raise IllegalParameter("the server's key share is for a group we did not send")
        shared = mine.exchange(share.entry.key_exchange)
        group = share.entry.group
    elif psk is None:
        raise MissingExtension("the server sent neither a key share nor a PSK")
    modes = ctx.config.offered_psk_modes
    if psk is not None and share is None and PskKeyExchangeMode.psk_ke not in modes:
        raise HandshakeFailure("the server chose psk_ke, which we did not offer")
    if psk is not None and share is not None and PskKeyExchangeMode.psk_dhe_ke not in modes:
        raise IllegalParameter("the server chose psk_dhe_ke, but we offered psk_ke only")
    return psk, shared, group


def server_hello_received(ctx: ClientContext, ch: ClientHello, sh: ServerHello,
                          suite: CipherSuite) -> None:  # fmt: skip
    ctx.events.append(
        ServerHelloReceived(ProtocolVersion.TLS1_3, suite.code, ch.session_id, sh.session_id,
                            tuple(X.ext_code(e) for e in sh.extensions),
                            sh.is_hello_retry_request)
    )  # fmt: skip


@dataclass(slots=True)
class Keys13Handshake:
    n: Negotiated13
    ks: KeySchedule = field(repr=False)
    c_hs: bytes = field(repr=False)  # traffic secrets: never in a repr
    s_hs: bytes = field(repr=False)
    offer: Offer13
    cert_request: CertificateRequest13 | None = None


class _Handshake13(ClientState):
    __slots__ = ("keys",)
    ignores_ccs = True
    tls13 = True

    def __init__(self, keys: Keys13Handshake) -> None:
        self.keys = keys


class ExpectEncryptedExtensions(_Handshake13):
    __slots__ = ()

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> ClientState:
        require(self, msg_type, HandshakeType.ENCRYPTED_EXTENSIONS)
        ee = decode_message(EncryptedExtensions, body)
        k = self.keys
        offer = k.offer
        assert offer.ch is not None
        offered = {X.ext_code(e) for e in offer.ch.extensions}
        for ext in ee.extensions:
            if X.ext_code(ext) not in offered:
                raise UnsupportedExtension(
                    f"EncryptedExtensions has extension {X.ext_code(ext)} we did not offer"
                )
        alpn = ee.find(X.ALPN)
        if alpn is not None:
            if len(alpn.protocols) != 1 or alpn.protocols[0] not in ctx.config.alpn_protocols:
                raise IllegalParameter("the server selected an ALPN protocol we did not offer")
            k.n = replace(k.n, alpn=alpn.protocols[0])
        resumed = k.n.resumed_by is not None
        if ee.find(X.EarlyDataIndication) is not None:
            if offer.early_data is None or offer.retried or not resumed:
                raise IllegalParameter("the server accepted early data we did not send")
            k.n = replace(k.n, early_data_accepted=True)
        elif offer.early_data is not None and not offer.retried:
            ctx.events.append(EarlyDataRejected())
        ctx.transcript.add(raw)
        if resumed:
            return ExpectFinished(k)
        return ExpectCertificate(k)


class ExpectCertificate(_Handshake13):
    __slots__ = ()

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> ClientState:
        k = self.keys
        if msg_type == HandshakeType.CERTIFICATE_REQUEST and k.cert_request is None:
            req = decode_message(CertificateRequest13, body)
            if req.find_schemes() is None:
                raise DecodeError("CertificateRequest without signature_algorithms")
            k.cert_request = req
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
        require_leaf_fits(chain, ctx.config.signature_schemes)
        k.n = replace(k.n, peer_chain=tuple(chain), peer_chain_der=msg.chain)
        ctx.transcript.add(raw)
        return ExpectCertificateVerify(k)


class ExpectCertificateVerify(_Handshake13):
    __slots__ = ()

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> ClientState:
        require(self, msg_type, HandshakeType.CERTIFICATE_VERIFY)
        cv = decode_message(CertificateVerify, body)
        k = self.keys
        verify_cv(cv.scheme, cv.signature, SERVER_CV_CONTEXT, ctx.transcript.digest(),
                  ctx.config.signature_schemes, k.n.peer_chain)  # fmt: skip
        k.n = replace(k.n, signature_scheme=cv.scheme)
        ctx.transcript.add(raw)
        return ExpectFinished(k)


class ExpectFinished(_Handshake13):
    __slots__ = ()

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> ClientState:
        require(self, msg_type, HandshakeType.FINISHED)
        k = self.keys
        ks = k.ks
        n = k.n
        expected = ks.finished_mac(k.s_hs, ctx.transcript.digest())
        verify_finished(decode_message(Finished, body).verify_data, expected)
        ctx.transcript.add(raw)
        c_ap, s_ap = application_secrets(ctx, ks, n.client_random)
        # Our second flight.
        port = ctx.port
        if n.early_data_accepted:
            ctx.send(EndOfEarlyData())
        elif k.offer.early_data is None and not k.offer.retried:
            port.send_ccs()  # middlebox compatibility, before the second flight
        port.install_keys(Direction.WRITE, Epoch.HANDSHAKE, n.suite, k.c_hs)
        req = k.cert_request
        if req is not None:
            post_auth.send_certificate(ctx, ctx.config, req.context, req.find_schemes() or (),
                                       ctx.transcript, True)  # fmt: skip
        ctx.send(Finished(ks.finished_mac(k.c_hs, ctx.transcript.digest())))
        port.install_keys(Direction.WRITE, Epoch.APPLICATION, n.suite, c_ap)
        port.install_keys(Direction.READ, Epoch.APPLICATION, n.suite, s_ap)
        res_master = ks.derive(b"res master", ctx.transcript.digest())
        ctx.complete(n, k.offer.started)
        return ClientTraffic13(Keys13(ks, s_ap, c_ap, res_master, n))


class ClientTraffic13(Traffic13[ClientContext]):
    """The open connection: tickets arrive, KeyUpdate both ways, and a post-handshake
    CertificateRequest is answered (:mod:`.post_auth`)."""

    __slots__ = ("request_contexts",)

    def __init__(self, keys: Keys13) -> None:
        super().__init__(keys)
        self.request_contexts: set[bytes] = set()  # each request must be new

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> ClientState:
        if msg_type == HandshakeType.KEY_UPDATE:
            self.keys.peer_updated(ctx, body)
        elif msg_type == HandshakeType.NEW_SESSION_TICKET:
            receive_ticket(ctx, self.keys, decode_message(NewSessionTicket13, body))
        elif msg_type == HandshakeType.CERTIFICATE_REQUEST:
            post_auth.answer(ctx, self.keys, self.request_contexts, body, raw)
        else:
            unexpected(self, msg_type)
        return self


def receive_ticket(ctx: ClientContext, keys: Keys13, nst: NewSessionTicket13) -> None:
    """Turn a NewSessionTicket into a session we can resume (RFC 8446 §4.6.1)."""
    if nst.lifetime == 0:
        return  # "discard immediately"
    if nst.lifetime > MAX_TICKET_LIFETIME:
        raise IllegalParameter("a ticket lifetime over seven days")
    n = keys.n
    limit = nst.find(X.EarlyDataLimit)
    state = ServerSession(
        version=ProtocolVersion.TLS1_3,
        cipher_suite=n.suite.code,
        secret=keys.ks.resumption_psk(keys.resumption_master, nst.nonce),
        extended_master_secret=False,
        created=ctx.now(),
        lifetime=nst.lifetime,
        server_name=ctx.server_name,
        alpn=n.alpn,
        peer_chain=n.peer_chain_der,
        ticket_age_add=nst.age_add,
        max_early_data=limit.max_early_data_size if limit else 0,
    )
    session = ClientSession(state, b"", nst.ticket)
    ctx.new_session(session)
    ctx.events.append(SessionTicketReceived(session, nst.lifetime))

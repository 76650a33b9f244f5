"""TLS 1.2 client handshake, from the ServerHello on (RFC 5246 §7.3).

Full handshake::

    ClientHello          -->
                              ServerHello, Certificate, ServerKeyExchange*,
                         <--  CertificateRequest*, ServerHelloDone
    Certificate*, ClientKeyExchange, CertificateVerify*,
    [ChangeCipherSpec], Finished  -->
                              NewSessionTicket*
                         <--  [ChangeCipherSpec], Finished

Abbreviated handshake (the server echoed our session id)::

                         <--  ServerHello, NewSessionTicket*, [ChangeCipherSpec], Finished
    [ChangeCipherSpec], Finished  -->
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..crypto import signatures
from ..crypto.key_exchange import KeyShare
from ..crypto.suites import BY_CODE, Auth, CipherSuite, KeyExchange
from ..crypto.x509 import leaf_public_key, parse_chain, trust_source, utc_clock, verify_server_chain
from ..enums import AlertDescription, HandshakeType, ProtocolVersion
from ..errors import (
    BadCertificate,
    ConfigError,
    DecodeError,
    HandshakeFailure,
    IllegalParameter,
    UnexpectedMessage,
    UnsupportedExtension,
)
from ..events import ServerHelloReceived, SessionTicketReceived
from ..messages import (
    Certificate12,
    CertificateRequest12,
    CertificateVerify,
    ClientHello,
    ClientKeyExchangeECDHE,
    ClientKeyExchangeRSA,
    Finished,
    NewSessionTicket12,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchangeECDHE,
    decode_message,
)
from ..messages import extensions as X
from ..record.protection import NullProtection, RecordProtection
from ..session.model import ClientSession, ServerSession
from . import keys12, renegotiation
from .context import ClientContext, State, check_finished12, require
from .traffic import Traffic12

# How long a client keeps a TLS 1.2 session when the server gives no ticket lifetime hint.
DEFAULT_CLIENT_SESSION_LIFETIME = 300
MAX_TICKET_LIFETIME = 7 * 24 * 3600


def handle_server_hello(
    ctx: ClientContext, ch: ClientHello, sh: ServerHello, offered: ClientSession | None
) -> State:
    suite = BY_CODE.get(sh.cipher_suite)
    if suite is None or suite.is_tls13 or suite.code not in ch.cipher_suites:
        raise IllegalParameter(
            f"the server chose cipher suite 0x{sh.cipher_suite:04x}, not offered"
        )
    if sh.compression_method != 0:
        raise IllegalParameter("the server chose a compression method other than null")
    _check_server_extensions(ctx, ch, sh, suite)
    ticket_expected = sh.find(X.SessionTicketExt) is not None
    ctx.events.append(
        ServerHelloReceived(ProtocolVersion.TLS1_2, suite.code, ch.session_id, sh.session_id,
                            tuple(X.ext_code(e) for e in sh.extensions))
    )  # fmt: skip
    ctx.version = ProtocolVersion.TLS1_2
    ctx.records.check_version = ProtocolVersion.TLS1_2
    if ctx.renegotiation is None:  # a renegotiation keeps the current keys until its CCS
        ctx.records.write = NullProtection(b"\x03\x03")
    ctx.suite = suite
    ctx.server_random = sh.random
    ctx.session_id = sh.session_id
    ctx.transcript.set_hash(suite.prf_hash)
    if (
        offered is not None
        and offered.version == ProtocolVersion.TLS1_2
        and sh.session_id
        and sh.session_id == ch.session_id
    ):
        return _resumed(ctx, offered, suite, ticket_expected)
    return ExpectCertificate(suite, ticket_expected)


def _check_server_extensions(
    ctx: ClientContext, ch: ClientHello, sh: ServerHello, suite: CipherSuite
) -> None:
    """Only extensions we offered; renegotiation_info, EMS, ETM and ALPN as negotiated."""
    config = ctx.config
    offered_types = {X.ext_code(e) for e in ch.extensions}
    for ext in sh.extensions:
        if X.ext_code(ext) not in offered_types:
            raise UnsupportedExtension(
                f"the server sent extension {X.ext_code(ext)} we did not offer"
            )
    ems = sh.find(X.ExtendedMasterSecret) is not None
    renegotiation.check_server_hello(ctx, sh, ems)
    if config.require_extended_master_secret and not ems:
        raise HandshakeFailure("the server does not support the extended master secret (RFC 7627)")
    ctx.ems = ems
    ctx.etm = sh.find(X.EncryptThenMac) is not None and not suite.is_aead
    alpn = sh.find(X.ALPN)
    if alpn is not None:
        if len(alpn.protocols) != 1 or alpn.protocols[0] not in config.alpn_protocols:
            raise IllegalParameter("the server selected an ALPN protocol we did not offer")
        ctx.alpn = alpn.protocols[0]


def _resumed(
    ctx: ClientContext, offered: ClientSession, suite: CipherSuite, ticket_expected: bool
) -> State:
    """The server echoed our session id: an abbreviated handshake."""
    state = offered.state
    if state.cipher_suite != suite.code:
        raise IllegalParameter("the server resumed our session with a different cipher suite")
    if state.extended_master_secret != ctx.ems:
        raise HandshakeFailure(
            "the server resumed a session with a different extended master secret state "
            "(RFC 7627 §5.3)"
        )
    ctx.master_secret = state.secret
    ctx.resumed_by = "ticket" if offered.ticket else "session_id"
    if state.peer_chain:
        ctx.peer_chain_der = state.peer_chain
        ctx.peer_chain = tuple(parse_chain(state.peer_chain))
    client_w, server_w = keys12.protections(
        suite, state.secret, ctx.client_random, ctx.server_random, ctx.etm
    )
    ctx.keylog("CLIENT_RANDOM", state.secret)
    return ExpectTicketOrCCS(server_w, ticket_expected, resume=(offered, client_w))


def _check_key_type(suite: CipherSuite, leaf: x509.Certificate) -> None:
    key = leaf_public_key(leaf)
    ok = (
        isinstance(key, rsa.RSAPublicKey)
        if suite.auth is Auth.RSA
        else signatures.key_kind(key) == "ec"
    )
    if not ok:
        raise BadCertificate(
            f"the server's certificate key does not fit {suite.openssl_name}",
            alert=AlertDescription.unsupported_certificate,
        )


class ExpectCertificate(State):
    def __init__(self, suite: CipherSuite, ticket_expected: bool) -> None:
        self.suite = suite
        self.ticket_expected = ticket_expected

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.CERTIFICATE)
        msg = decode_message(Certificate12, body)
        if not msg.chain:
            raise DecodeError("the server sent an empty certificate chain")
        chain = parse_chain(msg.chain)
        verify_peer(ctx, chain)
        _check_key_type(self.suite, chain[0])
        ctx.peer_chain = tuple(chain)
        ctx.peer_chain_der = msg.chain
        ctx.transcript.add(raw)
        if self.suite.kx is KeyExchange.ECDHE:
            return ExpectServerKeyExchange(self.suite, self.ticket_expected)
        return ExpectCertificateRequestOrDone(self.suite, self.ticket_expected, None)


def verify_peer(ctx: ClientContext, chain: list[x509.Certificate]) -> None:
    """Validate the server's chain (and its name, unless hostname checking is off)."""
    config = ctx.config
    if not config.verify:
        return
    if config.check_hostname and ctx.sni is None:
        raise ConfigError(
            "certificate validation needs a server name to check; pass one or turn checking off"
        )
    verify_server_chain(
        chain,
        ctx.sni if config.check_hostname else None,
        config.trust_store(),
        utc_clock(config.clock),
        profile=config.verify_profile,
        min_rsa_bits=config.min_rsa_bits,
        source=trust_source(config.cafile),
    )


class ExpectServerKeyExchange(State):
    def __init__(self, suite: CipherSuite, ticket_expected: bool) -> None:
        self.suite = suite
        self.ticket_expected = ticket_expected

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.SERVER_KEY_EXCHANGE)
        ske = decode_message(ServerKeyExchangeECDHE, body)
        config = ctx.config
        if ske.group not in config.groups:
            raise IllegalParameter(f"the server chose group {ske.group}, which we did not offer")
        if ske.scheme not in config.signature_schemes:
            raise IllegalParameter(f"the server signed with scheme 0x{ske.scheme:04x}, not offered")
        signatures.verify(
            leaf_public_key(ctx.peer_chain[0]),
            ske.scheme,
            ctx.client_random + ctx.server_random + ske.params,
            ske.signature,
            tls13=False,
        )
        ctx.transcript.add(raw)
        ctx.group = ske.group
        ctx.signature_scheme = ske.scheme
        return ExpectCertificateRequestOrDone(self.suite, self.ticket_expected, ske)


class ExpectCertificateRequestOrDone(State):
    def __init__(
        self, suite: CipherSuite, ticket_expected: bool, ske: ServerKeyExchangeECDHE | None
    ) -> None:
        self.suite = suite
        self.ticket_expected = ticket_expected
        self.ske = ske
        self.request: CertificateRequest12 | None = None

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> State:
        if msg_type == HandshakeType.CERTIFICATE_REQUEST and self.request is None:
            self.request = decode_message(CertificateRequest12, body)
            ctx.transcript.add(raw)
            return self
        require(self, msg_type, HandshakeType.SERVER_HELLO_DONE)
        decode_message(ServerHelloDone, body)
        ctx.transcript.add(raw)
        return self._client_flight(ctx)

    def _client_flight(self, ctx: ClientContext) -> State:
        config = ctx.config
        suite = self.suite
        signing = None
        if self.request is not None:
            cert = config.certificate
            scheme = None
            if cert is not None:
                scheme = signatures.choose_scheme(
                    cert.key, self.request.signature_schemes, config.signature_schemes, False
                )
            ctx.send(Certificate12(cert.chain_der if cert is not None and scheme else ()))
            if cert is not None and scheme is not None:
                signing = (cert, scheme)
        if self.ske is not None:
            share = KeyShare(self.ske.group)
            premaster = share.exchange(self.ske.public)
            ctx.send(ClientKeyExchangeECDHE(share.public))
        else:
            premaster = b"\x03\x03" + ctx.rng(46)
            key = leaf_public_key(ctx.peer_chain[0])
            assert isinstance(key, rsa.RSAPublicKey)
            ctx.send(ClientKeyExchangeRSA(key.encrypt(premaster, padding.PKCS1v15())))
        master = keys12.compute_master_secret(
            suite,
            premaster,
            ctx.client_random,
            ctx.server_random,
            ctx.transcript.digest() if ctx.ems else None,
        )
        ctx.master_secret = master
        if signing is not None:
            cert, scheme = signing
            sig = signatures.sign(cert.key, scheme, ctx.transcript.messages())
            ctx.send(CertificateVerify(scheme, sig))
        ctx.keylog("CLIENT_RANDOM", master)
        client_w, server_w = keys12.protections(
            suite, master, ctx.client_random, ctx.server_random, ctx.etm
        )
        ctx.send_ccs()
        ctx.set_write_protection(client_w)
        verify = keys12.finished_data(suite, master, True, ctx.transcript.digest())
        ctx.client_verify_data = verify
        ctx.send(Finished(verify))
        return ExpectTicketOrCCS(server_w, self.ticket_expected, resume=None)


class ExpectTicketOrCCS(State):
    def __init__(
        self,
        server_w: RecordProtection,
        ticket_expected: bool,
        resume: tuple[ClientSession, RecordProtection] | None,
    ) -> None:
        self.server_w = server_w
        self.ticket_expected = ticket_expected
        self.resume = resume
        self.ticket: NewSessionTicket12 | None = None

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.NEW_SESSION_TICKET)
        if not self.ticket_expected or self.ticket is not None:
            raise UnexpectedMessage("NewSessionTicket without the session_ticket extension")
        self.ticket = decode_message(NewSessionTicket12, body)
        ctx.transcript.add(raw)
        return self

    def handle_ccs(self, ctx: ClientContext) -> State:
        if self.ticket_expected and self.ticket is None:
            raise UnexpectedMessage("the server promised a NewSessionTicket but sent none")
        ctx.set_read_protection(self.server_w)
        return ExpectFinished(self)


class ExpectFinished(State):
    after_ccs = True

    def __init__(self, prev: ExpectTicketOrCCS) -> None:
        self.prev = prev

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.FINISHED)
        check_finished12(ctx, body, raw, from_client=False)
        suite = ctx.suite
        assert suite is not None
        resume = self.prev.resume
        if resume is not None:
            client_w = resume[1]
            ctx.send_ccs()
            ctx.set_write_protection(client_w)
            verify = keys12.finished_data(suite, ctx.master_secret, True, ctx.transcript.digest())
            ctx.client_verify_data = verify
            ctx.send(Finished(verify))
        ctx.complete()
        _remember_session(ctx, self.prev.ticket, resume[0] if resume else None)
        return Traffic12()


def _remember_session(
    ctx: ClientContext, nst: NewSessionTicket12 | None, resumed: ClientSession | None
) -> None:
    now = ctx.now()
    if resumed is not None:
        if nst is None or not nst.ticket:
            return  # nothing new: keep the session we have
        session = resumed.with_ticket(nst.ticket, _lifetime(nst), now)
    else:
        ticket = nst.ticket if nst is not None else b""
        if not ctx.session_id and not ticket:
            return  # the server offers no way to resume
        assert ctx.suite is not None
        state = ServerSession(
            version=ProtocolVersion.TLS1_2,
            cipher_suite=ctx.suite.code,
            secret=ctx.master_secret,
            extended_master_secret=ctx.ems,
            created=now,
            lifetime=_lifetime(nst) if ticket else DEFAULT_CLIENT_SESSION_LIFETIME,
            server_name=ctx.server_name,
            alpn=ctx.alpn,
            peer_chain=ctx.peer_chain_der,
        )
        session = ClientSession(state, ctx.session_id, ticket)
    ctx.new_session(session)
    hint = nst.lifetime_hint if nst is not None and nst.ticket else None
    ctx.events.append(SessionTicketReceived(session, hint))


def _lifetime(nst: NewSessionTicket12 | None) -> int:
    if nst is None or nst.lifetime_hint == 0:
        return DEFAULT_CLIENT_SESSION_LIFETIME
    return min(nst.lifetime_hint, MAX_TICKET_LIFETIME)

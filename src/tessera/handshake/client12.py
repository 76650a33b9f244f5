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

from dataclasses import dataclass, field, replace

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..crypto import signatures
from ..crypto.key_exchange import KeyShare
from ..crypto.prf import Prf
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
from ..frozen import quick_init
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
from ..session.model import ClientSession, ServerSession
from ..session.resumption import Mechanism
from . import keys12, renegotiation
from .context import ClientContext, ClientState, require, verify_finished
from .negotiated import Negotiated12
from .port import Direction, Epoch, Keys12
from .traffic12 import ClientTraffic12

# How long a client keeps a TLS 1.2 session when the server gives no ticket lifetime hint.
DEFAULT_CLIENT_SESSION_LIFETIME = 300
MAX_TICKET_LIFETIME = 7 * 24 * 3600


class _Client12(ClientState):
    """A TLS 1.2 client state: a HelloRequest now is ignored (RFC 5246 §7.4.1.1)."""

    __slots__ = ()
    ignores_hello_request = True


@quick_init
@dataclass(frozen=True, slots=True)
class Hello12:
    """The ServerHello read: what the rest of the handshake is checked against."""

    n: Negotiated12
    ticket_expected: bool
    started: float | None


def handle_server_hello(
    ctx: ClientContext,
    ch: ClientHello,
    sh: ServerHello,
    offered: ClientSession | None,
    started: float | None,
) -> ClientState:
    suite = BY_CODE.get(sh.cipher_suite)
    if suite is None or suite.is_tls13 or suite.code not in ch.cipher_suites:
        raise IllegalParameter(
            f"the server chose cipher suite 0x{sh.cipher_suite:04x}, not offered"
        )
    if sh.compression_method != 0:
        raise IllegalParameter("the server chose a compression method other than null")
    ems, etm, secure, alpn = _check_server_extensions(ctx, ch, sh, suite)
    ticket_expected = sh.find(X.SessionTicketExt) is not None
    ctx.events.append(
        ServerHelloReceived(ProtocolVersion.TLS1_2, suite.code, ch.session_id, sh.session_id,
                            tuple(X.ext_code(e) for e in sh.extensions))
    )  # fmt: skip
    port = ctx.port
    port.expect_record_version(ProtocolVersion.TLS1_2)
    if ctx.carry is None:  # a renegotiation keeps the current keys until its CCS
        port.plaintext(ProtocolVersion.TLS1_2)
    n = Negotiated12(suite, ch.random, sh.random, sh.session_id, ems, etm, secure,
                     ctx.server_name, alpn)  # fmt: skip
    ctx.transcript.set_hash(suite.prf_hash)
    if (
        offered is not None
        and offered.version == ProtocolVersion.TLS1_2
        and sh.session_id
        and sh.session_id == ch.session_id
    ):
        return _resumed(ctx, Hello12(n, ticket_expected, started), offered)
    return ExpectCertificate(Hello12(n, ticket_expected, started))


def _check_server_extensions(
    ctx: ClientContext, ch: ClientHello, sh: ServerHello, suite: CipherSuite
) -> tuple[bool, bool, bool, bytes | None]:
    """Only extensions we offered; renegotiation_info, EMS, ETM and ALPN as negotiated:
    (ems, etm, secure renegotiation, alpn)."""
    config = ctx.config
    offered_types = {X.ext_code(e) for e in ch.extensions}
    for ext in sh.extensions:
        if X.ext_code(ext) not in offered_types:
            raise UnsupportedExtension(
                f"the server sent extension {X.ext_code(ext)} we did not offer"
            )
    ems = sh.find(X.ExtendedMasterSecret) is not None
    secure = renegotiation.check_server_hello(ctx, sh, ems)
    if config.require_extended_master_secret and not ems:
        raise HandshakeFailure("the server does not support the extended master secret (RFC 7627)")
    etm = sh.find(X.EncryptThenMac) is not None and not suite.is_aead
    alpn = sh.find(X.ALPN)
    if alpn is None:
        return ems, etm, secure, None
    if len(alpn.protocols) != 1 or alpn.protocols[0] not in config.alpn_protocols:
        raise IllegalParameter("the server selected an ALPN protocol we did not offer")
    return ems, etm, secure, alpn.protocols[0]


def _resumed(ctx: ClientContext, hello: Hello12, offered: ClientSession) -> ClientState:
    """The server echoed our session id: an abbreviated handshake."""
    state = offered.state
    n = hello.n
    if state.cipher_suite != n.suite.code:
        raise IllegalParameter("the server resumed our session with a different cipher suite")
    if state.extended_master_secret != n.ems:
        raise HandshakeFailure(
            "the server resumed a session with a different extended master secret state "
            "(RFC 7627 §5.3)"
        )
    by = Mechanism.TICKET if offered.ticket else Mechanism.SESSION_ID
    chain = tuple(parse_chain(state.peer_chain)) if state.peer_chain else ()
    n = replace(n, resumed_by=by, peer_chain=chain, peer_chain_der=state.peer_chain)
    prf = keys12.master_prf(n.suite, state.secret)
    client_keys, server_keys = keys12.key_block(
        n.suite, prf, n.client_random, n.server_random, n.etm
    )
    ctx.keylog("CLIENT_RANDOM", n.client_random, state.secret)
    finish = Finish12(replace(hello, n=n), state.secret, prf, client_keys, server_keys, offered)
    return ExpectTicketOrCCS(finish)


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


class ExpectCertificate(_Client12):
    __slots__ = ("hello",)

    def __init__(self, hello: Hello12) -> None:
        self.hello = hello

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> ClientState:
        require(self, msg_type, HandshakeType.CERTIFICATE)
        msg = decode_message(Certificate12, body)
        if not msg.chain:
            raise DecodeError("the server sent an empty certificate chain")
        chain = parse_chain(msg.chain)
        verify_peer(ctx, chain)
        hello = self.hello
        _check_key_type(hello.n.suite, chain[0])
        n = replace(hello.n, peer_chain=tuple(chain), peer_chain_der=msg.chain)
        ctx.transcript.add(raw)
        if n.suite.kx is KeyExchange.ECDHE:
            return ExpectServerKeyExchange(replace(hello, n=n))
        return ExpectCertificateRequestOrDone(replace(hello, n=n), None)


def verify_peer(ctx: ClientContext, chain: list[x509.Certificate]) -> None:
    """Validate the server's chain (and its name, unless hostname checking is off)."""
    config = ctx.config
    if not config.verify:
        return
    if config.check_hostname and ctx.server_name is None:
        raise ConfigError(
            "certificate validation needs a server name to check; pass one or turn checking off"
        )
    verify_server_chain(
        chain,
        ctx.server_name if config.check_hostname else None,
        config.trust_store(),
        utc_clock(config.clock),
        profile=config.verify_profile,
        min_rsa_bits=config.min_rsa_bits,
        source=trust_source(config.cafile),
    )


class ExpectServerKeyExchange(_Client12):
    __slots__ = ("hello",)

    def __init__(self, hello: Hello12) -> None:
        self.hello = hello

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> ClientState:
        require(self, msg_type, HandshakeType.SERVER_KEY_EXCHANGE)
        ske = decode_message(ServerKeyExchangeECDHE, body)
        config = ctx.config
        if ske.group not in config.groups:
            raise IllegalParameter(f"the server chose group {ske.group}, which we did not offer")
        if ske.scheme not in config.signature_schemes:
            raise IllegalParameter(f"the server signed with scheme 0x{ske.scheme:04x}, not offered")
        n = self.hello.n
        signatures.verify(
            leaf_public_key(n.peer_chain[0]),
            ske.scheme,
            n.client_random + n.server_random + ske.params,
            ske.signature,
            tls13=False,
        )
        ctx.transcript.add(raw)
        n = replace(n, group=ske.group, signature_scheme=ske.scheme)
        return ExpectCertificateRequestOrDone(replace(self.hello, n=n), ske)


class ExpectCertificateRequestOrDone(_Client12):
    __slots__ = ("hello", "request", "ske")

    def __init__(self, hello: Hello12, ske: ServerKeyExchangeECDHE | None) -> None:
        self.hello = hello
        self.ske = ske
        self.request: CertificateRequest12 | None = None

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> ClientState:
        if msg_type == HandshakeType.CERTIFICATE_REQUEST and self.request is None:
            self.request = decode_message(CertificateRequest12, body)
            ctx.transcript.add(raw)
            return self
        require(self, msg_type, HandshakeType.SERVER_HELLO_DONE)
        decode_message(ServerHelloDone, body)
        ctx.transcript.add(raw)
        return self._client_flight(ctx)

    def _client_flight(self, ctx: ClientContext) -> ClientState:
        config = ctx.config
        n = self.hello.n
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
            key = leaf_public_key(n.peer_chain[0])
            assert isinstance(key, rsa.RSAPublicKey)
            ctx.send(ClientKeyExchangeRSA(key.encrypt(premaster, padding.PKCS1v15())))
        master = keys12.compute_master_secret(
            n.suite, premaster, n.client_random, n.server_random,
            ctx.transcript.digest() if n.ems else None,
        )  # fmt: skip
        if signing is not None:
            cert, scheme = signing
            sig = signatures.sign(cert.key, scheme, ctx.transcript.messages())
            ctx.send(CertificateVerify(scheme, sig))
        ctx.keylog("CLIENT_RANDOM", n.client_random, master)
        prf = keys12.master_prf(n.suite, master)
        client_keys, server_keys = keys12.key_block(
            n.suite, prf, n.client_random, n.server_random, n.etm
        )
        port = ctx.port
        port.send_ccs()
        port.install_keys(Direction.WRITE, Epoch.APPLICATION, n.suite, client_keys)
        verify = keys12.finished_data(prf, True, ctx.transcript.digest())
        ctx.send(Finished(verify))
        return ExpectTicketOrCCS(
            Finish12(self.hello, master, prf, client_keys, server_keys, None, verify)
        )


@quick_init
@dataclass(frozen=True, slots=True)
class Finish12:
    hello: Hello12
    master: bytes = field(repr=False)
    prf: Prf  # under the master secret
    client_keys: Keys12
    server_keys: Keys12
    resumed: ClientSession | None = field(repr=False)  # the session the server resumed
    client_verify: bytes = field(default=b"", repr=False)  # full handshake: ours is out


class ExpectTicketOrCCS(_Client12):
    __slots__ = ("finish", "ticket")

    def __init__(self, finish: Finish12) -> None:
        self.finish = finish
        self.ticket: NewSessionTicket12 | None = None

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> ClientState:
        require(self, msg_type, HandshakeType.NEW_SESSION_TICKET)
        if not self.finish.hello.ticket_expected or self.ticket is not None:
            raise UnexpectedMessage("NewSessionTicket without the session_ticket extension")
        self.ticket = decode_message(NewSessionTicket12, body)
        ctx.transcript.add(raw)
        return self

    def handle_ccs(self, ctx: ClientContext) -> ClientState:
        f = self.finish
        if f.hello.ticket_expected and self.ticket is None:
            raise UnexpectedMessage("the server promised a NewSessionTicket but sent none")
        ctx.port.install_keys(Direction.READ, Epoch.APPLICATION, f.hello.n.suite, f.server_keys)
        return ExpectFinished(f, self.ticket)


class ExpectFinished(_Client12):
    __slots__ = ("finish", "ticket")
    after_ccs = True

    def __init__(self, finish: Finish12, ticket: NewSessionTicket12 | None) -> None:
        self.finish = finish
        self.ticket = ticket

    def handle(self, ctx: ClientContext, msg_type: int, body: bytes, raw: bytes) -> ClientState:
        require(self, msg_type, HandshakeType.FINISHED)
        f = self.finish
        n = f.hello.n
        expected = keys12.finished_data(f.prf, False, ctx.transcript.digest())
        verify_finished(decode_message(Finished, body).verify_data, expected)
        ctx.transcript.add(raw)
        client_verify = f.client_verify
        if f.resumed is not None:
            port = ctx.port
            port.send_ccs()
            port.install_keys(Direction.WRITE, Epoch.APPLICATION, n.suite, f.client_keys)
            client_verify = keys12.finished_data(f.prf, True, ctx.transcript.digest())
            ctx.send(Finished(client_verify))
        ctx.complete(n, f.hello.started)
        _remember_session(ctx, f, self.ticket)
        return ClientTraffic12(n, f.master, client_verify, expected)


def _remember_session(ctx: ClientContext, f: Finish12, nst: NewSessionTicket12 | None) -> None:
    now = ctx.now()
    n = f.hello.n
    resumed = f.resumed
    if resumed is not None:
        if nst is None or not nst.ticket:
            return  # nothing new: keep the session we have
        session = resumed.with_ticket(nst.ticket, _lifetime(nst), now)
    else:
        ticket = nst.ticket if nst is not None else b""
        if not n.session_id and not ticket:
            return  # the server offers no way to resume
        state = ServerSession(
            version=ProtocolVersion.TLS1_2,
            cipher_suite=n.suite.code,
            secret=f.master,
            extended_master_secret=n.ems,
            created=now,
            lifetime=_lifetime(nst) if ticket else DEFAULT_CLIENT_SESSION_LIFETIME,
            server_name=n.server_name,
            alpn=n.alpn,
            peer_chain=n.peer_chain_der,
        )
        session = ClientSession(state, n.session_id, ticket)
    ctx.new_session(session)
    hint = nst.lifetime_hint if nst is not None and nst.ticket else None
    ctx.events.append(SessionTicketReceived(session, hint))


def _lifetime(nst: NewSessionTicket12 | None) -> int:
    if nst is None or nst.lifetime_hint == 0:
        return DEFAULT_CLIENT_SESSION_LIFETIME
    return min(nst.lifetime_hint, MAX_TICKET_LIFETIME)

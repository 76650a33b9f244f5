"""TLS 1.2 server handshake (RFC 5246 §7.3).

Full handshake::

    ClientHello          -->
                              ServerHello
                              Certificate
                              ServerKeyExchange      (ECDHE suites)
                              CertificateRequest     (client authentication)
                         <--  ServerHelloDone
    Certificate*
    ClientKeyExchange
    CertificateVerify*
    [ChangeCipherSpec]
    Finished             -->
                              NewSessionTicket       (client offered session_ticket)
                              [ChangeCipherSpec]
                         <--  Finished

Abbreviated handshake (a session id from the cache, or an RFC 5077 ticket)::

    ClientHello          -->
                              ServerHello
                              NewSessionTicket       (ticket under an old key: re-issued)
                              [ChangeCipherSpec]
                         <--  Finished
    [ChangeCipherSpec]
    Finished             -->

The session id a full handshake hands out is stored (an answered ``put``) before our Finished
lets the client resume it; a store that fails is counted, and the connection is not resumable
by that id.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..certs import CertifiedKey
from ..crypto import signatures
from ..crypto.key_exchange import KeyShare
from ..crypto.prf import Prf
from ..crypto.suites import BY_CODE, KeyExchange
from ..crypto.x509 import leaf_public_key, parse_chain
from ..enums import CertificateType, ClientAuth, HandshakeType, ProtocolVersion
from ..errors import HandshakeFailure, IllegalParameter
from ..frozen import quick_init
from ..messages import (
    Certificate12,
    CertificateRequest12,
    CertificateVerify,
    ClientKeyExchangeECDHE,
    ClientKeyExchangeRSA,
    Finished,
    NewSessionTicket12,
    ServerHelloDone,
    ServerKeyExchangeECDHE,
    decode_message,
    extensions_block,
    finished_bytes,
    server_hello_bytes,
)
from ..messages import extensions as X
from ..messages.hello import DOWNGRADE_TLS12
from ..observe.facts import NotIssued, SessionCached, TicketsIssued
from ..session.model import ServerSession
from ..session.resumption import (
    HelloSummary,
    LookupAnswer,
    Mechanism,
    ResumptionDecision,
    resolve12,
    session_id_key,
)
from ..session.resumption import (
    NotIssued as Why,
)
from ..session.resumption.operations import StoreLookup
from . import keys12, renegotiation
from .context import ServerContext, ServerState, require, verify_finished
from .lookup import ask, drive
from .negotiated import Negotiated12
from .negotiation import select_group, select_suite_12, verified_client_chain
from .port import Direction, Epoch, Keys12
from .traffic12 import ServerTraffic12

# Sessions stay in the store this long past their lifetime, so that a late resumption attempt is
# reported as "expired" rather than "unknown"; they are never resumed once expired.
EXPIRED_GRACE = 60.0


def start(
    ctx: ServerContext, hello: HelloSummary, alpn: bytes | None, started: float
) -> ServerState:
    """Answer a ClientHello for which TLS 1.2 was negotiated."""
    secure = renegotiation.check_client_hello(ctx, hello)
    if 0 not in hello.hello.compression_methods:
        raise IllegalParameter("the client does not offer null compression")
    carry = ctx.carry
    refuse = carry is not None and not carry.allow_resumption
    outcome = resolve12(ctx.config, hello, ctx.now(), client_auth=ctx.client_auth, refuse=refuse)
    return drive(ctx, outcome, Answer12(hello, alpn, started, secure))


@quick_init
@dataclass(frozen=True, slots=True)
class Answer12:
    """What the ServerHello will say, once resumption is decided."""

    hello: HelloSummary
    alpn: bytes | None
    started: float
    secure_renegotiation: bool

    def decided(self, ctx: ServerContext, d: ResumptionDecision) -> ServerState:
        if d.abort is not None:
            raise HandshakeFailure(d.abort)
        if d.session is not None and d.resumed_by is not None:
            return _abbreviated(ctx, self, d, d.session, d.resumed_by)
        return _full(ctx, self, d)

    def etm_offered(self, ctx: ServerContext) -> bool:
        return ctx.config.encrypt_then_mac and self.hello.etm


@quick_init
@dataclass(frozen=True, slots=True)
class Finish12:
    """What the end of the handshake needs: the keys, and what to tell the client."""

    n: Negotiated12
    master: bytes = field(repr=False)
    prf: Prf  # under the master secret
    client_keys: Keys12
    server_keys: Keys12 | None  # None: resumed (our Finished is out already)
    started: float
    decision: ResumptionDecision
    server_verify: bytes = field(default=b"", repr=False)


def _abbreviated(ctx: ServerContext, a: Answer12, d: ResumptionDecision,
                 session: ServerSession, by: Mechanism) -> ServerState:  # fmt: skip
    suite = BY_CODE[session.cipher_suite]
    hello = a.hello
    chain = tuple(parse_chain(session.peer_chain)) if session.peer_chain else ()
    n = Negotiated12(
        suite, hello.hello.random, _server_random(ctx), hello.session_id,
        session.extended_master_secret, a.etm_offered(ctx) and not suite.is_aead,
        a.secure_renegotiation, hello.server_name, a.alpn, by,
        peer_chain=chain, peer_chain_der=session.peer_chain,
    )  # fmt: skip
    if by is Mechanism.SESSION_ID:
        ctx.cached_session_id = hello.session_id
    ctx.transcript.set_hash(suite.prf_hash)
    _send_server_hello(ctx, n, d.tickets > 0)
    if d.tickets:
        _send_ticket(ctx, session)
    secret = session.secret
    prf = keys12.master_prf(suite, secret)
    client_keys, server_keys = keys12.key_block(suite, prf, n.client_random, n.server_random, n.etm)
    ctx.keylog("CLIENT_RANDOM", n.client_random, secret)
    port = ctx.port
    port.send_ccs()
    port.install_keys(Direction.WRITE, Epoch.APPLICATION, suite, server_keys)
    verify = keys12.finished_data(prf, False, ctx.transcript.digest())
    ctx.send_encoded(finished_bytes(verify))
    return ExpectChangeCipherSpec(Finish12(n, secret, prf, client_keys, None, a.started, d, verify))


# -- full handshake -------------------------------------------------------------------------
@quick_init
@dataclass(frozen=True, slots=True)
class Hello12:
    """After our first flight of a full handshake: what the client's flight is checked against."""

    n: Negotiated12
    cert: CertifiedKey
    share: KeyShare | None = field(repr=False)
    client_version: int
    started: float
    decision: ResumptionDecision


def _full(ctx: ServerContext, a: Answer12, d: ResumptionDecision) -> ServerState:
    config = ctx.config
    hello = a.hello
    ch = hello.hello
    pf = ch.find(X.ECPointFormats)
    group = select_group(config, ch) if pf is None or 0 in pf.formats else None
    certs = config.certificates_for(hello.server_name)
    suite, cert, scheme = select_suite_12(config, ch, certs, group)
    ecdhe = suite.kx is KeyExchange.ECDHE
    n = Negotiated12(
        suite, ch.random, _server_random(ctx), ctx.rng(32) if d.session_id_cached else b"",
        hello.ems and config.extended_master_secret, a.etm_offered(ctx) and not suite.is_aead,
        a.secure_renegotiation, hello.server_name, a.alpn,
        group=group if ecdhe else None, signature_scheme=scheme,
    )  # fmt: skip
    client_auth = ctx.client_auth
    if client_auth is not ClientAuth.NONE:
        ctx.transcript.keep_messages()
    ctx.transcript.set_hash(suite.prf_hash)
    _send_server_hello(ctx, n, d.tickets > 0, ecdhe_formats=pf is not None)
    ctx.send_encoded(cert.certificate12)
    share: KeyShare | None = None
    if ecdhe:
        assert group is not None and scheme is not None
        share = KeyShare(group)
        params = ServerKeyExchangeECDHE.encode_params(group, share.public)
        signature = signatures.sign(cert.key, scheme, n.client_random + n.server_random + params)
        ctx.send(ServerKeyExchangeECDHE(group, share.public, scheme, signature))
    sent = Hello12(n, cert, share, ch.legacy_version, a.started, d)
    if client_auth is not ClientAuth.NONE:
        ctx.send(
            CertificateRequest12(
                (CertificateType.rsa_sign, CertificateType.ecdsa_sign),
                config.signature_schemes,
                config.client_ca_names(),
            )
        )
        ctx.send(ServerHelloDone())
        return ExpectClientCertificate(sent)
    ctx.send(ServerHelloDone())
    return ExpectClientKeyExchange(sent)


def _server_random(ctx: ServerContext) -> bytes:
    random = ctx.rng(32)
    if ctx.config.max_version >= ProtocolVersion.TLS1_3 and ctx.carry is None:
        # RFC 8446 §4.1.3: tell a TLS 1.3 client that we chose TLS 1.2 deliberately (not in a
        # renegotiation, which keeps TLS 1.2 whatever the versions).
        random = random[:24] + DOWNGRADE_TLS12
    return random


def _send_server_hello(
    ctx: ServerContext, n: Negotiated12, will_send_ticket: bool, ecdhe_formats: bool = False
) -> None:
    ecdhe = ecdhe_formats and n.suite.kx is KeyExchange.ECDHE
    sni_ack = n.server_name is not None and n.resumed_by is None
    if ctx.carry is None:  # the extensions repeat from connection to connection: prebuilt
        exts = _extensions(n.secure_renegotiation, n.ems, n.etm, will_send_ticket, ecdhe,
                           n.alpn, sni_ack)  # fmt: skip
    else:  # a renegotiation: renegotiation_info carries this connection's verify_data
        info = X.RenegotiationInfo(renegotiation.server_hello_info(ctx))
        exts = extensions_block(
            _extension_list(info, n.ems, n.etm, will_send_ticket, ecdhe, n.alpn, sni_ack)
        )
    ctx.send_encoded(server_hello_bytes(n.server_random, n.session_id, n.suite.code, exts))


@lru_cache(maxsize=256)
def _extensions(secure_renegotiation: bool, ems: bool, etm: bool, ticket: bool,
                ecdhe_formats: bool, alpn: bytes | None, sni_ack: bool) -> bytes:  # fmt: skip
    """The encoded extensions of an initial handshake's ServerHello (ALPN values come from the
    configuration, so the cache stays small)."""
    info = X.RenegotiationInfo(b"") if secure_renegotiation else None
    return extensions_block(_extension_list(info, ems, etm, ticket, ecdhe_formats, alpn, sni_ack))


def _extension_list(info: X.RenegotiationInfo | None, ems: bool, etm: bool, ticket: bool,
                    ecdhe_formats: bool, alpn: bytes | None, sni_ack: bool
                    ) -> tuple[X.Extension, ...]:  # fmt: skip
    exts: list[X.Extension] = []
    if info is not None:
        exts.append(info)
    if ems:
        exts.append(X.ExtendedMasterSecret())
    if etm:
        exts.append(X.EncryptThenMac())
    if ticket:
        exts.append(X.SessionTicketExt(b""))
    if ecdhe_formats:
        exts.append(X.ECPointFormats((0,)))
    if alpn is not None:
        exts.append(X.ALPN((alpn,)))
    if sni_ack:
        exts.append(X.ServerNameAck())
    return tuple(exts)


def _send_ticket(ctx: ServerContext, session: ServerSession) -> None:
    sealer = ctx.config.sealer
    assert sealer is not None
    ticket = sealer.seal(session.to_bytes(), ctx.rng(16))
    # With no usable key the promised NewSessionTicket carries an empty ticket (RFC 5077 §3.3).
    hint = session.remaining(ctx.now()) if ticket else 0
    ctx.send(NewSessionTicket12(hint, ticket or b""))
    if ticket:
        ctx.observe(TicketsIssued(1, ProtocolVersion.TLS1_2))
    else:
        ctx.observe(NotIssued("ticket", Why.NO_TICKET_KEY))


def _rsa_premaster(
    key: rsa.RSAPrivateKey, encrypted: bytes, client_version: int, random46: bytes
) -> bytes:
    """RFC 5246 §7.4.7.1: a bad padding, length or version yields a random premaster secret,
    so the failure shows only as a Finished mismatch, never as a distinct error."""
    version = client_version.to_bytes(2, "big")
    try:
        pms = key.decrypt(encrypted, padding.PKCS1v15())
    except ValueError:
        return version + random46
    if len(pms) != 48:
        return version + random46
    return version + pms[2:]


def _new_session(ctx: ServerContext, f: Finish12, lifetime: int) -> ServerSession:
    n = f.n
    return ServerSession(
        version=ProtocolVersion.TLS1_2,
        cipher_suite=n.suite.code,
        secret=f.master,
        extended_master_secret=n.ems,
        created=ctx.now(),
        lifetime=lifetime,
        server_name=n.server_name,
        alpn=n.alpn,
        peer_chain=n.peer_chain_der,
    )


class ExpectClientCertificate(ServerState):
    __slots__ = ("sent",)

    def __init__(self, sent: Hello12) -> None:
        self.sent = sent

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> ServerState:
        require(self, msg_type, HandshakeType.CERTIFICATE)
        msg = decode_message(Certificate12, body)
        ctx.transcript.add(raw)
        if not msg.chain:
            if ctx.client_auth is ClientAuth.REQUIRED:
                raise HandshakeFailure("the client sent no certificate, and one is required")
            return ExpectClientKeyExchange(self.sent)
        chain = verified_client_chain(ctx.config, msg.chain)
        n = replace(self.sent.n, peer_chain=chain, peer_chain_der=msg.chain)
        return ExpectClientKeyExchange(replace(self.sent, n=n))


class ExpectClientKeyExchange(ServerState):
    __slots__ = ("sent",)

    def __init__(self, sent: Hello12) -> None:
        self.sent = sent

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> ServerState:
        require(self, msg_type, HandshakeType.CLIENT_KEY_EXCHANGE)
        sent = self.sent
        n = sent.n
        if sent.share is not None:
            premaster = sent.share.exchange(decode_message(ClientKeyExchangeECDHE, body).public)
        else:
            key = sent.cert.key
            assert isinstance(key, rsa.RSAPrivateKey)
            encrypted = decode_message(ClientKeyExchangeRSA, body).encrypted_premaster
            premaster = _rsa_premaster(key, encrypted, sent.client_version, ctx.rng(46))
        ctx.transcript.add(raw)
        master = keys12.compute_master_secret(
            n.suite, premaster, n.client_random, n.server_random,
            ctx.transcript.digest() if n.ems else None,
        )  # fmt: skip
        ctx.keylog("CLIENT_RANDOM", n.client_random, master)
        prf = keys12.master_prf(n.suite, master)
        client_keys, server_keys = keys12.key_block(
            n.suite, prf, n.client_random, n.server_random, n.etm
        )
        finish = Finish12(n, master, prf, client_keys, server_keys, sent.started, sent.decision)
        if n.peer_chain:
            return ExpectCertificateVerify(finish)
        return ExpectChangeCipherSpec(finish)


class ExpectCertificateVerify(ServerState):
    __slots__ = ("finish",)

    def __init__(self, finish: Finish12) -> None:
        self.finish = finish

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> ServerState:
        require(self, msg_type, HandshakeType.CERTIFICATE_VERIFY)
        msg = decode_message(CertificateVerify, body)
        if msg.scheme not in ctx.config.signature_schemes:
            raise IllegalParameter(f"CertificateVerify uses scheme 0x{msg.scheme:04x}, not offered")
        signatures.verify(
            leaf_public_key(self.finish.n.peer_chain[0]),
            msg.scheme,
            ctx.transcript.messages(),
            msg.signature,
            tls13=False,
        )
        ctx.transcript.add(raw)
        return ExpectChangeCipherSpec(self.finish)


class ExpectChangeCipherSpec(ServerState):
    __slots__ = ("finish",)

    def __init__(self, finish: Finish12) -> None:
        self.finish = finish

    def handle_ccs(self, ctx: ServerContext) -> ServerState:
        f = self.finish
        ctx.port.install_keys(Direction.READ, Epoch.APPLICATION, f.n.suite, f.client_keys)
        return ExpectFinished(f)


class ExpectFinished(ServerState):
    __slots__ = ("finish",)
    after_ccs = True

    def __init__(self, finish: Finish12) -> None:
        self.finish = finish

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> ServerState:
        require(self, msg_type, HandshakeType.FINISHED)
        f = self.finish
        expected = keys12.finished_data(f.prf, True, ctx.transcript.digest())
        verify_finished(decode_message(Finished, body).verify_data, expected)
        ctx.transcript.add(raw)
        if f.server_keys is None:  # resumed: our Finished went first
            ctx.complete(f.n, f.started, f.decision)
            return ServerTraffic12(f.n, f.master, expected, f.server_verify)
        if f.decision.session_id_cached and f.n.session_id:
            # Full handshake: store the session under its id before our Finished lets the
            # client resume it.
            config = ctx.config
            session = _new_session(ctx, f, int(config.session_timeout))
            put = StoreLookup(
                "put", session_id_key(f.n.session_id), session.to_bytes(),
                config.session_timeout + EXPIRED_GRACE,
            )  # fmt: skip
            return ask(ctx, (put,), SessionStored(f, expected))
        return _finish_full(ctx, f, expected, cached=False)


@quick_init
@dataclass(frozen=True, slots=True)
class SessionStored:
    """Waiting for the store to take the session under its id (before our Finished)."""

    finish: Finish12
    client_verify: bytes = field(repr=False)

    def resume(self, ctx: ServerContext, answers: tuple[LookupAnswer, ...]) -> ServerState:
        (stored,) = answers
        if stored is not True:
            ctx.observe(NotIssued("session id", Why.STORE_FAILED))
        return _finish_full(ctx, self.finish, self.client_verify, cached=stored is True)


def _finish_full(
    ctx: ServerContext, f: Finish12, client_verify: bytes, cached: bool
) -> ServerState:
    """Our last flight of a full handshake: a ticket, ChangeCipherSpec, Finished."""
    n = f.n
    if cached:
        ctx.cached_session_id = n.session_id
        ctx.observe(SessionCached())
    if f.decision.tickets:
        sealer = ctx.config.sealer
        assert sealer is not None
        lifetime = sealer.lifetime(ctx.config.ticket_lifetime, ctx.now())
        _send_ticket(ctx, _new_session(ctx, f, lifetime))
    port = ctx.port
    port.send_ccs()
    assert f.server_keys is not None
    port.install_keys(Direction.WRITE, Epoch.APPLICATION, n.suite, f.server_keys)
    verify = keys12.finished_data(f.prf, False, ctx.transcript.digest())
    ctx.send_encoded(finished_bytes(verify))
    ctx.complete(n, f.started, f.decision)
    return ServerTraffic12(n, f.master, client_verify, verify)

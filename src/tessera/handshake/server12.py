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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..certs import CertifiedKey
from ..config import ClientAuth
from ..crypto import signatures
from ..crypto.key_exchange import KeyShare
from ..crypto.suites import BY_CODE, CipherSuite, KeyExchange
from ..crypto.x509 import parse_chain
from ..enums import CertificateType, HandshakeType, ProtocolVersion
from ..errors import HandshakeFailure, IllegalParameter
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
from ..messages.hello import DOWNGRADE_TLS12
from ..record.protection import RecordProtection
from ..session import resumption
from ..session.model import ServerSession
from ..session.observer import SessionCached, TicketsIssued
from ..session.resumption import Mechanism, ResumptionDecision, StoreWrite, session_id_key
from . import keys12, renegotiation
from .context import ServerContext, State, check_finished12, require
from .lookup import drive
from .negotiation import select_group, select_suite_12
from .summary import HelloSummary
from .traffic import Traffic12

if TYPE_CHECKING:
    from ..messages.extensions import Extension

# Sessions stay in the store this long past their lifetime, so that a late resumption attempt is
# reported as "expired" rather than "unknown"; they are never resumed once expired.
EXPIRED_GRACE = 60.0


def start(ctx: ServerContext, hello: HelloSummary) -> State:
    """Answer a ClientHello for which TLS 1.2 was negotiated."""
    ch = hello.hello
    ctx.secure_renegotiation = renegotiation.check_client_hello(ctx, hello)
    if 0 not in ch.compression_methods:
        raise IllegalParameter("the client does not offer null compression")
    ctx.version = ProtocolVersion.TLS1_2
    reneg = ctx.renegotiation
    refuse = reneg is not None and not reneg.allow_resumption
    resolution = resumption.resolve12(
        ctx.config, hello, ctx.now(), client_auth=ctx.client_auth, refuse=refuse
    )
    return drive(ctx, resolution, lambda decision: _decided(ctx, hello, decision))


def _decided(ctx: ServerContext, hello: HelloSummary, decision: ResumptionDecision) -> State:
    config = ctx.config
    if decision.abort is not None:
        raise HandshakeFailure(decision.abort)
    etm_offered = config.encrypt_then_mac and hello.etm
    tickets_ok = config.sealer is not None and hello.ticket is not None
    if decision.session is not None and decision.resumed_by is not None:
        renew = decision.renew_ticket and tickets_ok and _can_seal(ctx)
        return _abbreviated(ctx, hello, decision.session, decision.resumed_by, renew, etm_offered)
    ctx.ems = hello.ems and config.extended_master_secret
    return _full(ctx, hello.hello, etm_offered, tickets_ok and _can_seal(ctx))


def _can_seal(ctx: ServerContext) -> bool:
    """Whether a ticket can be issued now: with no key encrypting (a fleet between keys, say)
    the server promises none, so a full handshake gets a session id instead."""
    sealer = ctx.config.sealer
    return sealer is not None and sealer.lifetime(1, ctx.now()) > 0


def _abbreviated(
    ctx: ServerContext,
    hello: HelloSummary,
    session: ServerSession,
    by: Mechanism,
    renew: bool,
    etm_offered: bool,
) -> State:
    suite = BY_CODE[session.cipher_suite]
    ctx.suite = suite
    ctx.session = session
    ctx.session_id = hello.session_id
    if by is Mechanism.SESSION_ID:
        ctx.cached_session_id = hello.session_id
    ctx.ems = session.extended_master_secret
    ctx.etm = etm_offered and not suite.is_aead
    ctx.master_secret = session.secret
    ctx.resumed_by = by.value
    if session.peer_chain:
        ctx.peer_chain_der = session.peer_chain
        ctx.peer_chain = tuple(parse_chain(session.peer_chain))
    ctx.transcript.set_hash(suite.prf_hash)
    _send_server_hello(ctx, hello.hello, suite, renew)
    if renew:
        _send_ticket(ctx, session)
    client_w, server_w = keys12.protections(
        suite, session.secret, ctx.client_random, ctx.server_random, ctx.etm
    )
    ctx.keylog("CLIENT_RANDOM", session.secret)
    ctx.send_ccs()
    ctx.set_write_protection(server_w)
    verify = keys12.finished_data(suite, session.secret, False, ctx.transcript.digest())
    ctx.server_verify_data = verify
    ctx.send(Finished(verify))
    return ExpectChangeCipherSpec(client_w, resumed=True)


# -- full handshake -------------------------------------------------------------------------
def _full(ctx: ServerContext, ch: ClientHello, etm_offered: bool, tickets_ok: bool) -> State:
    config = ctx.config
    pf = ch.find(X.ECPointFormats)
    group = select_group(config, ch) if pf is None or 0 in pf.formats else None
    certs = config.certificates_for(ctx.server_name)
    suite, cert, scheme = select_suite_12(config, ch, certs, group)
    ctx.suite = suite
    ctx.etm = etm_offered and not suite.is_aead
    ctx.signature_scheme = scheme
    if ctx.client_auth is not ClientAuth.NONE:
        ctx.transcript.keep_messages()
    ctx.transcript.set_hash(suite.prf_hash)
    if config.session_store is not None and not tickets_ok:
        # A client that takes a ticket resumes with it; like OpenSSL, give it no session id
        # and keep nothing in the cache for it (RFC 5077 §3.4).
        ctx.session_id = ctx.rng(32)
    _send_server_hello(ctx, ch, suite, tickets_ok, ecdhe_formats=pf is not None)
    ctx.send_encoded(cert.certificate12)
    share: KeyShare | None = None
    if suite.kx is KeyExchange.ECDHE:
        assert group is not None and scheme is not None
        ctx.group = group
        share = KeyShare(group)
        params = ServerKeyExchangeECDHE.encode_params(group, share.public)
        signature = signatures.sign(
            cert.key, scheme, ctx.client_random + ctx.server_random + params
        )
        ctx.send(ServerKeyExchangeECDHE(group, share.public, scheme, signature))
    if ctx.client_auth is not ClientAuth.NONE:
        ctx.send(
            CertificateRequest12(
                (CertificateType.rsa_sign, CertificateType.ecdsa_sign),
                config.signature_schemes,
                config.client_ca_names(),
            )
        )
        ctx.send(ServerHelloDone())
        return ExpectClientCertificate(suite, cert, share, ch.legacy_version, tickets_ok)
    ctx.send(ServerHelloDone())
    return ExpectClientKeyExchange(suite, cert, share, ch.legacy_version, tickets_ok, ())


def _send_server_hello(
    ctx: ServerContext,
    ch: ClientHello,
    suite: CipherSuite,
    will_send_ticket: bool,
    ecdhe_formats: bool = False,
) -> None:
    config = ctx.config
    random = ctx.rng(32)
    if config.max_version >= ProtocolVersion.TLS1_3 and ctx.renegotiation is None:
        # RFC 8446 §4.1.3: tell a TLS 1.3 client that we chose TLS 1.2 deliberately (not in a
        # renegotiation, which keeps TLS 1.2 whatever the versions).
        random = random[:24] + DOWNGRADE_TLS12
    ctx.server_random = random
    exts: list[Extension] = []
    if ctx.secure_renegotiation:
        exts.append(X.RenegotiationInfo(renegotiation.server_hello_info(ctx)))
    if ctx.ems:
        exts.append(X.ExtendedMasterSecret())
    if ctx.etm:
        exts.append(X.EncryptThenMac())
    if will_send_ticket:
        exts.append(X.SessionTicketExt(b""))
    if ecdhe_formats and suite.kx is KeyExchange.ECDHE:
        exts.append(X.ECPointFormats((0,)))
    if ctx.alpn is not None:
        exts.append(X.ALPN((ctx.alpn,)))
    if ctx.server_name is not None and ctx.resumed_by is None:
        exts.append(X.ServerNameAck())
    ctx.send(
        ServerHello(ProtocolVersion.TLS1_2, random, ctx.session_id, suite.code, 0, tuple(exts))
    )


def _send_ticket(ctx: ServerContext, session: ServerSession) -> None:
    sealer = ctx.config.sealer
    assert sealer is not None
    ticket = sealer.seal(session.to_bytes(), ctx.rng(16))
    # With no usable key the promised NewSessionTicket carries an empty ticket (RFC 5077 §3.3).
    hint = session.remaining(ctx.now()) if ticket else 0
    ctx.send(NewSessionTicket12(hint, ticket or b""))
    if ticket:
        ctx.observe(TicketsIssued(1, ProtocolVersion.TLS1_2))


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


def _cache_session(ctx: ServerContext) -> None:
    """Store the session under its id (before our Finished lets the client resume it)."""
    config = ctx.config
    session = _new_session(ctx, int(config.session_timeout))
    ttl = config.session_timeout + EXPIRED_GRACE
    ctx.store_write(StoreWrite("put", session_id_key(ctx.session_id), session.to_bytes(), ttl))
    ctx.cached_session_id = ctx.session_id
    ctx.session = session
    ctx.observe(SessionCached())


def _ticket_lifetime(ctx: ServerContext) -> int:
    sealer = ctx.config.sealer
    assert sealer is not None
    return sealer.lifetime(ctx.config.ticket_lifetime, ctx.now())


def _new_session(ctx: ServerContext, lifetime: int) -> ServerSession:
    assert ctx.suite is not None
    return ServerSession(
        version=ProtocolVersion.TLS1_2,
        cipher_suite=ctx.suite.code,
        secret=ctx.master_secret,
        extended_master_secret=ctx.ems,
        created=ctx.now(),
        lifetime=lifetime,
        server_name=ctx.server_name,
        alpn=ctx.alpn,
        peer_chain=ctx.peer_chain_der,
    )


class ExpectClientCertificate(State):
    def __init__(
        self,
        suite: CipherSuite,
        cert: CertifiedKey,
        share: KeyShare | None,
        client_version: int,
        tickets_ok: bool,
    ) -> None:
        self.args = (suite, cert, share, client_version, tickets_ok)

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.CERTIFICATE)
        msg = decode_message(Certificate12, body)
        ctx.transcript.add(raw)
        if not msg.chain:
            if ctx.client_auth is ClientAuth.REQUIRED:
                raise HandshakeFailure("the client sent no certificate, and one is required")
        else:
            ctx.peer_chain = ctx.verified_client_chain(msg.chain)
            ctx.peer_chain_der = msg.chain
        return ExpectClientKeyExchange(*self.args, msg.chain)


class ExpectClientKeyExchange(State):
    def __init__(
        self,
        suite: CipherSuite,
        cert: CertifiedKey,
        share: KeyShare | None,
        client_version: int,
        tickets_ok: bool,
        client_chain: tuple[bytes, ...],
    ) -> None:
        self.suite = suite
        self.cert = cert
        self.share = share
        self.client_version = client_version
        self.tickets_ok = tickets_ok
        self.client_chain = client_chain

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.CLIENT_KEY_EXCHANGE)
        suite = self.suite
        if self.share is not None:
            premaster = self.share.exchange(decode_message(ClientKeyExchangeECDHE, body).public)
        else:
            key = self.cert.key
            assert isinstance(key, rsa.RSAPrivateKey)
            encrypted = decode_message(ClientKeyExchangeRSA, body).encrypted_premaster
            premaster = _rsa_premaster(key, encrypted, self.client_version, ctx.rng(46))
        ctx.transcript.add(raw)
        master = keys12.compute_master_secret(
            suite,
            premaster,
            ctx.client_random,
            ctx.server_random,
            ctx.transcript.digest() if ctx.ems else None,
        )
        ctx.master_secret = master
        ctx.keylog("CLIENT_RANDOM", master)
        client_w, server_w = keys12.protections(
            suite, master, ctx.client_random, ctx.server_random, ctx.etm
        )
        nxt = ExpectChangeCipherSpec(
            client_w, resumed=False, server_w=server_w, tickets_ok=self.tickets_ok
        )
        if self.client_chain:
            return ExpectCertificateVerify(nxt)
        return nxt


class ExpectCertificateVerify(State):
    def __init__(self, nxt: ExpectChangeCipherSpec) -> None:
        self.nxt = nxt

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.CERTIFICATE_VERIFY)
        msg = decode_message(CertificateVerify, body)
        if msg.scheme not in ctx.config.signature_schemes:
            raise IllegalParameter(f"CertificateVerify uses scheme 0x{msg.scheme:04x}, not offered")
        signatures.verify(
            ctx.peer_chain[0].public_key(),  # type: ignore[arg-type]
            msg.scheme,
            ctx.transcript.messages(),
            msg.signature,
            tls13=False,
        )
        ctx.transcript.add(raw)
        return self.nxt


class ExpectChangeCipherSpec(State):
    def __init__(
        self,
        client_w: RecordProtection,
        resumed: bool,
        server_w: RecordProtection | None = None,
        tickets_ok: bool = False,
    ) -> None:
        self.client_w = client_w
        self.resumed = resumed
        self.server_w = server_w
        self.tickets_ok = tickets_ok

    def handle_ccs(self, ctx: ServerContext) -> State:
        ctx.set_read_protection(self.client_w)
        return ExpectFinished(self)


class ExpectFinished(State):
    after_ccs = True

    def __init__(self, prev: ExpectChangeCipherSpec) -> None:
        self.prev = prev

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.FINISHED)
        check_finished12(ctx, body, raw, from_client=True)
        suite = ctx.suite
        assert suite is not None
        config = ctx.config
        if self.prev.resumed:
            ctx.complete()
            return Traffic12()
        # Full handshake: remember the session, issue a ticket, then our Finished.
        if config.session_store is not None and ctx.session_id:
            _cache_session(ctx)
        if self.prev.tickets_ok:
            _send_ticket(ctx, _new_session(ctx, _ticket_lifetime(ctx)))
        ctx.send_ccs()
        assert self.prev.server_w is not None
        ctx.set_write_protection(self.prev.server_w)
        verify = keys12.finished_data(suite, ctx.master_secret, False, ctx.transcript.digest())
        ctx.server_verify_data = verify
        ctx.send(Finished(verify))
        ctx.complete()
        return Traffic12()

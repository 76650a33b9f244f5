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
from ..crypto.suites import BY_CODE, TLS_EMPTY_RENEGOTIATION_INFO_SCSV, CipherSuite, KeyExchange
from ..crypto.x509 import parse_chain, utc_clock, verify_client_chain
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
from ..session.model import ServerSession, SessionDecodeError
from ..session.sealer import Opened, TicketSealer
from ..session.stats import FallbackReason
from . import keys12
from .context import ServerContext, State, check_finished12, require
from .negotiation import select_group, select_suite_12
from .traffic import Traffic12

if TYPE_CHECKING:
    from ..messages.extensions import Extension

# Sessions stay in the store this long past their lifetime, so that a late resumption attempt is
# reported as "expired" rather than "unknown"; they are never resumed once expired.
EXPIRED_GRACE = 60.0


def start(ctx: ServerContext, ch: ClientHello) -> State:
    """Answer a ClientHello for which TLS 1.2 was negotiated."""
    config = ctx.config
    ri = ch.find(X.RenegotiationInfo)
    if ri is not None:
        if ri.renegotiated_connection:
            raise HandshakeFailure("renegotiation_info must be empty in an initial handshake")
        ctx.secure_renegotiation = True
    elif TLS_EMPTY_RENEGOTIATION_INFO_SCSV in ch.cipher_suites:
        ctx.secure_renegotiation = True
    if 0 not in ch.compression_methods:
        raise IllegalParameter("the client does not offer null compression")
    ctx.version = ProtocolVersion.TLS1_2
    ems_offered = ch.find(X.ExtendedMasterSecret) is not None
    etm_offered = config.encrypt_then_mac and ch.find(X.EncryptThenMac) is not None
    tickets_ok = config.ticket_keyring is not None and ch.find(X.SessionTicketExt) is not None

    resumed = _try_resume(ctx, ch, ems_offered)
    if resumed is not None:
        session, by, renew = resumed
        return _abbreviated(ctx, ch, session, by, renew and tickets_ok, etm_offered)
    ctx.ems = ems_offered and config.extended_master_secret
    return _full(ctx, ch, etm_offered, tickets_ok)


# -- resumption -----------------------------------------------------------------------------
def _try_resume(
    ctx: ServerContext, ch: ClientHello, ems_offered: bool
) -> tuple[ServerSession, str, bool] | None:
    """The session to resume, how it was found and whether to re-issue its ticket; or None
    (counted with its reason) for a full handshake."""
    config = ctx.config
    stats = config.statistics
    ticket_ext = ch.find(X.SessionTicketExt) if config.ticket_keyring is not None else None
    session: ServerSession | None = None
    renew = False
    if ticket_ext is not None and ticket_ext.ticket:
        by = "ticket"
        opened = TicketSealer(config.ticket_keyring).open(ticket_ext.ticket)  # type: ignore[arg-type]
        if not isinstance(opened, Opened):
            stats.incr("ticket_failures")
            stats.fallback(opened)
            return None
        try:
            session = ServerSession.from_bytes(opened.state)
        except SessionDecodeError:
            stats.incr("ticket_failures")
            stats.fallback(FallbackReason.TICKET_MALFORMED)
            return None
        renew = not opened.key_is_current
    elif ch.session_id and config.session_store is not None:
        by = "session_id"
        value = config.session_store.get(ch.session_id)
        if value is None:
            stats.incr("misses")
            stats.fallback(FallbackReason.UNKNOWN_SESSION_ID)
            return None
        try:
            session = ServerSession.from_bytes(value)
        except SessionDecodeError:
            stats.incr("misses")
            stats.fallback(FallbackReason.UNKNOWN_SESSION_ID)
            return None
    else:
        return None
    reason = _unusable(ctx, ch, session, ems_offered, by)
    if reason is not None:
        stats.fallback(reason)
        if reason in (FallbackReason.SESSION_EXPIRED, FallbackReason.TICKET_EXPIRED):
            stats.incr("timeouts")
            if by == "session_id" and config.session_store is not None:
                config.session_store.delete(ch.session_id)
        if reason is FallbackReason.EMS_MISMATCH and session.extended_master_secret:
            # RFC 7627 §5.3: the session used EMS but this ClientHello does not offer it.
            raise HandshakeFailure(
                "the client resumes an extended-master-secret session without offering "
                "extended_master_secret (RFC 7627 §5.3)"
            )
        return None
    return session, by, renew


def _unusable(
    ctx: ServerContext, ch: ClientHello, s: ServerSession, ems_offered: bool, by: str
) -> FallbackReason | None:
    config = ctx.config
    if s.expired(ctx.now()):
        return FallbackReason.TICKET_EXPIRED if by == "ticket" else FallbackReason.SESSION_EXPIRED
    if s.version != ProtocolVersion.TLS1_2:
        return FallbackReason.VERSION_MISMATCH
    suite = BY_CODE.get(s.cipher_suite)
    if suite is None or s.cipher_suite not in ch.cipher_suites or suite not in config.cipher_suites:
        return FallbackReason.CIPHER_MISMATCH
    if s.server_name != ctx.server_name:
        return FallbackReason.SNI_MISMATCH
    if s.extended_master_secret != (ems_offered and config.extended_master_secret):
        return FallbackReason.EMS_MISMATCH
    if config.client_auth is ClientAuth.REQUIRED and not s.peer_chain:
        return FallbackReason.CLIENT_CERT_MISMATCH
    return None


def _abbreviated(
    ctx: ServerContext,
    ch: ClientHello,
    session: ServerSession,
    by: str,
    renew: bool,
    etm_offered: bool,
) -> State:
    suite = BY_CODE[session.cipher_suite]
    ctx.suite = suite
    ctx.session = session
    ctx.session_id = ch.session_id
    ctx.ems = session.extended_master_secret
    ctx.etm = etm_offered and not suite.is_aead
    ctx.master_secret = session.secret
    ctx.resumed_by = by
    if session.peer_chain:
        ctx.peer_chain_der = session.peer_chain
        ctx.peer_chain = tuple(parse_chain(session.peer_chain))
    ctx.transcript.set_hash(suite.prf_hash)
    _send_server_hello(ctx, ch, suite, renew)
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
    if config.client_auth is not ClientAuth.NONE:
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
    if config.client_auth is not ClientAuth.NONE:
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
    if config.max_version >= ProtocolVersion.TLS1_3:
        # RFC 8446 §4.1.3: tell a TLS 1.3 client that we chose TLS 1.2 deliberately.
        random = random[:24] + DOWNGRADE_TLS12
    ctx.server_random = random
    exts: list[Extension] = []
    if ctx.secure_renegotiation:
        exts.append(X.RenegotiationInfo(b""))
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
    config = ctx.config
    assert config.ticket_keyring is not None
    ticket = TicketSealer(config.ticket_keyring).seal(session.to_bytes(), ctx.rng(16))
    # With no usable key the promised NewSessionTicket carries an empty ticket (RFC 5077 §3.3).
    hint = session.remaining(ctx.now()) if ticket else 0
    ctx.send(NewSessionTicket12(hint, ticket or b""))
    if ticket:
        config.statistics.incr("tickets_issued")


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
            if ctx.config.client_auth is ClientAuth.REQUIRED:
                raise HandshakeFailure("the client sent no certificate, and one is required")
        else:
            chain = parse_chain(msg.chain)
            verify_client_chain(chain, ctx.config.client_trust_store(), utc_clock(ctx.config.clock))
            ctx.peer_chain = tuple(chain)
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
    def __init__(self, prev: ExpectChangeCipherSpec) -> None:
        self.prev = prev

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.FINISHED)
        check_finished12(ctx, body, raw, from_client=True)
        suite = ctx.suite
        assert suite is not None
        config = ctx.config
        stats = config.statistics
        if self.prev.resumed:
            stats.incr("resumed")
            stats.incr("resumed_ticket" if ctx.resumed_by == "ticket" else "resumed_session_id")
            ctx.complete()
            return Traffic12()
        # Full handshake: remember the session, issue a ticket, then our Finished.
        stats.incr("full_handshakes")
        store = config.session_store
        if store is not None and ctx.session_id:
            session = _new_session(ctx, int(config.session_timeout))
            store.put(ctx.session_id, session.to_bytes(), config.session_timeout + EXPIRED_GRACE)
            stats.incr("sessions_cached")
            ctx.session = session
        if self.prev.tickets_ok:
            _send_ticket(ctx, _new_session(ctx, config.ticket_lifetime))
        ctx.send_ccs()
        assert self.prev.server_w is not None
        ctx.set_write_protection(self.prev.server_w)
        verify = keys12.finished_data(suite, ctx.master_secret, False, ctx.transcript.digest())
        ctx.server_verify_data = verify
        ctx.send(Finished(verify))
        ctx.complete()
        return Traffic12()

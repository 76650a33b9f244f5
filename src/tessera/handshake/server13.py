"""TLS 1.3 server handshake (RFC 8446 §2).

::

    ClientHello (+key_share, +pre_shared_key)  -->
                                               <--  HelloRetryRequest (no usable key share)
    ClientHello                                -->
    (early data, if accepted)
                                                    ServerHello (+key_share, +pre_shared_key)
                                                    {EncryptedExtensions}
                                                    {CertificateRequest}   (client auth)
                                                    {Certificate}          (not with a PSK)
                                                    {CertificateVerify}    (not with a PSK)
                                               <--  {Finished}
    {EndOfEarlyData} (if early data accepted)
    {Certificate, CertificateVerify} (client auth)
    {Finished}                                 -->
                                               <--  [NewSessionTicket] x num_tickets

The HelloRetryRequest is decided before any session store access, so a single-use ticket
survives it. Resumption (``session.resumption.resolve13``) then picks the first of the first few
offered PSK identities that opens, is unexpired, matches this connection and passes the
ticket-age check; its binder is verified here (a bad binder is fatal, RFC 8446 §4.2.11).
Anything else falls back to a full handshake, with its reason.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from ..certs import CertifiedKey
from ..config import ClientAuth, ServerConfig
from ..crypto import signatures
from ..crypto.key_exchange import KeyShare
from ..crypto.key_schedule import KeySchedule
from ..crypto.suites import CipherSuite
from ..crypto.x509 import parse_chain
from ..enums import HandshakeType, ProtocolVersion
from ..errors import (
    CertificateRequired,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    MissingExtension,
    UnexpectedMessage,
)
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
)
from ..messages import extensions as X
from ..messages.extensions import Extension
from ..messages.hello import HELLO_RETRY_REQUEST_RANDOM
from ..session import resumption
from ..session.model import ServerSession
from ..session.observer import TicketsIssued
from ..session.resumption import (
    BinderCheck,
    Psk13Context,
    ResumptionDecision,
    StoreWrite,
    stateful_ticket_key,
)
from .common13 import (
    CLIENT_CV_CONTEXT,
    MAX_TICKET_LIFETIME,
    SERVER_CV_CONTEXT,
    Traffic13,
    application_secrets,
    cv_content,
    handshake_secrets,
    protection,
    verify_cv,
)
from .context import ServerContext, State, require, verify_finished
from .lookup import drive
from .negotiation import check_legacy_version13, ordered_suites, select_group
from .summary import HelloSummary, summarize

# Records that fail to decrypt are skipped, up to this many bytes, when 0-RTT is refused.
MIN_EARLY_SKIP = 1 << 16


@dataclass(slots=True)
class _Retry:
    """What the HelloRetryRequest fixed, for checking the second ClientHello."""

    suite: CipherSuite
    group: int
    cookie: bytes = field(repr=False)
    prefix: bytes = field(repr=False)  # message_hash(ClientHello1) | HelloRetryRequest
    first_ch: ClientHello = field(repr=False)
    early_data_offered: bool  # the first ClientHello asked for 0-RTT


def start(ctx: ServerContext, hello: HelloSummary) -> State:
    return _client_hello(ctx, hello, None)


def _client_hello(ctx: ServerContext, hello: HelloSummary, retry: _Retry | None) -> State:
    """Validate the hello, decide the HelloRetryRequest (before any store access), then
    decide resumption and answer."""
    config = ctx.config
    ctx.version = ProtocolVersion.TLS1_3
    ctx.post_handshake_auth = hello.post_handshake_auth
    suite = _check_hello(ctx, hello, retry)
    share = _find_key_share(config, hello, retry)
    _, ke_only = resumption.psk_modes(config, hello)
    if share is None and not (ke_only and hello.psks is not None):
        return _retry_or_fail(ctx, hello, suite, retry)
    pc = Psk13Context(
        server_name=ctx.server_name,
        alpn=ctx.alpn,
        suite=suite,
        now=ctx.now(),
        retried=retry is not None,
        early_data_offered=hello.early_data or (retry is not None and retry.early_data_offered),
    )
    schedules: dict[int, KeySchedule] = {}
    check = _binder_check(hello, suite, retry, schedules)
    resolution = resumption.resolve13(config, hello, pc, check)
    return drive(ctx, resolution, lambda d: _decided(ctx, hello, retry, suite, share, d, schedules))


def _check_hello(ctx: ServerContext, hello: HelloSummary, retry: _Retry | None) -> CipherSuite:
    """The checks every TLS 1.3 ClientHello passes; returns the cipher suite."""
    ch = hello.hello
    if ch.compression_methods != (0,):
        raise IllegalParameter("a TLS 1.3 ClientHello must offer only null compression")
    if hello.psks is not None:
        if ch.extensions[-1] is not hello.psks:
            raise IllegalParameter("pre_shared_key must be the last ClientHello extension")
        if hello.psk_modes is None:
            raise MissingExtension("pre_shared_key without psk_key_exchange_modes")
    suites = ordered_suites(ctx.config, ch, ProtocolVersion.TLS1_3)
    if not suites:
        raise HandshakeFailure("no TLS 1.3 cipher suite in common with the client")
    suite = suites[0]
    if retry is not None:
        if retry.suite.code not in ch.cipher_suites:
            raise IllegalParameter("the second ClientHello dropped the cipher suite we chose")
        suite = retry.suite
        if hello.early_data:
            raise IllegalParameter("early_data in the ClientHello after a HelloRetryRequest")
        cookie = ch.find(X.Cookie)
        if cookie is None or not hmac.compare_digest(cookie.cookie, retry.cookie):
            raise IllegalParameter("the second ClientHello does not echo our cookie")
    if not ctx.transcript.hash_ready:
        ctx.transcript.set_hash(suite.prf_hash)
    ctx.suite = suite
    return suite


def _find_key_share(
    config: ServerConfig, hello: HelloSummary, retry: _Retry | None
) -> X.KeyShareEntry | None:
    """Our most preferred group among the client's key shares, if any."""
    ch = hello.hello
    groups = ch.find(X.SupportedGroups)
    offer = ch.find(X.KeyShareOffer)
    if groups is None or offer is None:
        return None
    by_group = {e.group: e for e in offer.entries}
    share = next((by_group[g] for g in config.groups if g in by_group and g in groups.groups), None)
    if (
        retry is not None
        and share is not None
        and (share.group != retry.group or len(offer.entries) != 1)
    ):
        raise IllegalParameter("the second ClientHello lacks the key share we asked for")
    return share


def _retry_or_fail(
    ctx: ServerContext, hello: HelloSummary, suite: CipherSuite, retry: _Retry | None
) -> State:
    """No usable key share: ask for one (HelloRetryRequest), or fail if we already did."""
    ch = hello.hello
    if ch.find(X.SupportedGroups) is None or ch.find(X.KeyShareOffer) is None:
        raise MissingExtension("a TLS 1.3 ClientHello needs supported_groups and key_share")
    if retry is not None:
        raise IllegalParameter("the second ClientHello lacks the key share we asked for")
    group = select_group(ctx.config, ch)
    if group is None:
        raise HandshakeFailure("no key exchange group in common with the client")
    return _send_retry(ctx, hello, suite, group)


def _binder_check(
    hello: HelloSummary, suite: CipherSuite, retry: _Retry | None,
    schedules: dict[int, KeySchedule],
) -> BinderCheck:  # fmt: skip
    """Verifies a PSK's binder over the (truncated) ClientHello; a wrong one is fatal. The
    early secret it computes is kept in ``schedules`` for the key schedule."""

    def check(index: int, session: ServerSession) -> None:
        psks = hello.psks
        assert psks is not None
        h = hashlib.new(suite.prf_hash)
        if retry is not None:
            h.update(retry.prefix)
        raw = hello.raw
        h.update(raw[: len(raw) - psks.binders_length()])
        ks = KeySchedule(suite, session.secret)
        if not hmac.compare_digest(ks.binder(h.digest()), psks.binders[index]):
            raise DecryptError("the PSK binder does not verify")
        schedules[index] = ks

    return check


# -- after the decision -------------------------------------------------------------------
def _decided(
    ctx: ServerContext, hello: HelloSummary, retry: _Retry | None, suite: CipherSuite,
    share: X.KeyShareEntry | None, d: ResumptionDecision, schedules: dict[int, KeySchedule],
) -> State:  # fmt: skip
    psk = d.session if d.resumed_by is not None else None
    if psk is None or d.psk_dhe:
        if share is None:  # psk_ke was the plan, but the PSK did not resume
            return _retry_or_fail(ctx, hello, suite, retry)
    else:
        share = None  # psk_ke: no key exchange
    cert: CertifiedKey | None = None
    scheme: int | None = None
    if psk is None:
        cert, scheme = _select_certificate(ctx.config, hello.hello, ctx.server_name)
        ctx.signature_scheme = scheme
    ks = schedules[d.psk_index] if psk is not None and d.psk_index is not None else None
    ks = ks or KeySchedule(suite)
    early_hash = ctx.transcript.digest()  # ClientHello (after any retry)
    shared = _send_server_hello(ctx, hello, suite, share, d, retry)
    c_hs, s_hs = _handshake_keys(ctx, ks, shared, hello, d, early_hash)
    _send_server_flight(ctx, d, cert, scheme, ks, s_hs)
    c_ap, s_ap = _application_keys(ctx, ks)
    if psk is not None:
        ctx.resumed_by = "psk"
        ctx.session = psk
        if psk.peer_chain:
            ctx.peer_chain_der = psk.peer_chain
            ctx.peer_chain = tuple(parse_chain(psk.peer_chain))
    want_client_cert = psk is None and ctx.config.client_auth is not ClientAuth.NONE
    final = _Final(ks, c_hs, c_ap, s_ap, want_client_cert)
    if d.early_data_accepted and psk is not None:
        return ExpectEarlyData(final, psk.max_early_data)
    return final.next_state()


def _send_server_hello(
    ctx: ServerContext, hello: HelloSummary, suite: CipherSuite,
    share: X.KeyShareEntry | None, d: ResumptionDecision, retry: _Retry | None,
) -> bytes | None:  # fmt: skip
    """Send the ServerHello; returns the (EC)DHE shared secret, if any."""
    exts: list[Extension] = [X.SupportedVersionSelected(ProtocolVersion.TLS1_3)]
    shared: bytes | None = None
    if share is not None:
        ours = KeyShare(share.group)
        shared = ours.exchange(share.key_exchange)
        exts.append(X.KeyShareSelected(X.KeyShareEntry(share.group, ours.public)))
        ctx.group = share.group
    if d.resumed_by is not None and d.psk_index is not None:
        exts.append(X.PreSharedKeySelected(d.psk_index))
    ctx.server_random = ctx.rng(32)
    ctx.session_id = hello.session_id
    ctx.send(ServerHello(0x0303, ctx.server_random, hello.session_id, suite.code, 0, tuple(exts)))
    if hello.session_id and retry is None:
        ctx.send_ccs()  # middlebox compatibility (RFC 8446 §D.4)
    return shared


def _handshake_keys(
    ctx: ServerContext, ks: KeySchedule, shared: bytes | None, hello: HelloSummary,
    d: ResumptionDecision, early_hash: bytes,
) -> tuple[bytes, bytes]:  # fmt: skip
    """Derive the handshake traffic secrets and switch keys; early data, when accepted, is
    read under the early traffic key until EndOfEarlyData."""
    early_secret = b""
    if d.early_data_accepted:
        early_secret = ks.derive(b"c e traffic", early_hash)
        ctx.keylog("CLIENT_EARLY_TRAFFIC_SECRET", early_secret)
    c_hs, s_hs = handshake_secrets(ctx, ks, shared)
    ctx.set_write_protection(protection(ks, s_hs))
    if d.early_data_accepted:
        ctx.set_read_protection(protection(ks, early_secret))
        ctx.early_data_accepted = True
    else:
        ctx.set_read_protection(protection(ks, c_hs))
        if hello.early_data:  # refused: skip the 0-RTT records we cannot decrypt
            ctx.records.skip_budget = max(ctx.config.max_early_data_size, MIN_EARLY_SKIP)
    return c_hs, s_hs


def _send_server_flight(
    ctx: ServerContext, d: ResumptionDecision, cert: CertifiedKey | None, scheme: int | None,
    ks: KeySchedule, s_hs: bytes,
) -> None:  # fmt: skip
    """EncryptedExtensions, CertificateRequest, Certificate, CertificateVerify, Finished."""
    config = ctx.config
    resumed = d.resumed_by is not None
    ee: list[Extension] = []
    if ctx.server_name is not None and not resumed:
        ee.append(X.ServerNameAck())
    if ctx.alpn is not None:
        ee.append(X.ALPN((ctx.alpn,)))
    if d.early_data_accepted:
        ee.append(X.EarlyDataIndication())
    ctx.send(EncryptedExtensions(tuple(ee)))
    if not resumed and config.client_auth is not ClientAuth.NONE:
        req_exts: list[Extension] = [X.SignatureAlgorithms(config.signature_schemes)]
        if names := config.client_ca_names():
            req_exts.append(X.CertificateAuthorities(names))
        ctx.send(CertificateRequest13(b"", tuple(req_exts)))
    if cert is not None and scheme is not None:
        ctx.send(Certificate13(b"", tuple(CertificateEntry(d) for d in cert.chain_der)))
        content = cv_content(SERVER_CV_CONTEXT, ctx.transcript.digest())
        ctx.send(CertificateVerify(scheme, signatures.sign(cert.key, scheme, content)))
    ctx.server_verify_data = ks.finished_mac(s_hs, ctx.transcript.digest())
    ctx.send(Finished(ctx.server_verify_data))


def _application_keys(ctx: ServerContext, ks: KeySchedule) -> tuple[bytes, bytes]:
    c_ap, s_ap = application_secrets(ctx, ks)
    ctx.set_write_protection(protection(ks, s_ap))
    return c_ap, s_ap


# -- HelloRetryRequest -------------------------------------------------------------------
def _send_retry(ctx: ServerContext, hello: HelloSummary, suite: CipherSuite,
                group: int) -> State:  # fmt: skip
    config = ctx.config
    ch = hello.hello
    ctx.transcript.replace_with_message_hash()
    ch1_hash = hashlib.new(suite.prf_hash, hello.raw).digest()
    cookie = hmac.digest(config.cookie_key, ch1_hash, "sha256")
    hrr = ServerHello(
        0x0303, HELLO_RETRY_REQUEST_RANDOM, ch.session_id, suite.code, 0,
        (X.SupportedVersionSelected(ProtocolVersion.TLS1_3), X.KeyShareRetry(group),
         X.Cookie(cookie)),
    )  # fmt: skip
    synthetic = bytes((HandshakeType.MESSAGE_HASH, 0, 0, len(ch1_hash))) + ch1_hash
    hrr_raw = ctx.send(hrr)
    if ch.session_id:
        ctx.send_ccs()
    if hello.early_data:
        # 0-RTT records after the first ClientHello are skipped (RFC 8446 §4.2.10).
        ctx.records.skip_budget = max(config.max_early_data_size, MIN_EARLY_SKIP)
    retry = _Retry(suite, group, cookie, synthetic + hrr_raw, ch, hello.early_data)
    return ExpectSecondClientHello(retry)


class ExpectSecondClientHello(State):
    ignores_ccs = True

    def __init__(self, retry: _Retry) -> None:
        self.retry = retry

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.CLIENT_HELLO)
        hello = summarize(decode_message(ClientHello, body), raw)
        ch = hello.hello
        first = self.retry.first_ch
        if not hello.offers_tls13:
            raise IllegalParameter("the second ClientHello no longer offers TLS 1.3")
        check_legacy_version13(ch)
        if ch.random != first.random or ch.session_id != first.session_id:
            raise IllegalParameter("the second ClientHello changed its random or session id")
        ctx.transcript.add(raw)
        ctx.records.skip_budget = 0
        return _client_hello(ctx, hello, self.retry)


def _select_certificate(config: ServerConfig, ch: ClientHello,
                        server_name: str | None) -> tuple[CertifiedKey, int]:  # fmt: skip
    sigalgs = ch.find(X.SignatureAlgorithms)
    if sigalgs is None:
        raise MissingExtension("a TLS 1.3 ClientHello without a PSK needs signature_algorithms")
    for cert in config.certificates_for(server_name):
        scheme = signatures.choose_scheme(cert.key, sigalgs.schemes, config.signature_schemes, True)
        if scheme is not None:
            return cert, scheme
    raise HandshakeFailure("no certificate can sign with a scheme the client accepts")


# -- the client's second flight ----------------------------------------------------------
@dataclass(slots=True)
class _Final:
    ks: KeySchedule = field(repr=False)
    c_hs: bytes = field(repr=False)
    c_ap: bytes = field(repr=False)
    s_ap: bytes = field(repr=False)
    want_client_cert: bool

    def next_state(self) -> State:
        return ExpectClientCertificate(self) if self.want_client_cert else ExpectFinished(self)


class ExpectEarlyData(State):
    """0-RTT application data (replayable!) until EndOfEarlyData."""

    accepts_application_data = True
    early = True
    ignores_ccs = True

    def __init__(self, final: _Final, limit: int) -> None:
        self.final = final
        self.remaining = limit

    def count(self, n: int) -> None:
        self.remaining -= n
        if self.remaining < 0:
            raise UnexpectedMessage("the client sent more early data than max_early_data_size")

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.END_OF_EARLY_DATA)
        decode_message(EndOfEarlyData, body)
        ctx.transcript.add(raw)
        ctx.set_read_protection(protection(self.final.ks, self.final.c_hs))
        return self.final.next_state()


class ExpectClientCertificate(State):
    ignores_ccs = True

    def __init__(self, final: _Final) -> None:
        self.final = final

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.CERTIFICATE)
        msg = decode_message(Certificate13, body)
        if msg.context:
            raise IllegalParameter("the client's Certificate has a non-empty request context")
        ctx.transcript.add(raw)
        if not msg.entries:
            if ctx.config.client_auth is ClientAuth.REQUIRED:
                raise CertificateRequired("the client sent no certificate, and one is required")
            return ExpectFinished(self.final)
        ctx.peer_chain = ctx.verified_client_chain(msg.chain)
        ctx.peer_chain_der = msg.chain
        return ExpectClientCertificateVerify(self.final)


class ExpectClientCertificateVerify(State):
    ignores_ccs = True

    def __init__(self, final: _Final) -> None:
        self.final = final

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.CERTIFICATE_VERIFY)
        cv = decode_message(CertificateVerify, body)
        verify_cv(ctx, cv.scheme, cv.signature, CLIENT_CV_CONTEXT, ctx.transcript.digest(),
                  ctx.config.signature_schemes)  # fmt: skip
        ctx.transcript.add(raw)
        return ExpectFinished(self.final)


class ExpectFinished(State):
    ignores_ccs = True

    def __init__(self, final: _Final) -> None:
        self.final = final

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.FINISHED)
        f = self.final
        expected = f.ks.finished_mac(f.c_hs, ctx.transcript.digest())
        verify_finished(decode_message(Finished, body).verify_data, expected)
        ctx.client_verify_data = expected
        ctx.transcript.add(raw)
        ctx.set_read_protection(protection(f.ks, f.c_ap))
        res_master = f.ks.derive(b"res master", ctx.transcript.digest())
        ctx.complete()
        count = ctx.config.num_tickets
        send_tickets(ctx, f.ks, res_master, min(count, 1) if ctx.resumed_by else count)
        return Traffic13(f.ks, f.c_ap, f.s_ap, res_master)


def send_tickets(ctx: ServerContext, ks: KeySchedule, res_master: bytes, count: int) -> None:
    """NewSessionTicket messages: sealed tickets, or ids into the store (stateful, single use;
    each written to the store before its ticket leaves).

    The randomness for a flight of tickets (each one's ticket_age_add and IV or id) is drawn
    at once, and the flight is reported once.
    """
    config = ctx.config
    if count <= 0 or ctx.suite is None:
        return
    sealer = config.sealer
    if (config.session_store is None) if config.stateful_tickets else (sealer is None):
        return
    lifetime = min(config.ticket_lifetime, MAX_TICKET_LIFETIME)
    if sealer is not None and not config.stateful_tickets:
        lifetime = sealer.lifetime(lifetime, ctx.now())
    max_early = config.max_early_data_size
    created = ctx.now()
    random = ctx.rng((4 + 32) * count)  # per ticket: ticket_age_add, then an IV or an id
    exts: tuple[Extension, ...] = (X.EarlyDataLimit(max_early),) if max_early else ()
    issued = 0
    for i in range(count):
        nonce = i.to_bytes(1, "big")
        r = random[36 * i : 36 * (i + 1)]
        session = ServerSession(
            version=ProtocolVersion.TLS1_3,
            cipher_suite=ctx.suite.code,
            secret=ks.resumption_psk(res_master, nonce),
            extended_master_secret=False,
            created=created,
            lifetime=lifetime,
            server_name=ctx.server_name,
            alpn=ctx.alpn,
            peer_chain=ctx.peer_chain_der,
            ticket_age_add=int.from_bytes(r[:4], "big"),
            max_early_data=max_early,
        )
        identity = _ticket_identity(ctx, session, r[4:])
        if identity is None:
            break  # every ticket key has expired: simply no tickets
        ctx.send_untranscribed(
            NewSessionTicket13(lifetime, session.ticket_age_add, nonce, identity, exts)
        )
        issued += 1
    if issued:
        ctx.observe(TicketsIssued(issued, ProtocolVersion.TLS1_3))


def _ticket_identity(ctx: ServerContext, session: ServerSession, random: bytes) -> bytes | None:
    """The ticket's identity: a store key for a single-use ticket (written now), else the
    sealed session."""
    config = ctx.config
    state = session.to_bytes()
    if config.stateful_tickets:
        key = stateful_ticket_key(random)
        ctx.store_write(StoreWrite("put", key, state, session.lifetime))
        return random
    assert config.sealer is not None
    return config.sealer.seal(state, random[:16])

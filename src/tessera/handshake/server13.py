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

Resumption picks the first offered PSK identity that opens, is unexpired, matches this
connection and passes the ticket-age check; its binder is then verified (a bad binder is fatal,
RFC 8446 §4.2.11). Anything else falls back to a full handshake and is counted.
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
from ..crypto.suites import BY_CODE, CipherSuite
from ..crypto.x509 import parse_chain, utc_clock, verify_client_chain
from ..enums import HandshakeType, ProtocolVersion, PskKeyExchangeMode
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
from ..session.model import ServerSession, SessionDecodeError
from ..session.sealer import Opened, TicketSealer
from ..session.stats import FallbackReason
from .common13 import (
    CLIENT_CV_CONTEXT,
    MAX_TICKET_LIFETIME,
    SERVER_CV_CONTEXT,
    Traffic13,
    cv_content,
    protection,
    verify_cv,
)
from .context import ServerContext, State, require, verify_finished
from .negotiation import check_legacy_version13, ordered_suites, select_group

# Records that fail to decrypt are skipped, up to this many bytes, when 0-RTT is refused.
MIN_EARLY_SKIP = 1 << 16


@dataclass(slots=True)
class _Retry:
    """What the HelloRetryRequest fixed, for checking the second ClientHello."""

    suite: CipherSuite
    group: int
    cookie: bytes
    prefix: bytes  # message_hash(ClientHello1) | HelloRetryRequest, for PSK binders
    first_ch: ClientHello


@dataclass(slots=True)
class _PskChoice:
    session: ServerSession
    index: int
    dhe: bool
    early_ok: bool
    ks: KeySchedule  # the early secret from this PSK, already computed for the binder


def start(ctx: ServerContext, ch: ClientHello, raw: bytes) -> State:
    return _client_hello(ctx, ch, raw, None)


def _client_hello(ctx: ServerContext, ch: ClientHello, raw: bytes, retry: _Retry | None) -> State:
    config = ctx.config
    ctx.version = ProtocolVersion.TLS1_3
    if ch.compression_methods != (0,):
        raise IllegalParameter("a TLS 1.3 ClientHello must offer only null compression")
    offered_psks = ch.find(X.OfferedPsks)
    if offered_psks is not None and ch.extensions[-1] is not offered_psks:
        raise IllegalParameter("pre_shared_key must be the last ClientHello extension")
    suites = ordered_suites(config, ch, ProtocolVersion.TLS1_3)
    if not suites:
        raise HandshakeFailure("no TLS 1.3 cipher suite in common with the client")
    suite = suites[0]
    if retry is not None:
        if retry.suite.code not in ch.cipher_suites:
            raise IllegalParameter("the second ClientHello dropped the cipher suite we chose")
        suite = retry.suite
        if ch.find(X.EarlyDataIndication) is not None:
            raise IllegalParameter("early_data in the ClientHello after a HelloRetryRequest")
        cookie = ch.find(X.Cookie)
        if cookie is None or not hmac.compare_digest(cookie.cookie, retry.cookie):
            raise IllegalParameter("the second ClientHello does not echo our cookie")
    if not ctx.transcript.hash_ready:
        ctx.transcript.set_hash(suite.prf_hash)
    ctx.suite = suite

    psk = _choose_psk(ctx, ch, raw, suite, offered_psks, retry) if offered_psks else None

    share_entry: X.KeyShareEntry | None = None
    if psk is None or psk.dhe:
        groups = ch.find(X.SupportedGroups)
        offer = ch.find(X.KeyShareOffer)
        if groups is None or offer is None:
            raise MissingExtension("a TLS 1.3 ClientHello needs supported_groups and key_share")
        by_group = {e.group: e for e in offer.entries}
        for g in config.groups:
            if g in by_group and g in groups.groups:
                share_entry = by_group[g]
                break
        if retry is not None:
            if share_entry is None or share_entry.group != retry.group or len(offer.entries) != 1:
                raise IllegalParameter("the second ClientHello lacks the key share we asked for")
        elif share_entry is None:
            group = select_group(config, ch)
            if group is None:
                raise HandshakeFailure("no key exchange group in common with the client")
            return _send_retry(ctx, ch, raw, suite, group)

    cert: CertifiedKey | None = None
    scheme: int | None = None
    if psk is None:
        cert, scheme = _select_certificate(config, ch, ctx.server_name)
        ctx.signature_scheme = scheme

    # -- ServerHello ---------------------------------------------------------------------
    ks = psk.ks if psk is not None else KeySchedule(suite)
    early_secret_hash = ctx.transcript.digest()  # ClientHello (after any retry)
    exts: list[Extension] = [X.SupportedVersionSelected(ProtocolVersion.TLS1_3)]
    shared: bytes | None = None
    if share_entry is not None:
        ours = KeyShare(share_entry.group)
        shared = ours.exchange(share_entry.key_exchange)
        exts.append(X.KeyShareSelected(X.KeyShareEntry(share_entry.group, ours.public)))
        ctx.group = share_entry.group
    if psk is not None:
        exts.append(X.PreSharedKeySelected(psk.index))
    ctx.server_random = ctx.rng(32)
    ctx.session_id = ch.session_id
    ctx.send(ServerHello(0x0303, ctx.server_random, ch.session_id, suite.code, 0, tuple(exts)))
    if ch.session_id and retry is None:
        ctx.send_ccs()  # middlebox compatibility (RFC 8446 §D.4)

    early_accepted = False
    if psk is not None and psk.early_ok:
        early_secret = ks.derive(b"c e traffic", early_secret_hash)
        ctx.keylog("CLIENT_EARLY_TRAFFIC_SECRET", early_secret)
        early_accepted = True
    ks.to_handshake(shared)
    hs_hash = ctx.transcript.digest()
    c_hs = ks.derive(b"c hs traffic", hs_hash)
    s_hs = ks.derive(b"s hs traffic", hs_hash)
    ctx.keylog("CLIENT_HANDSHAKE_TRAFFIC_SECRET", c_hs)
    ctx.keylog("SERVER_HANDSHAKE_TRAFFIC_SECRET", s_hs)
    ctx.set_write_protection(protection(ks, s_hs))
    if early_accepted:
        ctx.set_read_protection(protection(ks, early_secret))
    else:
        ctx.set_read_protection(protection(ks, c_hs))
        if ch.find(X.EarlyDataIndication) is not None:
            ctx.records.skip_budget = max(config.max_early_data_size, MIN_EARLY_SKIP)
            config.statistics.incr("early_data_rejected")

    # -- EncryptedExtensions .. Finished -------------------------------------------------
    ee: list[Extension] = []
    if ctx.server_name is not None and psk is None:
        ee.append(X.ServerNameAck())
    if ctx.alpn is not None:
        ee.append(X.ALPN((ctx.alpn,)))
    if early_accepted:
        ee.append(X.EarlyDataIndication())
        ctx.early_data_accepted = True
        config.statistics.incr("early_data_accepted")
    ctx.send(EncryptedExtensions(tuple(ee)))
    want_client_cert = psk is None and config.client_auth is not ClientAuth.NONE
    if want_client_cert:
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

    ks.to_master()
    app_hash = ctx.transcript.digest()
    c_ap = ks.derive(b"c ap traffic", app_hash)
    s_ap = ks.derive(b"s ap traffic", app_hash)
    ctx.keylog("CLIENT_TRAFFIC_SECRET_0", c_ap)
    ctx.keylog("SERVER_TRAFFIC_SECRET_0", s_ap)
    if ctx.config.keylog is not None:
        ctx.keylog("EXPORTER_SECRET", ks.derive(b"exp master", app_hash))
    ctx.set_write_protection(protection(ks, s_ap))
    if psk is not None:
        ctx.resumed_by = "psk"
        ctx.session = psk.session
        if psk.session.peer_chain:
            ctx.peer_chain_der = psk.session.peer_chain
            ctx.peer_chain = tuple(parse_chain(psk.session.peer_chain))
    final = _Final(ks, c_hs, c_ap, s_ap, want_client_cert)
    if early_accepted:
        return ExpectEarlyData(final, psk.session.max_early_data if psk else 0)
    return final.next_state()


# -- PSK ----------------------------------------------------------------------------------
def _choose_psk(ctx: ServerContext, ch: ClientHello, raw: bytes, suite: CipherSuite,
                offered: X.OfferedPsks, retry: _Retry | None) -> _PskChoice | None:  # fmt: skip
    config = ctx.config
    stats = config.statistics
    if config.ticket_keyring is None and not config.stateful_tickets:
        return None
    modes = ch.find(X.PskKeyExchangeModes)
    if modes is None:
        raise MissingExtension("pre_shared_key without psk_key_exchange_modes")
    # A server configured with psk_ke prefers it (no (EC)DHE: cheaper, but no forward secrecy
    # for the resumed connection); otherwise psk_dhe_ke is required.
    ke_only = PskKeyExchangeMode.psk_ke in modes.modes and config.psk_ke
    dhe = PskKeyExchangeMode.psk_dhe_ke in modes.modes and not ke_only
    if not dhe and not ke_only:
        stats.fallback(FallbackReason.PSK_MODE_UNSUPPORTED)
        return None
    now = ctx.now()
    first_reason: FallbackReason | None = None
    for index, ident in enumerate(offered.identities):
        found = _open_identity(ctx, ident.identity)
        if isinstance(found, FallbackReason):
            first_reason = first_reason or found
            continue
        session, single_use = found
        reason = _unusable13(ctx, session, suite, now, ident.obfuscated_ticket_age)
        if reason is not None:
            first_reason = first_reason or reason
            continue
        # The binder proves the client holds the PSK; a wrong one is fatal.
        binders_len = offered.binders_length()
        h = hashlib.new(suite.prf_hash)
        if retry is not None:
            h.update(retry.prefix)
        h.update(raw[: len(raw) - binders_len])
        ks = KeySchedule(suite, session.secret)
        if not hmac.compare_digest(ks.binder(h.digest()), offered.binders[index]):
            raise DecryptError("the PSK binder does not verify")
        early_ok = (
            index == 0
            and retry is None
            and ch.find(X.EarlyDataIndication) is not None
            and config.max_early_data_size > 0
            and session.max_early_data > 0
            and session.cipher_suite == suite.code
            and session.alpn == ctx.alpn
            and _fresh_for_early_data(ctx, ident.identity, session, single_use)
        )
        return _PskChoice(session, index, dhe, early_ok, ks)
    if first_reason is not None:
        stats.fallback(first_reason)
        if first_reason in (FallbackReason.TICKET_MAC_FAILED, FallbackReason.TICKET_MALFORMED,
                            FallbackReason.TICKET_UNKNOWN_KEY):  # fmt: skip
            stats.incr("ticket_failures")
        if first_reason is FallbackReason.TICKET_EXPIRED:
            stats.incr("timeouts")
    return None


def _open_identity(
    ctx: ServerContext, identity: bytes
) -> tuple[ServerSession, bool] | FallbackReason:
    """(session, single_use) for a ticket identity, or why it cannot be used."""
    config = ctx.config
    if config.stateful_tickets:
        store = config.session_store
        if store is None or not 1 <= len(identity) <= 255:
            return FallbackReason.UNKNOWN_SESSION_ID
        value = store.take(identity)
        if value is None:
            return FallbackReason.PSK_ALREADY_USED
        state = value
        single_use = True
    else:
        if config.ticket_keyring is None:
            return FallbackReason.TICKET_UNKNOWN_KEY
        opened = TicketSealer(config.ticket_keyring).open(identity)
        if not isinstance(opened, Opened):
            return opened
        state = opened.state
        single_use = False
    try:
        return ServerSession.from_bytes(state), single_use
    except SessionDecodeError:
        return FallbackReason.TICKET_MALFORMED


def _unusable13(ctx: ServerContext, s: ServerSession, suite: CipherSuite, now: float,
                obfuscated_age: int) -> FallbackReason | None:  # fmt: skip
    config = ctx.config
    if s.version != ProtocolVersion.TLS1_3:
        return FallbackReason.VERSION_MISMATCH
    if s.expired(now):
        return FallbackReason.TICKET_EXPIRED
    resumed_suite = BY_CODE.get(s.cipher_suite)
    if resumed_suite is None or resumed_suite.prf_hash != suite.prf_hash:
        return FallbackReason.CIPHER_MISMATCH
    if s.server_name != ctx.server_name:
        return FallbackReason.SNI_MISMATCH
    client_age_ms = (obfuscated_age - s.ticket_age_add) & 0xFFFFFFFF
    server_age_ms = (now - s.created) * 1000
    if abs(client_age_ms - server_age_ms) > config.max_ticket_age_skew * 1000:
        return FallbackReason.PSK_AGE_INVALID
    if config.client_auth is ClientAuth.REQUIRED and not s.peer_chain:
        return FallbackReason.CLIENT_CERT_MISMATCH
    return None


def _fresh_for_early_data(ctx: ServerContext, identity: bytes, session: ServerSession,
                          single_use: bool) -> bool:  # fmt: skip
    """Anti-replay (RFC 8446 §8): the ticket age was checked; the ticket must be single-use
    (stateful) or seen for the first time in the store's strike register."""
    if single_use:
        return True
    store = ctx.config.session_store
    if store is None:
        return False
    mark = b"0rtt:" + hashlib.sha256(identity).digest()[:24]
    return store.add(mark, b"", max(1.0, session.remaining(ctx.now())))


# -- HelloRetryRequest -------------------------------------------------------------------
def _send_retry(ctx: ServerContext, ch: ClientHello, raw: bytes, suite: CipherSuite,
                group: int) -> State:  # fmt: skip
    config = ctx.config
    ctx.transcript.replace_with_message_hash()
    ch1_hash = hashlib.new(suite.prf_hash, raw).digest()
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
    if ch.find(X.EarlyDataIndication) is not None:
        # 0-RTT records after the first ClientHello are skipped (RFC 8446 §4.2.10).
        ctx.records.skip_budget = max(config.max_early_data_size, MIN_EARLY_SKIP)
        config.statistics.incr("early_data_rejected")
    return ExpectSecondClientHello(_Retry(suite, group, cookie, synthetic + hrr_raw, ch))


class ExpectSecondClientHello(State):
    ignores_ccs = True

    def __init__(self, retry: _Retry) -> None:
        self.retry = retry

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> State:
        require(self, msg_type, HandshakeType.CLIENT_HELLO)
        ch = decode_message(ClientHello, body)
        first = self.retry.first_ch
        sv = ch.find(X.SupportedVersionsOffer)
        if sv is None or ProtocolVersion.TLS1_3 not in sv.versions:
            raise IllegalParameter("the second ClientHello no longer offers TLS 1.3")
        check_legacy_version13(ch)
        if ch.random != first.random or ch.session_id != first.session_id:
            raise IllegalParameter("the second ClientHello changed its random or session id")
        ctx.transcript.add(raw)
        ctx.records.skip_budget = 0
        return _client_hello(ctx, ch, raw, self.retry)


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
    ks: KeySchedule
    c_hs: bytes = field(repr=False)  # traffic secrets: never in a repr
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
        chain = parse_chain(msg.chain)
        verify_client_chain(chain, ctx.config.client_trust_store(), utc_clock(ctx.config.clock))
        ctx.peer_chain = tuple(chain)
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
        stats = ctx.config.statistics
        if ctx.resumed_by is not None:
            stats.incr("resumed")
            stats.incr("resumed_psk")
        else:
            stats.incr("full_handshakes")
        ctx.complete()
        count = ctx.config.num_tickets
        send_tickets(ctx, f.ks, res_master, min(count, 1) if ctx.resumed_by else count)
        return Traffic13(f.ks, f.c_ap, f.s_ap, res_master)


def send_tickets(ctx: ServerContext, ks: KeySchedule, res_master: bytes, count: int) -> None:
    """NewSessionTicket messages: sealed under the keyring, or ids into the store (stateful).

    The randomness for a flight of tickets (each one's ticket_age_add and IV or id) is drawn
    at once, and the flight is counted once.
    """
    config = ctx.config
    if count <= 0 or ctx.suite is None:
        return
    store = config.session_store
    sealer = TicketSealer(config.ticket_keyring) if config.ticket_keyring is not None else None
    if (store is None) if config.stateful_tickets else (sealer is None):
        return
    lifetime = min(config.ticket_lifetime, MAX_TICKET_LIFETIME)
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
        state = session.to_bytes()
        if config.stateful_tickets:
            assert store is not None
            identity = r[4:]
            store.put(identity, state, lifetime)
        else:
            assert sealer is not None
            sealed = sealer.seal(state, r[4:20])
            if sealed is None:
                break  # every ticket key has expired: simply no tickets
            identity = sealed
        ctx.send_untranscribed(
            NewSessionTicket13(lifetime, session.ticket_age_add, nonce, identity, exts)
        )
        issued += 1
    if issued:
        config.statistics.incr("tickets_issued", issued)

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
                                               <--  [NewSessionTicket] x decision.tickets

The HelloRetryRequest is decided before any session store access, so a single-use ticket
survives it. Resumption (``session.resumption.resolve13``) then picks the first of the first few
offered PSK identities that opens, is unexpired, matches this connection and passes the
ticket-age check; its binder is verified here (a bad binder is fatal, RFC 8446 §4.2.11).
Anything else falls back to a full handshake, with its reason.

The client's Certificate, CertificateVerify and Finished are read by the same states during the
handshake and in post-handshake authentication (:mod:`.post_auth`); a :class:`ClientAuthFlow`
says which (its transcript, its request context, its Finished key, what comes next).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Protocol

from ..certs import CertifiedKey
from ..config import ServerConfig
from ..crypto import signatures
from ..crypto.key_exchange import KeyShare
from ..crypto.key_schedule import KeySchedule
from ..crypto.mac import new_hash
from ..crypto.suites import CipherSuite
from ..crypto.transcript import Transcript
from ..crypto.x509 import parse_chain
from ..enums import ClientAuth, HandshakeType, ProtocolVersion
from ..errors import (
    CertificateRequired,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    MissingExtension,
    UnexpectedMessage,
)
from ..frozen import quick_init
from ..messages import (
    Certificate13,
    CertificateEntry,
    CertificateRequest13,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    EndOfEarlyData,
    Finished,
    ServerHello,
    decode_message,
    encode_handshake,
    finished_bytes,
    server_hello13_extensions,
    server_hello_bytes,
)
from ..messages import extensions as X
from ..messages.hello import HELLO_RETRY_REQUEST_RANDOM
from ..session.model import ServerSession
from ..session.resumption import (
    HelloSummary,
    Mechanism,
    Psk13Context,
    ResumptionDecision,
    psk_modes,
    resolve13,
    summarize,
)
from .context import ServerContext, ServerState, require, unexpected, verify_finished
from .lookup import drive
from .negotiated import Negotiated13
from .negotiation import check_legacy_version13, ordered_suites, select_group, verified_client_chain
from .port import Direction, Epoch
from .tickets13 import issue_tickets
from .traffic13 import (
    CLIENT_CV_CONTEXT,
    SERVER_CV_CONTEXT,
    Keys13,
    Traffic13,
    application_secrets,
    cv_content,
    handshake_secrets,
    verify_cv,
)

# Records that fail to decrypt are skipped, up to this many bytes, when 0-RTT is refused.
MIN_EARLY_SKIP = 1 << 16


@quick_init
@dataclass(frozen=True, slots=True)
class _Retry:
    """What the HelloRetryRequest fixed, for checking the second ClientHello."""

    suite: CipherSuite
    group: int
    cookie: bytes = field(repr=False)
    prefix: bytes = field(repr=False)  # message_hash(ClientHello1) | HelloRetryRequest
    first_ch: ClientHello = field(repr=False)
    early_data_offered: bool  # the first ClientHello asked for 0-RTT
    server_name: str | None  # as the first ClientHello named it
    alpn: bytes | None
    started: float


def start(
    ctx: ServerContext, hello: HelloSummary, alpn: bytes | None, started: float
) -> ServerState:
    return _client_hello(ctx, hello, hello.server_name, alpn, started, None)


def _client_hello(
    ctx: ServerContext,
    hello: HelloSummary,
    server_name: str | None,
    alpn: bytes | None,
    started: float,
    retry: _Retry | None,
) -> ServerState:
    """Validate the hello, decide the HelloRetryRequest (before any store access), then
    decide resumption and answer."""
    config = ctx.config
    suite = _check_hello(ctx, hello, retry)
    share = _find_key_share(config, hello, retry)
    _, ke_only = psk_modes(config, hello)
    answer = Answer13(hello, server_name, alpn, started, retry, suite, share,
                      BinderVerifier(hello, suite, retry))  # fmt: skip
    if share is None and not (ke_only and hello.psks is not None):
        return answer.retry_or_fail(ctx)
    pc = Psk13Context(
        server_name=server_name,
        alpn=alpn,
        suite=suite,
        now=ctx.now(),
        retried=retry is not None,
        early_data_offered=hello.early_data or (retry is not None and retry.early_data_offered),
    )
    return drive(ctx, resolve13(config, hello, pc, answer.binder), answer)


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


class BinderVerifier:
    """Verifies a PSK's binder over the (truncated) ClientHello; a wrong one is fatal. The
    early secret it computes is kept for the key schedule."""

    __slots__ = ("hello", "retry", "schedules", "suite")

    def __init__(self, hello: HelloSummary, suite: CipherSuite, retry: _Retry | None) -> None:
        self.hello = hello
        self.suite = suite
        self.retry = retry
        self.schedules: dict[int, KeySchedule] = {}

    def __call__(self, index: int, session: ServerSession) -> None:
        psks = self.hello.psks
        assert psks is not None
        h = new_hash(self.suite.prf_hash)
        if self.retry is not None:
            h.update(self.retry.prefix)
        raw = self.hello.raw
        h.update(raw[: len(raw) - psks.binders_length()])
        ks = KeySchedule(self.suite, session.secret)
        if not hmac.compare_digest(ks.binder(h.digest()), psks.binders[index]):
            raise DecryptError("the PSK binder does not verify")
        self.schedules[index] = ks

    def __repr__(self) -> str:
        return f"BinderVerifier(verified={sorted(self.schedules)})"


# -- after the decision -------------------------------------------------------------------
@quick_init
@dataclass(frozen=True, slots=True)
class Answer13:
    """Everything the server's first flight needs, once resumption is decided."""

    hello: HelloSummary
    server_name: str | None
    alpn: bytes | None
    started: float
    retry: _Retry | None
    suite: CipherSuite
    share: X.KeyShareEntry | None
    binder: BinderVerifier

    def retry_or_fail(self, ctx: ServerContext) -> ServerState:
        """No usable key share: ask for one (HelloRetryRequest), or fail if we already did."""
        ch = self.hello.hello
        if ch.find(X.SupportedGroups) is None or ch.find(X.KeyShareOffer) is None:
            raise MissingExtension("a TLS 1.3 ClientHello needs supported_groups and key_share")
        if self.retry is not None:
            raise IllegalParameter("the second ClientHello lacks the key share we asked for")
        group = select_group(ctx.config, ch)
        if group is None:
            raise HandshakeFailure("no key exchange group in common with the client")
        return _send_retry(ctx, self, group)

    def decided(self, ctx: ServerContext, d: ResumptionDecision) -> ServerState:
        psk = d.session if d.resumed_by is not None else None
        share = self.share
        if psk is None or d.psk_dhe:
            if share is None:  # psk_ke was the plan, but the PSK did not resume
                return self.retry_or_fail(ctx)
        else:
            share = None  # psk_ke: no key exchange
        cert: CertifiedKey | None = None
        scheme: int | None = None
        if psk is None:
            cert, scheme = _select_certificate(ctx.config, self.hello.hello, self.server_name)
        ks = self.binder.schedules.get(d.psk_index) if d.psk_index is not None else None
        n = self.negotiated(psk, share, scheme, d)
        # The 0-RTT keys hash the ClientHello (after any retry) alone.
        early_hash = ctx.transcript.digest() if n.early_data_accepted else b""
        shared = _send_server_hello(ctx, self, n, share, d)
        ks = ks if psk is not None and ks is not None else KeySchedule(self.suite)
        c_hs, s_hs = _handshake_keys(ctx, self.hello, ks, shared, n, early_hash)
        _send_server_flight(ctx, d, n, cert, scheme, ks, s_hs)
        c_ap, s_ap = application_secrets(ctx, ks, n.client_random)
        ctx.port.install_keys(Direction.WRITE, Epoch.APPLICATION, n.suite, s_ap)
        final = Final13(n, ks, c_hs, c_ap, s_ap, self.started, d, self.hello.post_handshake_auth)
        if n.early_data_accepted and psk is not None:
            return ExpectEarlyData(final, psk.max_early_data)
        return final.next_state(ctx)

    def negotiated(
        self, psk: ServerSession | None, share: X.KeyShareEntry | None, scheme: int | None,
        d: ResumptionDecision,
    ) -> Negotiated13:  # fmt: skip
        chain = psk.peer_chain if psk is not None else ()
        return Negotiated13(
            self.suite, self.hello.hello.random, self.hello.session_id, self.server_name,
            self.alpn, Mechanism.PSK if psk is not None else None,
            share.group if share is not None else None, scheme,
            d.early_data_accepted and psk is not None,
            tuple(parse_chain(chain)) if chain else (), chain,
        )  # fmt: skip


def _send_server_hello(
    ctx: ServerContext, a: Answer13, n: Negotiated13, share: X.KeyShareEntry | None,
    d: ResumptionDecision,
) -> bytes | None:  # fmt: skip
    """Send the ServerHello; returns the (EC)DHE shared secret, if any."""
    shared: bytes | None = None
    public = b""
    if share is not None:
        ours = KeyShare(share.group)
        shared = ours.exchange(share.key_exchange)
        public = ours.public
    psk_index = d.psk_index if n.resumed_by is not None else None
    exts = server_hello13_extensions(n.group, public, psk_index)
    sid = a.hello.session_id
    ctx.send_encoded(server_hello_bytes(ctx.rng(32), sid, n.suite.code, exts))
    if sid and a.retry is None:
        ctx.port.send_ccs()  # middlebox compatibility (RFC 8446 §D.4)
    return shared


def _handshake_keys(
    ctx: ServerContext,
    hello: HelloSummary,
    ks: KeySchedule,
    shared: bytes | None,
    n: Negotiated13,
    early_hash: bytes,
) -> tuple[bytes, bytes]:
    """Derive the handshake traffic secrets and switch keys; early data, when accepted, is
    read under the early traffic key until EndOfEarlyData."""
    early_secret = b""
    if n.early_data_accepted:
        early_secret = ks.derive(b"c e traffic", early_hash)
        ctx.keylog("CLIENT_EARLY_TRAFFIC_SECRET", n.client_random, early_secret)
    c_hs, s_hs = handshake_secrets(ctx, ks, shared, n.client_random)
    port = ctx.port
    port.install_keys(Direction.WRITE, Epoch.HANDSHAKE, n.suite, s_hs)
    if n.early_data_accepted:
        port.install_keys(Direction.READ, Epoch.EARLY, n.suite, early_secret)
    else:
        port.install_keys(Direction.READ, Epoch.HANDSHAKE, n.suite, c_hs)
        if hello.early_data:  # refused: skip the 0-RTT records we cannot decrypt
            port.skip_early_data(max(ctx.config.max_early_data_size, MIN_EARLY_SKIP))
    return c_hs, s_hs


def _send_server_flight(
    ctx: ServerContext, d: ResumptionDecision, n: Negotiated13, cert: CertifiedKey | None,
    scheme: int | None, ks: KeySchedule, s_hs: bytes,
) -> None:  # fmt: skip
    """EncryptedExtensions, CertificateRequest, Certificate, CertificateVerify, Finished."""
    config = ctx.config
    resumed = n.resumed_by is not None
    sni_ack = n.server_name is not None and not resumed
    ctx.send_encoded(_encrypted_extensions(sni_ack, n.alpn, n.early_data_accepted))
    if not resumed and config.client_auth is not ClientAuth.NONE:
        ctx.send(CertificateRequest13(b"", certificate_request_extensions(config)))
    if cert is not None and scheme is not None:
        ctx.send(Certificate13(b"", tuple(CertificateEntry(d) for d in cert.chain_der)))
        content = cv_content(SERVER_CV_CONTEXT, ctx.transcript.digest())
        ctx.send(CertificateVerify(scheme, signatures.sign(cert.key, scheme, content)))
    ctx.send_encoded(finished_bytes(ks.finished_mac(s_hs, ctx.transcript.digest())))


@lru_cache(maxsize=256)
def _encrypted_extensions(sni_ack: bool, alpn: bytes | None, early_data: bool) -> bytes:
    """The encoded EncryptedExtensions (they repeat; ALPN values come from the config)."""
    ee: list[X.Extension] = []
    if sni_ack:
        ee.append(X.ServerNameAck())
    if alpn is not None:
        ee.append(X.ALPN((alpn,)))
    if early_data:
        ee.append(X.EarlyDataIndication())
    return encode_handshake(EncryptedExtensions(tuple(ee)))


def certificate_request_extensions(config: ServerConfig) -> tuple[X.Extension, ...]:
    exts: list[X.Extension] = [X.SignatureAlgorithms(config.signature_schemes)]
    if names := config.client_ca_names():
        exts.append(X.CertificateAuthorities(names))
    return tuple(exts)


# -- HelloRetryRequest -------------------------------------------------------------------
def _send_retry(ctx: ServerContext, a: Answer13, group: int) -> ServerState:
    config = ctx.config
    hello = a.hello
    ch = hello.hello
    suite = a.suite
    ctx.transcript.replace_with_message_hash()
    ch1_hash = new_hash(suite.prf_hash, hello.raw).digest()
    cookie = hmac.digest(config.cookie_key, ch1_hash, "sha256")
    hrr = ServerHello(
        0x0303, HELLO_RETRY_REQUEST_RANDOM, ch.session_id, suite.code, 0,
        (X.SupportedVersionSelected(ProtocolVersion.TLS1_3), X.KeyShareRetry(group),
         X.Cookie(cookie)),
    )  # fmt: skip
    synthetic = bytes((HandshakeType.MESSAGE_HASH, 0, 0, len(ch1_hash))) + ch1_hash
    hrr_raw = ctx.send(hrr)
    if ch.session_id:
        ctx.port.send_ccs()
    if hello.early_data:
        # 0-RTT records after the first ClientHello are skipped (RFC 8446 §4.2.10).
        ctx.port.skip_early_data(max(config.max_early_data_size, MIN_EARLY_SKIP))
    retry = _Retry(suite, group, cookie, synthetic + hrr_raw, ch, hello.early_data,
                   a.server_name, a.alpn, a.started)  # fmt: skip
    return ExpectSecondClientHello(retry)


class ExpectSecondClientHello(ServerState):
    __slots__ = ("retry",)
    ignores_ccs = True
    tls13 = True

    def __init__(self, retry: _Retry) -> None:
        self.retry = retry

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> ServerState:
        require(self, msg_type, HandshakeType.CLIENT_HELLO)
        hello = summarize(decode_message(ClientHello, body), raw)
        ch = hello.hello
        retry = self.retry
        first = retry.first_ch
        if not hello.offers_tls13:
            raise IllegalParameter("the second ClientHello no longer offers TLS 1.3")
        check_legacy_version13(ch)
        if ch.random != first.random or ch.session_id != first.session_id:
            raise IllegalParameter("the second ClientHello changed its random or session id")
        ctx.transcript.add(raw)
        ctx.port.skip_early_data(0)
        return _client_hello(ctx, hello, retry.server_name, retry.alpn, retry.started, retry)


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
class ClientAuthFlow(Protocol):
    """Whose Certificate, CertificateVerify and Finished the states below read: the
    handshake's (:class:`Final13`) or a post-handshake authentication's."""

    @property
    def transcript(self) -> Transcript: ...

    @property
    def context(self) -> bytes:
        """The certificate_request_context the client must echo (empty in the handshake)."""

    @property
    def client_auth(self) -> ClientAuth: ...

    @property
    def keys(self) -> Keys13 | None:
        """After the handshake: the open connection's keys (data and KeyUpdate flow on)."""

    def schedule(self) -> KeySchedule: ...

    def finished_secret(self) -> bytes:
        """The client's traffic secret its Finished is keyed with."""

    def done(self, ctx: ServerContext, n: Negotiated13, client_verify: bytes) -> ServerState:
        """The client's Finished verified (``n`` with the client's chain, if it sent one)."""

    @property
    def negotiated(self) -> Negotiated13: ...


@quick_init
@dataclass(frozen=True, slots=True)
class Final13:
    """The rest of the handshake: the client's second flight, then the tickets."""

    n: Negotiated13
    ks: KeySchedule = field(repr=False)
    c_hs: bytes = field(repr=False)
    c_ap: bytes = field(repr=False)
    s_ap: bytes = field(repr=False)
    started: float
    decision: ResumptionDecision
    post_handshake_auth: bool  # the client offered it (RFC 8446 §4.6.2)

    def next_state(self, ctx: ServerContext) -> ServerState:
        flow = HandshakeFlow(self, ctx.transcript, ctx.config.client_auth)
        if self.n.resumed_by is None and ctx.config.client_auth is not ClientAuth.NONE:
            return ExpectClientCertificate(flow)
        return ExpectFinished(flow)


@quick_init
@dataclass(frozen=True, slots=True)
class HandshakeFlow:
    """The client's second flight of the handshake."""

    final: Final13
    transcript: Transcript = field(repr=False)
    client_auth: ClientAuth

    @property
    def negotiated(self) -> Negotiated13:
        return self.final.n

    @property
    def context(self) -> bytes:
        return b""

    @property
    def keys(self) -> Keys13 | None:
        return None

    def schedule(self) -> KeySchedule:
        return self.final.ks

    def finished_secret(self) -> bytes:
        return self.final.c_hs

    def done(self, ctx: ServerContext, n: Negotiated13, client_verify: bytes) -> ServerState:
        f = self.final
        ctx.port.install_keys(Direction.READ, Epoch.APPLICATION, n.suite, f.c_ap)
        res_master = f.ks.derive(b"res master", ctx.transcript.digest())
        ctx.complete(n, f.started, f.decision)
        keys = Keys13(f.ks, f.c_ap, f.s_ap, res_master, n)
        traffic = ServerTraffic13(keys, f.post_handshake_auth)
        return issue_tickets(ctx, keys, f.decision.tickets, traffic)


class ExpectEarlyData(ServerState):
    """0-RTT application data (replayable!) until EndOfEarlyData."""

    __slots__ = ("final", "remaining")
    accepts_application_data = True
    early = True
    ignores_ccs = True
    tls13 = True

    def __init__(self, final: Final13, limit: int) -> None:
        self.final = final
        self.remaining = limit

    def count(self, n: int) -> None:
        self.remaining -= n
        if self.remaining < 0:
            raise UnexpectedMessage("the client sent more early data than max_early_data_size")

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> ServerState:
        require(self, msg_type, HandshakeType.END_OF_EARLY_DATA)
        decode_message(EndOfEarlyData, body)
        ctx.transcript.add(raw)
        f = self.final
        ctx.port.install_keys(Direction.READ, Epoch.HANDSHAKE, f.n.suite, f.c_hs)
        return f.next_state(ctx)


class _ClientAuthState(ServerState):
    """A state of the client's authentication: during the handshake a ChangeCipherSpec is
    dropped; after it, application data and KeyUpdate flow on meanwhile."""

    __slots__ = ("accepts_application_data", "flow", "handshake_done", "ignores_ccs")
    tls13 = True

    def __init__(self, flow: ClientAuthFlow) -> None:
        self.flow = flow
        after = flow.keys is not None
        self.accepts_application_data = after
        self.handshake_done = after
        self.ignores_ccs = not after

    def keys13(self) -> Keys13 | None:
        return self.flow.keys

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> ServerState:
        keys = self.flow.keys
        if keys is not None and msg_type == HandshakeType.KEY_UPDATE:
            keys.peer_updated(ctx, body)
            return self
        return self.receive(ctx, msg_type, body, raw)

    def receive(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> ServerState:
        unexpected(self, msg_type)


class ExpectClientCertificate(_ClientAuthState):
    __slots__ = ()

    def receive(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> ServerState:
        require(self, msg_type, HandshakeType.CERTIFICATE)
        msg = decode_message(Certificate13, body)
        flow = self.flow
        if not hmac.compare_digest(msg.context, flow.context):
            if not flow.context:
                raise IllegalParameter("the client's Certificate has a non-empty request context")
            raise IllegalParameter("the client's Certificate answers another CertificateRequest")
        flow.transcript.add(raw)
        if not msg.entries:
            if flow.client_auth is ClientAuth.REQUIRED:
                raise CertificateRequired("the client sent no certificate, and one is required")
            return ExpectFinished(flow)
        chain = verified_client_chain(ctx.config, msg.chain)
        n = replace(flow.negotiated, peer_chain=chain, peer_chain_der=msg.chain)
        return ExpectClientCertificateVerify(flow, n)


class ExpectClientCertificateVerify(_ClientAuthState):
    __slots__ = ("n",)

    def __init__(self, flow: ClientAuthFlow, n: Negotiated13) -> None:
        super().__init__(flow)
        self.n = n  # with the client's chain

    def receive(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> ServerState:
        require(self, msg_type, HandshakeType.CERTIFICATE_VERIFY)
        cv = decode_message(CertificateVerify, body)
        transcript = self.flow.transcript
        verify_cv(cv.scheme, cv.signature, CLIENT_CV_CONTEXT, transcript.digest(),
                  ctx.config.signature_schemes, self.n.peer_chain)  # fmt: skip
        transcript.add(raw)
        return ExpectFinished(self.flow, self.n)


class ExpectFinished(_ClientAuthState):
    __slots__ = ("n",)

    def __init__(self, flow: ClientAuthFlow, n: Negotiated13 | None = None) -> None:
        super().__init__(flow)
        self.n = n if n is not None else flow.negotiated

    def receive(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> ServerState:
        require(self, msg_type, HandshakeType.FINISHED)
        flow = self.flow
        transcript = flow.transcript
        expected = flow.schedule().finished_mac(flow.finished_secret(), transcript.digest())
        verify_finished(decode_message(Finished, body).verify_data, expected)
        transcript.add(raw)
        return flow.done(ctx, self.n, expected)


class ServerTraffic13(Traffic13[ServerContext]):
    """The open connection: KeyUpdate both ways; a post-handshake CertificateRequest (see
    :mod:`.post_auth`) moves to the client-authentication states until answered."""

    __slots__ = ("post_handshake_auth",)

    def __init__(self, keys: Keys13, post_handshake_auth: bool) -> None:
        super().__init__(keys)
        self.post_handshake_auth = post_handshake_auth  # the client offered it

    def handle(self, ctx: ServerContext, msg_type: int, body: bytes, raw: bytes) -> ServerState:
        if msg_type == HandshakeType.KEY_UPDATE:
            self.keys.peer_updated(ctx, body)
            return self
        unexpected(self, msg_type)

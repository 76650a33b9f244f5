"""Client and server configuration: frozen, validated once, shared by many connections.

Time and randomness are read only through ``clock`` and ``rng`` so tests can fix them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .certs import CertifiedKey
from .crypto.key_exchange import DEFAULT_GROUPS, SUPPORTED_GROUPS
from .crypto.signatures import DEFAULT_SCHEMES, SCHEMES
from .crypto.suites import DEFAULT_SUITES, CipherSuite, parse_cipher_list
from .crypto.x509 import DEFAULT_MIN_RSA_BITS, VerifyProfile
from .enums import ClientAuth, ProtocolVersion, PskKeyExchangeMode
from .errors import ConfigError
from .observe.facts import ResumptionObserver
from .observe.guard import ObserverGuard
from .session.keyring import TicketKeyring, TicketKeySource
from .session.memo import SessionMemo
from .session.resumption.awaited import AsyncSessionStore, check_async_store
from .session.sealer import Rfc5077Sealer, TicketSealer
from .session.stats import SessionStats
from .session.store import MemoryStore, SessionStore

if TYPE_CHECKING:
    from cryptography.x509.verification import Store

    from .session.client_cache import ClientSessionCache

__all__ = ["ClientAuth", "ClientConfig", "ServerConfig"]


class _DefaultStore(MemoryStore):
    """The in-memory store a ServerConfig gets when it names none (and no async store)."""


def _as_suites(value: object) -> tuple[CipherSuite, ...]:
    """Suites given as an OpenSSL-style string, or a sequence of names and/or CipherSuites."""
    if isinstance(value, str):
        return parse_cipher_list(value)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"cipher_suites: expected a string or a list of suites, not {value!r}")
    if all(isinstance(v, CipherSuite) for v in value):
        return tuple(value)
    parts = [v.openssl_name if isinstance(v, CipherSuite) else v for v in value]
    if not all(isinstance(p, str) for p in parts):
        raise ConfigError(f"cipher_suites: expected suite names or CipherSuites, not {value!r}")
    return parse_cipher_list(":".join(parts))


def _as_alpn(protocols: Sequence[str | bytes]) -> tuple[bytes, ...]:
    out = []
    for p in protocols:
        b = p.encode("ascii") if isinstance(p, str) else bytes(p)
        if not 1 <= len(b) <= 255:
            raise ConfigError(f"ALPN protocol {p!r} must be 1..255 bytes long")
        out.append(b)
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class _CommonConfig:
    cipher_suites: tuple[CipherSuite, ...] = DEFAULT_SUITES
    groups: tuple[int, ...] = DEFAULT_GROUPS
    signature_schemes: tuple[int, ...] = DEFAULT_SCHEMES
    alpn_protocols: tuple[bytes, ...] = ()
    min_version: ProtocolVersion = ProtocolVersion.TLS1_2
    max_version: ProtocolVersion = ProtocolVersion.TLS1_3
    # RFC 7627: negotiate the extended master secret (on by default).
    extended_master_secret: bool = True
    # RFC 7366: use encrypt-then-MAC with CBC suites when the peer agrees.
    encrypt_then_mac: bool = True
    clock: Callable[[], float] = time.time
    rng: Callable[[int], bytes] = os.urandom
    # Receives NSS key log lines ("CLIENT_RANDOM <cr> <secret>"); None writes nothing.
    keylog: Callable[[str], None] | None = field(default=None, repr=False)
    # Enabled suites per version and their codes, computed once (read on every handshake).
    _suites_by_version: dict[int, tuple[tuple[CipherSuite, ...], frozenset[int]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _versions: tuple[ProtocolVersion, ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        versions = (ProtocolVersion.TLS1_3, ProtocolVersion.TLS1_2)
        enabled = tuple(v for v in versions if self.min_version <= v <= self.max_version)
        object.__setattr__(self, "_versions", enabled)
        object.__setattr__(self, "cipher_suites", _as_suites(self.cipher_suites))
        for v in (ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_3):
            if self.min_version <= v <= self.max_version:
                tls13 = v == ProtocolVersion.TLS1_3
                suites = tuple(s for s in self.cipher_suites if s.is_tls13 == tls13)
                self._suites_by_version[v] = (suites, frozenset(s.code for s in suites))
        object.__setattr__(self, "alpn_protocols", _as_alpn(self.alpn_protocols))
        if self.min_version < ProtocolVersion.TLS1_2:
            raise ConfigError("TLS 1.1 and older are not supported; the minimum is TLS 1.2")
        if self.max_version > ProtocolVersion.TLS1_3 or self.min_version > self.max_version:
            raise ConfigError(
                f"version range {self.min_version.label}..{self.max_version.label} is empty"
            )
        for g in self.groups:
            if g not in SUPPORTED_GROUPS:
                raise ConfigError(f"unsupported group {g}")
        for s in self.signature_schemes:
            if s not in SCHEMES:
                raise ConfigError(f"unsupported signature scheme 0x{s:04x}")
        if not self.suites_for(ProtocolVersion.TLS1_2) and not self.suites_for(
            ProtocolVersion.TLS1_3
        ):
            raise ConfigError("no cipher suite is enabled for the configured versions")

    def suites_for(self, version: int) -> tuple[CipherSuite, ...]:
        found = self._suites_by_version.get(version)
        return found[0] if found is not None else ()

    def suite_codes_for(self, version: int) -> frozenset[int]:
        """The codes of :meth:`suites_for`, as a set."""
        found = self._suites_by_version.get(version)
        return found[1] if found is not None else frozenset()

    @property
    def versions(self) -> tuple[ProtocolVersion, ...]:
        """Enabled versions, highest first."""
        return self._versions


def _profile(value: VerifyProfile | str, prefix: str) -> VerifyProfile:
    try:
        return VerifyProfile(value)
    except ValueError:
        choices = ", ".join(repr(p.value) for p in VerifyProfile)
        raise ConfigError(f"{prefix}verify_profile must be one of {choices}") from None


@dataclass(frozen=True, kw_only=True)
class ClientConfig(_CommonConfig):
    """How a client connects.

    By default the server's certificate is validated against the system trust store (or
    ``cafile``) and checked against the server name. ``verify=False`` turns both off: only for
    tests and debugging. ``verify_profile`` is "webpki" (strict, the default) or "openssl"
    (what OpenSSL accepts: CAs without keyUsage, self-signed CA:TRUE server certificates).
    """

    verify: bool = True
    cafile: str | Path | None = None
    check_hostname: bool = True
    verify_profile: VerifyProfile = VerifyProfile.WEBPKI
    min_rsa_bits: int = DEFAULT_MIN_RSA_BITS  # smallest RSA key accepted in a server certificate
    certificate: CertifiedKey | None = None  # presented when the server asks for one
    session_cache: ClientSessionCache | None = None
    # Offer RFC 5077 tickets (the session_ticket extension).
    session_tickets: bool = True
    # Refuse servers that do not negotiate the extended master secret (RFC 7627 §5.4).
    require_extended_master_secret: bool = False
    # TLS 1.3: offer psk_ke as well as psk_dhe_ke when resuming.
    psk_ke: bool = False
    # TLS 1.3: the PSK key exchange modes to offer, exactly (say, psk_ke alone, to see whether a
    # server accepts it: offered with psk_dhe_ke, servers pick psk_dhe_ke). None: psk_dhe_ke,
    # and psk_ke too with ``psk_ke``.
    psk_modes: tuple[PskKeyExchangeMode, ...] | None = None
    # TLS 1.3: reuse a ticket more than once (RFC 8446 C.4 says not to, so off by default).
    reuse_tickets: bool = False
    # TLS 1.3: the key shares sent in the first ClientHello (the rest only after a retry).
    key_share_groups: tuple[int, ...] | None = None
    # TLS 1.2: honour a server's HelloRequest with a new handshake (secure renegotiation,
    # RFC 5746, only; the current session is offered for resumption). False: answer every
    # HelloRequest with a warning no_renegotiation alert.
    renegotiation: bool = True
    # TLS 1.3: offer post_handshake_auth (RFC 8446 §4.6.2), so that the server may ask for the
    # certificate after the handshake. None: offer it when ``certificate`` is set.
    post_handshake_auth: bool | None = None
    _store: Store | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "verify_profile", _profile(self.verify_profile, ""))
        if not 512 <= self.min_rsa_bits <= 16384:
            raise ConfigError("min_rsa_bits must be between 512 and 16384")
        if self.psk_modes is not None:
            try:
                modes = tuple(PskKeyExchangeMode(m) for m in self.psk_modes)
            except ValueError:
                raise ConfigError("psk_modes takes psk_ke and/or psk_dhe_ke") from None
            if not modes:
                raise ConfigError("psk_modes needs at least one mode (or None for the default)")
            object.__setattr__(self, "psk_modes", modes)
        if self.verify and self.cafile is not None:
            self.trust_store()  # a missing or wrong CA file is a configuration error, now

    @property
    def trust_store_loaded(self) -> bool:
        """The CA file (or the system's store) has been read: :meth:`trust_store` is cheap."""
        return self._store is not None

    def trust_store(self) -> Store:
        if self._store is None:
            from .crypto.x509 import trust_store

            object.__setattr__(self, "_store", trust_store(self.cafile))
        assert self._store is not None
        return self._store

    @property
    def offered_psk_modes(self) -> tuple[PskKeyExchangeMode, ...]:
        """The TLS 1.3 PSK key exchange modes a ClientHello offers."""
        if self.psk_modes is not None:
            return self.psk_modes
        if self.psk_ke:
            return (PskKeyExchangeMode.psk_dhe_ke, PskKeyExchangeMode.psk_ke)
        return (PskKeyExchangeMode.psk_dhe_ke,)

    @property
    def offers_post_handshake_auth(self) -> bool:
        if self.post_handshake_auth is None:
            return self.certificate is not None
        return self.post_handshake_auth


@dataclass(frozen=True, kw_only=True)
class ServerConfig(_CommonConfig):
    """How a server answers.

    ``certificates`` may hold several chains (say, one ECDSA and one RSA). For each connection
    the server keeps those whose names match the client's SNI (all of them when none match) and
    picks the one that fits the chosen cipher suite and the client's signature algorithms.
    """

    certificates: tuple[CertifiedKey, ...] = ()
    prefer_server_ciphers: bool = True
    client_auth: ClientAuth = ClientAuth.NONE
    client_cafile: str | Path | None = None
    # Rules for client certificates: "openssl" (the default; what OpenSSL accepts, X.509
    # version 1 certificates included) or "webpki" (the CA/Browser Forum profile).
    client_verify_profile: VerifyProfile = VerifyProfile.OPENSSL
    # Resumption (RFC 5246 session IDs, RFC 5077 tickets, RFC 8446 PSK) is on by default, as in
    # OpenSSL: an in-memory session cache and an in-memory rotating ticket keyring. Pass
    # session_store=None and/or ticket_keyring=None to turn either off.
    # ``session_store`` is synchronous: the connection asks it inside receive_data (a failure
    # is a full handshake). ``async_session_store`` (async get/take/add/put/delete, say Redis
    # on asyncio) is awaited by the front end instead: the connection pauses and emits
    # SessionLookupRequired / SessionStoreUpdate events. Give one or the other.
    session_store: SessionStore | None = field(default_factory=_DefaultStore)
    async_session_store: AsyncSessionStore | None = None
    session_timeout: float = 300.0
    ticket_keyring: TicketKeySource | None = field(default_factory=TicketKeyring)
    # Seals tickets; by default the RFC 5077 sealer over ticket_keyring (see ``sealer``).
    ticket_sealer: TicketSealer | None = None
    ticket_lifetime: int = 7200  # seconds; the lifetime hint in tickets
    stats: SessionStats | None = None
    # Told every resumption decision and handshake outcome, after ``stats``.
    observers: tuple[ResumptionObserver, ...] = ()
    # TLS 1.3: tickets after a full handshake (a resumed one gets one fresh ticket, as in OpenSSL)
    num_tickets: int = 2
    stateful_tickets: bool = False  # 1.3 tickets are ids into session_store (single use)
    # Accept, and prefer, psk_ke: resumption without a fresh (EC)DHE (no forward secrecy).
    psk_ke: bool = False
    max_early_data_size: int = 0  # 0: refuse 0-RTT
    max_ticket_age_skew: float = 10.0  # seconds of tolerance on the obfuscated ticket age
    # TLS 1.2: sign with SHA-1 for a client that sends no signature_algorithms (RFC 9155 says
    # to refuse it with handshake_failure, the default).
    legacy_sha1_signatures: bool = False
    # TLS 1.2: accept renegotiation started by the client (secure renegotiation only, at most
    # a few per minute per connection: see tessera.handshake.renegotiation). Off by default, as
    # in OpenSSL 3: the client gets a warning no_renegotiation alert, and a client that keeps
    # trying is disconnected. Renegotiation the server asks for is always possible.
    client_renegotiation: bool = False
    cookie_key: bytes = field(default_factory=lambda: os.urandom(32), repr=False)
    _client_store: Store | None = field(default=None, init=False, repr=False, compare=False)
    # What seals and opens tickets: ticket_sealer, else the RFC 5077 sealer over ticket_keyring;
    # None when tickets are off. Derived, like observer_guard.
    sealer: TicketSealer | None = field(default=None, init=False, repr=False, compare=False)
    # Every fact goes through it to ``stats`` and then ``observers`` (see observe.guard).
    observer_guard: ObserverGuard = field(init=False, repr=False, compare=False)
    # Sessions the store returned under an id, decoded (bounded, none past its lifetime).
    decoded_sessions: SessionMemo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.certificates:
            raise ConfigError(
                "a server needs at least one certificate; load one with CertifiedKey.load() "
                "or generate one with tessera.certs.generate_self_signed()"
            )
        if self.session_timeout <= 0:
            raise ConfigError("session_timeout must be positive")
        object.__setattr__(
            self, "client_verify_profile", _profile(self.client_verify_profile, "client_")
        )
        if self.max_ticket_age_skew < 0:
            raise ConfigError("max_ticket_age_skew must not be negative")
        if not 0 <= self.num_tickets <= 16:
            raise ConfigError("num_tickets must be between 0 and 16")
        if self.async_session_store is not None:
            check_async_store(self.async_session_store)
            if isinstance(self.session_store, _DefaultStore):
                object.__setattr__(self, "session_store", None)
            elif self.session_store is not None:
                raise ConfigError(
                    "give session_store (synchronous) or async_session_store, not both"
                )
        if self.stateful_tickets and not self.has_session_store:
            raise ConfigError("stateful_tickets keeps tickets in the session store: set one")
        if self.client_auth is not ClientAuth.NONE and not self.client_cafile:
            # The system store holds the CAs of web servers, not of anyone's clients: trusting
            # it for client certificates would let any certificate a public CA issued in.
            raise ConfigError(
                "client_auth needs client_cafile: the CA file that issues your clients' "
                "certificates (tessera serve: --client-ca FILE)"
            )
        if self.max_early_data_size < 0:
            raise ConfigError("max_early_data_size must be zero or more")
        stats = self.stats if self.stats is not None else SessionStats()
        object.__setattr__(self, "stats", stats)
        for store in (self.session_store, self.async_session_store):
            if store is not None:
                stats.track_store(store)
        sealer = self.ticket_sealer
        if sealer is None and self.ticket_keyring is not None:
            sealer = Rfc5077Sealer(self.ticket_keyring, self.clock)
        object.__setattr__(self, "sealer", sealer)
        guard = ObserverGuard((stats, *self.observers), lambda: stats.incr("observer_errors"))
        object.__setattr__(self, "observer_guard", guard)
        object.__setattr__(self, "decoded_sessions", SessionMemo())

    @property
    def has_session_store(self) -> bool:
        return self.session_store is not None or self.async_session_store is not None

    @property
    def statistics(self) -> SessionStats:
        assert self.stats is not None
        return self.stats

    @property
    def client_trust_store_loaded(self) -> bool:
        """``client_cafile`` has been read: :meth:`client_trust_store` is cheap."""
        return self._client_store is not None

    def client_trust_store(self) -> Store:
        if self._client_store is None:
            from .crypto.x509 import trust_store

            object.__setattr__(self, "_client_store", trust_store(self.client_cafile))
        assert self._client_store is not None
        return self._client_store

    def client_ca_names(self) -> tuple[bytes, ...]:
        """DER subjects of the certificates in ``client_cafile``, sent in CertificateRequest
        so that a client with several certificates can pick one these CAs accept."""
        if not self.client_cafile:
            return ()
        from .crypto.x509 import ca_subjects

        return ca_subjects(self.client_cafile)  # read once per file, like the trust store

    def certificates_for(self, server_name: str | None) -> tuple[CertifiedKey, ...]:
        if server_name:
            matching = tuple(c for c in self.certificates if c.matches(server_name))
            if matching:
                return matching
        return self.certificates

"""The options of ``tessera serve`` and ``tessera proxy`` as dataclasses — the single source of
their options (the click commands are generated from them; a config file maps onto them the
same way) — and the pure steps from options to a :class:`~tessera.config.ServerConfig`.

::

    click -> ServeOptions / ProxyOptions -> check() -> build_server_config / build_proxy_config
          -> the runner (cli/serve.py, cli/proxy.py)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import click

from ..addresses import parse_address
from ..certs import CertifiedKey
from ..config import ClientAuth, ServerConfig
from ..crypto.x509 import VerifyProfile
from ..errors import ConfigError
from ..fleet.cli import FleetOptions
from ..io.engine import EngineSettings
from ..observe.facts import ResumptionObserver
from ..session.keyring import KeyFileFormat, TicketKeySource
from ..session.resumption.awaited import AsyncSessionStore
from ..session.store import SessionStore
from .command import FiniteFloatRange
from .options import TLSKeywords, option, tls_options
from .serving import ServeFiles

FILE = click.Path(exists=True, dir_okay=False)
SECONDS = FiniteFloatRange(min=0, min_open=True)
Given = Callable[[str], bool]  # the option was on the command line (not a default)


class SharedKeywords(TLSKeywords, total=False):
    certificates: tuple[CertifiedKey, ...]
    session_store: SessionStore | None
    async_session_store: AsyncSessionStore | None
    observers: tuple[ResumptionObserver, ...]
    session_timeout: float
    ticket_keyring: TicketKeySource | None
    keylog: Callable[[str], None] | None


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a runner loaded or made for the options (files, keyring, store, metrics)."""

    certificates: tuple[CertifiedKey, ...]
    keyring: TicketKeySource | None
    store: SessionStore | None  # asked inline (memory)
    observers: tuple[ResumptionObserver, ...] = ()
    keylog: Callable[[str], None] | None = None
    async_store: AsyncSessionStore | None = None  # awaited by the engine (Redis, metered)
    early_data: bool = True  # the fleet allows 0-RTT (its strike register is shared enough)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerOptions:
    """What ``tessera serve`` and ``tessera proxy`` share: certificates, tickets, the session
    cache, the engine's limits, metrics. ``fleet`` (--workers, --redis...) and the TLS options
    every command has (--tls1-2, --ciphers...) come from shared groups of options."""

    certs: tuple[str, ...] = option(
        (), "PEM certificate chain; repeat for several (picked by SNI, then by key type). "
        "Default: generated, self-signed ECDSA and RSA.", "--cert", multiple=True, metavar="FILE",
    )  # fmt: skip
    keys: tuple[str, ...] = option(
        (), "PEM private key per --cert.", "--key", multiple=True, metavar="FILE"
    )
    password: str | None = option(
        None, "Password of the --key file(s): pass:TEXT, env:VAR, file:PATH or stdin.",
        "--pass", metavar="SPEC",
    )  # fmt: skip
    ticket_keys: tuple[str, ...] = option(
        (), "Ticket key file (shared by a fleet); repeat it: the first encrypts, the others "
        "only decrypt. Reloaded on SIGHUP. Default: rotating keys in memory (with --redis: "
        "the fleet's).", metavar="FILE", multiple=True, type=FILE,
    )  # fmt: skip
    ticket_key_format: str = option(
        "native", "Byte layout of --ticket-keys.",
        type=click.Choice([f.value for f in KeyFileFormat]),
    )  # fmt: skip
    ticket_rotation: float = option(
        3600.0, "Seconds between ticket key rotations (generated keys only).", type=SECONDS
    )
    ticket_keep: int = option(
        2, "Old ticket keys kept for decryption only (generated keys only).",
        type=click.IntRange(min=0),
    )  # fmt: skip
    cache_size: int = option(
        20000, "Sessions kept in the in-memory cache.", type=click.IntRange(min=1)
    )
    session_timeout: float = option(
        300.0, "Seconds a cached session stays resumable.", type=SECONDS
    )
    metrics: str | None = option(
        None, "Serve Prometheus metrics at http://HOST:PORT/metrics (with --workers: one "
        "endpoint for all of them, on the supervisor).", metavar="HOST:PORT",
    )  # fmt: skip
    quiet: bool = option(False, "No line per connection.", "-q", "--quiet", is_flag=True)
    # the serving engine (tessera.io.engine)
    max_connections: int = option(
        1000, "Connections served at once (per worker). When all are taken, the one "
        "handshaking or idle longest is cut for a newcomer; if none is, new clients wait in "
        "the accept queue.", type=click.IntRange(min=1),
    )  # fmt: skip
    max_connections_per_client: int = option(
        100, "Connections one client address may hold (per worker; 0: no cap). Raise it "
        "behind a load balancer or a NAT that shares one address.", type=click.IntRange(min=0),
    )  # fmt: skip
    handshake_timeout: float = option(
        10.0, "Seconds a client may take to complete the handshake (2 s under pressure).",
        type=SECONDS,
    )  # fmt: skip
    idle_timeout: float = option(
        300.0, "Seconds a connection may pass no data either way (10 s under pressure).",
        type=SECONDS,
    )  # fmt: skip
    drain_timeout: float = option(
        30.0, "On SIGTERM: seconds open connections may take to finish.",
        type=FiniteFloatRange(min=0),
    )  # fmt: skip
    loop: str = option(
        "auto", "Event loop: uvloop when installed (auto), or asyncio's.",
        type=click.Choice(["auto", "asyncio", "uvloop"]),
    )  # fmt: skip
    # from the shared groups
    tls1_2: bool = False
    tls1_3: bool = False
    ciphers: str | None = None
    ciphersuites: str | None = None
    groups: str | None = None
    sigalgs: str | None = None
    alpn: str | None = None
    keylogfile: str | None = None
    fleet: FleetOptions = field(default_factory=FleetOptions)

    @property
    def engine(self) -> EngineSettings:
        """The serving engine's settings (raises ConfigError for impossible ones)."""
        return EngineSettings(
            max_connections=self.max_connections,
            max_per_client=self.max_connections_per_client or None,
            handshake_timeout=self.handshake_timeout,
            idle_timeout=self.idle_timeout,
            drain_timeout=self.drain_timeout,
            shutdown_timeout=min(10.0, self.drain_timeout or 10.0),
            loop=self.loop,
        )

    def files(self, client_ca: str | None = None) -> ServeFiles:
        """The files the server reads at start and again on SIGHUP (no password read yet)."""
        return ServeFiles(self.certs, self.keys, None, self.ticket_keys,
                          KeyFileFormat(self.ticket_key_format), client_ca)  # fmt: skip

    def check(self, given: Given = lambda name: False) -> None:
        """Option combinations that cannot do what they say; ConfigError says which."""
        if self.keys and not self.certs:
            raise ConfigError("--key needs --cert (the certificate the key belongs to)")
        for name in ("ticket_rotation", "ticket_keep"):
            if self.ticket_keys and given(name):
                raise ConfigError(
                    f"--{name.replace('_', '-')} applies to generated keys; keys from "
                    "--ticket-keys files are rotated by replacing the files and sending SIGHUP"
                )
        self.engine  # noqa: B018 (its checks)

    def shared_keywords(self, loaded: Loaded) -> SharedKeywords:
        """The configuration keywords of the shared options and what was loaded for them."""
        return SharedKeywords(
            certificates=loaded.certificates,
            session_store=loaded.store,
            async_session_store=loaded.async_store,
            observers=loaded.observers,
            session_timeout=self.session_timeout,
            ticket_keyring=loaded.keyring,
            keylog=loaded.keylog,
            **tls_options(
                self.tls1_2,
                self.tls1_3,
                self.ciphers,
                self.ciphersuites,
                self.groups,
                self.sigalgs,
                self.alpn,
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeOptions(ServerOptions):
    """Everything ``tessera serve`` can be told."""

    host: str = option("127.0.0.1", "Address to listen on.")
    port: int = option(
        4433, "Port to listen on (0: any free port).", "-p", "--port", type=click.IntRange(0, 65535)
    )
    save_cert: str | None = option(
        None, "Write the generated certificates to FILE (for tessera connect --ca FILE).",
        metavar="FILE", type=click.Path(dir_okay=False),
    )  # fmt: skip
    www: bool = option(
        False, "--www: answer HTTP GET with a status page; --echo: send data back (the default).",
        "--www/--echo",
    )  # fmt: skip
    no_ticket: bool = option(
        False, "No TLS 1.2 tickets; TLS 1.3 tickets become stateful (single use, in the session "
        "cache), as with openssl s_server -no_ticket.", is_flag=True,
    )  # fmt: skip
    no_cache: bool = option(False, "No server-side session cache (no session ids).", is_flag=True)
    ticket_lifetime: int = option(
        7200, "Ticket lifetime (hint) in seconds.", type=click.IntRange(min=1)
    )
    num_tickets: int = option(
        2, "TLS 1.3 tickets sent after each handshake.", type=click.IntRange(0, 16)
    )
    stateful_tickets: bool = option(
        False, "TLS 1.3 tickets are ids into the session cache (single use).", is_flag=True
    )
    max_early_data: int = option(
        0, "Accept up to N bytes of TLS 1.3 0-RTT data (0: refuse).", type=click.IntRange(min=0)
    )
    ticket_age_skew: float = option(
        10.0, "TLS 1.3: seconds a client's ticket age may differ from the server's.",
        type=FiniteFloatRange(min=0),
    )  # fmt: skip
    psk_ke: bool = option(False, "TLS 1.3: accept resumption without (EC)DHE.", is_flag=True)
    legacy_sha1: bool = option(
        False, "TLS 1.2: sign with SHA-1 for clients that send no signature_algorithms "
        "(refused by default, RFC 9155).", is_flag=True,
    )  # fmt: skip
    verify_client: str = option(
        "none", "Ask for a client certificate (needs --client-ca).",
        type=click.Choice([a.value for a in ClientAuth]),
    )  # fmt: skip
    client_ca: str | None = option(
        None, "CA file for client certificates (loaded at start and on SIGHUP).",
        metavar="FILE", type=FILE,
    )  # fmt: skip
    verify_profile: str = option(
        "openssl", "Rules for client certificates: openssl (what OpenSSL accepts, X.509 "
        "version 1 certificates included) or webpki (the CA/Browser Forum profile).",
        type=click.Choice([p.value for p in reversed(VerifyProfile)]),
    )  # fmt: skip
    client_cert_paths: tuple[str, ...] = option(
        (), "--www: requests under PREFIX need a client certificate, asked for after the "
        "request (TLS 1.2 renegotiation, TLS 1.3 post-handshake authentication); repeatable; "
        "needs --client-ca.", "--client-cert-path", multiple=True, metavar="PREFIX",
    )  # fmt: skip
    client_renegotiation: bool = option(
        False, "TLS 1.2: accept renegotiation started by the client (rate-limited; refused by "
        "default).", is_flag=True,
    )  # fmt: skip

    @property
    def mode(self) -> str:
        return "www" if self.www else "echo"

    def files(self, client_ca: str | None = None) -> ServeFiles:
        return ServerOptions.files(self, self.client_ca)

    def check(self, given: Given = lambda name: False) -> None:
        ServerOptions.check(self, given)
        if self.save_cert and self.certs:
            raise ConfigError("--save-cert writes generated certificates; --cert gives your own")
        if self.ticket_keys and self.no_ticket:
            raise ConfigError("--no-ticket turns tickets off: drop --ticket-keys")
        if self.stateful_tickets and self.no_cache:
            raise ConfigError(
                "--stateful-tickets keeps TLS 1.3 tickets in the session cache: drop --no-cache"
            )
        if self.verify_client != ClientAuth.NONE.value and self.client_ca is None:
            raise ConfigError("--verify-client needs --client-ca FILE")
        if self.client_cert_paths and (self.client_ca is None or not self.www):
            raise ConfigError("--client-cert-path needs --www and --client-ca FILE")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyOptions(ServerOptions):
    """Everything ``tessera proxy`` can be told."""

    listen: str = option("", "Address to accept TLS clients on.", metavar="HOST:PORT",
                         required=True)  # fmt: skip
    backend: str = option("", "Plaintext TCP backend to relay each client to.",
                          metavar="HOST:PORT", required=True)  # fmt: skip
    proxy_protocol: bool = option(
        False, "Send the backend a PROXY protocol v2 header first: the client's address, SNI, "
        "ALPN, TLS version and cipher (as hitch does).", is_flag=True,
    )  # fmt: skip
    backend_timeout: float = option(5.0, "Seconds to connect to the backend.", type=SECONDS)
    log_format: str = option(
        "text", "One line per connection on stdout, as text or JSON.",
        type=click.Choice(["text", "json"]),
    )  # fmt: skip

    @property
    def listen_address(self) -> tuple[str, int]:
        return _address(self.listen, "--listen")

    @property
    def backend_address(self) -> tuple[str, int]:
        return _address(self.backend, "--backend")

    def check(self, given: Given = lambda name: False) -> None:
        ServerOptions.check(self, given)
        self.listen_address  # noqa: B018 (its checks)
        self.backend_address  # noqa: B018


# The settings of ServerConfig and TicketKeyring named by their options, for the few errors the
# checks above leave to the configuration itself.
_OPTION_OF = {
    "session_timeout": "--session-timeout",
    "max_ticket_age_skew": "--ticket-age-skew",
    "num_tickets": "--num-tickets",
    "stateful_tickets": "--stateful-tickets",
    "max_early_data_size": "--max-early-data",
    "ticket_lifetime": "--ticket-lifetime",
    "rotation_interval": "--ticket-rotation",
    "client_auth": "--verify-client",
    "client_cafile": "--client-ca",
    "client_verify_profile": "--verify-profile",
    "cipher_suites": "--ciphers/--ciphersuites",
    "alpn_protocols": "--alpn",
    "signature_schemes": "--sigalgs",
    "session_store": "the session cache",
}
_SETTING = re.compile(r"\b(" + "|".join(_OPTION_OF) + r")\b")


def in_option_words(message: str) -> str:
    """A configuration error in the options' words (``--num-tickets``, not ``num_tickets``)."""
    return _SETTING.sub(lambda m: _OPTION_OF[m.group(1)], message)


def _address(value: str, option: str) -> tuple[str, int]:
    if not value:
        raise ConfigError(f"{option} HOST:PORT is needed")
    try:
        return parse_address(value, option)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def build_server_config(opts: ServeOptions, loaded: Loaded) -> ServerConfig:
    """``tessera serve``'s configuration from its options and what was loaded for them (no
    I/O; ConfigError for options that cannot go together)."""
    opts.check()
    return ServerConfig(
        **opts.shared_keywords(loaded),
        ticket_lifetime=opts.ticket_lifetime,
        num_tickets=opts.num_tickets,
        # --no-ticket: TLS 1.3 resumes with stateful tickets when there is a cache
        stateful_tickets=opts.stateful_tickets or (opts.no_ticket and not opts.no_cache),
        max_early_data_size=opts.max_early_data if loaded.early_data else 0,
        max_ticket_age_skew=opts.ticket_age_skew,
        psk_ke=opts.psk_ke,
        legacy_sha1_signatures=opts.legacy_sha1,
        client_auth=ClientAuth(opts.verify_client),
        client_cafile=opts.client_ca,
        client_verify_profile=VerifyProfile(opts.verify_profile),
        client_renegotiation=opts.client_renegotiation,
    )


def build_proxy_config(opts: ProxyOptions, loaded: Loaded) -> ServerConfig:
    """``tessera proxy``'s configuration (no I/O; its runner gives it an awaited store:
    Redis, or memory behind the async adapter)."""
    opts.check()
    return ServerConfig(**opts.shared_keywords(loaded))

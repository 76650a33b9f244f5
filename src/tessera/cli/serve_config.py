"""``tessera serve``'s options as one dataclass — the single source of its options (the click
command is generated from it; a config file maps onto it the same way) — and the pure step from
options to a :class:`~tessera.config.ServerConfig`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from ..certs import CertifiedKey
from ..config import ClientAuth, ServerConfig
from ..errors import ConfigError
from ..fleet.cli import FleetOptions
from ..io.engine import EngineSettings
from ..session.keyring import KeyFileFormat, TicketKeySource
from ..session.observer import ResumptionObserver
from ..session.store import SessionStore
from .options import tls_options


def option(default: object, help: str, *decls: str, **click_kwargs: object) -> Any:
    """A field that is also a command-line option (``--field-name`` unless ``decls``)."""
    return field(default=default, metadata={"click": (decls, help, click_kwargs)})


FILE = click.Path(exists=True, dir_okay=False)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """Everything ``tessera serve`` can be told. Fields without an option of their own come
    from shared groups: ``engine`` (--max-connections...), ``fleet`` (--workers, --redis...)
    and the TLS options every command has (--tls1_2, --ciphers...)."""

    host: str = option("127.0.0.1", "Address to listen on.")
    port: int = option(
        4433, "Port to listen on (0: any free port).", "-p", "--port", type=click.IntRange(0, 65535)
    )
    certs: tuple[str, ...] = option(
        (),
        "PEM certificate chain (repeat for ECDSA + RSA). Default: generated.",
        "--cert",
        multiple=True,
        metavar="FILE",
    )
    keys: tuple[str, ...] = option(
        (), "PEM private key per --cert.", "--key", multiple=True, metavar="FILE"
    )
    password: str | None = option(
        None,
        "Password of the --key file(s): pass:TEXT, env:VAR, file:PATH or stdin.",
        "--pass",
        metavar="SPEC",
    )
    save_cert: str | None = option(
        None,
        "Write the generated certificates to FILE (for tessera connect --ca FILE).",
        metavar="FILE",
        type=click.Path(dir_okay=False),
    )
    www: bool = option(
        False,
        "--www: answer HTTP GET with a status page; --echo: send data back (the default).",
        "--www/--echo",
    )
    no_ticket: bool = option(
        False,
        "No TLS 1.2 tickets; TLS 1.3 tickets become stateful "
        "(single use, in the session cache), as with openssl s_server "
        "-no_ticket.",
        is_flag=True,
    )
    no_cache: bool = option(False, "No server-side session cache (no session ids).", is_flag=True)
    cache_size: int = option(
        20000, "Sessions kept in the in-memory cache.", type=click.IntRange(min=1)
    )
    session_timeout: float = option(
        300.0,
        "Seconds a cached session stays resumable.",
        type=click.FloatRange(min=0, min_open=True),
    )
    ticket_keys: tuple[str, ...] = option(
        (),
        "Ticket key file (shared by a fleet); repeat "
        "it: the first encrypts, the others only decrypt. "
        "Reloaded on SIGHUP. Default: random keys in "
        "memory.",
        metavar="FILE",
        multiple=True,
        type=FILE,
    )
    ticket_key_format: str = option(
        "native",
        "Byte layout of --ticket-keys.",
        type=click.Choice([f.value for f in KeyFileFormat]),
    )
    ticket_rotation: float = option(
        3600.0,
        "Seconds between ticket key rotations (generated keys only).",
        type=click.FloatRange(min=0, min_open=True),
    )
    ticket_keep: int = option(
        2,
        "Old ticket keys kept for decryption only (generated keys only).",
        type=click.IntRange(min=0),
    )
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
        10.0,
        "TLS 1.3: seconds a client's ticket age may differ from the server's.",
        type=click.FloatRange(min=0),
    )
    psk_ke: bool = option(False, "TLS 1.3: accept resumption without (EC)DHE.", is_flag=True)
    legacy_sha1: bool = option(
        False,
        "TLS 1.2: sign with SHA-1 for clients that send no "
        "signature_algorithms (refused by default, RFC 9155).",
        is_flag=True,
    )
    verify_client: str = option(
        "none",
        "Ask for a client certificate (needs --client-ca).",
        type=click.Choice([a.value for a in ClientAuth]),
    )
    client_ca: str | None = option(
        None,
        "CA file for client certificates (loaded at start and on SIGHUP).",
        metavar="FILE",
        type=FILE,
    )
    client_cert_paths: tuple[str, ...] = option(
        (),
        "--www: requests under PREFIX need a "
        "client certificate, asked for after the "
        "request (TLS 1.2 renegotiation, TLS 1.3 "
        "post-handshake authentication); repeatable; "
        "needs --client-ca.",
        "--client-cert-path",
        multiple=True,
        metavar="PREFIX",
    )
    client_renegotiation: bool = option(
        False,
        "TLS 1.2: accept renegotiation started by the client (rate-limited; refused by default).",
        is_flag=True,
    )
    quiet: bool = option(
        False, "Do not print a line per connection.", "-q", "--quiet", is_flag=True
    )
    metrics: str | None = option(
        None,
        "Serve Prometheus metrics at http://HOST:PORT/metrics "
        "(with --workers: one endpoint for all of them, on the "
        "supervisor).",
        metavar="HOST:PORT",
    )
    # from the shared groups
    tls1_2: bool = False
    tls1_3: bool = False
    ciphers: str | None = None
    ciphersuites: str | None = None
    groups: str | None = None
    sigalgs: str | None = None
    alpn: str | None = None
    keylogfile: str | None = None
    engine: EngineSettings = field(default_factory=EngineSettings)
    fleet: FleetOptions = field(default_factory=FleetOptions)

    @property
    def mode(self) -> str:
        return "www" if self.www else "echo"

    def check(self, given: Callable[[str], bool] = lambda name: False) -> None:
        """Option combinations that cannot do what they say (``given(name)``: the option was
        on the command line, not a default)."""
        if self.keys and not self.certs:
            raise ConfigError("--key needs --cert (the certificate the key belongs to)")
        if self.save_cert and self.certs:
            raise ConfigError("--save-cert writes generated certificates; --cert gives your own")
        if self.ticket_keys and self.no_ticket:
            raise ConfigError("--no-ticket turns tickets off: drop --ticket-keys")
        for name in ("ticket_rotation", "ticket_keep"):
            if self.ticket_keys and given(name):
                raise ConfigError(
                    f"--{name.replace('_', '-')} applies to generated keys; keys from "
                    "--ticket-keys files are rotated by replacing the files and sending SIGHUP"
                )
        if self.verify_client != ClientAuth.NONE.value and self.client_ca is None:
            raise ConfigError("--verify-client needs --client-ca FILE")
        if self.client_cert_paths and (self.client_ca is None or not self.www):
            raise ConfigError("--client-cert-path needs --www and --client-ca FILE")


def click_options(cls: type[Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator adding one click option per field of ``cls`` that declares one."""

    def add(f: Callable[..., Any]) -> Callable[..., Any]:
        for fld in reversed(dataclasses.fields(cls)):
            spec = fld.metadata.get("click")
            if spec is None:
                continue
            decls, help_text, kwargs = spec
            names: Sequence[str] = decls or ("--" + fld.name.replace("_", "-"),)
            show = not kwargs.get("is_flag") and fld.default not in (None, (), False)
            f = click.option(
                *names, fld.name, default=fld.default, help=help_text, show_default=show, **kwargs
            )(f)
        return f

    return add


def build_server_config(
    opts: ServeOptions,
    certificates: tuple[CertifiedKey, ...],
    *,
    keyring: TicketKeySource | None,
    store: SessionStore | None,
    observers: tuple[ResumptionObserver, ...] = (),
    keylog: Callable[[str], None] | None = None,
) -> ServerConfig:
    """The server's configuration from its options and what was loaded for them (no I/O)."""
    opts.check()
    return ServerConfig(
        certificates=certificates,
        session_store=store,
        observers=observers,
        session_timeout=opts.session_timeout,
        ticket_keyring=keyring,
        ticket_lifetime=opts.ticket_lifetime,
        num_tickets=opts.num_tickets,
        # --no-ticket: TLS 1.3 resumes with stateful tickets when there is a cache
        stateful_tickets=opts.stateful_tickets or (opts.no_ticket and not opts.no_cache),
        max_early_data_size=opts.max_early_data,
        max_ticket_age_skew=opts.ticket_age_skew,
        psk_ke=opts.psk_ke,
        legacy_sha1_signatures=opts.legacy_sha1,
        client_auth=ClientAuth(opts.verify_client),
        client_cafile=opts.client_ca,
        client_renegotiation=opts.client_renegotiation,
        keylog=keylog,
        **tls_options(
            opts.tls1_2,
            opts.tls1_3,
            opts.ciphers,
            opts.ciphersuites,
            opts.groups,
            opts.sigalgs,
            opts.alpn,
        ),
    )

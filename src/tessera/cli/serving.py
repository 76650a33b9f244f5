"""What ``tessera serve`` and ``tessera proxy`` load from files (and again on SIGHUP), what they
say at start and at the end, and serve's per-connection lines. No protocol logic lives here."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import rsa
from rich.table import Table

from ..addresses import host_port
from ..certs import CertifiedKey, generate_self_signed
from ..config import ServerConfig
from ..errors import ConfigError
from ..fleet import cli as fleet_cli
from ..fleet.hygiene import warn_if_exposed
from ..observe import logs
from ..session.keyring import KeyFileFormat, TicketKey, TicketKeyring, read_key_file
from ..session.stats import SessionStats


@dataclass(frozen=True, slots=True)
class ServeFiles:
    """The files a running server reads again on SIGHUP."""

    certs: tuple[str, ...]
    keys: tuple[str, ...]
    password: bytes | None = dataclasses.field(repr=False)
    ticket_keys: tuple[str, ...]
    ticket_key_format: KeyFileFormat
    client_ca: str | None


def load_certificates(files: ServeFiles) -> tuple[CertifiedKey, ...]:
    """The --cert/--key pairs; with no --cert, new self-signed ECDSA and RSA certificates."""
    if not files.certs:
        if files.keys:
            raise ConfigError("--key needs --cert (the certificate the key belongs to)")
        # Both kinds, so that every cipher suite works.
        return (generate_self_signed("ec"), generate_self_signed("rsa"))
    if files.keys and len(files.keys) != len(files.certs):
        raise ConfigError("give one --key per --cert (or none if keys are in the cert files)")
    for path in files.keys or files.certs:
        warn_if_exposed(path, "private key file")
    try:
        return tuple(
            CertifiedKey.load(c, files.keys[i] if files.keys else None, files.password)
            for i, c in enumerate(files.certs)
        )
    except ConfigError as e:
        if files.password is None and "encrypted" in str(e):
            raise ConfigError(f"{e}; give its password with --pass") from None
        if "Incorrect password" in str(e):
            raise ConfigError(f"{e}; check --pass") from None
        if not files.keys and "expected a PEM private key" in str(e):
            raise ConfigError(f"{e}; give the key file with --key FILE") from None
        raise


def load_ticket_keys(files: ServeFiles) -> list[TicketKey]:
    """The keys of every --ticket-keys file in order: the first file's key encrypts, the
    others only decrypt (nginx's ssl_session_ticket_key convention)."""
    keys: list[TicketKey] = []
    for path in files.ticket_keys:
        warn_if_exposed(path, "ticket key file")
        try:
            keys.extend(read_key_file(path, files.ticket_key_format, time.time()))
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the ticket key file ({e.strerror})") from None
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        raise ConfigError("two --ticket-keys files hold a key of the same name")
    return keys


def file_keyring(files: ServeFiles) -> TicketKeyring:
    keys = load_ticket_keys(files)
    return TicketKeyring(keys, keep=len(keys) - 1, generate=False)


def check_client_ca(path: str | None) -> None:
    """Load --client-ca now, so that a wrong file stops the start (not every handshake)."""
    if path is None:
        return
    from ..crypto.x509 import ca_subjects, trust_store

    trust_store(path)
    ca_subjects(path)


def describe(cert: CertifiedKey) -> str:
    if isinstance(cert.key, rsa.RSAPrivateKey):
        return f"RSA-{cert.key.key_size}"
    if cert.kind == "ec":
        return f"ECDSA {cert.curve}"
    return cert.kind


def save_certificates(path: str, certificates: tuple[CertifiedKey, ...]) -> None:
    """Write the generated certificates (public) for ``tessera connect --ca FILE``."""
    Path(path).write_bytes(b"".join(c.to_pem()[0] for c in certificates))


# -- what the banner says ------------------------------------------------------------------


def banner(config: ServerConfig, files: ServeFiles, mode: str, address: tuple[str, int],
           rotation: float, keep: int, saved_to: str | None) -> list[str]:  # fmt: skip
    from ..enums import ProtocolVersion

    versions = [v for v in config.versions if config.suites_for(v)]
    lines = [
        f"tessera serve: listening on {host_port(address)} "
        f"({', '.join(v.label for v in versions)}, {mode})",
    ]
    certs = ", ".join(describe(c) for c in config.certificates)
    if files.certs:
        lines.append(f"certificates: {certs} (from {', '.join(files.certs)})")
    elif saved_to:
        lines.append(f"certificates: {certs} (self-signed, generated; saved to {saved_to})")
    else:
        lines.append(
            f"certificates: {certs} (self-signed, generated; --save-cert FILE writes them for "
            "tessera connect --ca FILE)"
        )
    tls12, tls13 = ProtocolVersion.TLS1_2 in versions, ProtocolVersion.TLS1_3 in versions
    on = resumption_parts(config, tls12, tls13)
    lines.append("resumption: " + ("; ".join(on) if on else "off"))
    keyring = config.ticket_keyring
    if (
        keyring is not None
        and not fleet_cli.keyring_is_fleet(keyring)
        and (tls12 or (tls13 and not config.stateful_tickets))
    ):  # (a fleet's keys are described by its own lines)
        if files.ticket_keys:
            names = [Path(p).name for p in files.ticket_keys]
            roles = [f"{names[0]} (encrypts)", *(f"{n} (decrypts only)" for n in names[1:])]
            lines.append(f"ticket keys from {', '.join(roles)}; not rotated, reloaded on SIGHUP")
        else:
            lines.append(
                f"ticket keys: in memory only, a new one every {rotation:g} s, "
                f"{keep} older kept for decryption"
            )
    if config.max_early_data_size and tls13:
        lines.append(f"0-RTT: up to {config.max_early_data_size} bytes (replayable)")
    lines.append("signals: HUP reloads certificate, ticket key and client CA files; INT, TERM stop")
    return lines


def resumption_parts(config: ServerConfig, tls12: bool, tls13: bool) -> list[str]:
    """What resumes, per mechanism, in words."""
    on = []
    store = stores_of(config)
    if store is not None and tls12:
        where = fleet_cli.store_words(store) or f"cache of {_size(store)} sessions"
        on.append(f"TLS 1.2 session ids ({where}, {config.session_timeout:g} s)")
    if config.ticket_keyring is not None and tls12:
        on.append("TLS 1.2 tickets")
    if tls13 and config.num_tickets:
        if config.stateful_tickets and store is not None:
            kept = fleet_cli.store_words(store) or "kept in the session cache"
            on.append(f"TLS 1.3 tickets ({config.num_tickets} per handshake, stateful: "
                      f"single use, {kept})")  # fmt: skip
        elif not config.stateful_tickets and config.ticket_keyring is not None:
            on.append(f"TLS 1.3 tickets ({config.num_tickets} per handshake, stateless)")
    return on


def stores_of(config: ServerConfig) -> object | None:
    """The session store, inline or awaited (Redis, metered memory) — not ``or``: an empty
    memory store is falsy."""
    return config.async_session_store if config.session_store is None else config.session_store


def _size(store: object) -> str:
    store = getattr(store, "sync", store)  # a memory store behind the async adapter
    size = getattr(getattr(store, "inner", store), "max_entries", None)  # (metered)
    return str(size) if size is not None else "?"


# -- per-connection log lines: the one renderer is tessera.observe.logs ----------------------


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def peer_text(peer: object) -> str:
    return logs.peer_text(logs.peer_address(peer))


# -- SIGHUP ----------------------------------------------------------------------------------


class Reloadable(Protocol):
    """A server whose configuration can be swapped (TLSServer, tessera proxy's server)."""

    config: ServerConfig


def reload(server: Reloadable, files: ServeFiles, log: Callable[[str], None]) -> None:
    """Read the files again and serve new connections with them; connections already open
    keep theirs. On any error the running configuration stays as it was."""
    old = server.config
    try:
        certificates = load_certificates(files) if files.certs else old.certificates
        keys = load_ticket_keys(files) if files.ticket_keys else None
        check_client_ca(files.client_ca)
        new = dataclasses.replace(old, certificates=certificates)  # same statistics and store
    except (ConfigError, OSError, ValueError) as e:
        log(f"{timestamp()} reload failed, still serving the previous files: {e}")
        return
    keyring = old.ticket_keyring
    if keys is not None and isinstance(keyring, TicketKeyring):
        keyring.install(keys)  # the whole list: the first encrypts, the others decrypt
    server.config = new
    parts = [f"{len(certificates)} certificate(s)"]
    if keys is not None:
        parts.append(f"{len(keys)} ticket key(s)")
    if files.client_ca:
        parts.append(f"client CAs from {files.client_ca}")
    log(f"{timestamp()} reloaded: {', '.join(parts)}")


# -- the end ---------------------------------------------------------------------------------


def final_statistics(stats: SessionStats) -> Table:
    """A table of the counters and the fallback reasons (a rich renderable)."""
    table = Table(title="tessera serve: final statistics", title_justify="left")
    table.add_column("counter")
    table.add_column("value", justify="right")
    for name, value in stats.snapshot().items():
        table.add_row(name, str(value), style=None if value else "dim")
    for reason, count in sorted(stats.fallback_reasons().items()):
        table.add_row(f"fallback: {reason}", str(count), style="yellow")
    return table

"""Certificate chains: loading, and validating a peer's chain with ``cryptography``'s verifier."""

from __future__ import annotations

import datetime
import functools
import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from ..enums import AlertDescription
from ..errors import BadCertificate, ConfigError


def load_pem_certificates(path: str | Path) -> list[x509.Certificate]:
    data = Path(path).read_bytes()
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise ConfigError(f"{path}: not a PEM certificate file ({e})") from None
    if not certs:
        raise ConfigError(f"{path}: contains no certificate")
    return certs


@functools.lru_cache(maxsize=8)
def _ca_subjects(path: str) -> tuple[bytes, ...]:
    names: list[bytes] = []
    size = 0
    for cert in load_pem_certificates(path):
        dn = cert.subject.public_bytes()
        if dn in names:
            continue
        size += 2 + len(dn)
        if size > 0xFFFF - 64:  # the list must fit its 2-byte length (and the message)
            break
        names.append(dn)
    return tuple(names)


def ca_subjects(path: str | Path) -> tuple[bytes, ...]:
    """The distinct DER subject names of the certificates in a PEM file (for the
    certificate_authorities a server sends when it asks for a client certificate)."""
    return _ca_subjects(str(Path(path).resolve()))


@functools.lru_cache(maxsize=8)
def _store_for(path: str) -> Store:
    return Store(load_pem_certificates(path))


def system_trust_store() -> Store:
    """The system's CA bundle (as OpenSSL finds it)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return _store_for(candidate)
    raise ConfigError(
        "no system CA bundle found; pass a CA file (--ca FILE) or install ca-certificates"
    )


def trust_store(cafile: str | Path | None) -> Store:
    return system_trust_store() if cafile is None else _store_for(str(Path(cafile).resolve()))


def parse_chain(chain_der: tuple[bytes, ...]) -> list[x509.Certificate]:
    try:
        return [x509.load_der_x509_certificate(der) for der in chain_der]
    except ValueError as e:
        raise BadCertificate(f"the peer's certificate does not parse: {e}") from None


def _alert_for(message: str) -> AlertDescription:
    m = message.lower()
    if "expired" in m or "not valid at" in m or "validity" in m:
        return AlertDescription.certificate_expired
    if "issuer" in m or "candidates exhausted" in m or "no valid chain" in m:
        return AlertDescription.unknown_ca
    return AlertDescription.bad_certificate


def verify_server_chain(
    chain: list[x509.Certificate],
    server_name: str | None,
    store: Store,
    now: datetime.datetime,
) -> None:
    """Validate ``chain`` (leaf first) for ``server_name``; raise BadCertificate with the alert."""
    if not chain:
        raise BadCertificate("the server sent no certificate")
    if server_name is None:
        raise ConfigError(
            "certificate validation needs a server name to check; pass one or turn checking off"
        )
    try:
        subject: DNSName | IPAddress = IPAddress(ipaddress.ip_address(server_name))
    except ValueError:
        subject = DNSName(server_name)
    verifier = PolicyBuilder().store(store).time(now).build_server_verifier(subject)
    try:
        verifier.verify(chain[0], chain[1:])
    except VerificationError as e:
        raise BadCertificate(
            f"the server's certificate for {server_name!r} failed validation: {e}",
            alert=_alert_for(str(e)),
        ) from None


def verify_client_chain(
    chain: list[x509.Certificate], store: Store, now: datetime.datetime
) -> None:
    if not chain:
        raise BadCertificate("the client sent no certificate")
    verifier = PolicyBuilder().store(store).time(now).build_client_verifier()
    try:
        verifier.verify(chain[0], chain[1:])
    except VerificationError as e:
        raise BadCertificate(
            f"the client's certificate failed validation: {e}", alert=_alert_for(str(e))
        ) from None


def utc_clock(clock: Callable[[], float]) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(clock(), tz=datetime.UTC)


def describe_name(name: x509.Name) -> str:
    return name.rfc4514_string()

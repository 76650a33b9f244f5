"""Certificates and keys a server or client presents, and generated ones for testing."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .crypto.signatures import PrivateKey, key_curve, key_kind
from .errors import ConfigError
from .files import read_bounded
from .messages import Certificate12, encode_handshake


@dataclass(frozen=True, slots=True)
class CertifiedKey:
    """A certificate chain (leaf first) and the leaf's private key."""

    chain: tuple[x509.Certificate, ...]
    key: PrivateKey
    chain_der: tuple[bytes, ...] = field(init=False, repr=False)
    names: frozenset[str] = field(init=False, repr=False)
    kind: str = field(init=False, repr=False)  # "rsa", "ec", "ed25519" or "ed448"
    curve: str | None = field(init=False, repr=False)
    certificate12: bytes = field(init=False, repr=False)  # the encoded TLS 1.2 Certificate

    def __post_init__(self) -> None:
        if not self.chain:
            raise ConfigError("a certificate chain needs at least the leaf certificate")
        der = tuple(c.public_bytes(serialization.Encoding.DER) for c in self.chain)
        object.__setattr__(self, "chain_der", der)
        object.__setattr__(self, "names", frozenset(self._leaf_names()))
        object.__setattr__(self, "kind", key_kind(self.key))
        object.__setattr__(self, "curve", key_curve(self.key))
        object.__setattr__(self, "certificate12", encode_handshake(Certificate12(der)))
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if self.chain[0].public_key().public_bytes(*spki) != self.key.public_key().public_bytes(
            *spki
        ):
            raise ConfigError("the private key does not match the leaf certificate")

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    def _leaf_names(self) -> set[str]:
        """DNS names and IP addresses the leaf is valid for (lower case)."""
        out: set[str] = set()
        try:
            san = self.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            out.update(n.lower() for n in san.get_values_for_type(x509.DNSName))
            out.update(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
        except x509.ExtensionNotFound:
            pass
        for attr in self.leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            out.add(str(attr.value).lower())
        return out

    def matches(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for name in self.names:
            if name == host:
                return True
            if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
                return True
        return False

    @classmethod
    def load(
        cls,
        cert_file: str | Path,
        key_file: str | Path | None = None,
        password: bytes | None = None,
    ) -> CertifiedKey:
        """Load a PEM chain and a PEM private key (which may be in the certificate file)."""
        cert_data = read_bounded(cert_file, "certificate file")
        try:
            chain = x509.load_pem_x509_certificates(cert_data)
        except ValueError as e:
            raise ConfigError(f"{cert_file}: {_not_pem(cert_data, 'CERTIFICATE', e)}") from None
        key_data = read_bounded(key_file, "private key file") if key_file else cert_data
        try:
            key = serialization.load_pem_private_key(key_data, password)
        except (ValueError, TypeError) as e:
            raise ConfigError(
                f"{key_file or cert_file}: {_not_pem(key_data, 'PRIVATE KEY', e)}"
            ) from None
        if not isinstance(
            key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise ConfigError(f"{key_file}: unsupported key type {type(key).__name__}")
        try:
            return cls(tuple(chain), key)
        except ConfigError as e:
            if key_file is None:
                raise
            raise ConfigError(f"{key_file}: {e} in {cert_file}") from None

    def to_pem(self) -> tuple[bytes, bytes]:
        """(certificate chain PEM, private key PEM) for handing to other programs."""
        certs = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)
        key = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return certs, key


def _not_pem(data: bytes, wanted: str, error: Exception) -> str:
    """Why a file gives no PEM ``wanted`` ("CERTIFICATE" or "PRIVATE KEY"), in words."""
    noun = "private key" if wanted == "PRIVATE KEY" else "certificate"
    if wanted.encode() + b"-----" in data:  # there, but it does not load
        return f"cannot load the {noun} ({error})"
    if b"PRIVATE KEY-----" in data:
        found = "a private key"
    elif b"CERTIFICATE-----" in data:
        found = "a certificate"
    elif b"-----BEGIN" in data:
        found = "PEM blocks of another kind"
    elif data[:1] == b"\x30":
        found = "DER (convert it to PEM with openssl x509 or openssl pkey)"
    else:
        found = "no PEM block"
    return f"expected a PEM {noun}, found {found}"


def new_private_key(kind: str) -> PrivateKey:
    if kind in ("ec", "ecdsa", "p256"):
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind in ("rsa", "rsa2048"):
        return rsa.generate_private_key(65537, 2048)
    if kind == "rsa3072":
        return rsa.generate_private_key(65537, 3072)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ConfigError(f"unknown key type {kind!r}; use ec, p384, rsa, rsa3072 or ed25519")


def _hash_for(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for n in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            entries.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(entries)


def _builder(subject: str, issuer: x509.Name | None, key: PrivateKey,
             days: int) -> x509.CertificateBuilder:  # fmt: skip
    """A certificate for ``key`` named ``subject``, issued by ``issuer`` (None: self-issued)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def generate_ca(
    kind: str = "ec", common_name: str = "tessera test CA", days: int = 30
) -> CertifiedKey:
    key = new_private_key(kind)
    cert = (
        _builder(common_name, None, key, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, _hash_for(key))
    )
    return CertifiedKey((cert,), key)


def issue_leaf(
    ca: CertifiedKey,
    names: Sequence[str] = ("localhost", "127.0.0.1"),
    kind: str = "ec",
    days: int = 30,
    client: bool = False,
) -> CertifiedKey:
    """A leaf certificate for ``names`` signed by ``ca``; the chain includes the CA."""
    key = new_private_key(kind)
    cn = names[0] if names else "tessera client"
    eku = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        _builder(cn, ca.leaf.subject, key, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(_san(names), critical=False)
    cert = builder.sign(ca.key, _hash_for(ca.key))
    return CertifiedKey((cert, ca.leaf), key)


def generate_self_signed(
    kind: str = "ec", names: Sequence[str] = ("localhost", "127.0.0.1"), days: int = 30
) -> CertifiedKey:
    """A self-signed server certificate (for ``tessera serve`` with no certificate given)."""
    key = new_private_key(kind)
    cert = (
        _builder(names[0] if names else "tessera", None, key, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
            critical=False,
        )
        .sign(key, _hash_for(key))
    )
    return CertifiedKey((cert,), key)

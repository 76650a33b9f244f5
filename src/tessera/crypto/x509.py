"""Certificate chains: loading trust stores, and validating a peer's chain with ``cryptography``'s
verifier under one of two profiles (its extension policies; no chain logic of our own).

- ``webpki`` (:attr:`VerifyProfile.WEBPKI`): the CA/Browser Forum profile, cryptography's
  defaults: what browsers require of public servers. The default for server certificates.
- ``openssl`` (:attr:`VerifyProfile.OPENSSL`): what OpenSSL, and so curl, CPython's ``ssl`` and
  Node.js, accept: a CA without keyUsage (as ``openssl req -x509`` makes one), a self-signed
  ``CA:TRUE`` certificate trusted as its own CA, a client certificate with only a subject CN and
  no subjectAltName, no authorityKeyIdentifier. Extensions that are present must still allow
  the use: basicConstraints ``CA:TRUE`` on every issuer, keyUsage (if any) with keyCertSign on a
  CA and a TLS usage on the leaf, extendedKeyUsage (if any) naming the purpose. The default for
  client certificates.

A failure names the rule in plain words (the extension's name, not its OID) and the option that
relaxes it, if one does.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import logging
import re
import ssl
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import DNSName, IPAddress
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from ..enums import AlertDescription
from ..errors import BadCertificate, ConfigError
from ..files import MAX_CA_FILE, read_bounded

log = logging.getLogger("tessera")

DEFAULT_MIN_RSA_BITS = 2048  # as a Debian OpenSSL (security level 2) and the Web PKI require


class VerifyProfile(Enum):
    """Which certificates a verifier accepts (see the module docstring)."""

    WEBPKI = "webpki"
    OPENSSL = "openssl"


# -- loading certificates ----------------------------------------------------------------------

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)
_load_lock = threading.Lock()


def _load_one(pem: bytes) -> x509.Certificate:
    # Some roots in system bundles have serial number 0, which cryptography warns about (and
    # will refuse in a future release). They are trust anchors, used as they are: no warning.
    with _load_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return x509.load_pem_x509_certificate(pem)


def load_pem_certificates(
    path: str | Path, *, skip_unreadable: bool = False
) -> list[x509.Certificate]:
    """The certificates in a PEM file. ``skip_unreadable`` (for system bundles) leaves out
    certificates this cryptography cannot load instead of refusing the whole file."""
    data = read_bounded(path, "certificate file", MAX_CA_FILE)
    certs: list[x509.Certificate] = []
    for i, block in enumerate(_PEM_CERTIFICATE.findall(data), 1):
        try:
            certs.append(_load_one(block))
        except ValueError as e:
            if not skip_unreadable:
                raise ConfigError(f"{path}: certificate #{i} does not load ({e})") from None
            log.debug("%s: skipped certificate #%d (%s)", path, i, e)
    if not certs:
        hint = ""
        if b"PRIVATE KEY-----" in data:
            hint = " (it holds a private key: give the certificate file instead)"
        raise ConfigError(f"{path}: contains no PEM certificate{hint}")
    return certs


def _version(path: str | Path) -> tuple[str, int, int]:
    """A cache key that changes when the file does (so a reload sees the new contents)."""
    resolved = Path(path).resolve()
    try:
        st = resolved.stat()
    except OSError:
        return str(resolved), 0, 0  # loading will say what is wrong
    return str(resolved), st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=8)
def _ca_subjects(version: tuple[str, int, int]) -> tuple[bytes, ...]:
    names: list[bytes] = []
    size = 0
    for cert in load_pem_certificates(version[0]):
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
    return _ca_subjects(_version(path))


@functools.lru_cache(maxsize=8)
def _store_for(version: tuple[str, int, int], system: bool = False) -> Store:
    certs = load_pem_certificates(version[0], skip_unreadable=system)
    store = Store(certs)
    with _load_lock:
        _anchor_sets[id(store)] = (store, tuple(certs))
        while len(_anchor_sets) > _MAX_ANCHOR_SETS:
            del _anchor_sets[next(iter(_anchor_sets))]
    return store


# The certificates of each store made here (a Store does not list them), for the version 1
# leaves the openssl profile accepts: their issuer may be an anchor. Keyed by id, the store kept
# beside them so that a reused id is told apart; the oldest go first.
_MAX_ANCHOR_SETS = 32
_anchor_sets: dict[int, tuple[Store, tuple[x509.Certificate, ...]]] = {}


def _anchors(store: Store) -> tuple[x509.Certificate, ...]:
    with _load_lock:
        entry = _anchor_sets.get(id(store))
    return entry[1] if entry is not None and entry[0] is store else ()


def system_bundle_path() -> str:
    """The system's CA bundle (as OpenSSL finds it, ``SSL_CERT_FILE`` included)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return candidate
    raise ConfigError(
        "no system CA bundle found; pass a CA file (--ca FILE) or install ca-certificates"
    )


def system_trust_store() -> Store:
    return _store_for(_version(system_bundle_path()), system=True)


def trust_store(cafile: str | Path | None) -> Store:
    """The CAs in ``cafile`` (read again when the file changes), or the system's."""
    return system_trust_store() if cafile is None else _store_for(_version(cafile))


def trust_source(cafile: str | Path | None) -> str:
    """Where trusted CAs come from, in words for error messages."""
    if cafile is not None:
        return f"the CA file {cafile}"
    try:
        return f"the system CA bundle ({system_bundle_path()})"
    except ConfigError:
        return "the system CA bundle"


# -- parsing a peer's chain ----------------------------------------------------------------------


def parse_chain(chain_der: tuple[bytes, ...]) -> list[x509.Certificate]:
    """The peer's certificates, their subject and issuer names decoded (cryptography decodes
    them lazily: a name that does not decode must be bad_certificate here, not an error later
    while explaining a verification failure); the leaf's public key is checked to be one TLS
    can use."""
    try:
        chain = [x509.load_der_x509_certificate(der) for der in chain_der]
        for cert in chain:
            cert.subject, cert.issuer  # noqa: B018  (decoded now, or ValueError)
    except (ValueError, x509.InvalidVersion) as e:
        raise BadCertificate(f"the peer's certificate does not parse: {e}") from None
    if chain:
        leaf_public_key(chain[0])
    return chain


TLSPublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


def leaf_public_key(cert: x509.Certificate) -> TLSPublicKey:
    """The certificate's key if TLS can sign with it: RSA, ECDSA, Ed25519 or Ed448.

    An unknown or unusable key type (DSA, X25519, ...) is unsupported_certificate; a key that
    does not decode (an EC point off the curve) is bad_certificate."""
    try:
        key = cert.public_key()
    except UnsupportedAlgorithm as e:
        raise BadCertificate(
            f"the peer's certificate has a key of an unsupported type ({e})",
            alert=AlertDescription.unsupported_certificate,
        ) from None
    except ValueError as e:
        raise BadCertificate(f"the peer's certificate key is invalid ({e})") from None
    if not isinstance(key, TLSPublicKey):
        raise BadCertificate(
            f"the peer's certificate has a {type(key).__name__.removeprefix('_')} key, which "
            "cannot sign a TLS handshake (RSA, ECDSA, Ed25519 or Ed448 can)",
            alert=AlertDescription.unsupported_certificate,
        )
    return key


# -- extension policies ------------------------------------------------------------------------

_PURPOSE = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}
_Validator = Callable[[Policy, x509.Certificate, x509.ExtensionType | None], None]


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = oid._name
    return oid.dotted_string if name == "Unknown OID" else name


def _who(cert: x509.Certificate) -> str:
    return f"certificate {cert.subject.rfc4514_string()!r}"


def _eku_allows(purpose: str) -> _Validator:
    wanted = _PURPOSE[purpose]

    def check(policy: Policy, cert: x509.Certificate, ext: x509.ExtensionType | None) -> None:
        if not isinstance(ext, x509.ExtendedKeyUsage):
            return
        if wanted in ext or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in ext:
            return
        listed = ", ".join(_oid_name(o) for o in ext) or "nothing"
        raise ValueError(
            f"{_who(cert)}: its extendedKeyUsage allows {listed}, not {_oid_name(wanted)}"
        )

    return check


def _ca_basic_constraints(policy: Policy, cert: x509.Certificate,
                          ext: x509.ExtensionType | None) -> None:  # fmt: skip
    if isinstance(ext, x509.BasicConstraints) and not ext.ca:
        raise ValueError(f"{_who(cert)} signs another certificate but says CA:FALSE")


def _ca_key_usage(policy: Policy, cert: x509.Certificate,
                  ext: x509.ExtensionType | None) -> None:  # fmt: skip
    if isinstance(ext, x509.KeyUsage) and not ext.key_cert_sign:
        raise ValueError(
            f"{_who(cert)} signs another certificate but its keyUsage lacks keyCertSign"
        )


def _leaf_key_usage(policy: Policy, cert: x509.Certificate,
                    ext: x509.ExtensionType | None) -> None:  # fmt: skip
    if not isinstance(ext, x509.KeyUsage):
        return
    if not (ext.digital_signature or ext.key_encipherment or ext.key_agreement):
        raise ValueError(
            f"{_who(cert)}: its keyUsage allows neither digitalSignature, keyEncipherment "
            "nor keyAgreement"
        )


@functools.cache
def _policies(profile: VerifyProfile, purpose: str,
              names_checked: bool) -> tuple[ExtensionPolicy, ExtensionPolicy]:  # fmt: skip
    """(CA policy, leaf policy) for a profile, a purpose and whether the verifier checks a
    name (a server verifier requires subjectAltName; chain-only checks use a client verifier)."""
    agnostic = Criticality.AGNOSTIC
    eku = _eku_allows(purpose)
    if profile is VerifyProfile.WEBPKI:
        ca = ExtensionPolicy.webpki_defaults_ca().may_be_present(
            x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, eku
        )
        ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, eku
        )
        if not names_checked and purpose == "server":
            ee = ee.may_be_present(x509.SubjectAlternativeName, agnostic, None)
        return ca, ee
    ca = (
        ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, agnostic, _ca_basic_constraints)
        .may_be_present(x509.KeyUsage, agnostic, _ca_key_usage)
        .may_be_present(x509.ExtendedKeyUsage, agnostic, eku)
    )
    ee = (
        ExtensionPolicy.permit_all()
        .may_be_present(x509.KeyUsage, agnostic, _leaf_key_usage)
        .may_be_present(x509.ExtendedKeyUsage, agnostic, eku)
    )
    if names_checked:
        ee = ee.require_present(x509.SubjectAlternativeName, agnostic, None)
    return ca, ee


# -- verifying --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hints:
    """How the user fixes a failure on this side (CLI option and library setting)."""

    peer: str  # "server" or "client"
    trust: str
    skip: str | None
    profile_option: str | None


_SERVER_HINTS = _Hints(
    "server",
    "trust its CA with --ca FILE (ClientConfig(cafile=FILE))",
    "--insecure (ClientConfig(verify=False)) skips validation, for testing only",
    "--verify-profile openssl (ClientConfig(verify_profile='openssl'))",
)
_CLIENT_HINTS = _Hints(
    "client",
    "trust its CA with --client-ca FILE (ServerConfig(client_cafile=FILE))",
    None,
    "--verify-profile openssl (ServerConfig(client_verify_profile='openssl'))",
)


def _subject(name: DNSName | IPAddress | None) -> str:
    return "" if name is None else str(name.value)


def _verify(chain: list[x509.Certificate], store: Store, now: datetime.datetime,
            profile: VerifyProfile, purpose: str,
            subject: DNSName | IPAddress | None) -> None:  # fmt: skip
    if _is_v1(chain[0]) and profile is VerifyProfile.OPENSSL and purpose == "client":
        _verify_v1_leaf(chain, store, now, purpose)
        return
    ca, ee = _policies(profile, purpose, subject is not None)
    builder = PolicyBuilder().store(store).time(now).extension_policies(ca_policy=ca, ee_policy=ee)
    if subject is not None:
        builder.build_server_verifier(subject).verify(chain[0], chain[1:])
    else:
        builder.build_client_verifier().verify(chain[0], chain[1:])


# -- X.509 version 1 client certificates under the openssl profile ---------------------------
# cryptography's verifier takes version 3 certificates only. OpenSSL also takes a version 1
# certificate (what `openssl x509 -req` makes without -extfile): as a leaf it has no extensions,
# so nothing restricts its use; as a CA only when it is a self-signed trust anchor. For such a leaf
# the issuer is found here (a trust anchor, else a certificate the client sent), the leaf's
# signature and validity are checked here, and the issuer's own path to an anchor by
# cryptography's verifier under the CA rules of the profile.


def _is_v1(cert: x509.Certificate) -> bool:
    return cert.version is x509.Version.v1


def _issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` signed ``cert`` (its name and its signature)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _valid_at(cert: x509.Certificate, now: datetime.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _verify_v1_leaf(chain: list[x509.Certificate], store: Store, now: datetime.datetime,
                    purpose: str) -> None:  # fmt: skip
    """The openssl profile's check of a chain whose leaf is a version 1 certificate; raises
    VerificationError worded as cryptography's, for :func:`explain`."""
    leaf, sent = chain[0], chain[1:]
    anchor = next((a for a in _anchors(store) if _issued(leaf, a)), None)
    issuer = anchor or next((c for c in sent if _issued(leaf, c) and not _is_v1(c)), None)
    if issuer is None:  # as OpenSSL, an unknown issuer before the dates
        raise VerificationError("validation failed: all candidates exhausted")
    for cert in (leaf, issuer):
        if not _valid_at(cert, now):
            raise VerificationError(
                "validation failed: cert is not valid at validation time (encountered "
                f"processing <Certificate(subject=<Name({cert.subject.rfc4514_string()})>"
            )
    ca, _ = _policies(VerifyProfile.OPENSSL, purpose, False)
    builder = PolicyBuilder().store(store).time(now)
    if anchor is None:  # a CA the client sent: its path to an anchor, under the CA rules
        others = [c for c in sent if c is not issuer]
        builder.extension_policies(ca_policy=ca, ee_policy=ca).build_client_verifier().verify(
            issuer, others
        )
    elif not _is_v1(anchor) or anchor.issuer != anchor.subject:
        # OpenSSL: a version 1 anchor is a CA if it is self-signed; any other must say it is
        policy = builder.build_client_verifier().policy
        try:
            if _is_v1(anchor):
                raise ValueError(f"{_who(anchor)} is an X.509 version 1 certificate issued by "
                                 "another: it cannot be a CA")  # fmt: skip
            if _extension(anchor, x509.BasicConstraints) is None:
                raise ValueError(f"{_who(anchor)} has no basicConstraints extension, which "
                                 "every CA requires")  # fmt: skip
            _ca_basic_constraints(policy, anchor, _extension(anchor, x509.BasicConstraints))
            _ca_key_usage(policy, anchor, _extension(anchor, x509.KeyUsage))
            _eku_allows(purpose)(policy, anchor, _extension(anchor, x509.ExtendedKeyUsage))
        except ValueError as e:
            raise VerificationError(
                f"validation failed: Python extension validator failed: ValueError: {e}"
            ) from None


def _check(chain: list[x509.Certificate], store: Store, now: datetime.datetime,
           profile: VerifyProfile, subject: DNSName | IPAddress | None, hints: _Hints,
           source: str) -> None:  # fmt: skip
    try:
        _verify(chain, store, now, profile, hints.peer, subject)
    except VerificationError as e:
        stale_ca = next((c for c in (*chain[1:], *_anchors(store)) if not _valid_at(c, now)), None)
        alert, text = explain(str(e), chain, hints.peer, _subject(subject), source, profile,
                              stale_ca)  # fmt: skip
        if _openssl_accepts(chain, store, now, profile, subject, hints):
            fix = f"; OpenSSL would accept it: {hints.profile_option}"
        elif text.endswith(UNTRUSTED):
            fix = f"; {hints.trust}" + (f", or {hints.skip}" if hints.skip else "")
        else:
            fix = f"; {hints.skip}" if hints.skip else ""
        raise BadCertificate(
            f"the {hints.peer}'s certificate failed validation: {text}{fix}", alert=alert
        ) from None


def _openssl_accepts(chain: list[x509.Certificate], store: Store, now: datetime.datetime,
                     profile: VerifyProfile, subject: DNSName | IPAddress | None,
                     hints: _Hints) -> bool:  # fmt: skip
    """Whether the lenient profile would pass a chain the strict one refused (so that the
    error can name the option that relaxes the rule)."""
    if hints.profile_option is None or profile is VerifyProfile.OPENSSL:
        return False
    try:
        _verify(chain, store, now, VerifyProfile.OPENSSL, hints.peer, subject)
    except VerificationError:
        return False
    return True


def _check_rsa_size(leaf: x509.Certificate, min_rsa_bits: int, hints: _Hints, option: str) -> None:
    key = leaf_public_key(leaf)
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < min_rsa_bits:
        raise BadCertificate(
            f"the {hints.peer}'s certificate has a {key.key_size}-bit RSA key; at least "
            f"{min_rsa_bits} bits are required ({option} lowers the minimum)"
        )


def verify_server_chain(
    chain: list[x509.Certificate],
    server_name: str | None,
    store: Store,
    now: datetime.datetime,
    *,
    profile: VerifyProfile = VerifyProfile.WEBPKI,
    min_rsa_bits: int = DEFAULT_MIN_RSA_BITS,
    source: str = "the trust store",
) -> None:
    """Validate ``chain`` (leaf first) for ``server_name`` (None: the chain only, no name
    check); raise BadCertificate with the alert and what to do."""
    if not chain:
        raise BadCertificate("the server sent no certificate")
    subject: DNSName | IPAddress | None = None
    if server_name is not None:
        try:
            subject = IPAddress(ipaddress.ip_address(server_name))
        except ValueError:
            subject = DNSName(server_name)
    _check(chain, store, now, profile, subject, _SERVER_HINTS, source)
    _check_rsa_size(chain[0], min_rsa_bits, _SERVER_HINTS,
                    "--min-rsa-bits N (ClientConfig(min_rsa_bits=N))")  # fmt: skip


def verify_client_chain(
    chain: list[x509.Certificate],
    store: Store,
    now: datetime.datetime,
    *,
    profile: VerifyProfile = VerifyProfile.OPENSSL,
    min_rsa_bits: int = DEFAULT_MIN_RSA_BITS,
    source: str = "the client CA file",
) -> None:
    if not chain:
        raise BadCertificate("the client sent no certificate")
    _check(chain, store, now, profile, None, _CLIENT_HINTS, source)
    _check_rsa_size(chain[0], min_rsa_bits, _CLIENT_HINTS, "a lower minimum")


# -- failures in plain words -----------------------------------------------------------------

UNTRUSTED = " (no chain to a trusted CA)"
_PROCESSING = re.compile(r"\s*\(encountered processing <Certificate\(subject=<Name\((.*?)\)>.*$")
_INVALID_EXTENSION = re.compile(r"invalid extension: ([0-9.]+): (.*)")
_VALIDATOR = re.compile(r"Python extension validator failed: \w+: (.*)")


def _san_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*san.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]  # fmt: skip


def _validity(cert: x509.Certificate) -> str:
    start = cert.not_valid_before_utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    end = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"valid from {start} to {end}"


def _find(chain: list[x509.Certificate], subject: str | None) -> x509.Certificate | None:
    if subject is None:
        return chain[0]
    for cert in chain:
        if cert.subject.rfc4514_string() == subject or repr(cert.subject).find(subject) >= 0:
            return cert
    return None


def explain(raw: str, chain: list[x509.Certificate], peer: str, name: str, source: str,
            profile: VerifyProfile, stale_ca: x509.Certificate | None = None
            ) -> tuple[AlertDescription, str]:  # fmt: skip
    """The alert and a plain-words reason for one of cryptography's verification errors.
    ``stale_ca``: a CA certificate (sent or trusted) not valid now, if there is one."""
    text = raw.removeprefix("validation failed: ")
    issuer_side = text.startswith("candidates exhausted: ")
    text = text.removeprefix("candidates exhausted: ")
    processing = _PROCESSING.search(text)
    text = _PROCESSING.sub("", text)
    cert = _find(chain, processing.group(1) if processing else None)
    leaf = chain[0]
    what = "a CA certificate of the chain" if issuer_side else (
        _who(cert) if cert is not None else "a certificate of the chain"
    )  # fmt: skip
    bad = AlertDescription.unknown_ca if issuer_side else AlertDescription.bad_certificate
    if text.startswith("all candidates exhausted"):
        issuer = leaf.issuer.rfc4514_string()
        own = " (it is self-signed)" if leaf.issuer == leaf.subject else ""
        return AlertDescription.unknown_ca, (
            f"it was issued by {issuer!r}{own}, which is not a CA in {source}{UNTRUSTED}"
        )
    if m := _VALIDATOR.match(text):
        if "extendedKeyUsage allows" in m.group(1):  # OpenSSL: "unsupported certificate purpose"
            return AlertDescription.unsupported_certificate, m.group(1)
        return bad, m.group(1)
    if m := _INVALID_EXTENSION.match(text):
        ext = _oid_name(x509.ObjectIdentifier(m.group(1)))
        reason = m.group(2)
        if "missing required extension" in reason:
            rules = "the Web-PKI profile" if profile is VerifyProfile.WEBPKI else "every CA"
            return bad, f"{what} has no {ext} extension, which {rules} requires"
        return bad, f"{what}: its {ext} extension is not allowed here ({reason})"
    outside = issuer_side or cert is None  # the certificate is not one the peer sent
    if outside and stale_ca is not None and text.startswith("cert is not valid at"):
        return AlertDescription.certificate_expired, (
            f"the CA certificate {stale_ca.subject.rfc4514_string()!r} is not valid now "
            f"({_validity(stale_ca)})" + ("" if stale_ca in chain else f", in {source}")
        )
    return _explain_message(text, what, bad, chain, cert, peer, name)


def _explain_message(
    text: str, what: str, bad: AlertDescription, chain: list[x509.Certificate],
    cert: x509.Certificate | None, peer: str, name: str,
) -> tuple[AlertDescription, str]:  # fmt: skip
    """:func:`explain` for the errors recognised by their message."""
    leaf = chain[0]
    if text.startswith("basicConstraints.cA must not be asserted"):
        return bad, (
            f"{what} is a CA certificate (basicConstraints CA:TRUE, as `openssl req -x509` "
            f"makes) used as the {peer}'s own certificate, which the Web-PKI profile forbids"
        )
    if "has no subjectAltName" in text:
        return bad, (
            f"{what} has no subjectAltName extension: a server certificate must list its host "
            "names there (a name only in the subject CN is not checked, as in browsers and "
            "Python's ssl); reissue it with -addext 'subjectAltName=DNS:NAME'"
        )
    if text.startswith("leaf certificate has no matching subjectAltName"):
        names = ", ".join(_san_names(leaf)) or "no names"
        return AlertDescription.bad_certificate, f"it is for {names}, not {name!r}"
    if text.startswith("cert is not valid at validation time"):
        dated = cert if cert is not None else leaf
        return AlertDescription.certificate_expired, (
            f"{_who(dated)} is not valid now ({_validity(dated)})"
        )
    if text.startswith("certificate must be an X509v3 certificate"):
        return bad, (
            f"{what} is an X.509 version 1 certificate (what `openssl x509 -req` makes without "
            "-extfile); only version 3 certificates are accepted: reissue it with -extfile "
            "(for example with extendedKeyUsage=clientAuth or subjectAltName=DNS:NAME)"
        )
    if "key is too weak" in text or "key too weak" in text:
        return bad, f"{what} has an RSA key under 2048 bits"
    if text.startswith("Forbidden signature algorithm"):
        return bad, (
            f"{what} is signed with an algorithm the verifier refuses (only RSA and ECDSA "
            "with SHA-256/384/512 are accepted on certificates)"
        )
    if text.startswith("Forbidden public key algorithm"):
        return bad, f"{what} has a CA key of a type the verifier refuses (RSA or ECDSA only)"
    if "path length constraint" in text:
        return bad, f"the chain is longer than a CA's pathLenConstraint allows ({text})"
    if "unaccounted-for critical extensions" in text:
        return bad, f"{what} has a critical extension the verifier does not know ({text})"
    return bad, text


def utc_clock(clock: Callable[[], float]) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(clock(), tz=datetime.UTC)


def describe_name(name: x509.Name) -> str:
    return name.rfc4514_string()

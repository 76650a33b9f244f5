"""Peer certificates a TLS stack cannot use end in a precise alert, never internal_error
(issue 13.6), in TLS 1.2 and 1.3, whichever side presents them:

- a certificate whose version field is 7: bad_certificate (it does not parse);
- a leaf key of an algorithm cryptography does not know: unsupported_certificate;
- an EC point that is not on the curve: bad_certificate;
- an issuer name that does not decode (invalid UTF-8 in a UTF8String): bad_certificate (it
  was internal_error, raised while explaining why the chain did not verify);
- a DSA or X25519 leaf (no TLS signature scheme fits; such a key used to pass for Ed448, so a
  CertificateVerify with scheme 0x0808 reached the verifier): unsupported_certificate;
- with hostname checking off, a leaf without subjectAltName is validated as a chain and the
  handshake completes; with it on, the error says why.

The certificates are made with ``openssl req`` / ``openssl x509``; the malformed ones are those
with one field patched in their DER.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, x25519

from conftest import Pki
from openssl_pki import EC, Made, openssl, req_signed, req_x509
from tessera import ClientAuth, ClientConfig, ProtocolVersion, ServerConfig
from tessera.certs import CertifiedKey
from tessera.crypto import signatures
from tessera.enums import AlertDescription, SignatureScheme
from tessera.errors import AlertReceived, BadCertificate
from tessera.messages import Certificate12, encode_handshake

from .helpers import ConnectionPair

TLS12, TLS13 = ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_3
VERSIONS = pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls12", "tls13"])
SAN = "subjectAltName=DNS:localhost\n"
EC_PUBLIC_KEY_OID = bytes.fromhex("06072a8648ce3d0201")  # id-ecPublicKey
UNKNOWN_KEY_OID = bytes.fromhex("06072a8648ce3d0209")
VERSION_3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2
VERSION_7 = bytes.fromhex("a003020107")


@dataclass(frozen=True)
class Made4:
    ca: Made
    ec: Made  # a P-256 server/client certificate signed by ca, with subjectAltName
    dsa: Made
    x25519: Made
    no_san: Made  # signed by ca; basicConstraints, keyUsage and serverAuth, but no SAN


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made4:
    d = tmp_path_factory.mktemp("edge")
    ca = req_x509(d, "ca", "/CN=Edge CA", key=EC)
    ec = req_signed(d, "ec", "/CN=localhost", ca, extfile=SAN)
    openssl("genpkey", "-genparam", "-algorithm", "DSA", "-pkeyopt", "dsa_paramgen_bits:1024",
            "-out", "dsa.param", cwd=d)  # fmt: skip
    dsa_cert = req_signed(d, "dsa", "/CN=localhost", ca, key="dsa:dsa.param", extfile=SAN)
    openssl("genpkey", "-algorithm", "X25519", "-out", "x25519.key", cwd=d)
    openssl("pkey", "-in", "x25519.key", "-pubout", "-out", "x25519.pub", cwd=d)
    openssl("x509", "-req", "-in", "ec.csr", "-CA", str(ca.cert), "-CAkey", str(ca.key),
            "-CAcreateserial", "-force_pubkey", "x25519.pub", "-days", "30",
            "-out", "x25519.pem", "-extfile", "ec.ext", cwd=d)  # fmt: skip
    no_san = req_signed(
        d, "nosan", "/CN=localhost", ca,
        extfile="basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )  # fmt: skip
    return Made4(ca, ec, dsa_cert, Made(d / "x25519.pem", d / "x25519.key"), no_san)


def _replace(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    def patch(der: bytes) -> bytes:
        assert der.count(old) >= 1
        return der.replace(old, new, 1)

    return patch


def _flip_last_point_byte(der: bytes) -> bytes:
    """Change the last byte of the EC point (y): the point leaves the curve."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    spki = x509.load_der_x509_certificate(der).public_key()
    point = spki.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return der.replace(point, point[:-1] + bytes([point[-1] ^ 1]), 1)


def _presented(made: Made4, case: str) -> bytes:
    """The DER leaf certificate presented in ``case``."""
    if case == "dsa":
        return made.dsa.der()
    if case == "x25519":
        return made.x25519.der()
    der = made.ec.der()
    patches = {
        "version 7": _replace(VERSION_3, VERSION_7),
        "unknown key algorithm": _replace(EC_PUBLIC_KEY_OID, UNKNOWN_KEY_OID),
        "invalid EC point": _flip_last_point_byte,
        "undecodable issuer name": _replace(b"Edge CA", b"Ed\xffe CA"),
    }
    return patches[case](der)


CASES = {
    "version 7": AlertDescription.bad_certificate,
    "unknown key algorithm": AlertDescription.unsupported_certificate,
    "invalid EC point": AlertDescription.bad_certificate,
    "undecodable issuer name": AlertDescription.bad_certificate,
    "dsa": AlertDescription.unsupported_certificate,
    "x25519": AlertDescription.unsupported_certificate,
}


def presenting(made: Made, leaf_der: bytes) -> CertifiedKey:
    """A usable certified key whose chain on the wire is ``leaf_der`` instead (the key stays
    the real one: the peer must refuse the certificate before any signature)."""
    cert = CertifiedKey.load(made.cert, made.key)
    object.__setattr__(cert, "chain_der", (leaf_der,))
    object.__setattr__(cert, "certificate12", encode_handshake(Certificate12((leaf_der,))))
    return cert


def versions(version: ProtocolVersion) -> dict[str, ProtocolVersion]:
    return {"min_version": version, "max_version": version}


def refused(pair: ConnectionPair, alert: AlertDescription, by: str) -> None:
    """The handshake fails on side ``by`` with BadCertificate(alert); the other side receives
    that alert."""
    pair.start()
    with pytest.raises(BadCertificate) as e:
        pair.pump()
    assert e.value.alert == alert, e.value
    refuser, peer = (pair.client, pair.server) if by == "client" else (pair.server, pair.client)
    with pytest.raises(AlertReceived) as received:
        peer.receive_data(refuser.data_to_send())
    assert received.value.alert == alert


@VERSIONS
@pytest.mark.parametrize("case", list(CASES))
def test_server_certificate(made: Made4, pki: Pki, case: str, version: ProtocolVersion) -> None:
    server = ServerConfig(certificates=(presenting(made.ec, _presented(made, case)),),
                          **versions(version))  # fmt: skip
    pair = ConnectionPair(ClientConfig(verify=False, **versions(version)), server)
    refused(pair, CASES[case], by="client")


@VERSIONS
@pytest.mark.parametrize("case", list(CASES))
def test_client_certificate(made: Made4, pki: Pki, case: str, version: ProtocolVersion) -> None:
    server = ServerConfig(certificates=(pki.ecdsa,), client_auth=ClientAuth.REQUIRED,
                          client_cafile=made.ca.cert, **versions(version))  # fmt: skip
    client = ClientConfig(cafile=pki.ca_file, certificate=presenting(made.ec, _presented(made, case)),
                          **versions(version))  # fmt: skip
    refused(ConnectionPair(client, server), CASES[case], by="server")


@VERSIONS
def test_no_subject_alt_name_with_hostname_checking_off(
    made: Made4, version: ProtocolVersion
) -> None:
    server = ServerConfig(certificates=(CertifiedKey.load(made.no_san.cert, made.no_san.key),),
                          **versions(version))  # fmt: skip
    chain_only = ClientConfig(cafile=made.ca.cert, check_hostname=False, verify_profile="openssl",
                              **versions(version))  # fmt: skip
    pair = ConnectionPair(chain_only, server)
    pair.handshake()
    assert pair.client.info is not None and pair.client.info.version == version
    # The chain is still validated: another CA is refused.
    other = ClientConfig(cafile=made.ec.cert, check_hostname=False, verify_profile="openssl",
                         **versions(version))  # fmt: skip
    pair = ConnectionPair(other, server)
    pair.start()
    with pytest.raises(BadCertificate) as e:
        pair.pump()
    assert e.value.alert == AlertDescription.unknown_ca
    # With the name checked, the error says what is missing.
    named = ClientConfig(cafile=made.ca.cert, verify_profile="openssl", **versions(version))
    pair = ConnectionPair(named, server)
    pair.start()
    with pytest.raises(BadCertificate, match="has no subjectAltName extension"):
        pair.pump()


def test_unsupported_key_types_fit_no_scheme(made: Made4) -> None:
    from cryptography import x509

    for m, cls in ((made.dsa, dsa.DSAPublicKey), (made.x25519, x25519.X25519PublicKey)):
        key = x509.load_pem_x509_certificate(m.pem()).public_key()
        assert isinstance(key, cls)
        assert signatures.key_kind(key) == "unsupported"
        for scheme in (SignatureScheme.ed448, SignatureScheme.ed25519):
            assert not signatures.scheme_fits_key(scheme, key, tls13=True)  # type: ignore[arg-type]

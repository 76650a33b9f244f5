"""Certificates made with ``openssl req`` / ``openssl x509`` as people make them, validated by
the tessera client against ``openssl s_server`` under both verify profiles.

- a CA made by ``openssl req -x509`` has no keyUsage: the strict Web-PKI profile (the default for
  server certificates) refuses it and names the extension and ``--verify-profile openssl``; the
  OpenSSL-compatible profile accepts it, as CPython's ``ssl`` (OpenSSL) does;
- the self-signed ``CA:TRUE`` dev certificate trusted as its own CA: the same;
- the OpenSSL profile still refuses a wrong name and an issuer that is not a CA;
- RSA keys under 2048 bits are refused (TLS 1.2 and 1.3) unless the minimum is lowered.
"""

from __future__ import annotations

import datetime
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from peers import (
    HTTP_GET,
    Peer,
    http_get,
    openssl_s_client,
    openssl_s_server,
    ssl_alert_numbers,
    tessera_serve,
    wait_for_output,
)

from conftest import free_port
from openssl_pki import EC, Made, chain_file, req_signed, req_x509
from tessera import AlertDescription, ClientConfig, ProtocolVersion, TLSSocket
from tessera.crypto.x509 import VerifyProfile, verify_server_chain
from tessera.errors import BadCertificate, ConfigError

pytestmark = pytest.mark.interop

SAN = "subjectAltName=DNS:localhost,IP:127.0.0.1"
TLS12, TLS13 = ProtocolVersion.TLS1_2, ProtocolVersion.TLS1_3


@dataclass(frozen=True)
class DevPki:
    ca: Made  # openssl req -x509: CA:TRUE, no keyUsage
    server: Made  # signed by ca, subjectAltName localhost + 127.0.0.1
    server_chain: Path
    dev: Made  # self-signed CA:TRUE with subjectAltName (the usual dev certificate)
    weak: Made  # self-signed RSA-1024
    dir: Path


@pytest.fixture(scope="module")
def dev_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    d = tmp_path_factory.mktemp("devpki")
    ca = req_x509(d, "ca", "/CN=Dev CA")
    server = req_signed(d, "server", "/CN=localhost", ca, extfile=SAN)
    dev = req_x509(d, "dev", "/CN=localhost", addext=(SAN,))
    weak = req_x509(d, "weak", "/CN=localhost", key="rsa:1024", addext=(SAN,))
    return DevPki(ca, server, chain_file(d, "server-chain", server, ca), dev, weak, d)


@pytest.fixture(scope="module")
def ca_server(dev_pki: DevPki) -> Iterator[Peer]:
    d = dev_pki.dir
    with openssl_s_server(free_port(), d, dev_pki.server_chain, dev_pki.server.key) as peer:
        yield peer


@pytest.fixture(scope="module")
def dev_server(dev_pki: DevPki) -> Iterator[Peer]:
    with openssl_s_server(free_port(), dev_pki.dir, dev_pki.dev.cert, dev_pki.dev.key) as peer:
        yield peer


@pytest.fixture(scope="module")
def weak_server(dev_pki: DevPki) -> Iterator[Peer]:
    """A 1024-bit RSA server: the Debian OpenSSL needs security level 0 to use one."""
    w = dev_pki.weak
    with openssl_s_server(
        free_port(), dev_pki.dir, w.cert, w.key, "-cipher", "DEFAULT:@SECLEVEL=0"
    ) as p:
        yield p


def fetch(peer: Peer, config: ClientConfig, name: str = "localhost") -> str:
    assert peer.port is not None
    with TLSSocket.connect(("127.0.0.1", peer.port), config, name, timeout=10) as tls:
        return http_get(tls).decode(errors="replace")


def python_ssl_accepts(peer: Peer, cafile: Path) -> bool:
    """CPython's ssl (OpenSSL's verifier, hostname checked) on the same server."""
    assert peer.port is not None
    ctx = ssl.create_default_context(cafile=str(cafile))
    with (
        socket.create_connection(("127.0.0.1", peer.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.version() is not None


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls12", "tls13"])
def test_ca_without_key_usage(ca_server: Peer, dev_pki: DevPki, version: ProtocolVersion) -> None:
    assert python_ssl_accepts(ca_server, dev_pki.ca.cert)
    strict = ClientConfig(cafile=dev_pki.ca.cert, max_version=version, min_version=version)
    with pytest.raises(BadCertificate) as e:
        fetch(ca_server, strict)
    message = str(e.value)
    assert "has no keyUsage extension" in message, message
    assert "--verify-profile openssl" in message and "verify_profile='openssl'" in message
    assert "2.5.29.15" not in message
    lenient = ClientConfig(
        cafile=dev_pki.ca.cert, verify_profile="openssl", max_version=version, min_version=version
    )
    assert f"Protocol  : {version.label}" in fetch(ca_server, lenient)


def test_self_signed_ca_true_dev_certificate(dev_server: Peer, dev_pki: DevPki) -> None:
    assert python_ssl_accepts(dev_server, dev_pki.dev.cert)
    with pytest.raises(BadCertificate) as e:
        fetch(dev_server, ClientConfig(cafile=dev_pki.dev.cert))
    message = str(e.value)
    assert e.value.alert == AlertDescription.bad_certificate
    assert "basicConstraints CA:TRUE" in message and "--verify-profile openssl" in message
    lenient = ClientConfig(cafile=dev_pki.dev.cert, verify_profile=VerifyProfile.OPENSSL)
    assert "Protocol  : TLSv1.3" in fetch(dev_server, lenient)
    assert "Protocol  : TLSv1.3" in fetch(dev_server, lenient, "127.0.0.1")


def test_openssl_profile_still_checks_the_name(dev_server: Peer, dev_pki: DevPki) -> None:
    lenient = ClientConfig(cafile=dev_pki.dev.cert, verify_profile="openssl")
    with pytest.raises(BadCertificate) as e:
        fetch(dev_server, lenient, "wrong.test")
    assert e.value.alert == AlertDescription.bad_certificate
    assert "it is for localhost, 127.0.0.1, not 'wrong.test'" in str(e.value)
    assert "OpenSSL would accept" not in str(e.value)


def test_openssl_profile_refuses_a_leaf_as_issuer(dev_pki: DevPki) -> None:
    """A certificate without basicConstraints (made by ``x509 -req``) cannot issue others:
    a chain leaf <- server <- CA is refused by both profiles."""
    d = dev_pki.dir
    fake = req_signed(d, "fake", "/CN=localhost", dev_pki.server, extfile=SAN)
    chain = [fake_cert(fake), fake_cert(dev_pki.server)]
    from tessera.crypto.x509 import trust_store

    now = datetime.datetime.now(datetime.UTC)
    for profile in VerifyProfile:
        with pytest.raises(BadCertificate) as e:
            verify_server_chain(chain, "localhost", trust_store(dev_pki.ca.cert), now,
                                profile=profile)  # fmt: skip
        assert e.value.alert == AlertDescription.unknown_ca, e.value
        assert "a CA certificate of the chain has no basicConstraints extension" in str(e.value)
        assert "--ca FILE" not in str(e.value)  # the CA is trusted: its issuer is the problem


def fake_cert(made: Made):  # type: ignore[no-untyped-def]
    from cryptography import x509

    return x509.load_pem_x509_certificate(made.pem())


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls12", "tls13"])
def test_rsa_1024_refused_unless_minimum_lowered(
    weak_server: Peer, dev_pki: DevPki, version: ProtocolVersion
) -> None:
    kw = {"cafile": dev_pki.weak.cert, "max_version": version, "min_version": version,
          "verify_profile": "openssl"}  # fmt: skip
    with pytest.raises(BadCertificate) as e:
        fetch(weak_server, ClientConfig(**kw))  # type: ignore[arg-type]
    assert e.value.alert == AlertDescription.bad_certificate
    assert "1024-bit RSA key" in str(e.value) and "--min-rsa-bits" in str(e.value)
    page = fetch(weak_server, ClientConfig(min_rsa_bits=1024, **kw))  # type: ignore[arg-type]
    assert f"Protocol  : {version.label}" in page


def test_ca_file_that_is_a_key_is_refused_at_once(dev_pki: DevPki) -> None:
    with pytest.raises(ConfigError, match="holds a private key"):
        ClientConfig(cafile=dev_pki.ca.key)
    with pytest.raises(ConfigError, match="verify_profile must be one of"):
        ClientConfig(verify=False, verify_profile="lenient")


# -- client certificates: the OpenSSL profile is the default ------------------------------------


@dataclass(frozen=True)
class ClientPki:
    ca: Made
    cn_only: Made  # x509 -req -extfile extendedKeyUsage=clientAuth: a CN, no subjectAltName
    self_signed: Made  # req -x509 -subj /CN=alice: CA:TRUE, no subjectAltName, its own CA
    server_only: Made  # extendedKeyUsage=serverAuth: not for client authentication
    v1: Made  # x509 -req without -extfile: an X.509 version 1 certificate
    dir: Path


@pytest.fixture(scope="module")
def client_pki(tmp_path_factory: pytest.TempPathFactory) -> ClientPki:
    d = tmp_path_factory.mktemp("clientpki")
    ca = req_x509(d, "ca", "/CN=Client CA")
    return ClientPki(
        ca,
        req_signed(d, "alice", "/CN=alice", ca, extfile="extendedKeyUsage=clientAuth\n"),
        req_x509(d, "bob", "/CN=bob", key=EC),
        req_signed(d, "carol", "/CN=carol", ca, extfile="extendedKeyUsage=serverAuth\n"),
        req_signed(d, "dave", "/CN=dave", ca),
        d,
    )


@pytest.fixture(scope="module")
def client_ca_bundle(client_pki: ClientPki) -> Path:
    return chain_file(client_pki.dir, "client-cas", client_pki.ca, client_pki.self_signed)


@pytest.fixture(scope="module")
def mtls_server(client_pki: ClientPki, client_ca_bundle: Path) -> Iterator[Peer]:
    args = ("--verify-client", "required", "--client-ca", str(client_ca_bundle), "--www")
    with tessera_serve(free_port(), client_pki.dir, *args) as peer:
        yield peer


@pytest.mark.parametrize("who", ["cn_only", "self_signed", "v1"])
@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_client_certificates_openssl_accepts(
    mtls_server: Peer, client_pki: ClientPki, who: str, version: str
) -> None:
    made: Made = getattr(client_pki, who)
    assert mtls_server.port is not None
    out = openssl_s_client(mtls_server.port, version, "-cert", str(made.cert), "-key",
                           str(made.key), "-ign_eof", input=HTTP_GET)  # fmt: skip
    assert "HTTP/1.0 200 ok" in out, out
    assert not ssl_alert_numbers(out), out


@pytest.mark.parametrize(
    ("who", "alert", "reason"),
    [
        ("server_only", 43, "its extendedKeyUsage allows serverAuth, not clientAuth"),
    ],
)
def test_client_certificates_refused_with_reason(
    mtls_server: Peer, client_pki: ClientPki, who: str, alert: int, reason: str
) -> None:
    made: Made = getattr(client_pki, who)
    assert mtls_server.port is not None
    out = openssl_s_client(mtls_server.port, "-tls1_2", "-cert", str(made.cert), "-key",
                           str(made.key), "-ign_eof", input=HTTP_GET)  # fmt: skip
    assert alert in ssl_alert_numbers(out), out
    log = wait_for_output(mtls_server, reason)
    assert "2.5.29" not in log

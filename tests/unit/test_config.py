"""Configuration checks: suites given in every accepted form, and clear errors otherwise."""

from __future__ import annotations

import pytest

from tessera import ClientConfig, ServerConfig
from tessera.crypto.suites import BY_CODE
from tessera.errors import ConfigError


def names(config: ClientConfig | ServerConfig) -> list[str]:
    return [s.openssl_name for s in config.cipher_suites]


def test_suites_as_an_openssl_string_keep_the_tls13_defaults() -> None:
    config = ClientConfig(cipher_suites="ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA")
    assert names(config)[-2:] == ["ECDHE-RSA-AES128-GCM-SHA256", "AES128-SHA"]
    assert "TLS_AES_128_GCM_SHA256" in names(config)


def test_suites_as_a_list_of_names_or_objects() -> None:
    assert names(ClientConfig(cipher_suites=["TLS_AES_256_GCM_SHA384"])) == [  # type: ignore[arg-type]
        "TLS_AES_256_GCM_SHA384"
    ]
    suite = BY_CODE[0x1303]
    assert ClientConfig(cipher_suites=(suite,)).cipher_suites == (suite,)
    mixed = ClientConfig(cipher_suites=[suite, "ECDHE-ECDSA-AES128-GCM-SHA256"])  # type: ignore[list-item]
    assert names(mixed) == ["TLS_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("RC4-MD5", "unknown cipher suite 'RC4-MD5'"),
        ("", "names no cipher suite"),
        ([1], "expected suite names or CipherSuites"),
        (42, "expected a string or a list of suites"),
    ],
)
def test_bad_suites_say_what_is_wrong(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ClientConfig(cipher_suites=value)  # type: ignore[arg-type]


def test_tls13_only_suites_with_tls12_only_versions_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no cipher suite is enabled"):
        ClientConfig(cipher_suites=["TLS_AES_128_GCM_SHA256"], max_version=0x0303)  # type: ignore[arg-type]


def test_client_auth_needs_a_client_ca_file() -> None:
    """A server that asks for client certificates names the CAs that issue them; it never
    falls back to the system store (web server CAs, which would let any of their certificates
    in)."""
    from tessera import ClientAuth, ServerConfig, generate_self_signed
    from tessera.errors import ConfigError

    cert = generate_self_signed("ec")
    for auth in (ClientAuth.OPTIONAL, ClientAuth.REQUIRED):
        with pytest.raises(ConfigError, match="client_cafile"):
            ServerConfig(certificates=(cert,), client_auth=auth)
    ServerConfig(certificates=(cert,))  # no client certificates: no CA file needed

"""Cipher suites: what each code point means, and OpenSSL-style names for configuration."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from ..errors import ConfigError


class KeyExchange(Enum):
    ECDHE = "ECDHE"
    RSA = "RSA"  # static RSA: the premaster secret encrypted to the server's key
    TLS13 = "TLS13"  # key exchange is negotiated by extensions, not by the suite


class Auth(Enum):
    ECDSA = "ECDSA"
    RSA = "RSA"
    ANY = "ANY"  # TLS 1.3: the certificate and signature_algorithms decide


class BulkCipher(Enum):
    AES_GCM = "AESGCM"
    CHACHA20_POLY1305 = "CHACHA20"
    AES_CBC = "AES-CBC"


@dataclass(frozen=True, slots=True)
class CipherSuite:
    code: int
    name: str  # IANA name
    openssl_name: str
    kx: KeyExchange
    auth: Auth
    cipher: BulkCipher
    key_len: int
    fixed_iv_len: int  # implicit nonce part from the key block (AEAD); 0 for CBC
    mac: str | None  # HMAC hash for CBC suites
    mac_len: int
    prf_hash: str  # "sha256" or "sha384": the TLS 1.2 PRF / TLS 1.3 HKDF hash
    legacy: bool  # off unless enabled by name

    @property
    def is_tls13(self) -> bool:
        return self.kx is KeyExchange.TLS13

    @property
    def is_aead(self) -> bool:
        return self.cipher is not BulkCipher.AES_CBC

    @property
    def hash_len(self) -> int:
        return 48 if self.prf_hash == "sha384" else 32

    def __str__(self) -> str:
        return self.openssl_name


def _s(
    code: int,
    name: str,
    openssl_name: str,
    kx: KeyExchange,
    auth: Auth,
    cipher: BulkCipher,
    key_len: int,
    mac: str | None = None,
    prf: str = "sha256",
    legacy: bool = False,
) -> CipherSuite:
    if cipher is BulkCipher.AES_CBC:
        fixed_iv = 0
    elif kx is KeyExchange.TLS13 or cipher is BulkCipher.CHACHA20_POLY1305:
        fixed_iv = 12
    else:
        fixed_iv = 4
    mac_len = {None: 0, "sha1": 20, "sha256": 32, "sha384": 48}[mac]
    return CipherSuite(
        code, name, openssl_name, kx, auth, cipher, key_len, fixed_iv, mac, mac_len, prf, legacy
    )


E, R, T13 = KeyExchange.ECDHE, KeyExchange.RSA, KeyExchange.TLS13
GCM, CHACHA, CBC = BulkCipher.AES_GCM, BulkCipher.CHACHA20_POLY1305, BulkCipher.AES_CBC
A_EC, A_RSA, A_ANY = Auth.ECDSA, Auth.RSA, Auth.ANY

# fmt: off
ALL_SUITES: tuple[CipherSuite, ...] = (
    # TLS 1.3
    _s(0x1301, "TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256", T13, A_ANY, GCM, 16),
    _s(0x1302, "TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384", T13, A_ANY, GCM, 32, prf="sha384"),
    _s(0x1303, "TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256", T13, A_ANY, CHACHA, 32),
    # TLS 1.2 ECDHE AEAD: on by default
    _s(0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256", E, A_EC, GCM, 16),
    _s(0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256", E, A_RSA, GCM, 16),
    _s(0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384", E, A_EC, GCM, 32, prf="sha384"),
    _s(0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384", E, A_RSA, GCM, 32, prf="sha384"),
    _s(0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305", E, A_EC, CHACHA, 32),
    _s(0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305", E, A_RSA, CHACHA, 32),
    # TLS 1.2 legacy: static RSA key exchange and CBC, enabled by name only
    _s(0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA", E, A_EC, CBC, 16, "sha1", legacy=True),
    _s(0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA", E, A_EC, CBC, 32, "sha1", legacy=True),
    _s(0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA", E, A_RSA, CBC, 16, "sha1", legacy=True),
    _s(0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA", E, A_RSA, CBC, 32, "sha1", legacy=True),
    _s(0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256", E, A_EC, CBC, 16, "sha256", legacy=True),
    _s(0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", "ECDHE-ECDSA-AES256-SHA384", E, A_EC, CBC, 32, "sha384", "sha384", legacy=True),
    _s(0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256", E, A_RSA, CBC, 16, "sha256", legacy=True),
    _s(0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "ECDHE-RSA-AES256-SHA384", E, A_RSA, CBC, 32, "sha384", "sha384", legacy=True),
    _s(0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256", R, A_RSA, GCM, 16, legacy=True),
    _s(0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384", R, A_RSA, GCM, 32, prf="sha384", legacy=True),
    _s(0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA", R, A_RSA, CBC, 16, "sha1", legacy=True),
    _s(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA", R, A_RSA, CBC, 32, "sha1", legacy=True),
    _s(0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256", R, A_RSA, CBC, 16, "sha256", legacy=True),
    _s(0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256", "AES256-SHA256", R, A_RSA, CBC, 32, "sha256", legacy=True),
)
# fmt: on

BY_CODE: dict[int, CipherSuite] = {s.code: s for s in ALL_SUITES}
_BY_NAME: dict[str, CipherSuite] = {}
for _suite in ALL_SUITES:
    _BY_NAME[_suite.openssl_name.upper()] = _suite
    _BY_NAME[_suite.name.upper()] = _suite

TLS13_SUITES: tuple[CipherSuite, ...] = tuple(s for s in ALL_SUITES if s.is_tls13)
DEFAULT_TLS12_SUITES: tuple[CipherSuite, ...] = tuple(
    s for s in ALL_SUITES if not s.is_tls13 and not s.legacy
)
DEFAULT_SUITES: tuple[CipherSuite, ...] = TLS13_SUITES + DEFAULT_TLS12_SUITES

# Signalling cipher suite values (RFC 5746, RFC 7507).
TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF
TLS_FALLBACK_SCSV = 0x5600


def parse_cipher_list(spec: str) -> tuple[CipherSuite, ...]:
    """Parse a colon-separated list of suite names, OpenSSL style or IANA style.

    ``DEFAULT`` stands for the default suites. TLS 1.3 suites are configured apart (as in
    OpenSSL's ``-ciphersuites``), so a list of only TLS 1.2 names keeps the TLS 1.3 defaults.
    """
    chosen: list[CipherSuite] = []
    for raw in spec.replace(",", ":").split(":"):
        name = raw.strip().upper()
        if not name:
            continue
        if name == "DEFAULT":
            chosen.extend(s for s in DEFAULT_TLS12_SUITES if s not in chosen)
            continue
        suite = _BY_NAME.get(name)
        if suite is None:
            known = ", ".join(s.openssl_name for s in ALL_SUITES if not s.is_tls13)
            raise ConfigError(f"unknown cipher suite {raw.strip()!r}; known TLS 1.2 names: {known}")
        if suite not in chosen:
            chosen.append(suite)
    if not chosen:
        raise ConfigError(f"the cipher list {spec!r} names no cipher suite")
    if not any(s.is_tls13 for s in chosen):
        chosen = list(TLS13_SUITES) + chosen
    return tuple(chosen)


def suites_from_codes(codes: Iterable[int]) -> list[CipherSuite]:
    return [BY_CODE[c] for c in codes if c in BY_CODE]

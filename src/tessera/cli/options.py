"""Option parsing shared by the commands: versions, cipher suites, groups, signature
algorithms, ALPN, key passwords, key log. Names follow ``openssl s_server`` / ``s_client``."""

from __future__ import annotations

import dataclasses
import getpass
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypedDict, TypeVar

import click

from ..crypto.suites import CipherSuite
from ..enums import NamedGroup, ProtocolVersion
from ..enums import SignatureScheme as S
from ..errors import ConfigError

Command = TypeVar("Command", bound=Callable[..., object])
Options = TypeVar("Options")
T = TypeVar("T")


class TLSKeywords(TypedDict, total=False):
    """The configuration keywords of the TLS options every command shares."""

    min_version: ProtocolVersion
    max_version: ProtocolVersion
    cipher_suites: tuple[CipherSuite, ...]
    groups: tuple[int, ...]
    signature_schemes: tuple[int, ...]
    alpn_protocols: tuple[bytes, ...]


def option(default: T, help: str, *decls: str, **click_kwargs: object) -> T:
    """A dataclass field that is also a command-line option (``--field-name`` unless
    ``decls``); :func:`click_options` makes the options. ``required=True``: the command line
    must give it (the field's default stands for "not given")."""
    return dataclasses.field(default=default, metadata={"click": (decls, help, click_kwargs)})


def make_options(cls: Callable[..., Options], values: dict[str, object], **more: object) -> Options:
    """The options dataclass ``cls`` from what click parsed (``values``) and ``more``."""
    return cls(**values, **more)


def click_options(cls: type) -> Callable[[Command], Command]:
    """A decorator adding one click option per field of the dataclass ``cls`` that declares
    one: the class's own fields first, then those it inherits."""
    own = set(vars(cls).get("__annotations__", ()))
    fields = sorted(dataclasses.fields(cls), key=lambda f: f.name not in own)

    def add(f: Command) -> Command:
        for fld in reversed(fields):
            spec = fld.metadata.get("click")
            if spec is None:
                continue
            decls, help_text, kwargs = spec
            names: Sequence[str] = decls or ("--" + fld.name.replace("_", "-"),)
            default = None if kwargs.get("required") else fld.default
            show = not kwargs.get("is_flag") and default not in (None, (), False)
            f = click.option(
                *names, fld.name, default=default, help=help_text, show_default=show, **kwargs
            )(f)
        return f

    return add


def version_range(tls1_2: bool, tls1_3: bool) -> TLSKeywords:
    """--tls1-2 / --tls1-3 restrict to one version; both or neither allow both."""
    if tls1_2 and not tls1_3:
        return {"min_version": ProtocolVersion.TLS1_2, "max_version": ProtocolVersion.TLS1_2}
    if tls1_3 and not tls1_2:
        return {"min_version": ProtocolVersion.TLS1_3, "max_version": ProtocolVersion.TLS1_3}
    return {"min_version": ProtocolVersion.TLS1_2, "max_version": ProtocolVersion.TLS1_3}


def suites_option(ciphers: str | None, ciphersuites: str | None) -> TLSKeywords:
    """--ciphers names TLS 1.2 suites and --ciphersuites TLS 1.3 suites, as in OpenSSL; each
    list replaces the defaults of its own version only."""
    from ..crypto.suites import DEFAULT_TLS12_SUITES, TLS13_SUITES, parse_cipher_list

    def parse(spec: str, option: str, tls13: bool) -> tuple[CipherSuite, ...]:
        chosen: list[CipherSuite] = []
        for name in _names(spec):
            try:
                parsed = parse_cipher_list(name)
            except ConfigError as e:
                raise click.BadParameter(str(e), param_hint=option) from None
            # parse_cipher_list puts a lone TLS 1.2 name after the TLS 1.3 defaults
            named = (
                [s for s in parsed if not s.is_tls13] if name.upper() == "DEFAULT" else parsed[-1:]
            )
            for suite in named:
                if suite.is_tls13 != tls13:
                    other = "--ciphers (TLS 1.2)" if tls13 else "--ciphersuites (TLS 1.3)"
                    raise click.BadParameter(f"{name} belongs in {other}", param_hint=option)
                if suite not in chosen:
                    chosen.append(suite)
        if not chosen:
            raise click.BadParameter("names no cipher suite", param_hint=option)
        return tuple(chosen)

    if not ciphers and not ciphersuites:
        return {}
    tls12 = parse(ciphers, "--ciphers", False) if ciphers else DEFAULT_TLS12_SUITES
    tls13 = parse(ciphersuites, "--ciphersuites", True) if ciphersuites else TLS13_SUITES
    return {"cipher_suites": tls13 + tls12}


_GROUP_NAMES: dict[str, NamedGroup] = {
    "x25519": NamedGroup.x25519,
    "x448": NamedGroup.x448,
    "p-256": NamedGroup.secp256r1,
    "prime256v1": NamedGroup.secp256r1,
    "secp256r1": NamedGroup.secp256r1,
    "p-384": NamedGroup.secp384r1,
    "secp384r1": NamedGroup.secp384r1,
    "p-521": NamedGroup.secp521r1,
    "secp521r1": NamedGroup.secp521r1,
}


def _names(spec: str) -> list[str]:
    return [p.strip() for p in spec.replace(",", ":").split(":") if p.strip()]


def groups_option(spec: str | None) -> TLSKeywords:
    """--groups X25519:P-256 (OpenSSL's names; the SEC names work too), most preferred first."""
    if not spec:
        return {}
    groups: list[int] = []
    for name in _names(spec):
        group = _GROUP_NAMES.get(name.lower())
        if group is None:
            known = "X25519, P-256, P-384, P-521, X448"
            raise click.BadParameter(
                f"unknown group {name!r}; known: {known}", param_hint="--groups"
            )
        if group not in groups:
            groups.append(group)
    if not groups:
        raise click.BadParameter("names no group", param_hint="--groups")
    return {"groups": tuple(groups)}


_SIGALG_NAMES: dict[str, S] = {
    "ecdsa+sha256": S.ecdsa_secp256r1_sha256,
    "ecdsa+sha384": S.ecdsa_secp384r1_sha384,
    "ecdsa+sha512": S.ecdsa_secp521r1_sha512,
    "ecdsa+sha1": S.ecdsa_sha1,
    "rsa+sha256": S.rsa_pkcs1_sha256,
    "rsa+sha384": S.rsa_pkcs1_sha384,
    "rsa+sha512": S.rsa_pkcs1_sha512,
    "rsa+sha1": S.rsa_pkcs1_sha1,
    "rsa-pss+sha256": S.rsa_pss_rsae_sha256,
    "rsa-pss+sha384": S.rsa_pss_rsae_sha384,
    "rsa-pss+sha512": S.rsa_pss_rsae_sha512,
    "pss+sha256": S.rsa_pss_rsae_sha256,
    "pss+sha384": S.rsa_pss_rsae_sha384,
    "pss+sha512": S.rsa_pss_rsae_sha512,
}


def sigalgs_option(spec: str | None) -> TLSKeywords:
    """--sigalgs ECDSA+SHA256:RSA-PSS+SHA256:ed25519 (OpenSSL's forms or the TLS names such as
    rsa_pss_rsae_sha256), most preferred first."""
    from ..crypto.signatures import SCHEMES

    if not spec:
        return {}
    schemes: list[int] = []
    for name in _names(spec):
        key = name.lower()
        scheme = _SIGALG_NAMES.get(key) or S.__members__.get(key)
        if scheme is None or scheme not in SCHEMES:
            raise click.BadParameter(
                f"unknown or unsupported signature algorithm {name!r} (use forms like "
                "ECDSA+SHA256, RSA-PSS+SHA256, RSA+SHA256, ed25519 or rsa_pss_rsae_sha256)",
                param_hint="--sigalgs",
            )
        if scheme not in schemes:
            schemes.append(scheme)
    if not schemes:
        raise click.BadParameter("names no signature algorithm", param_hint="--sigalgs")
    return {"signature_schemes": tuple(schemes)}


def alpn_option(spec: str | None) -> TLSKeywords:
    if not spec:
        return {}
    return {"alpn_protocols": tuple(p.strip().encode() for p in spec.split(",") if p.strip())}


def tls_options(
    tls1_2: bool,
    tls1_3: bool,
    ciphers: str | None,
    ciphersuites: str | None,
    groups: str | None,
    sigalgs: str | None,
    alpn: str | None,
) -> TLSKeywords:
    """The configuration keywords of the options every command shares."""
    return {
        **version_range(tls1_2, tls1_3),
        **suites_option(ciphers, ciphersuites),
        **groups_option(groups),
        **sigalgs_option(sigalgs),
        **alpn_option(alpn),
    }


def read_password(spec: str | None, option: str = "--pass") -> bytes | None:
    """A private key's password given as OpenSSL's ``-pass`` does: ``pass:TEXT``,
    ``env:VAR``, ``file:PATH`` (its first line) or ``stdin`` (asked on the terminal)."""
    if spec is None:
        return None
    kind, _, value = spec.partition(":")
    if kind == "pass" and _:
        return value.encode()
    if kind == "env" and value:
        if value not in os.environ:
            raise click.BadParameter(f"environment variable {value} is not set", param_hint=option)
        return os.environ[value].encode()
    if kind == "file" and value:
        try:
            lines = Path(value).read_text().splitlines()
        except OSError as e:
            raise click.BadParameter(
                f"cannot read {value}: {e.strerror}", param_hint=option
            ) from None
        return (lines[0] if lines else "").encode()
    if spec == "stdin":
        return getpass.getpass("Private key password: ").encode()
    raise click.BadParameter("use pass:TEXT, env:VAR, file:PATH or stdin", param_hint=option)


def keylog_option(path: str | None) -> Callable[[str], None] | None:
    """--keylogfile FILE, else $SSLKEYLOGFILE, else nothing."""
    from ..io.keylog import keylog_from_env, keylog_to_file

    return keylog_to_file(path) if path else keylog_from_env()


def common_options(f: Command) -> Command:
    for opt in reversed(
        [
            click.option(
                "--tls1-2",
                "--tls1_2",
                "tls1_2",
                is_flag=True,
                help="Use TLS 1.2 only (--tls1_2: OpenSSL's spelling).",
            ),
            click.option(
                "--tls1-3",
                "--tls1_3",
                "tls1_3",
                is_flag=True,
                help="Use TLS 1.3 only (--tls1_3: OpenSSL's spelling).",
            ),
            click.option(
                "--ciphers",
                metavar="LIST",
                help="TLS 1.2 suites, OpenSSL names joined by ':' (legacy suites only so).",
            ),
            click.option(
                "--ciphersuites",
                metavar="LIST",
                help="TLS 1.3 suites joined by ':' (TLS_AES_128_GCM_SHA256:...).",
            ),
            click.option(
                "--groups",
                metavar="LIST",
                help="Key exchange groups, most preferred first (X25519:P-256:P-384).",
            ),
            click.option(
                "--sigalgs",
                metavar="LIST",
                help="Signature algorithms, most preferred first (ECDSA+SHA256:RSA-PSS+SHA256).",
            ),
            click.option("--alpn", metavar="P1,P2", help="ALPN protocols, most preferred first."),
            click.option(
                "--keylogfile",
                metavar="FILE",
                type=click.Path(dir_okay=False),
                help="Append NSS key log lines (default: $SSLKEYLOGFILE if set).",
            ),
        ]
    ):
        f = opt(f)
    return f


def pass_option(f: Command) -> Command:
    return click.option(
        "--pass",
        "password",
        metavar="SPEC",
        help="Password of the --key file(s): pass:TEXT, env:VAR, file:PATH or stdin.",
    )(f)

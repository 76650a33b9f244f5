"""Option parsing shared by the commands: versions, ciphers, ALPN, key log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..crypto.suites import CipherSuite, parse_cipher_list
from ..enums import ProtocolVersion
from ..errors import ConfigError
from ..io.keylog import keylog_from_env, keylog_to_file


def version_range(tls1_2: bool, tls1_3: bool) -> dict[str, ProtocolVersion]:
    """--tls1_2 / --tls1_3 restrict to one version; both or neither allow both."""
    if tls1_2 and not tls1_3:
        return {"min_version": ProtocolVersion.TLS1_2, "max_version": ProtocolVersion.TLS1_2}
    if tls1_3 and not tls1_2:
        return {"min_version": ProtocolVersion.TLS1_3, "max_version": ProtocolVersion.TLS1_3}
    return {"min_version": ProtocolVersion.TLS1_2, "max_version": ProtocolVersion.TLS1_3}


def cipher_option(spec: str | None) -> dict[str, tuple[CipherSuite, ...]]:
    if not spec:
        return {}
    try:
        return {"cipher_suites": parse_cipher_list(spec)}
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="--ciphers") from None


def alpn_option(spec: str | None) -> dict[str, Any]:
    if not spec:
        return {}
    return {"alpn_protocols": tuple(p.strip() for p in spec.split(",") if p.strip())}


def keylog_option(path: str | None) -> Callable[[str], None] | None:
    """--keylogfile FILE, else $SSLKEYLOGFILE, else nothing."""
    return keylog_to_file(path) if path else keylog_from_env()


def common_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(
        [
            click.option("--tls1_2", "tls1_2", is_flag=True, help="Use TLS 1.2 only."),
            click.option("--tls1_3", "tls1_3", is_flag=True, help="Use TLS 1.3 only."),
            click.option(
                "--ciphers",
                metavar="LIST",
                help="TLS 1.2 suites, OpenSSL names joined by ':' (legacy suites only so).",
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

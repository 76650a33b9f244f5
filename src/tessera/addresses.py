"""``HOST:PORT`` as the options that take one write it (``--metrics``, ``--listen``,
``--backend``)."""

from __future__ import annotations


def parse_address(text: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) for ``option``; ValueError in user words."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{option} takes HOST:PORT (for example 127.0.0.1:9100), not {text!r}")
    return host, int(port)

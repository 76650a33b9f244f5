"""``HOST:PORT`` as the options that take one write it (``--metrics``, ``--listen``,
``--backend``), and what went wrong reaching one, in words ("connection refused", not
``[Errno 111] Connection refused``)."""

from __future__ import annotations

import errno
import socket


def parse_address(text: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) for ``option``; ValueError in user words."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{option} takes HOST:PORT (for example 127.0.0.1:9100), not {text!r}")
    return host, int(port)


_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ETIMEDOUT: "timed out",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network unreachable",
    errno.EADDRINUSE: "address already in use",
    errno.EADDRNOTAVAIL: "address not available on this machine",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def host_port(address: tuple[str, int]) -> str:
    """``127.0.0.1:4433``, ``[::1]:4433``: an address as it is written on a command line."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describe_os_error(error: OSError) -> str:
    """An OSError in words, without ``[Errno N]``: "connection refused", "no such host"..."""
    if isinstance(error, socket.gaierror):
        if error.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)):
            return "no such host (the name does not resolve)"
        return f"the name does not resolve ({error.strerror})"
    if isinstance(error, TimeoutError) and error.errno is None:
        return "timed out"
    if error.errno in _REASONS:
        return _REASONS[error.errno]
    text = error.strerror or str(error) or type(error).__name__
    return text[:1].lower() + text[1:]

"""What every server front end does the same way: the listening socket, and what to do when
``accept()`` fails.

A failure for want of a resource (descriptors, buffers, memory) is waited out and retried, as
Go's net/http does — from 5 ms, doubling up to 1 s — while pending connections wait in the
listen queue; a failure for one connection that died in the queue (accept(2), "Error
handling") is simply skipped. Neither stops the server.
"""

from __future__ import annotations

import contextlib
import errno
import socket

ACCEPT_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_CONNECTION_ERRORS = frozenset({
    errno.ECONNABORTED, errno.EPROTO, errno.ENOPROTOOPT, errno.EHOSTDOWN, errno.EHOSTUNREACH,
    errno.ENETDOWN, errno.ENETUNREACH, errno.EOPNOTSUPP,
})  # fmt: skip
BACKOFF_FIRST = 0.005
BACKOFF_MAX = 1.0


def next_backoff(delay: float) -> float:
    """The wait before the next ``accept()`` after a resource failure (``delay``: the last
    wait, 0 for the first failure)."""
    return min(BACKOFF_MAX, delay * 2 if delay else BACKOFF_FIRST)


def set_nodelay(sock: object) -> None:
    """TCP_NODELAY on a TCP socket (a no-op for anything else): TLS writes whole records and
    flights, and Nagle's algorithm would hold the second small write of a request or answer
    back until the first is acknowledged (a delayed ACK: 40 ms on Linux)."""
    setsockopt = getattr(sock, "setsockopt", None)
    if setsockopt is not None:
        with contextlib.suppress(OSError):  # not TCP (a Unix socket): nothing to do
            setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


_NODELAY_BY_DEFAULT: set[type] = set()  # transport types found to set TCP_NODELAY themselves


def ensure_nodelay(transport: object) -> None:
    """TCP_NODELAY on the socket under an asyncio transport. uvloop sets it on every TCP
    transport it makes: the first of each uvloop type is checked and the type trusted from
    then on (asking a uvloop transport for its socket costs a Python object and a system call
    per connection). asyncio's own set it only for sockets made with IPPROTO_TCP: set here."""
    kind = type(transport)
    if kind in _NODELAY_BY_DEFAULT:
        return
    get_extra_info = getattr(transport, "get_extra_info", None)
    sock = get_extra_info("socket") if get_extra_info is not None else None
    getsockopt = getattr(sock, "getsockopt", None)
    if getsockopt is not None and kind.__module__.startswith("uvloop"):
        with contextlib.suppress(OSError):  # (not TCP: a Unix socket)
            if getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY):
                _NODELAY_BY_DEFAULT.add(kind)
                return
    set_nodelay(sock)


def listening_socket(address: tuple[str, int], reuse_port: bool, backlog: int) -> socket.socket:
    """A bound, listening TCP socket (IPv6 when the host has a colon); ``reuse_port``: workers
    of one supervisor share the port (SO_REUSEPORT). Its protocol is IPPROTO_TCP, not 0, so
    that the sockets ``accept()`` makes say so too: asyncio sets TCP_NODELAY only on sockets
    whose ``proto`` is IPPROTO_TCP."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock

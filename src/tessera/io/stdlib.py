"""tessera where the standard library expects ``ssl``: ``wrap_socket`` and a context object.

::

    tls = wrap_socket(socket.create_connection(("127.0.0.1", 8443)), config,
                      server_hostname="localhost")            # like SSLContext.wrap_socket

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 8443), Handler)
    httpd.socket = TLSContext(server_config).wrap_socket(httpd.socket, server_side=True)

    conn = http.client.HTTPSConnection("localhost", 8443, context=TLSContext(client_config))

:class:`TLSContext` has the part of ``ssl.SSLContext`` that ``http.client``, ``urllib.request``
and ``socketserver`` use. A listening socket wrapped with ``server_side=True`` becomes a
:class:`TLSListener`: its ``accept()`` returns a :class:`~tessera.io.blocking.TLSSocket` that
does its handshake on first use, in whichever thread serves it (so a slow client never holds up
the accept loop, unlike ``ssl``, which handshakes inside ``accept()``).
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
from collections.abc import Sequence
from typing import overload

from ..config import ClientConfig, ServerConfig
from ..connection import ClientConnection
from ..errors import ConfigError
from ..session.model import ClientSession
from .blocking import TLSSocket
from .listen import set_nodelay
from .sslcompat import Address, SocketDelegate

DEFAULT_HANDSHAKE_TIMEOUT = 30.0


def _listening(sock: socket.socket) -> bool:
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    except OSError:
        return False


@overload
def wrap_socket(
    sock: socket.socket,
    config: ClientConfig,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    session: ClientSession | None = None,
    do_handshake_on_connect: bool = True,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> TLSSocket: ...


@overload
def wrap_socket(
    sock: socket.socket,
    config: ServerConfig,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    session: ClientSession | None = None,
    do_handshake_on_connect: bool = True,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> TLSSocket | TLSListener: ...


def wrap_socket(
    sock: socket.socket,
    config: ClientConfig | ServerConfig,
    *,
    server_side: bool = False,
    server_hostname: str | None = None,
    session: ClientSession | None = None,
    do_handshake_on_connect: bool = True,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> TLSSocket | TLSListener:
    """TLS over a connected socket, like ``SSLContext.wrap_socket``: a client needs a
    ClientConfig (and ``server_hostname`` to check), a server a ServerConfig. A *listening*
    socket with ``server_side=True`` gives a :class:`TLSListener`. The handshake runs now
    (``do_handshake_on_connect``) or on first use; a socket timeout set before is kept.
    A connected TCP socket gets TCP_NODELAY."""
    if server_side:
        if not isinstance(config, ServerConfig):
            raise ConfigError("wrap_socket(server_side=True) needs a ServerConfig")
        if _listening(sock):
            return TLSListener(sock, config, handshake_timeout)
        set_nodelay(sock)
        tls = TLSSocket.wrap_server(sock, config, handshake_timeout)
    else:
        if not isinstance(config, ClientConfig):
            raise ConfigError("wrap_socket() for a client needs a ClientConfig")
        try:
            peer = sock.getpeername()
        except OSError:
            raise ConfigError(
                "wrap_socket(): connect the socket first (socket.create_connection)"
            ) from None
        address = (str(peer[0]), int(peer[1]))
        set_nodelay(sock)
        conn = ClientConnection(config, server_hostname, address=address, session=session)
        tls = TLSSocket(sock, conn, handshake_timeout)
    if do_handshake_on_connect:
        try:
            tls.do_handshake()
        except BaseException:
            tls.close()
            raise
    return tls


class TLSListener(SocketDelegate):
    """A listening socket whose ``accept()`` returns TLS sockets (handshake on first use).

    A client that connects and closes without sending a byte (a load balancer's TCP health
    check) reads as an end of file on that socket, as with ``ssl``: no error reaches the
    server, and ``probes`` counts them."""

    def __init__(
        self,
        sock: socket.socket,
        config: ServerConfig,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self.sock = sock
        self.config = config
        self.handshake_timeout = handshake_timeout
        self.context: TLSContext | None = None
        self.probes = 0

    def _probed(self) -> None:
        self.probes += 1

    def accept(self) -> tuple[TLSSocket, Address]:
        client, address = self.sock.accept()
        set_nodelay(client)
        tls = TLSSocket.wrap_server(client, self.config, self.handshake_timeout)
        tls.context = self.context
        tls.on_probe = self._probed
        return tls, address

    def listen(self, backlog: int = 128) -> None:
        self.sock.listen(backlog)


class TLSContext:
    """What ``http.client``, ``urllib.request`` and ``socketserver`` use of an
    ``ssl.SSLContext``, over a tessera config: ``wrap_socket``, ``verify_mode``,
    ``check_hostname``, ``set_alpn_protocols``. Changing a setting replaces ``config`` with an
    updated copy."""

    post_handshake_auth = None  # http.client checks it; tessera has no post-handshake auth

    def __init__(
        self,
        config: ClientConfig | ServerConfig,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self.config = config
        self.handshake_timeout = handshake_timeout

    def _client(self) -> ClientConfig:
        if not isinstance(self.config, ClientConfig):
            raise ConfigError("this setting is a client's; the context holds a ServerConfig")
        return self.config

    @property
    def verify_mode(self) -> ssl.VerifyMode:
        config = self.config
        if isinstance(config, ClientConfig):
            return ssl.CERT_REQUIRED if config.verify else ssl.CERT_NONE
        return ssl.CERT_NONE if config.client_auth.value == "none" else ssl.CERT_REQUIRED

    @verify_mode.setter
    def verify_mode(self, mode: ssl.VerifyMode) -> None:
        verify = mode != ssl.CERT_NONE
        config = self._client()
        check_hostname = config.check_hostname and verify
        self.config = dataclasses.replace(config, verify=verify, check_hostname=check_hostname)

    @property
    def check_hostname(self) -> bool:
        config = self.config
        return isinstance(config, ClientConfig) and config.verify and config.check_hostname

    @check_hostname.setter
    def check_hostname(self, value: bool) -> None:
        config = self._client()
        if config.check_hostname != value:
            self.config = dataclasses.replace(config, check_hostname=value)

    def set_alpn_protocols(self, protocols: Sequence[str]) -> None:
        alpn = tuple(p.encode() for p in protocols)
        self.config = dataclasses.replace(self.config, alpn_protocols=alpn)

    def wrap_socket(
        self,
        sock: socket.socket,
        server_side: bool = False,
        do_handshake_on_connect: bool = True,
        suppress_ragged_eofs: bool = True,
        server_hostname: str | None = None,
        session: ClientSession | None = None,
    ) -> TLSSocket | TLSListener:
        """``SSLContext.wrap_socket``. A bare end of stream always reads as end of file
        (``suppress_ragged_eofs``); ``close_notify_received`` tells it apart."""
        tls = wrap_socket(
            sock,
            self.config,
            server_side=server_side,
            server_hostname=server_hostname,
            session=session,
            do_handshake_on_connect=do_handshake_on_connect,
            handshake_timeout=self.handshake_timeout,
        )
        tls.context = self
        return tls

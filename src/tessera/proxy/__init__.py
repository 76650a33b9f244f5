"""``tessera proxy``: a TLS-terminating proxy in front of any TCP backend (asyncio).

:class:`~.server.ProxyServer` accepts clients, runs each TLS handshake with tessera's asyncio
pump (:mod:`tessera.io.aio`), and relays plaintext to and from the backend
(:mod:`.relay`), optionally after a PROXY v2 header (:mod:`.proxy_protocol`). Sessions and
ticket keys come from the ``ServerConfig`` it is given: in memory, or shared by a fleet through
Redis (:mod:`tessera.fleet`). No protocol decision is made here.
"""

from .proxy_protocol import TlsFacts, header
from .server import ProxyServer, ProxySettings

__all__ = ["ProxyServer", "ProxySettings", "TlsFacts", "header"]

"""``tessera proxy``: a TLS-terminating proxy in front of any TCP backend (asyncio).

:func:`~.server.proxy_server` is the serving engine (:mod:`tessera.io.engine`: accepting,
fair slots, the TLS pump of :mod:`tessera.io.aio`) whose connections relay plaintext to and
from the backend (:mod:`.relay`), optionally after a PROXY v2 header
(:mod:`.proxy_protocol`). Sessions and ticket keys come from the ``ServerConfig`` it is given:
in memory, or shared by a fleet through Redis (:mod:`tessera.fleet`). No protocol decision is
made here.
"""

from .proxy_protocol import TlsFacts, header
from .server import ProxySettings, proxy_server

__all__ = ["ProxySettings", "TlsFacts", "header", "proxy_server"]

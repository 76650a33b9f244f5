"""The floor under any Python TLS terminator in ``bench/proxy.py``: asyncio on uvloop with
CPython ``ssl`` (OpenSSL's C does all of TLS), piping each client to the plaintext backend with
bare protocols, no logging, no metrics, no limits. What is left is what a Python event loop
costs per connection; tessera proxy cannot cost less than this plus its own handshake code.

    python bench/pyssl_proxy.py PORT BACKEND_PORT CERT KEY
"""

from __future__ import annotations

import asyncio
import ssl
import sys

try:
    import uvloop
except ImportError:  # the default loop then; the report says which
    uvloop = None  # type: ignore[assignment]


class Backend(asyncio.Protocol):
    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class Client(asyncio.Protocol):
    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.backend: asyncio.Transport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]  # uvloop's own
        asyncio.get_running_loop().create_task(self._open())

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_connection(
                lambda: Backend(self.transport), "127.0.0.1", self.backend_port
            )
        except OSError:
            self.transport.close()
            return
        self.backend = transport
        for data in self.pending:
            transport.write(data)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        if self.backend is None:
            self.pending.append(data)
        else:
            self.backend.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.backend is not None:
            self.backend.close()


async def main(port: int, backend_port: int, cert: str, key: str) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Client(backend_port), "127.0.0.1", port, ssl=ctx, backlog=1024
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    factory = uvloop.new_event_loop if uvloop is not None else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]))

"""The plaintext backend behind every TLS terminator in ``bench/proxy.py`` (asyncio, uvloop if
installed): the 16-byte requests of ``server.py`` without TLS.

``P``: answer one byte (a ping); ``S`` n: send n bytes; ``R`` n: read n bytes, answer one byte.
Anything else (an HTTP request, say) gets one byte and the connection is closed.

    python bench/proxy_backend.py PORT
"""

from __future__ import annotations

import asyncio
import sys

CHUNK = b"\x00" * (1 << 18)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readexactly(16)
            except asyncio.IncompleteReadError:
                return
            op, n = head[:1], int(head[1:]) if head[1:].isdigit() else 0
            if op == b"S":
                while n > 0:
                    writer.write(CHUNK[: min(n, len(CHUNK))])
                    n -= min(n, len(CHUNK))
                    await writer.drain()
            elif op == b"R":
                while n > 0:
                    data = await reader.read(min(n, 1 << 18))
                    if not data:
                        return
                    n -= len(data)
                writer.write(b"!")
            else:
                writer.write(b"!")
                if op != b"P":
                    return
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    factory = None
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main(int(sys.argv[1])))

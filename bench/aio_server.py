"""The asyncio benchmark server: ``tessera.aio.start_server`` or ``asyncio.start_server(ssl=)``,
the same handler code, in its own process; it measures its own CPU time.

Not run by hand: ``bench/aio.py`` starts it. It prints ``{"port": ..., "rss_kib": ...}`` once it
listens on 127.0.0.1, then answers commands read from stdin (one JSON line each):

* ``stats``  connections, failures, resumed, process CPU seconds and bytes since the last
  ``stats``, then resets them; ``rss`` resident memory (KiB); ``quit`` (or end of stdin) exits.

Each connection carries at most one 16-byte request (an opcode and 15 digits ``n``, as
``bench/server.py``): ``S`` the server sends ``n`` bytes; ``R`` it reads ``n`` bytes and answers
``k``; ``P`` it answers ``p``. Then the client's close_notify, answered by the server's.

CPU is the whole process's ``time.process_time()`` between two ``stats`` commands: the event
loop, the TLS work and the handler, everything but the idle wait. Both servers pay the same
asyncio costs, so the ratio compares the TLS implementations inside one asyncio server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import ssl
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server import set_tls13_suites

REQUEST_LEN = 16
CHUNK = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE // 1024


class Counters:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> dict[str, Any]:
        now = time.process_time()
        out = {
            "conns": getattr(self, "conns", 0),
            "failures": getattr(self, "failures", 0),
            "resumed": getattr(self, "resumed", 0),
            "bytes": getattr(self, "bytes", 0),
            "cpu_total": now - getattr(self, "cpu0", now),
            "first_error": getattr(self, "first_error", None),
        }
        self.conns = self.failures = self.resumed = self.bytes = 0
        self.first_error: str | None = None
        self.cpu0 = now
        return out


def make_handler(counters: Counters, impl: str) -> Any:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if impl == "tessera":
                resumed = bool(writer.get_extra_info("resumed"))
            else:
                resumed = writer.get_extra_info("ssl_object").session_reused
            head = await reader.read(REQUEST_LEN)
            if head:  # else the client closed right after the handshake
                if len(head) < REQUEST_LEN:
                    head += await reader.readexactly(REQUEST_LEN - len(head))
                op, n = head[:1], int(head[1:])
                if op == b"S":
                    block = b"\0" * CHUNK
                    left = n
                    while left:
                        writer.write(block[: min(left, CHUNK)])
                        left -= min(left, CHUNK)
                        await writer.drain()
                    counters.bytes += n
                elif op == b"R":
                    left = n
                    while left:
                        chunk = await reader.read(min(left, 1 << 18))
                        if not chunk:
                            raise ConnectionError("the client stopped sending")
                        left -= len(chunk)
                    counters.bytes += n
                    writer.write(b"k")
                elif op == b"P":
                    writer.write(b"p")
                await writer.drain()
                await reader.read()  # the client's close_notify
            counters.conns += 1
            counters.resumed += resumed
        except Exception as e:
            counters.failures += 1
            counters.first_error = counters.first_error or f"{type(e).__name__}: {e}"
        finally:
            writer.close()
            with contextlib.suppress(Exception):  # the connection is over either way
                await writer.wait_closed()

    return handler


async def serve(args: argparse.Namespace) -> None:
    counters = Counters()
    handler = make_handler(counters, args.impl)
    version = {"1.2": "TLSv1_2", "1.3": "TLSv1_3"}
    if args.impl == "tessera":
        from tessera import CertifiedKey, ProtocolVersion, ServerConfig, aio

        v = ProtocolVersion.TLS1_3 if args.version == "1.3" else ProtocolVersion.TLS1_2
        config = ServerConfig(
            certificates=(CertifiedKey.load(args.cert, args.key),), min_version=v, max_version=v
        )
        server = await aio.start_server(handler, "127.0.0.1", 0, config=config, backlog=512)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion[version[args.version]]
        if args.version == "1.3":
            set_tls13_suites(ctx, "TLS_AES_128_GCM_SHA256")
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ctx, backlog=512)
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def commands() -> None:  # a thread: stdin blocks, the loop does not
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "quit":
                break
            if cmd == "stats":
                out: dict[str, Any] = asyncio.run_coroutine_threadsafe(
                    _reset(counters), loop
                ).result()
            elif cmd == "rss":
                out = {"rss_kib": rss_kib()}
            else:
                out = {"error": f"unknown command {cmd!r}"}
            print(json.dumps(out), flush=True)
        loop.call_soon_threadsafe(done.set_result, None)

    print(
        json.dumps({"port": server.sockets[0].getsockname()[1], "rss_kib": rss_kib()}), flush=True
    )
    threading.Thread(target=commands, daemon=True).start()
    loop.call_later(args.max_seconds, lambda: done.done() or done.set_result(None))
    await done
    server.close()


async def _reset(counters: Counters) -> dict[str, Any]:
    return counters.reset()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--impl", choices=("tessera", "openssl"), required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--version", choices=("1.2", "1.3"), default="1.3")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--max-seconds", type=float, default=1800.0)
    args = p.parse_args()
    if args.loop == "uvloop":
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    else:
        runner = asyncio.Runner()
    with runner:
        runner.run(serve(args))


if __name__ == "__main__":
    main()

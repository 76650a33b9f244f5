"""The asyncio front end under load and with awaited stores: 500 concurrent connections on one
loop, flow control both ways (a client that never reads, a server that does not read), a
store that takes 100 ms while other handshakes complete, a failing and a hanging store, the
store contract through the async adapter (single-use tickets, the 0-RTT strike register), and
max_connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from conftest import Pki
from tessera import TLSError, aio
from tessera.session.resumption.awaited import AsyncMemoryStore

from .helpers import HOST, SlowStore, client_config, echo, roundtrip, server_config, serving

Run = Any
CHUNK = 1 << 16


async def settled(value: Callable[[], int], timeout: float = 15.0) -> int:
    """Wait until ``value()`` stops changing (the same for 0.5 s); fail if it never does."""
    deadline = time.monotonic() + timeout
    last, since = value(), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now = value()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 0.5 and now > 0:
            return now
    raise AssertionError(f"still moving after {timeout} s: flow control never stopped it")


def test_500_concurrent_connections_on_one_loop(run: Run, pki: Pki) -> None:
    async def main() -> None:
        config = server_config(pki)
        client = client_config(pki)
        async with serving(config, backlog=1024) as port:

            async def one(i: int) -> bytes:
                reader, writer = await aio.open_connection(
                    HOST, port, config=client, server_hostname="localhost"
                )
                payload = f"connection {i}".encode()
                writer.write(payload)
                got = await reader.readexactly(len(payload))
                writer.close()
                await writer.wait_closed()
                return got

            results = await asyncio.gather(*(one(i) for i in range(500)))
        assert results == [f"connection {i}".encode() for i in range(500)]
        assert config.statistics.snapshot()["full_handshakes"] == 500

    run(main(), timeout=120)


def test_a_client_that_never_reads_does_not_grow_server_memory(run: Run, pki: Pki) -> None:
    """The server writes as fast as drain() lets it; the client never reads. The server's
    writes stall once the kernel's and the transport's buffers are full: what it accepted stays
    bounded, and the TLS transport's own buffer stays near its high-water mark."""

    async def main() -> None:
        progress: list[int] = [0]
        buffered: list[int] = []
        stop = asyncio.Event()

        async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            chunk = b"x" * CHUNK
            while not stop.is_set() and progress[0] < 256 << 20:
                writer.write(chunk)
                progress[0] += CHUNK
                buffered.append(writer.transport.get_write_buffer_size())
                await writer.drain()

        async with serving(server_config(pki), flood, shutdown_timeout=0.5) as port:
            _, writer = await aio.open_connection(
                HOST, port, config=client_config(pki), server_hostname="localhost"
            )
            writer.transport.pause_reading()  # the client never reads
            stalled_at = await settled(lambda: progress[0])
            # kernel socket buffers on loopback hold a few MiB; the rest waits in drain()
            assert stalled_at < 32 << 20, stalled_at
            high, _ = writer.transport.get_write_buffer_limits()
            assert max(buffered) <= high + 2 * (CHUNK + 1024), (max(buffered), high)
            stop.set()
            writer.transport.abort()

    run(main())


def test_a_server_that_does_not_read_pauses_the_client(run: Run, pki: Pki) -> None:
    """Flow control the other way: a handler that does not read makes the StreamReader pause
    the TLS transport, which pauses the socket; the client's drain() then blocks. When the
    handler reads, everything arrives intact."""

    async def main() -> None:
        go = asyncio.Event()
        received = bytearray()
        reader_sizes: list[int] = []

        async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await go.wait()
            reader_sizes.append(len(reader._buffer))  # what was buffered while paused
            while data := await reader.read(1 << 20):
                received.extend(data)
            writer.close()

        async with serving(server_config(pki), slow) as port:
            _, writer = await aio.open_connection(
                HOST, port, config=client_config(pki), server_hostname="localhost"
            )
            sent = 0
            block = bytes(range(256)) * 256  # 64 KiB

            async def push() -> None:
                nonlocal sent
                while sent < 64 << 20:
                    writer.write(block)
                    sent += len(block)
                    await writer.drain()

            pushing = asyncio.create_task(push())
            blocked_at = await settled(lambda: sent)
            assert blocked_at < 32 << 20, blocked_at
            pushing.cancel()
            writer.write_eof()  # close_notify: the handler's read ends after the data
            go.set()
            for _ in range(200):
                if len(received) >= blocked_at:
                    break
                await asyncio.sleep(0.05)
            assert bytes(received) == (block * (blocked_at // len(block)))[: len(received)]
            assert len(received) == blocked_at
            # the StreamReader held at most about twice its limit (it pauses the transport)
            assert reader_sizes[0] <= 2 * (1 << 16) + (1 << 18), reader_sizes
            writer.close()

    run(main())


def _tls12_session_id_config(pki: Pki, store: Any, **kw: Any) -> Any:
    return server_config(pki, "1.2", async_session_store=store, ticket_keyring=None, **kw)


def test_a_slow_store_does_not_stall_other_handshakes(run: Run, pki: Pki) -> None:
    """A session-id lookup that takes 500 ms runs in a task: full handshakes of other clients
    complete meanwhile, then the slow one resumes. (500 ms: on a box with a CPU hog beside the
    suite, two full handshakes, both ends in this one process, may take over 100 ms.)"""

    async def main() -> None:
        store = SlowStore(delay=0.5)
        config = _tls12_session_id_config(pki, store)
        client = client_config(pki, "1.2", session_tickets=False)
        async with serving(config) as port:
            session = (await roundtrip(port, client)).get_extra_info("session")
            finished: list[float] = []
            other_client = client_config(pki, "1.2", session_tickets=False)

            async def others() -> None:  # one full handshake after another, no store lookups
                while not slow.done():
                    await roundtrip(port, other_client)
                    finished.append(time.monotonic())

            started = time.monotonic()
            slow = asyncio.create_task(roundtrip(port, client, session=session))
            background = asyncio.create_task(others())
            writer = await slow
            await background
        assert writer.get_extra_info("resumed")
        assert store.calls["get"] == 1
        (answered,) = store.answered
        assert answered - started >= 0.49  # the 500 ms store (uvloop timers: 1 ms steps)
        during = [t for t in finished if t < answered]
        assert len(during) >= 2, f"handshakes stalled while the store was slow: {finished}"
        print(f"{len(during)} other handshakes completed during the 500 ms lookup")

    run(main())


@pytest.mark.parametrize("failure", ["raises", "hangs"])
def test_a_failing_store_means_a_full_handshake(run: Run, pki: Pki, failure: str) -> None:
    async def main() -> None:
        store = SlowStore(delay=0.0)
        config = _tls12_session_id_config(pki, store)
        client = client_config(pki, "1.2", session_tickets=False)
        async with serving(config, lookup_timeout=0.2) as port:
            session = (await roundtrip(port, client)).get_extra_info("session")
            if failure == "raises":
                store.fail = True
            else:
                store.delay = 5.0
            t0 = time.monotonic()
            writer = await roundtrip(port, client, session=session)
            assert time.monotonic() - t0 < 3
        assert not writer.get_extra_info("resumed")
        reasons = config.statistics.fallback_reasons()
        assert reasons.get("session store unavailable") == 1, reasons
        if failure == "raises":
            assert config.statistics.snapshot()["store_errors"] >= 1

    run(main())


def test_single_use_tickets_through_the_async_adapter(run: Run, pki: Pki) -> None:
    async def main() -> None:
        store = AsyncMemoryStore()
        config = server_config(
            pki, "1.3", async_session_store=store,
            stateful_tickets=True, ticket_keyring=None,
        )  # fmt: skip
        client = client_config(pki, "1.3")
        async with serving(config) as port:
            session = (await roundtrip(port, client)).get_extra_info("session")
            assert (await roundtrip(port, client, session=session)).get_extra_info("resumed")
            again = await roundtrip(port, client, session=session)
            assert not again.get_extra_info("resumed")  # taken once
        assert config.statistics.fallback_reasons().get("single-use ticket already used") == 1

    run(main())


def test_zero_rtt_strike_register_in_a_slow_async_store(run: Run, pki: Pki) -> None:
    """Stateless tickets: the first 0-RTT use of a ticket is recorded with an awaited add()
    (the connection waits for it, its early records stay encrypted meanwhile); a replay is
    refused and the data still arrives, after the handshake."""

    async def main() -> None:
        store = SlowStore(delay=0.05)
        config = server_config(
            pki, "1.3", async_session_store=store,
            max_early_data_size=1024,
        )  # fmt: skip
        seen: list[bytes] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readexactly(4)
            seen.append(writer.get_extra_info("early_data"))
            writer.write(b"done")
            await writer.drain()
            writer.close()

        client = client_config(pki, "1.3")
        async with serving(config, handler) as port:
            reader, writer = await aio.open_connection(
                HOST, port, config=client, server_hostname="localhost"
            )
            writer.write(b"full")
            await reader.readexactly(4)
            session = writer.get_extra_info("session")
            writer.close()
            for _ in range(2):
                reader, writer = await aio.open_connection(
                    HOST, port, config=client, server_hostname="localhost",
                    session=session, early_data=b"0rtt",
                )  # fmt: skip
                assert await reader.readexactly(4) == b"done"
                writer.close()
        assert seen == [b"", b"0rtt", b""]
        assert store.calls["add"] == 2

    run(main())


def test_max_connections(run: Run, pki: Pki) -> None:
    async def main() -> None:
        ended: list[None] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await echo(reader, writer)  # ends once the connection is lost (and its slot free)
            ended.append(None)

        async with serving(server_config(pki), handler, max_connections=2) as port:
            client = client_config(pki)
            held = [
                await aio.open_connection(HOST, port, config=client, server_hostname="localhost")
                for _ in range(2)
            ]
            with pytest.raises((TLSError, OSError)):
                await aio.open_connection(HOST, port, config=client, server_hostname="localhost")
            for _, w in held:
                w.close()
                await w.wait_closed()
            while len(ended) < 2:  # the server saw both go (bounded by run()'s timeout)
                await asyncio.sleep(0.01)
            await roundtrip(port, client)  # room again

    run(main())


def test_echo_handler_is_reused(run: Run, pki: Pki) -> None:
    """The shared echo handler ends with the client (a sanity check for the tests above)."""

    async def main() -> None:
        async with serving(server_config(pki), echo) as port:
            await roundtrip(port, client_config(pki), b"x" * 100_000)

    run(main())

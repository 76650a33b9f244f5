"""tessera's asyncio client and server against each other on one loop: streams, what
``get_extra_info`` tells, resumption with ``session=``, 0-RTT, ALPN, close_notify and a bare
end of stream, TLS over an existing transport (and TLS inside TLS)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from conftest import Pki
from tessera import ClientConfig, ConfigError, ConnectionInfo, HandshakeTimeout, aio
from tessera.errors import BadCertificate

from .helpers import HOST, client_config, echo, roundtrip, server_config, serving

Run = Any


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_echo_and_extra_info(run: Run, pki: Pki, version: str) -> None:
    async def main() -> None:
        seen: dict[str, Any] = {}

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen["server_info"] = writer.get_extra_info("connection_info")
            seen["server_reason"] = writer.get_extra_info("resumption_reason")
            seen["server_peercert"] = writer.get_extra_info("peercert")
            await echo(reader, writer)

        async with serving(server_config(pki), handler) as port:
            payload = os.urandom(300_000)
            reader, writer = await aio.open_connection(
                HOST, port, config=client_config(pki, version), server_hostname="localhost"
            )
            writer.write(payload)
            await writer.drain()
            assert await reader.readexactly(len(payload)) == payload
            info = writer.get_extra_info("connection_info")
            assert isinstance(info, ConnectionInfo)
            assert info.version.label == f"TLSv{version}"
            ssl_object = writer.get_extra_info("ssl_object")
            assert ssl_object.version() == f"TLSv{version}"
            assert writer.get_extra_info("cipher") == ssl_object.cipher()
            assert writer.get_extra_info("cipher")[1] == f"TLSv{version}"
            cert = writer.get_extra_info("peercert")
            assert ("DNS", "localhost") in cert["subjectAltName"]
            leaf = info.peer_certificates[0]
            assert ssl_object.getpeercert(binary_form=True) == leaf.public_bytes(Encoding.DER)
            assert writer.get_extra_info("peername")[1] == port
            assert writer.get_extra_info("resumed") is False
            assert "no session offered" in writer.get_extra_info("resumption_reason")
            assert writer.get_extra_info("session") is not None or version == "1.3"
            writer.close()
            await writer.wait_closed()
            assert writer.get_extra_info("close_notify") is True
        assert seen["server_info"].version.label == f"TLSv{version}"
        assert seen["server_reason"] == "full handshake; nothing offered to resume"
        assert seen["server_peercert"] is None  # no client certificate asked for

    run(main())


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("tickets", [True, False])
def test_resumption_with_session(run: Run, pki: Pki, version: str, tickets: bool) -> None:
    async def main() -> None:
        decisions: list[Any] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            decisions.append(writer.get_extra_info("resumption"))
            await echo(reader, writer)

        # Without a ticket keyring: TLS 1.2 resumes by session id, TLS 1.3 by a stateful ticket.
        if tickets:
            config = server_config(pki)
        else:
            config = server_config(pki, ticket_keyring=None, stateful_tickets=version == "1.3")
        client = client_config(pki, version, session_tickets=tickets)
        async with serving(config, handler) as port:
            first = await roundtrip(port, client)
            session = first.get_extra_info("session")
            assert session is not None
            second = await roundtrip(port, client, session=session)
            assert second.get_extra_info("resumed") is True
            assert second.get_extra_info("resumption_reason").startswith("resumed by")
        expected = {"1.2": "ticket" if tickets else "session_id", "1.3": "psk"}[version]
        assert decisions[0].kind == "full"
        assert decisions[1].kind == expected, decisions[1].describe()

    run(main())


def test_early_data_accepted_and_refused(run: Run, pki: Pki) -> None:
    """0-RTT: accepted data reaches the handler first and is marked as early; a server that
    refuses 0-RTT still gets the same bytes first (sent again after the handshake)."""
    request = b"GET /early"

    async def main() -> None:
        got: list[tuple[bytes, bytes]] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.readexactly(len(request))
            got.append((data, writer.get_extra_info("early_data")))
            writer.write(b"ok")
            await writer.drain()
            writer.close()

        async def fetch(port: int, **kw: Any) -> Any:
            reader, writer = await aio.open_connection(
                HOST, port, config=client, server_hostname="localhost", **kw
            )
            if "early_data" not in kw:
                writer.write(request)
            assert await reader.readexactly(2) == b"ok"
            writer.close()
            await writer.wait_closed()
            return writer

        client = client_config(pki, "1.3")
        for max_early, accepted in ((1024, True), (0, False)):
            async with serving(server_config(pki, max_early_data_size=max_early), handler) as port:
                session = (await fetch(port)).get_extra_info("session")
                assert got[-1] == (request, b"")
                writer = await fetch(port, session=session, early_data=request)
                assert writer.get_extra_info("resumed")
                assert writer.get_extra_info("early_data_accepted") is accepted
            assert got[-1] == (request, request if accepted else b"")

    run(main())


def test_alpn(run: Run, pki: Pki) -> None:
    async def main() -> None:
        async with serving(server_config(pki, alpn_protocols=("h2", "http/1.1"))) as port:
            w = await roundtrip(port, client_config(pki), alpn=["http/1.1"])
            assert w.get_extra_info("alpn_protocol") == "http/1.1"
            assert w.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"

    run(main())


def test_certificate_error_raises_from_open_connection(run: Run, pki: Pki) -> None:
    async def main() -> None:
        async with serving(server_config(pki)) as port:
            with pytest.raises(BadCertificate, match="failed validation"):
                await aio.open_connection(
                    HOST, port, config=client_config(pki), server_hostname="wrong.example"
                )
            with pytest.raises(ConfigError, match="not ssl="):
                await aio.open_connection(HOST, port, config=client_config(pki), ssl=True)

    run(main())


def test_bare_end_of_stream_is_reported(run: Run, pki: Pki) -> None:
    """A client that aborts (no close_notify): the server's reader sees end of file and
    ``close_notify`` says False; after a proper close it says True."""

    async def main() -> None:
        closes: list[Any] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            assert await reader.read() == b"last words"
            closes.append(writer.get_extra_info("close_notify"))
            writer.close()

        async with serving(server_config(pki), handler) as port:
            for clean in (False, True):
                _, writer = await aio.open_connection(
                    HOST, port, config=client_config(pki), server_hostname="localhost"
                )
                writer.write(b"last words")
                await writer.drain()
                if clean:
                    writer.close()
                else:
                    # TCP FIN without close_notify: close the transport below the TLS layer
                    writer.transport._proto.lower.write_eof()  # type: ignore[attr-defined]
                for _ in range(500):  # until the handler has seen the end (10 s at most)
                    if len(closes) == (2 if clean else 1):
                        break
                    await asyncio.sleep(0.02)
                writer.transport.abort()
        assert closes == [False, True]

    run(main())


def test_handshake_timeout_both_ways(run: Run, pki: Pki) -> None:
    """A peer that says nothing: the server cuts it off after handshake_timeout (telling
    on_handshake_error only about peers that sent something), and open_connection raises
    HandshakeTimeout (a TimeoutError too)."""

    async def main() -> None:
        errors: list[BaseException] = []
        hook = lambda peer, e: errors.append(e)  # noqa: E731
        async with serving(
            server_config(pki), handshake_timeout=0.3, on_handshake_error=hook
        ) as port:
            for first_bytes in (b"", b"\x16\x03\x01\x00\xff\x01"):  # silence; half a hello
                r, w = await asyncio.open_connection(HOST, port)
                w.write(first_bytes)
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                assert await asyncio.wait_for(r.read(), 5) == b""  # the server hung up
                assert 0.25 < loop.time() - t0 < 3
                w.close()
        assert len(errors) == 1 and isinstance(errors[0], HandshakeTimeout), errors

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()

        server = await asyncio.start_server(silent, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(TimeoutError):
            await aio.open_connection(
                HOST, port, config=client_config(pki), server_hostname="localhost",
                handshake_timeout=0.3,
            )  # fmt: skip
        server.close()

    run(main())


@pytest.mark.parametrize(("idle", "handshake"), [(0.3, 60.0), (0.6, 0.2)])
def test_idle_timeout_closes_with_close_notify(
    run: Run, pki: Pki, idle: float, handshake: float
) -> None:
    """Closed once idle for ``idle`` seconds, not before — also when the handshake's deadline
    comes first (its timer then serves as the first idle check)."""

    async def main() -> None:
        async with serving(server_config(pki), idle_timeout=idle,
                           handshake_timeout=handshake) as port:  # fmt: skip
            reader, writer = await aio.open_connection(
                HOST, port, config=client_config(pki), server_hostname="localhost"
            )
            writer.write(b"x")
            assert await reader.readexactly(1) == b"x"
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            assert idle - 0.05 < loop.time() - t0 < 3
            assert writer.get_extra_info("close_notify") is True
            writer.close()

    run(main())


def test_shutdown_timeout_bounds_close(run: Run, pki: Pki) -> None:
    """The server closes; the client neither reads nor answers close_notify: the server's
    transport is gone within shutdown_timeout anyway."""

    async def main() -> None:
        done = asyncio.Event()
        waited: list[float] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            writer.close()
            await writer.wait_closed()
            waited.append(loop.time() - t0)
            done.set()

        async with serving(server_config(pki), handler, shutdown_timeout=0.4) as port:
            # a tessera client that stops reading: its transport is paused
            _, writer = await aio.open_connection(
                HOST, port, config=client_config(pki), server_hostname="localhost"
            )
            writer.transport.pause_reading()
            await asyncio.wait_for(done.wait(), 5)
            writer.transport.abort()
        assert 0.3 < waited[0] < 3, waited

    run(main())


def test_start_tls_over_plain_tcp_and_tls_inside_tls(run: Run, pki: Pki) -> None:
    """STARTTLS: a plaintext line, then start_tls both ways; then TLS inside that TLS."""

    class LineProtocol(asyncio.Protocol):
        def __init__(self) -> None:
            self.data = b""
            self.arrived = asyncio.Event()
            self.transport: Any = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.data += data
            self.arrived.set()

        async def expect(self, text: bytes) -> None:
            while text not in self.data:
                self.arrived.clear()
                await asyncio.wait_for(self.arrived.wait(), 5)
            self.data = self.data.split(text, 1)[1]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sconfig = server_config(pki)
        server_side: list[Any] = []

        async def serve() -> None:
            await proto.expect(b"STARTTLS\n")
            proto.transport.write(b"GO\n")
            outer = await aio.start_tls(proto.transport, proto, sconfig, server_side=True)
            await proto.expect(b"INNER\n")
            inner = await aio.start_tls(outer, proto, sconfig, server_side=True)
            await proto.expect(b"hello")
            inner.write(b"HELLO")
            server_side.append((outer, inner))

        proto = LineProtocol()
        started: list[asyncio.Task[None]] = []

        def factory() -> LineProtocol:
            started.append(loop.create_task(serve()))
            return proto

        server = await loop.create_server(factory, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        client = LineProtocol()
        transport, _ = await loop.create_connection(lambda: client, HOST, port)
        transport.write(b"STARTTLS\n")
        await client.expect(b"GO\n")
        cconfig = client_config(pki)
        outer = await aio.start_tls(transport, client, cconfig, server_hostname="localhost")
        assert outer.get_extra_info("connection_info").version.label == "TLSv1.3"
        outer.write(b"INNER\n")
        inner = await aio.start_tls(outer, client, cconfig, server_hostname="localhost")
        inner.write(b"hello")
        await client.expect(b"HELLO")
        await asyncio.wait_for(started[0], 5)
        _, s_inner = server_side[0]
        assert s_inner.get_extra_info("peername") == transport.get_extra_info("sockname")
        assert inner.get_extra_info("connection_info").peer_certificates
        inner.close()
        outer.close()
        server.close()

    run(main())


def test_a_blocking_store_is_refused_and_memory_store_is_fine(run: Run, pki: Pki) -> None:
    class SyncStore:
        def get(self, key: bytes) -> None:
            return None

    async def main() -> None:
        with pytest.raises(ConfigError, match="event loop"):
            await aio.start_server(
                echo, HOST, 0, config=server_config(pki, session_store=SyncStore())
            )
        with pytest.raises(ConfigError, match="not an async store"):
            await aio.start_server(
                echo, HOST, 0,
                config=server_config(pki, async_session_store=SyncStore()),
            )  # fmt: skip

    run(main())


def test_bulk_both_ways_integrity(run: Run, pki: Pki) -> None:
    async def main() -> None:
        async with serving(server_config(pki)) as port:
            reader, writer = await aio.open_connection(
                HOST, port, config=client_config(pki), server_hostname="localhost"
            )
            blob = os.urandom(1 << 20)
            sent = hashlib.sha256()
            got = hashlib.sha256()
            received = 0

            async def read_back() -> None:
                nonlocal received
                while received < 8 * len(blob):
                    chunk = await reader.read(1 << 16)
                    assert chunk
                    got.update(chunk)
                    received += len(chunk)

            reading = asyncio.create_task(read_back())
            for _ in range(8):
                writer.write(blob)
                sent.update(blob)
                await writer.drain()
            await asyncio.wait_for(reading, 30)
            assert got.digest() == sent.digest()
            writer.close()
            await writer.wait_closed()

    run(main())


def test_client_without_verification_gets_an_empty_peercert(run: Run, pki: Pki) -> None:
    async def main() -> None:
        async with serving(server_config(pki)) as port:
            w = await roundtrip(port, ClientConfig(verify=False))
            assert w.get_extra_info("peercert") == {}  # as ssl: a certificate not validated

    run(main())


def test_ca_files_are_read_off_the_loop_thread(run: Run, pki: Pki, monkeypatch: Any) -> None:
    """The trust stores are never loaded on the event loop's thread during handshakes: the
    client's cafile when its config is built, the server's client_cafile in a worker thread
    before the first handshake; client certificates then show up in the server's peercert."""
    import threading

    from tessera import ClientAuth
    from tessera.crypto import x509 as tessera_x509

    threads: list[str] = []
    real = tessera_x509._store_for.__wrapped__

    def spy(path: str) -> Any:
        threads.append(threading.current_thread().name)
        return real(path)

    monkeypatch.setattr(tessera_x509, "_store_for", spy)

    # A ClientConfig reads its cafile when it is built (here, before the loop runs); the
    # server's client_cafile is read in a worker thread before its first handshake.
    config = server_config(pki, client_auth=ClientAuth.REQUIRED, client_cafile=pki.ca_file)
    client = client_config(pki, certificate=pki.client)
    threads.clear()

    async def main() -> None:
        seen: list[Any] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(writer.get_extra_info("peercert"))
            await echo(reader, writer)

        async with serving(config, handler) as port:
            await roundtrip(port, client)
        assert (("commonName", "tessera client"),) in seen[0]["subject"]

    run(main())
    assert len(threads) == 1, threads  # the server's client CA file, once
    assert threading.main_thread().name not in threads, threads  # never on the loop's thread


def test_garbage_gets_an_alert_and_is_reported(run: Run, pki: Pki) -> None:
    async def main() -> None:
        errors: list[BaseException] = []
        hook = lambda peer, e: errors.append(e)  # noqa: E731
        async with serving(server_config(pki), on_handshake_error=hook) as port:
            r, w = await asyncio.open_connection(HOST, port)
            w.write(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\xff")  # a ClientHello that is no such
            reply = await asyncio.wait_for(r.read(), 5)
            w.close()
        assert reply[:1] == b"\x15" and reply[5:6] == b"\x02", reply  # a fatal alert record
        assert len(errors) == 1 and getattr(errors[0], "alert", None) is not None, errors

    run(main())

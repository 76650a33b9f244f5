"""The asyncio front end against real peers, TLS 1.2 and 1.3, under both event loops.

* tessera's asyncio client against ``openssl s_server`` (``-www`` pages say New/Reused; 0-RTT
  against ``-early_data``), CPython's ``ssl`` asyncio server (its ``session_reused``) and a
  Node.js ``tls`` server (``isSessionReused()``);
* tessera's asyncio server against ``openssl s_client`` (``-sess_out``/``-sess_in`` →
  ``Reused``; ``-early_data`` → accepted), CPython's ``ssl`` client (``asyncio.open_connection
  (ssl=ctx)``; resumption with ``session=`` from a blocking ``ssl`` socket in a thread, as
  asyncio has no ``session=``), Node.js ``tls.connect`` with ``session`` and ``curl`` (two URLs:
  the second connection resumes).

Every peer program runs as an asyncio subprocess (the server under test shares the loop), is
bounded in time and always stopped.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from peers import Peer, openssl_s_server

from conftest import Pki, free_port, require_program
from tessera import aio

from .helpers import HOST, VERSIONS, client_config, echo, roundtrip, server_config, serving

pytestmark = pytest.mark.interop
Run = Any
S_SERVER_LINE = re.compile(r"^(New|Reused), (TLSv1\.[23])", re.M)


async def program(argv: list[str], stdin: bytes = b"", timeout: float = 20.0) -> str:
    """Run a peer program to completion (killed after ``timeout``); stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return out.decode(errors="replace")


async def http_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer one HTTP request with what this connection negotiated, then close."""
    head = b""
    while b"\r\n\r\n" not in head and b"\n\n" not in head and len(head) < 65536:
        chunk = await reader.read(4096)
        if not chunk:
            break
        head += chunk
    info = writer.get_extra_info("connection_info")
    body = (
        f"version={info.version.label} resumed={info.resumed} "
        f"early={writer.get_extra_info('early_data')!r}\n"
    ).encode()
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    writer.close()


# -- tessera's asyncio client against openssl s_server ------------------------------------------
@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for name in ("openssl", "node", "curl"):
        require_program(name)
    return tmp_path_factory.mktemp("aio-interop")


@pytest.fixture(scope="module")
def s_server(pki: Pki, logs: Path) -> Iterator[Peer]:
    with openssl_s_server(free_port(), logs, pki.ecdsa_cert, pki.ecdsa_key) as peer:
        yield peer


async def fetch_page(port: int, config: Any, **kw: Any) -> tuple[str, Any]:
    reader, writer = await aio.open_connection(
        HOST, port, config=config, server_hostname="localhost", **kw
    )
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    page = (await asyncio.wait_for(reader.read(), 10)).decode(errors="replace")
    writer.close()
    await writer.wait_closed()
    return page, writer


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_client_against_openssl_s_server(run: Run, pki: Pki, s_server: Peer, version: str) -> None:
    async def main() -> None:
        assert s_server.port is not None
        config = client_config(pki, version)
        page, writer = await fetch_page(s_server.port, config)
        assert S_SERVER_LINE.search(page)[0] == f"New, TLSv{version}", page  # type: ignore[index]
        session = writer.get_extra_info("session")
        page, writer = await fetch_page(s_server.port, config, session=session)
        assert S_SERVER_LINE.search(page)[0] == f"Reused, TLSv{version}", page  # type: ignore[index]
        assert writer.get_extra_info("resumed")
        cipher = writer.get_extra_info("cipher")[0]
        assert f"Cipher is {cipher}" in page, page

    run(main())


def test_client_early_data_against_openssl_s_server(run: Run, pki: Pki, logs: Path) -> None:
    """s_server -early_data (no -www: it prints what it receives)."""
    port = free_port()
    argv = ["openssl", "s_server", "-accept", str(port), "-cert", str(pki.ecdsa_cert),
            "-key", str(pki.ecdsa_key), "-tls1_3", "-early_data"]  # fmt: skip

    async def main(peer: Peer) -> None:
        config = client_config(pki, "1.3")
        _, writer = await aio.open_connection(
            HOST, port, config=config, server_hostname="localhost"
        )
        writer.write(b"first connection\n")
        for _ in range(1000):  # s_server's tickets arrive after the handshake (20 s at most)
            session = writer.get_extra_info("session")
            if session is not None:
                break
            await asyncio.sleep(0.02)
        assert session is not None and session.state.max_early_data > 0
        writer.close()
        await writer.wait_closed()
        _, writer = await aio.open_connection(
            HOST, port, config=config, server_hostname="localhost", session=session,
            early_data=b"zero rtt data\n",
        )  # fmt: skip
        assert writer.get_extra_info("early_data_accepted")
        writer.write(b"one rtt data\n")
        await writer.drain()
        for _ in range(1000):  # until s_server printed it (20 s at most)
            if "one rtt data" in peer.output():
                break
            await asyncio.sleep(0.02)
        writer.close()

    with Peer(argv, port=port, log_dir=logs, name="s_server-early", stdin=subprocess.PIPE) as p:
        run(main(p))
        out = p.output()
    assert "Early data received:" in out, out
    assert "zero rtt data" in out.split("End of early data")[0], out
    assert "one rtt data" in out, out


# -- tessera's asyncio client against CPython's ssl server (asyncio, same loop) --------------------
@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_client_against_cpython_ssl_server(run: Run, pki: Pki, version: str) -> None:
    async def main() -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.ecdsa_cert, pki.ecdsa_key)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion[
            f"TLSv{version.replace('.', '_')}"
        ]
        reused: list[tuple[str, bool]] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            obj = writer.get_extra_info("ssl_object")
            reused.append((obj.version(), obj.session_reused))
            await echo(reader, writer)

        server = await asyncio.start_server(handler, HOST, 0, ssl=ctx)
        port = server.sockets[0].getsockname()[1]
        config = client_config(pki, version)
        first = await roundtrip(port, config)
        second = await roundtrip(port, config, session=first.get_extra_info("session"))
        server.close()
        assert second.get_extra_info("resumed")
        assert reused == [(f"TLSv{version}", False), (f"TLSv{version}", True)]

    run(main())


# -- tessera's asyncio client against a Node.js tls server ---------------------------------------
NODE_SERVER = """
const tls = require('tls'), fs = require('fs');
const server = tls.createServer({key: fs.readFileSync(process.env.KEY),
    cert: fs.readFileSync(process.env.CERT), maxVersion: process.env.V}, (s) => {
  console.log(`conn ${s.getProtocol()} reused=${s.isSessionReused()}`);
  s.pipe(s);
});
server.listen(+process.env.PORT, '127.0.0.1');
"""


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_client_against_node_tls_server(run: Run, pki: Pki, logs: Path, version: str) -> None:
    port = free_port()
    env = {"KEY": str(pki.ecdsa_key), "CERT": str(pki.ecdsa_cert), "V": f"TLSv{version}",
           "PORT": str(port)}  # fmt: skip

    async def main() -> None:
        config = client_config(pki, version)
        first = await roundtrip(port, config)
        await roundtrip(port, config, session=first.get_extra_info("session"))

    with Peer(
        ["node", "-e", NODE_SERVER], port=port, log_dir=logs, name="node-server", env=env
    ) as p:
        run(main())
        lines = re.findall(r"conn (TLSv1\.[23]) reused=(\w+)", p.output())
    # the port probe of Peer() made no TLS connection: exactly our two
    assert lines == [(f"TLSv{version}", "false"), (f"TLSv{version}", "true")], lines


# -- tessera's asyncio server against openssl s_client ---------------------------------------------
@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_server_against_openssl_s_client(run: Run, pki: Pki, tmp_path: Path, version: str) -> None:
    sess = tmp_path / "sess.pem"

    async def main() -> None:
        async with serving(server_config(pki), http_handler) as port:
            base = ["openssl", "s_client", "-connect", f"{HOST}:{port}", f"-tls1_{version[-1]}",
                    "-CAfile", str(pki.ca_file), "-servername", "localhost", "-ign_eof"]  # fmt: skip
            first = await program([*base, "-sess_out", str(sess)], b"GET / HTTP/1.0\r\n\r\n")
            second = await program([*base, "-sess_in", str(sess)], b"GET / HTTP/1.0\r\n\r\n")
        assert f"New, TLSv{version}" in first, first
        assert "Verify return code: 0 (ok)" in first, first
        assert f"version=TLSv{version} resumed=False" in first, first
        assert f"Reused, TLSv{version}" in second, second
        assert f"version=TLSv{version} resumed=True" in second, second

    run(main())


def test_server_early_data_from_openssl_s_client(run: Run, pki: Pki, tmp_path: Path) -> None:
    sess = tmp_path / "sess.pem"
    request = tmp_path / "req.txt"
    request.write_bytes(b"GET /early HTTP/1.0\r\n\r\n")

    async def main() -> None:
        config = server_config(pki, "1.3", max_early_data_size=16384)
        async with serving(config, http_handler) as port:
            base = ["openssl", "s_client", "-connect", f"{HOST}:{port}", "-tls1_3",
                    "-CAfile", str(pki.ca_file), "-servername", "localhost", "-ign_eof"]  # fmt: skip
            first = await program([*base, "-sess_out", str(sess)], b"GET / HTTP/1.0\r\n\r\n")
            second = await program([*base, "-sess_in", str(sess), "-early_data", str(request)])
        assert "resumed=False" in first, first
        assert "Reused, TLSv1.3" in second, second
        assert "Early data was accepted" in second, second
        assert "early=b'GET /early HTTP/1.0\\r\\n\\r\\n'" in second, second

    run(main())


# -- tessera's asyncio server against CPython's ssl client ------------------------------------------
@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_server_against_cpython_ssl_client(run: Run, pki: Pki, version: str) -> None:
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion[f"TLSv{version.replace('.', '_')}"]

    def blocking_fetch(port: int, session: ssl.SSLSession | None) -> tuple[bool, Any, bytes]:
        with (
            socket.create_connection((HOST, port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s,
        ):
            s.sendall(b"ping")
            got = s.recv(4)
            return s.session_reused, s.session, got

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with serving(server_config(pki)) as port:
            reader, writer = await asyncio.open_connection(
                HOST, port, ssl=ctx, server_hostname="localhost"
            )
            writer.write(b"hello")
            assert await reader.readexactly(5) == b"hello"
            assert writer.get_extra_info("ssl_object").version() == f"TLSv{version}"
            writer.close()
            await writer.wait_closed()
            reused, session, got = await loop.run_in_executor(None, blocking_fetch, port, None)
            assert (reused, got) == (False, b"ping")
            reused, _, got = await loop.run_in_executor(None, blocking_fetch, port, session)
            assert (reused, got) == (True, b"ping")

    run(main())


# -- tessera's asyncio server against Node.js tls.connect and curl ----------------------------------
NODE_CLIENT = """
const tls = require('tls'), fs = require('fs');
function connect(session) {
  return new Promise((resolve, reject) => {
    let latest = null;
    const s = tls.connect({host: '127.0.0.1', port: +process.env.PORT, servername: 'localhost',
        ca: [fs.readFileSync(process.env.CA)], session, maxVersion: process.env.V}, () => s.write('ping'));
    s.on('session', (x) => { latest = x; });
    s.on('data', (d) => { console.log(`${s.getProtocol()} reused=${s.isSessionReused()} got=${d}`); s.end(); });
    s.on('close', () => resolve(latest));
    s.on('error', reject);
  });
}
(async () => { const first = await connect(); await connect(first); })()
  .catch((e) => { console.log(`error ${e}`); process.exit(1); });
"""


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_server_against_node_tls_connect(run: Run, pki: Pki, version: str) -> None:
    async def main() -> None:
        async with serving(server_config(pki)) as port:
            env = f"PORT={port} CA={pki.ca_file} V=TLSv{version}".split()
            out = await program(["env", *env, "node", "-e", NODE_CLIENT])
        assert f"TLSv{version} reused=false got=ping" in out, out
        assert f"TLSv{version} reused=true got=ping" in out, out

    run(main())


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_server_against_curl(run: Run, pki: Pki, version: str) -> None:
    async def main() -> None:
        async with serving(server_config(pki), http_handler) as port:
            url = f"https://localhost:{port}/"
            flags = ["--tlsv1.2", "--tls-max", "1.2"] if version == "1.2" else ["--tlsv1.3"]
            out = await program([
                "curl", "-sS", "--cacert", str(pki.ca_file), "--resolve",
                f"localhost:{port}:{HOST}", *flags, url, url,
            ])  # fmt: skip
        assert f"version=TLSv{version} resumed=False" in out, out
        assert f"version=TLSv{version} resumed=True" in out, out

    run(main())


def test_versions_table_is_complete() -> None:
    assert set(VERSIONS) == {"1.2", "1.3"}

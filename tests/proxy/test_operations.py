"""Running the proxy: SIGHUP swaps the certificate for new connections while an open one keeps
working; SIGTERM lets an open transfer complete; out of descriptors (a low ``ulimit -n``, more
clients than descriptors) the proxy keeps running and serves again once the load drops; the
PROXY v2 header reaches a backend that parses it."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import ssl
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from peers import Peer, wait_for_output
from proxy_helpers import (
    backend,
    client_context,
    https,
    pattern,
    port_of,
    proxy,
    scrape,
    sha,
    value,
)

from conftest import Pki, free_port
from tessera.certs import issue_leaf
from waiting import wait_until

pytestmark = pytest.mark.interop


def connect(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=15)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def echo(tls: ssl.SSLSocket, data: bytes) -> bytes:
    tls.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = tls.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def refuses(port: int) -> bool:
    """Nothing accepts connections on ``port`` any more."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def write_leaf(pki: Pki, directory: Path) -> bytes:
    leaf = issue_leaf(pki.ca, ("localhost", "127.0.0.1"), kind="ec")
    chain, key = leaf.to_pem()
    (directory / "leaf.crt").write_bytes(chain)
    (directory / "leaf.key").write_bytes(key)
    return leaf.chain[0].public_bytes(Encoding.DER)


def test_sighup_new_certificate_open_connection_keeps_working(
    pki: Pki, logs: Path, echo_backend: Peer, tmp_path: Path
) -> None:
    old = write_leaf(pki, tmp_path)
    certs = (tmp_path / "leaf.crt", tmp_path / "leaf.key")
    with proxy(pki, logs, port_of(echo_backend), certs=certs, name="proxy-hup") as p:
        ctx = client_context(pki, "1.3")
        with connect(port_of(p), ctx) as held:
            assert echo(held, b"before") == b"before"
            assert held.getpeercert(binary_form=True) == old
            new = write_leaf(pki, tmp_path)
            assert new != old
            p.proc.send_signal(signal.SIGHUP)
            wait_for_output(p, "reloaded: 1 certificate(s)")
            with connect(port_of(p), ctx) as fresh:
                assert fresh.getpeercert(binary_form=True) == new
                assert echo(fresh, b"fresh") == b"fresh"
            assert echo(held, b"after the reload" * 1000) == b"after the reload" * 1000
        assert p.proc.poll() is None
        assert "Traceback" not in p.output()


def test_sigterm_lets_an_open_transfer_complete(pki: Pki, logs: Path, http_backend: Peer) -> None:
    size = 24 * 1024 * 1024
    with proxy(pki, logs, port_of(http_backend), "--drain-timeout", "30",
               name="proxy-term") as p:  # fmt: skip
        port = port_of(p)
        tls = connect(port, client_context(pki, "1.2"))
        tls.sendall(f"GET /bytes/{size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = bytearray(tls.recv(65536))  # (not bytes: += would copy it all every record)
        p.proc.send_signal(signal.SIGTERM)
        wait_for_output(p, "draining: 1 connection(s) open")
        wait_until(
            lambda: refuses(port),
            "the proxy stops accepting connections after SIGTERM",
            details=p.output,
        )  # the listening socket is closed at once
        while chunk := tls.recv(1 << 20):  # the transfer goes on to the end
            data += chunk
        tls.close()
        assert p.proc.wait(15) == 0
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and sha(body) == sha(pattern(size))


def test_out_of_descriptors_keeps_serving(pki: Pki, logs: Path, http_backend: Peer) -> None:
    limit = 64
    port, metrics = free_port(), free_port()
    with proxy(pki, logs, port_of(http_backend), "--handshake-timeout", "30", "--metrics",
               f"127.0.0.1:{metrics}", port=port, name="proxy-emfile",
               shell=f"ulimit -n {limit} && exec") as p:  # fmt: skip
        ctx = client_context(pki, "1.3")
        assert https(port, ctx, "GET", "/").body == b"hello\n"
        idle: list[socket.socket] = []
        try:
            for _ in range(limit + 40):  # more clients than the proxy has descriptors
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            wait_for_output(p, "accept() failed", timeout=15)
            assert p.proc.poll() is None
        finally:
            for s in idle:
                s.close()
        replies = []  # the load is gone: served again
        wait_until(lambda: replies.append(https(port, ctx, "GET", "/", timeout=5)) or True,
                   "an answer once the held connections are gone", details=p.output,
                   ignore=(OSError, AssertionError))  # fmt: skip
        assert replies[0].body == b"hello\n"
        assert value(scrape(metrics), "tessera_accept_errors_total", error="EMFILE") >= 1
        assert p.proc.poll() is None
        assert "Traceback" not in p.output()


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_proxy_protocol_v2_header(pki: Pki, logs: Path, tmp_path: Path, version: str) -> None:
    record = tmp_path / "headers.jsonl"
    with (
        backend("pp2", logs, str(record)) as pp2,
        proxy(pki, logs, port_of(pp2), "--proxy-protocol", "--alpn", "http/1.1",
              name="proxy-pp2") as p,
    ):  # fmt: skip
        ctx = client_context(pki, version)
        ctx.set_alpn_protocols(["http/1.1"])
        with connect(port_of(p), ctx) as tls:
            assert echo(tls, b"ping") == b"ping"  # the header was taken off before the echo
            source = tls.getsockname()
            cipher = tls.cipher()
    (header,) = [json.loads(line) for line in record.read_text().splitlines()]
    assert header["version_command"] == 0x21 and header["family"] == 0x11
    assert header["source"] == [source[0], source[1]]
    assert header["destination"] == ["127.0.0.1", port_of(p)]
    assert header["authority"] == "localhost" and header["alpn"] == "http/1.1"
    assert header["ssl_client"] == 1 and header["ssl_verify"] == 0
    assert header["ssl_version"] == f"TLSv{version}"
    assert cipher is not None and header["ssl_cipher"] == cipher[0]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_back_pressure_bounds_memory_both_ways(pki: Pki, logs: Path, http_backend: Peer) -> None:
    """A client that does not read, a backend that does not read: the proxy stops reading the
    other side instead of buffering (its memory stays flat), and everything arrives after."""
    size = 64 * 1024 * 1024
    with backend("slow", logs) as slow, proxy(pki, logs, port_of(http_backend),
                                              name="proxy-bp-down") as down:  # fmt: skip
        ctx = client_context(pki, "1.2")
        base = rss_kib(down.proc.pid)
        with connect(port_of(down), ctx) as tls:
            tls.sendall(f"GET /bytes/{size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            time.sleep(2)  # the backend could send all 64 MiB by now; the client reads nothing
            assert rss_kib(down.proc.pid) - base < 16 * 1024
            got = 0
            while got < size:
                chunk = tls.recv(1 << 20)
                assert chunk
                got += len(chunk)
        with proxy(pki, logs, port_of(slow), name="proxy-bp-up") as up:
            base = rss_kib(up.proc.pid)
            with connect(port_of(up), ctx) as tls:
                tls.settimeout(30)
                tls.sendall(size.to_bytes(8, "big"))
                sent, block = 0, b"\x5a" * (1 << 20)
                start = time.monotonic()
                while sent < size:  # blocks while the backend does not read
                    tls.sendall(block)
                    sent += len(block)
                    if time.monotonic() - start < 2.5:
                        assert rss_kib(up.proc.pid) - base < 16 * 1024
                assert time.monotonic() - start > 1.0  # the proxy did hold the client back
                assert tls.recv(64) == f"{size}\n".encode()


def test_max_connections_busy_slots_queue_instead_of_refusing(pki: Pki, logs: Path,
                                                              echo_backend: Peer) -> None:  # fmt: skip
    """At ``--max-connections`` with every connection still talking, the proxy stops
    accepting: the next client waits in the accept queue (its handshake does not start, it is
    not refused) and is served as soon as a slot frees up."""
    import threading

    with proxy(pki, logs, port_of(echo_backend), "--max-connections", "2",
               name="proxy-max") as p:  # fmt: skip
        ctx = client_context(pki, "1.3")
        held = [connect(port_of(p), ctx) for _ in range(2)]
        stop = threading.Event()

        def talk(tls: ssl.SSLSocket) -> None:  # every 50 ms: never idle for the 0.5 s it takes
            with contextlib.suppress(OSError):
                while not stop.wait(0.05):
                    assert echo(tls, b"held") == b"held"

        talkers = [threading.Thread(target=talk, args=(s,), daemon=True) for s in held]
        for t in talkers:
            t.start()
        try:
            raw = socket.create_connection(("127.0.0.1", port_of(p)), timeout=1.5)
            with pytest.raises(TimeoutError), raw:  # in the queue: no ServerHello, no refusal
                ctx.wrap_socket(raw, server_hostname="localhost")
            stop.set()
            for t in talkers:
                t.join(10)
            held[0].close()
            with connect(port_of(p), ctx) as third:
                assert echo(third, b"third") == b"third"
        finally:
            stop.set()
            for s in held:
                s.close()
        assert "Traceback" not in p.output()


def test_max_connections_the_idle_longest_makes_room(pki: Pki, logs: Path,
                                                     echo_backend: Peer) -> None:  # fmt: skip
    """At ``--max-connections`` with connections that say nothing, a newcomer is served and
    the connection idle longest is cut for it (counted as shed); the other one stays."""
    with proxy(pki, logs, port_of(echo_backend), "--max-connections", "2",
               name="proxy-shed") as p:  # fmt: skip
        ctx = client_context(pki, "1.3")
        first = connect(port_of(p), ctx)
        assert echo(first, b"one") == b"one"
        second = connect(port_of(p), ctx)
        assert echo(second, b"two") == b"two"
        try:
            with connect(port_of(p), ctx) as third:
                assert echo(third, b"third") == b"third"
            first.settimeout(10)
            assert first.recv(64) == b"", "the connection idle longest was not cut"
            assert echo(second, b"still") == b"still"
            wait_for_output(p, 'error="cut: shed: idle"')
        finally:
            first.close()
            second.close()
        assert "Traceback" not in p.output()

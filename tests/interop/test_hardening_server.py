"""A real ``tessera serve`` under attack (issue 13, items 1 and 2): out of descriptors it backs
off and serves again once load drops; idle and trickling connections are cut; at the connection cap
the connection idle longest makes room, and busy ones keep a newcomer in the listen queue."""

from __future__ import annotations

import contextlib
import select
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import Peer, wait_for_output

from conftest import free_port
from tessera import ClientConfig, HandshakeTimeout, TLSSocket

pytestmark = pytest.mark.interop

# `tessera serve` with RLIMIT_NOFILE set first (what a preexec_fn would do, without forking
# twice): argv is LIMIT, then the serve arguments.
LIMITED_SERVE = (
    "import resource, runpy, sys\n"
    "n = int(sys.argv[1])\n"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))\n"
    "sys.argv = ['tessera', 'serve', *sys.argv[2:]]\n"
    "runpy.run_module('tessera.cli.main', run_name='__main__')\n"
)
INSECURE = ClientConfig(verify=False)


@contextlib.contextmanager
def serve(tmp_path: Path, *args: str, nofile: int | None = None) -> Iterator[Peer]:
    port = free_port()
    argv = (
        [sys.executable, "-c", LIMITED_SERVE, str(nofile)]
        if nofile is not None
        else [sys.executable, "-m", "tessera.cli.main", "serve"]
    )
    with Peer([*argv, "--port", str(port), *args], port=port, log_dir=tmp_path,
              name="tessera-serve", env={"COLUMNS": "300"}) as peer:  # fmt: skip
        yield peer


def echo_once(port: int, timeout: float = 10.0) -> bytes:
    with TLSSocket.connect(("127.0.0.1", port), INSECURE, "localhost", timeout=timeout) as tls:
        tls.sock.settimeout(timeout)
        tls.sendall(b"ping")
        return tls.recv(4)


def closed_by_server(tls: TLSSocket, within: float) -> bool:
    """True if the server ends the connection (close_notify, then EOF) within ``within`` s."""
    readable, _, _ = select.select([tls.sock], [], [], within)
    if not readable:
        return False
    tls.sock.settimeout(5)
    return tls.recv(4) == b""


# -- item 1: EMFILE in accept() -------------------------------------------------------------------
def test_out_of_descriptors_the_server_backs_off_and_serves_again(tmp_path: Path) -> None:
    """RLIMIT_NOFILE 40 and 80 held connections (each waiting in its handshake): accept() fails
    with EMFILE. The server must stay up and answer once the clients have gone."""
    with serve(tmp_path, "--handshake-timeout", "60", nofile=40) as peer:
        assert peer.port is not None
        held = []
        try:
            for _ in range(80):
                held.append(socket.create_connection(("127.0.0.1", peer.port), timeout=5))
            out = wait_for_output(peer, "accept() failed", timeout=15)
            assert "Too many open files" in out, out
            time.sleep(1.5)  # several retries with back-off
            assert peer.proc.poll() is None, f"the server exited:\n{peer.output()}"
        finally:
            for s in held:
                s.close()
        deadline = time.monotonic() + 20
        while True:  # the queue drains: the held connections are accepted and end at once
            try:
                assert echo_once(peer.port) == b"ping"
                break
            except (OSError, HandshakeTimeout):
                if time.monotonic() > deadline:
                    raise
        wait_for_output(peer, "accept() works again")
        assert peer.proc.poll() is None


# -- item 2: idle timeout and connection cap ------------------------------------------------------
@pytest.fixture(scope="module")
def idle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    with serve(tmp_path_factory.mktemp("idle"), "--idle-timeout", "1") as peer:
        yield peer


def test_an_idle_connection_is_closed(idle_server: Peer) -> None:
    assert idle_server.port is not None
    tls = TLSSocket.connect(("127.0.0.1", idle_server.port), INSECURE, "localhost")
    try:
        start = time.monotonic()
        assert closed_by_server(tls, within=8), "an idle connection stayed open"
        assert time.monotonic() - start >= 0.9
    finally:
        tls.close()


def test_a_trickling_connection_is_closed(idle_server: Peer) -> None:
    """One byte every 0.2 s that never completes a record is no progress."""
    assert idle_server.port is not None
    tls = TLSSocket.connect(("127.0.0.1", idle_server.port), INSECURE, "localhost")
    trickle = b"\x17\x03\x03\x01\x00" + bytes(256)
    try:
        for i in range(40):  # 8 s at most
            with contextlib.suppress(OSError):
                tls.sock.send(trickle[i : i + 1])
            if select.select([tls.sock], [], [], 0.2)[0]:
                break
        assert closed_by_server(tls, within=0), "a trickling connection stayed open"
    finally:
        tls.close()


def test_a_client_that_reads_nothing_is_cut(idle_server: Peer) -> None:
    """The echo server's writes stall once the client stops reading: after the idle timeout
    the server gives up (and its close resets the connection) instead of blocking forever."""
    assert idle_server.port is not None
    tls = TLSSocket.connect(("127.0.0.1", idle_server.port), INSECURE, "localhost")
    tls.sock.settimeout(10)
    chunk = bytes(1 << 16)
    try:
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            for _ in range(1024):  # 64 MiB at most, far more than the socket buffers hold
                tls.sendall(chunk)
    finally:
        tls.close()


def test_a_busy_connection_outlives_the_idle_timeout(idle_server: Peer) -> None:
    assert idle_server.port is not None
    with TLSSocket.connect(("127.0.0.1", idle_server.port), INSECURE, "localhost") as tls:
        tls.sock.settimeout(5)
        for _ in range(6):  # 1.8 s in all, a message every 0.3 s
            time.sleep(0.3)
            tls.sendall(b"hi")
            assert tls.recv_exactly(2) == b"hi"


def test_at_max_connections_the_idle_longest_makes_room(tmp_path: Path) -> None:
    """Every slot taken by a connection that has said nothing for a while: a newcomer is
    served and the connection idle longest is cut for it (nginx/HAProxy operators' fair
    slots); the other one stays."""
    with serve(tmp_path, "--max-connections", "2") as peer:
        assert peer.port is not None
        address = ("127.0.0.1", peer.port)
        first = TLSSocket.connect(address, INSECURE, "localhost")
        time.sleep(0.05)  # (ordering only: "idle longest" is the first one)
        second = TLSSocket.connect(address, INSECURE, "localhost")
        try:
            assert echo_once(peer.port, timeout=10) == b"ping"  # a slot was made for it
            assert closed_by_server(first, within=5), "the connection idle longest stayed"
            second.sock.settimeout(5)
            second.sendall(b"still here")
            assert second.recv_exactly(10) == b"still here"
        finally:
            first.close()
            second.close()


def test_at_max_connections_busy_slots_keep_a_newcomer_waiting(tmp_path: Path) -> None:
    """Slots whose connections are still talking are not taken away: the next client waits
    in the listen queue (no ServerHello) and is served once a slot frees."""
    with serve(tmp_path, "--max-connections", "1") as peer:
        assert peer.port is not None
        address = ("127.0.0.1", peer.port)
        busy = TLSSocket.connect(address, INSECURE, "localhost")
        busy.sock.settimeout(5)
        stop = threading.Event()

        def talk() -> None:  # a message every 50 ms: never idle for the 0.5 s it takes
            with contextlib.suppress(OSError):
                while not stop.wait(0.05):
                    busy.sendall(b"hi")
                    busy.recv_exactly(2)

        talker = threading.Thread(target=talk, daemon=True)
        talker.start()
        try:
            with pytest.raises(HandshakeTimeout):  # waits in the listen queue: no ServerHello
                TLSSocket.connect(address, INSECURE, "localhost", timeout=1.5)
            stop.set()
            talker.join(5)
            busy.close()
            assert echo_once(peer.port, timeout=10) == b"ping"  # the slot is free again
        finally:
            stop.set()
            busy.close()

"""Observers are guarded: one that raises, on any fact, can neither fail a connection nor stall
the client waiting for the server's next flight nor let a raw exception out of
``receive_data``; it is counted (``observer_errors``) and the other observers still see every
fact. Facts are frozen, so an observer cannot change the handshake either."""

from __future__ import annotations

import socket
import ssl
import threading
from collections import Counter
from pathlib import Path

import pytest

from tessera import ClientConfig, ClientConnection, ServerConfig, ServerConnection, TLSSocket
from tessera.certs import CertifiedKey, generate_ca, issue_leaf
from tessera.enums import AlertDescription
from tessera.errors import DecodeError
from tessera.observe.facts import Fact, SessionCached
from tessera.observe.guard import ObserverGuard


class Raising:
    """Raises a raw KeyError on every fact (or only on facts of the named classes)."""

    def __init__(self, only: tuple[str, ...] = ()) -> None:
        self.only = only
        self.raised = 0

    def observe(self, fact: Fact) -> None:
        if not self.only or type(fact).__name__ in self.only:
            self.raised += 1
            raise KeyError("observer bug")


class Mutating:
    """Tries to change what it is told."""

    def observe(self, fact: Fact) -> None:
        object.__setattr__(fact, "resumed_by", None)  # frozen dataclass or named tuple


class Recording:
    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def observe(self, fact: Fact) -> None:
        self.seen[type(fact).__name__] += 1


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertifiedKey, Path]:
    ca = generate_ca("ec")
    leaf = issue_leaf(ca, names=("localhost", "127.0.0.1"), kind="ec")
    path = tmp_path_factory.mktemp("pki") / "ca.pem"
    path.write_bytes(ca.to_pem()[0])
    return leaf, path


def test_the_guard_counts_and_drops_and_goes_on() -> None:
    bad, good = Raising(), Recording()
    failures = []
    guard = ObserverGuard((bad, good), lambda: failures.append(1))
    guard.report(SessionCached())
    guard.report(SessionCached())
    assert bad.raised == 2 and good.seen["SessionCached"] == 2
    assert guard.failures == 2 and len(failures) == 2


def _server_config(leaf: CertifiedKey, *observers: object) -> ServerConfig:
    return ServerConfig(certificates=(leaf,), observers=observers)  # type: ignore[arg-type]


def _serve_one(config: ServerConfig, lsock: socket.socket, out: list[object]) -> None:
    conn, _ = lsock.accept()
    try:
        with TLSSocket.wrap_server(conn, config, handshake_timeout=10.0) as tls:
            tls.do_handshake()
            tls.sendall(tls.recv(100))
            out.append(tls.info)
    except Exception as e:  # the test reports it
        out.append(e)


@pytest.mark.parametrize("version", ["1.2", "1.3"])
@pytest.mark.parametrize("only", [(), ("HandshakeCompleted",), ("ResumptionDecision",)])
def test_a_raising_observer_does_not_stall_a_real_client(
    pki: tuple[CertifiedKey, Path], version: str, only: tuple[str, ...]
) -> None:
    """CPython ssl over a loopback socket: before the guard, an observer raising on
    HandshakeCompleted made the server fail after the client had sent its Finished, and the
    client waited for the server's Finished until its timeout."""
    leaf, ca = pki
    bad, good = Raising(only), Recording()
    config = _server_config(leaf, bad, good)
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        out: list[object] = []
        thread = threading.Thread(target=_serve_one, args=(config, lsock, out), daemon=True)
        thread.start()
        ctx = ssl.create_default_context(cafile=str(ca))
        v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
        ctx.minimum_version = ctx.maximum_version = v
        raw = socket.create_connection(lsock.getsockname(), timeout=10)
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"ping")
            assert s.recv(100) == b"ping"
        thread.join(10)
    assert not thread.is_alive()
    (result,) = out
    assert not isinstance(result, Exception), result
    assert bad.raised >= 1 and good.seen["HandshakeCompleted"] == 1
    assert config.statistics["observer_errors"] == bad.raised
    assert config.statistics["full_handshakes"] == 1


def test_no_raw_exception_leaves_receive_data_on_a_fatal_alert(
    pki: tuple[CertifiedKey, Path],
) -> None:
    """A malformed ClientHello: the typed DecodeError leaves, its alert queued; the observer's
    KeyError on HandshakeFailed is counted, not raised."""
    leaf, _ = pki
    bad = Raising()
    conn = ServerConnection(_server_config(leaf, bad))
    with pytest.raises(DecodeError):
        conn.receive_data(bytes((22, 3, 1, 0, 5, 1, 0, 0, 1, 0)))
    assert conn.data_to_send()[-2:] == bytes((2, AlertDescription.decode_error))
    assert bad.raised == 1 and conn.config.statistics["observer_errors"] == 1


def test_an_observer_cannot_change_the_facts(pki: tuple[CertifiedKey, Path]) -> None:
    leaf, _ = pki
    config = _server_config(leaf, Mutating())
    server = ServerConnection(config)
    client = ClientConnection(ClientConfig(verify=False))
    client.start_handshake()
    for _ in range(6):
        if data := client.data_to_send():
            server.receive_data(data)
        if data := server.data_to_send():
            client.receive_data(data)
    assert server.info is not None and client.info is not None
    assert config.statistics["observer_errors"] >= 2  # every attempt failed, was counted
    assert config.statistics["full_handshakes"] == 1

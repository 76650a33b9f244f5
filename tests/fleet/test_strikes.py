"""The supervisor's 0-RTT strike register: bounded, never forgets a live mark, answers workers
over a socket pair; a worker's store sends only early-data marks there."""

from __future__ import annotations

import socket
import threading

import pytest

from tessera.errors import StoreError
from tessera.fleet.strikes import (
    EXISTS,
    REFUSED,
    STORED,
    SharedStrikeStore,
    StrikeClient,
    StrikeRegister,
    StrikeServer,
)
from tessera.session.resumption import early_data_mark_key, session_id_key
from tessera.session.store import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_register_marks_expire_and_fullness_refuses() -> None:
    clock = Clock()
    reg = StrikeRegister(max_marks=2, clock=clock)
    assert reg.add(b"a", 10) == STORED
    assert reg.add(b"a", 10) == EXISTS
    assert reg.add(b"b", 10) == STORED
    assert reg.add(b"c", 10) == REFUSED  # full: refuse rather than forget a live mark
    assert reg.refused == 1
    clock.now += 10
    assert reg.add(b"a", 10) == STORED  # expired, then new again
    assert len(reg) == 1


def test_client_and_server_over_a_socket_pair() -> None:
    server = StrikeServer()
    ours, theirs = socket.socketpair()
    server.attach(ours)
    client = StrikeClient()
    client.attach(theirs)
    mark = early_data_mark_key(b"ticket")
    assert client.add(mark, 21.0) is True
    assert client.add(mark, 21.0) is False
    results: list[bool] = []
    threads = [threading.Thread(target=lambda i=i: results.append(  # type: ignore[misc]
        client.add(early_data_mark_key(b"%d" % i), 5))) for i in range(20)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == [True] * 20  # one question at a time, every answer to its question
    theirs.close()


def test_no_answer_is_an_error_and_refuses() -> None:
    client = StrikeClient(timeout=0.05)
    with pytest.raises(StoreError):
        client.add(b"0rtt:x", 1)  # not attached: no register here
    ours, theirs = socket.socketpair()
    client.attach(theirs)
    with pytest.raises(StoreError, match="did not answer"):
        client.add(b"0rtt:x", 1)  # nobody serves the other end
    ours.sendall(bytes((1,)) + STORED)  # the late answer to that question...
    server = StrikeServer()
    server.attach(ours)
    assert client.add(b"0rtt:y", 1) is True  # ...is skipped: this one gets its own
    theirs.close()


def test_shared_store_routes_only_marks() -> None:
    calls: list[bytes] = []

    class Register(StrikeClient):
        def add(self, key: bytes, ttl: float) -> bool:
            calls.append(key)
            return True

    inner = MemoryStore(10)
    store = SharedStrikeStore(inner, Register())
    sid = session_id_key(b"s" * 32)
    store.put(sid, b"v", 10)
    assert store.get(sid) == b"v" and inner.get(sid) == b"v"
    assert store.add(b"other", b"", 10) is True and calls == []
    mark = early_data_mark_key(b"t")
    assert store.add(mark, b"", 10) is True and calls == [mark]
    assert inner.get(mark) is None and store.max_entries == 10

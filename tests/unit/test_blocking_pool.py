"""The blocking server's pool of long-lived threads: connections are handed to waiting threads,
never more threads than connections at once (and the cap), idle threads end, close ends the
waiting ones; and TLSServer serves sequential clients on one thread."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import waiting
from tessera import ClientConfig, ServerConfig, TLSServer, TLSSocket, generate_self_signed
from tessera.io.pool import ThreadPool


def wait_until(condition: Callable[[], bool]) -> None:
    waiting.wait_until(condition, "the pool's threads did not settle")


def test_sequential_work_reuses_one_thread() -> None:
    done: list[int] = []
    names: set[int] = set()

    def work(item: int) -> None:
        names.add(threading.get_ident())
        done.append(item)

    pool: ThreadPool[int] = ThreadPool(work, 4)
    try:
        for i in range(50):
            wait_until(lambda: pool.idle == 1 or pool.threads == 0)
            pool.submit(i)
            wait_until(lambda: pool.idle == 1)  # done, and waiting again
        assert done == list(range(50))
        assert pool.started == 1 and len(names) == 1
    finally:
        pool.close()
    wait_until(lambda: pool.threads == 0)


def test_concurrent_work_grows_to_the_cap_and_no_further() -> None:
    release = threading.Event()
    running = threading.Semaphore(0)

    def work(item: int) -> None:
        running.release()
        release.wait(10)

    pool: ThreadPool[int] = ThreadPool(work, 3)
    try:
        for i in range(3):
            pool.submit(i)
        for _ in range(3):
            assert running.acquire(timeout=10)
        assert pool.threads == 3 and pool.idle == 0
        with pytest.raises(RuntimeError, match="busy"):
            pool.submit(99)
        release.set()
        wait_until(lambda: pool.idle == 3)
        pool.submit(4)  # a waiting thread takes it: no fourth thread
        assert pool.started == 3
    finally:
        release.set()
        pool.close()
    wait_until(lambda: pool.threads == 0)


def test_idle_threads_end_and_the_pool_grows_again() -> None:
    done = threading.Semaphore(0)
    pool: ThreadPool[int] = ThreadPool(lambda item: done.release(), 2, idle_exit=0.05)
    pool.submit(1)
    assert done.acquire(timeout=10)
    wait_until(lambda: pool.threads == 0)
    pool.submit(2)
    assert done.acquire(timeout=10)
    assert pool.started == 2
    pool.close()
    wait_until(lambda: pool.threads == 0)
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(3)


def test_a_failing_item_does_not_end_its_thread() -> None:
    done = threading.Semaphore(0)

    def work(item: int) -> None:
        done.release()
        if item == 0:
            raise ValueError("handler bug")

    pool: ThreadPool[int] = ThreadPool(work, 1)
    try:
        pool.submit(0)
        assert done.acquire(timeout=10)
        wait_until(lambda: pool.idle == 1)
        pool.submit(1)
        assert done.acquire(timeout=10)
        assert pool.started == 1
    finally:
        pool.close()


def test_tls_server_serves_one_client_after_another_on_one_thread() -> None:
    config = ServerConfig(certificates=(generate_self_signed("ec"),))

    def echo(tls: TLSSocket) -> None:
        tls.sendall(tls.recv(100))

    server = TLSServer(("127.0.0.1", 0), config, echo, max_connections=8)
    runner = threading.Thread(target=server.serve_forever, daemon=True)
    runner.start()
    client = ClientConfig(verify=False)
    try:
        for i in range(10):
            wait_until(lambda: server.pool.threads == 0 or server.pool.idle == 1)
            with TLSSocket.connect(server.address, client, "localhost") as tls:
                tls.sendall(b"ping %d" % i)
                assert tls.recv(100) == b"ping %d" % i
        assert server.pool.started == 1, "a thread per connection"
    finally:
        server.shutdown()
        runner.join(10)
    wait_until(lambda: server.pool.threads == 0)

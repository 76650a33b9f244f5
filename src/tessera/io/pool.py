"""A bounded pool of long-lived threads for the blocking server: a connection costs a queue
hand-off to a waiting thread, not a thread started and joined (about 100 µs of CPU each).

A blocking handler holds its thread for the whole connection, so the pool grows up to the
number of connections served at once (``limit``, the server's ``max_connections``) and no
further; the server admits no more than that. A thread that waits ``idle_exit`` seconds for
work ends, so the pool shrinks back after a burst. :meth:`ThreadPool.close` ends the waiting
threads; busy ones end after their connection.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("tessera")

T = TypeVar("T")

DEFAULT_IDLE_EXIT = 60.0  # seconds a thread waits for work before it ends


class ThreadPool(Generic[T]):
    """Threads that run ``work(item)`` for each submitted item, oldest first."""

    def __init__(
        self,
        work: Callable[[T], None],
        limit: int | None,
        *,
        idle_exit: float = DEFAULT_IDLE_EXIT,
        name: str = "tessera-connection",
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError("a thread pool needs room for at least one thread")
        self._work = work
        self._limit = limit
        self._idle_exit = idle_exit
        self._name = name
        self._queue: queue.SimpleQueue[T | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0  # alive
        self._idle = 0  # waiting for work and not yet promised an item
        self._closed = False
        self.started = 0  # threads started so far

    @property
    def threads(self) -> int:
        """Threads alive (busy or waiting)."""
        return self._threads

    @property
    def idle(self) -> int:
        """Threads waiting for work."""
        return self._idle

    def submit(self, item: T) -> None:
        """Hand ``item`` to a waiting thread, or to a new one while under ``limit``. Raises
        RuntimeError when the pool is closed or full (the caller admits no more than ``limit``
        items at once) or when no thread can be started."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the thread pool is closed")
            if self._idle:
                self._idle -= 1  # promised to one of the waiting threads
                self._queue.put(item)
                return
            if self._limit is not None and self._threads >= self._limit:
                raise RuntimeError(f"all {self._limit} threads are busy")
            self._threads += 1
            self.started += 1
        thread = threading.Thread(target=self._run, args=(item,), name=self._name, daemon=True)
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._threads -= 1
            raise

    def close(self) -> None:
        """No more work: waiting threads end now, busy ones after their item."""
        with self._lock:
            self._closed = True
            waiting, self._idle = self._idle, 0
        for _ in range(waiting):
            self._queue.put(None)

    def _run(self, item: T | None) -> None:
        while item is not None:
            try:
                self._work(item)
            except Exception:  # a handler's error never ends the thread
                log.exception("a connection's thread failed")
            item = self._next()
        with self._lock:
            self._threads -= 1

    def _next(self) -> T | None:
        """The next item, or None when this thread should end (closed, or idle too long)."""
        with self._lock:
            if self._closed:
                return None
            self._idle += 1
        while True:
            try:
                return self._queue.get(timeout=self._idle_exit)
            except queue.Empty:
                with self._lock:
                    if self._idle:  # more threads wait than items are promised: leave
                        self._idle -= 1
                        return None
                # an item was promised to a waiting thread and is on its way: wait for it

"""The 0-RTT strike register of ``--workers`` without Redis, held by the supervisor.

0-RTT data is replayable unless whoever can open a ticket also sees every earlier use of it
(RFC 8446 §8): the strike register must be shared wherever the ticket keys are. With Redis the
register is in Redis (``SET NX``, :mod:`.redis_store`). Without it, the supervisor owns the keys
of its workers, so it holds their register too: each worker asks it over a socket pair whether a
mark is new (:class:`StrikeClient`), and a worker's store sends only those questions there
(:class:`SharedStrikeStore`); everything else stays in the worker's memory.

The register is bounded and never evicts a live mark: when it is full, or the supervisor does
not answer within the timeout, the answer is an error, which refuses the early data (fail
closed) and costs nothing else.

Wire format (a private socket pair): request ``ttl_ms:u32 | seq:u8 | len:u8 | key``, answer
``seq:u8 | result:u8``; the sequence number lets a worker skip an answer that came too late.
"""

from __future__ import annotations

import collections
import socket
import struct
import threading
import time
from collections.abc import Callable

from ..errors import StoreError
from ..session.resumption import EARLY_DATA_MARK_PREFIX
from ..session.store import MemoryStore

MAX_MARKS = 200_000  # live marks at most (a mark lives 2 x the ticket-age skew + 1 s)
TIMEOUT = 0.25  # seconds a worker waits for the supervisor's answer
_HEAD = struct.Struct(">IBB")
STORED, EXISTS, REFUSED = b"\x01", b"\x00", b"\x02"


class StrikeRegister:
    """Marks with a lifetime, bounded; :meth:`add` answers whether a mark is new."""

    def __init__(self, max_marks: int = MAX_MARKS,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.max_marks = max_marks
        self._clock = clock
        self._marks: dict[bytes, float] = {}
        self._order: collections.deque[tuple[float, bytes]] = collections.deque()
        self.refused = 0

    def __len__(self) -> int:
        return len(self._marks)

    def add(self, key: bytes, ttl: float) -> bytes:
        """``STORED`` (new), ``EXISTS`` (a replay) or ``REFUSED`` (full: refuse the early
        data rather than forget a live mark)."""
        now = self._clock()
        self._expire(now)
        until = self._marks.get(key)
        if until is not None and until > now:
            return EXISTS
        if len(self._marks) >= self.max_marks:
            self.refused += 1
            return REFUSED
        self._marks[key] = now + ttl
        self._order.append((now + ttl, key))
        return STORED

    def _expire(self, now: float) -> None:
        order = self._order
        while order and order[0][0] <= now:
            _, key = order.popleft()
            until = self._marks.get(key)
            if until is not None and until <= now:
                del self._marks[key]


class StrikeServer:
    """The supervisor's side: one small thread per worker socket, answering from one register
    (behind a lock)."""

    def __init__(self, register: StrikeRegister | None = None) -> None:
        self.register = register or StrikeRegister()
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket) -> None:
        """Serve a worker's end of a new socket pair until the worker closes it."""
        threading.Thread(target=self._serve, args=(sock,), name="tessera-0rtt",
                         daemon=True).start()  # fmt: skip

    def _serve(self, sock: socket.socket) -> None:
        buf = bytearray()
        with sock:
            while True:
                try:
                    data = sock.recv(4096)
                except OSError:
                    return
                if not data:
                    return  # the worker is gone
                buf += data
                while len(buf) >= _HEAD.size and len(buf) >= _HEAD.size + buf[_HEAD.size - 1]:
                    ttl_ms, seq, size = _HEAD.unpack_from(buf)
                    key = bytes(buf[_HEAD.size : _HEAD.size + size])
                    del buf[: _HEAD.size + size]
                    with self._lock:
                        answer = self.register.add(key, ttl_ms / 1000)
                    try:
                        sock.sendall(bytes((seq,)) + answer)
                    except OSError:
                        return


class StrikeClient:
    """A worker's side: asks the supervisor over its end of the socket pair (attached after
    the fork). Thread-safe; one question at a time."""

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._seq = 0

    def attach(self, sock: socket.socket) -> None:
        sock.settimeout(self.timeout)
        self._sock = sock

    def add(self, key: bytes, ttl: float) -> bool:
        """True if the mark is new; raises :class:`~tessera.errors.StoreError` when there is
        no answer in time (then the early data is refused)."""
        sock = self._sock
        if sock is None or len(key) > 255:
            raise StoreError("no 0-RTT strike register in this process")
        with self._lock:
            self._seq = (self._seq + 1) % 256
            seq = self._seq
            request = _HEAD.pack(min(int(ttl * 1000), 0xFFFFFFFF), seq, len(key)) + key
            try:
                sock.sendall(request)
                answer = self._answer(sock, seq)
            except OSError as e:
                raise StoreError(f"the supervisor's 0-RTT register did not answer: {e}") from None
        if answer == STORED:
            return True
        if answer == EXISTS:
            return False
        raise StoreError("the supervisor's 0-RTT register is full")

    def _answer(self, sock: socket.socket, seq: int) -> bytes:
        """The result for ``seq``, skipping answers to earlier questions that timed out."""
        deadline = time.monotonic() + self.timeout
        while True:
            got = b""
            while len(got) < 2:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = sock.recv(2 - len(got))
                if not chunk:
                    raise OSError("the supervisor is gone")
                got += chunk
            if got[0] == seq:
                return got[1:]


class SharedStrikeStore:
    """A worker's session store: its own memory for sessions, the supervisor's register for
    0-RTT marks (``add`` of an early-data mark)."""

    def __init__(self, inner: MemoryStore, register: StrikeClient) -> None:
        self.inner = inner
        self.register = register

    def __repr__(self) -> str:
        return f"SharedStrikeStore({self.inner!r}, 0-RTT marks in the supervisor)"

    def __len__(self) -> int:
        return len(self.inner)

    @property
    def max_entries(self) -> int:
        return self.inner.max_entries

    def put(self, key: bytes, value: bytes, ttl: float) -> None:
        self.inner.put(key, value, ttl)

    def get(self, key: bytes) -> bytes | None:
        return self.inner.get(key)

    def take(self, key: bytes) -> bytes | None:
        return self.inner.take(key)

    def delete(self, key: bytes) -> None:
        self.inner.delete(key)

    def add(self, key: bytes, value: bytes, ttl: float) -> bool:
        if key.startswith(EARLY_DATA_MARK_PREFIX):
            return self.register.add(key, ttl)
        return self.inner.add(key, value, ttl)

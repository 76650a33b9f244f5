"""``tessera serve --workers N``: a supervisor process and N forked workers on one port.

The supervisor reserves the port (a socket bound with ``SO_REUSEPORT``, never listening), then
forks the workers; each binds its own listening socket to the same port with ``SO_REUSEPORT`` and
the kernel spreads connections over them. A worker that dies is forked again; SIGTERM/SIGINT to
the supervisor stop every worker (SIGTERM, then SIGKILL after a grace period).

Each worker gets a pipe from the supervisor. Without Redis the supervisor owns the ticket keyring:
it mints the keys (publish-before-use: a key reaches every worker ``lead`` seconds before it
encrypts) and sends each new key set down the pipes, so tickets and TLS 1.3 PSKs resume on any
worker. The pipe also tells a worker that its supervisor is gone (end of file): it stops.
Where the supervisor owns the keys it also holds the 0-RTT strike register (:mod:`.strikes`):
each worker asks it over a socket pair, so early data replayed to another worker is refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .keyring import FleetKeyring
from .keys import KEY_RECORD, FleetKey, KeySet
from .strikes import StrikeClient, StrikeServer

log = logging.getLogger("tessera.fleet")
GRACE = 5.0  # seconds a worker gets to stop after SIGTERM
RESPAWN_DELAY = 0.5  # at most one restart per worker slot per this many seconds
_HEADER = struct.Struct(">I")
MAX_MESSAGE = 1 << 20


class Server(Protocol):
    @property
    def address(self) -> tuple[str, int]: ...
    def serve_forever(self) -> None: ...
    def shutdown(self) -> None: ...


MakeServer = Callable[[tuple[str, int], bool], Server]


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    index: int  # 1..count
    count: int
    pid: int


WORKER: WorkerIdentity | None = None  # set in a worker process
PROGRAM = "tessera serve"  # what the supervisor calls itself (tessera proxy sets its name)


# -- the pipe: key sets down, end of file when the supervisor is gone --------------------------
def encode_keys(keys: KeySet) -> bytes:
    payload = b"".join(k.to_bytes() for k in keys.keys)
    return _HEADER.pack(len(payload)) + payload


def decode_keys(payload: bytes) -> KeySet:
    if len(payload) % KEY_RECORD:
        raise ValueError("a key set message is a whole number of key records")
    n = KEY_RECORD
    return KeySet.of(FleetKey.from_bytes(payload[i : i + n]) for i in range(0, len(payload), n))


def _read_exactly(fd: int, n: int) -> bytes | None:
    out = b""
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            return None
        out += chunk
    return out


def follow_pipe(fd: int, keyring: FleetKeyring | None, on_eof: Callable[[], None]) -> None:
    """A worker's thread: install every key set the supervisor sends; stop at end of file."""
    try:
        while (head := _read_exactly(fd, _HEADER.size)) is not None:
            (size,) = _HEADER.unpack(head)
            if size > MAX_MESSAGE:
                break
            payload = _read_exactly(fd, size)
            if payload is None:
                break
            if keyring is not None:
                keyring.install(decode_keys(payload))
    except (OSError, ValueError) as e:
        log.warning("the supervisor's pipe failed: %s", e)
    on_eof()


# -- the supervisor ---------------------------------------------------------------------------
class Supervisor:
    """Looks like a server (``address``, ``serve_forever``, ``shutdown``), runs N workers."""

    def __init__(self, make_server: MakeServer, address: tuple[str, int], workers: int, *,
                 keyring: FleetKeyring | None = None, mint: Callable[[], bool] | None = None,
                 on_worker_start: Callable[[], None] | None = None,
                 strikes: StrikeClient | None = None, grace: float = GRACE) -> None:  # fmt: skip
        if workers < 2:
            raise ValueError("a supervisor runs two or more workers")
        self.make_server = make_server
        self.count = workers
        self.keyring = keyring  # owned here (no Redis): sent to the workers
        self.mint = mint  # rotates ``keyring`` when due; True if it changed
        self.on_worker_start = on_worker_start
        self.strikes = strikes  # the workers' side of the 0-RTT register this process holds
        self._strike_server = StrikeServer() if strikes is not None else None
        self.grace = grace  # seconds a worker gets to stop after SIGTERM
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._reserved = socket.socket(family, socket.SOCK_STREAM)
        self._reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._reserved.bind(address)
        host, port = self._reserved.getsockname()[:2]
        self.address: tuple[str, int] = (host, port)
        self.pids: dict[int, int] = {}  # slot -> pid
        self.pipes: dict[int, int] = {}  # slot -> write end
        self.restarts = 0
        self._last_spawn: dict[int, float] = {}
        self._stop = threading.Event()

    def shutdown(self) -> None:
        self._stop.set()

    def serve_forever(self) -> None:
        try:
            for slot in range(1, self.count + 1):
                self._spawn(slot)
            while not self._stop.is_set():
                self._reap()
                if self.mint is not None and self.mint():
                    self._broadcast()
                self._stop.wait(0.2)
        finally:
            self._stop_all()
            self._reserved.close()

    # -- workers ------------------------------------------------------------------------------
    def _spawn(self, slot: int) -> None:
        self._last_spawn[slot] = time.monotonic()
        r, w = os.pipe()
        ours, theirs = socket.socketpair() if self.strikes is not None else (None, None)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(w)
                for fd in self.pipes.values():  # siblings' pipes: their EOF must not wait on us
                    os.close(fd)
                self._reserved.close()
                if ours is not None and theirs is not None and self.strikes is not None:
                    ours.close()
                    self.strikes.attach(theirs)
                code = self._work(slot, r)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        os.close(r)
        if ours is not None and theirs is not None and self._strike_server is not None:
            theirs.close()
            self._strike_server.attach(ours)  # served until the worker closes its end
        self.pids[slot] = pid
        self.pipes[slot] = w
        log.info("worker %d started (pid %d)", slot, pid)

    def _work(self, slot: int, pipe: int) -> int:
        global WORKER
        WORKER = WorkerIdentity(slot, self.count, os.getpid())
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops us with SIGTERM
        server = self.make_server(self.address, True)
        signal.signal(signal.SIGTERM, lambda signum, frame: server.shutdown())
        threading.Thread(
            target=follow_pipe, args=(pipe, self.keyring, server.shutdown), daemon=True
        ).start()
        if self.on_worker_start is not None:
            self.on_worker_start()
        server.serve_forever()
        return 0

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s, p in self.pids.items() if p == pid), None)
            if slot is None:
                continue
            del self.pids[slot]
            with contextlib.suppress(OSError):
                os.close(self.pipes.pop(slot))
            if self._stop.is_set():
                continue
            why = _exit_text(status)
            print(f"{PROGRAM}: worker {slot} (pid {pid}) {why}; restarting it",
                  file=sys.stderr, flush=True)  # fmt: skip
            wait = self._last_spawn.get(slot, 0.0) + RESPAWN_DELAY - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.restarts += 1
            self._spawn(slot)

    def _broadcast(self) -> None:
        assert self.keyring is not None
        message = encode_keys(self.keyring.snapshot)
        for slot, fd in list(self.pipes.items()):
            try:
                os.write(fd, message)
            except OSError as e:
                log.warning("could not send keys to worker %d: %s", slot, e)

    def _stop_all(self) -> None:
        for pid in self.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while self.pids and time.monotonic() < deadline:
            for slot, pid in list(self.pids.items()):
                try:
                    done = os.waitpid(pid, os.WNOHANG)[0]
                except ChildProcessError:
                    done = pid
                if done:
                    del self.pids[slot]
            time.sleep(0.05)
        for pid in self.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.pids.clear()
        for fd in self.pipes.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pipes.clear()


def _exit_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"

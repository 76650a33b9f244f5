"""A real ``redis-server`` for the fleet tests and benchmarks: a free port, a temp dir, its own
config (no persistence, an ACL user, a unix socket), always stopped.

Besides start/stop it can fail on purpose the ways the issue asks about: ``kill`` (SIGKILL: the
port is closed), ``pause``/``resume`` (SIGSTOP/SIGCONT: connections hang), and ``restart`` on
the same port (an empty Redis, as after a crash without persistence).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

ACL_USER = "fleet"
ACL_PASSWORD = "fleet-test-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, directory: Path | None = None, port: int | None = None) -> None:
        program = shutil.which("redis-server")
        if program is None:
            raise RuntimeError("redis-server is not installed; .ci/run installs it (apt)")
        self.program = program
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="tessera-redis-")
        self.dir = directory or Path(self._tmp.name)  # type: ignore[union-attr]
        self.port = port or free_port()
        self.socket_path = self.dir / "redis.sock"
        self.config = self.dir / "redis.conf"
        self.config.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f"dir {self.dir}",
                    'save ""',
                    "appendonly no",
                    f"unixsocket {self.socket_path}",
                    "unixsocketperm 700",
                    f"logfile {self.dir / 'redis.log'}",
                    "user default on nopass ~* &* +@all",
                    f"user {ACL_USER} on >{ACL_PASSWORD} ~tessera:* &* +@all",
                    "",
                ]
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def acl_url(self) -> str:
        return f"redis://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{self.port}"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [self.program, str(self.config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
        self.kill()
        raise RuntimeError(f"redis-server did not start on {self.port}:\n{log}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the port is closed, everything in memory is lost."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.kill()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.stop()


class FakeRedis:
    """A TCP server on ``port`` that answers ``+OK`` to whatever it reads — what a node meets
    behind a wrong port or a broken proxy. Always stopped (its connections closed)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._listener.settimeout(0.2)
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self.replies = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            self._conns.append(conn)
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while not self._stop.is_set() and conn.recv(65536):
                conn.sendall(b"+OK\r\n")
                self.replies += 1

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(5)
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def __enter__(self) -> FakeRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

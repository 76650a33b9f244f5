"""Start real peer programs (tessera serve, openssl s_server, node, ...) and reap them.

Every process is bounded in time: waiting for a port, waiting for exit and the process itself
are all limited, and ``stop()`` always kills what is left.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from tessera import TLSSocket
from waiting import WAIT, wait_until

TESSERA = [sys.executable, "-m", "tessera.cli.main"]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = WAIT,
                  proc: subprocess.Popen[bytes] | None = None) -> None:  # fmt: skip
    """Until something accepts on ``host:port`` (``proc``: fail at once if it exits first)."""

    def listening() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.create_connection((host, port), timeout=1.0):
            return True

    wait_until(listening, f"nothing listening on {host}:{port}", timeout, ignore=(OSError,))


class Peer:
    """A background process whose output goes to a file, readable at any time."""

    def __init__(self, argv: Sequence[str], *, port: int | None = None, log_dir: Path,
                 name: str = "peer", env: dict[str, str] | None = None,
                 stdin: int | None = subprocess.DEVNULL) -> None:  # fmt: skip
        self.argv = list(argv)
        self.port = port
        self.log = log_dir / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            self.argv, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=stdin,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )  # fmt: skip
        if port is not None:
            try:
                wait_for_port(port, proc=self.proc)
            except BaseException:
                self.stop()
                raise RuntimeError(f"{argv[0]} did not start:\n{self.output()}") from None

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 5.0) -> str:
        """SIGTERM to its session, SIGKILL if it lingers; then to whatever the session still
        holds (an nginx worker, a server's worker whose supervisor died)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        kill_group(self.proc)
        self._log_file.close()
        return self.log.read_text(errors="replace")

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.stop()


def run(argv: Sequence[str], *, input: bytes = b"", timeout: float = 30.0,
        env: dict[str, str] | None = None, cwd: Path | None = None,
        merge: bool = True) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """Run a program to completion (bounded), stdout and stderr merged (``merge=False``: apart).

    It runs in a session of its own, and whatever it leaves behind (a shell's background jobs,
    a server's workers) is killed when it ends, fails or runs out of time.
    """
    proc = subprocess.Popen(
        list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge else subprocess.PIPE,
        env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(input, timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.communicate()
        raise
    finally:
        kill_group(proc)
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL to every process left in ``proc``'s session (started with start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def tessera_serve(port: int, log_dir: Path, *args: str) -> Peer:
    return Peer([*TESSERA, "serve", "--port", str(port), *args], port=port, log_dir=log_dir,
                name="tessera-serve")  # fmt: skip


def openssl_s_server(port: int, log_dir: Path, cert: Path, key: Path, *args: str) -> Peer:
    """``openssl s_server`` answering HTTP (-www) by default; pass extra flags in ``args``."""
    argv = ["openssl", "s_server", "-accept", str(port), "-cert", str(cert), "-key", str(key),
            *args]  # fmt: skip
    if "-www" not in args and "-WWW" not in args and "-rev" not in args:
        argv.append("-www")
    return Peer(argv, port=port, log_dir=log_dir, name="openssl-s_server")


# -- helpers added for the TLS 1.2 interop tests (tests/interop/test_tls12_*.py) ------------------

HTTP_GET = b"GET / HTTP/1.0\r\n\r\n"


def openssl_s_client(port: int, *args: str, input: bytes = b"", timeout: float = 20.0,
                     host: str = "127.0.0.1") -> str:  # fmt: skip
    """Run ``openssl s_client -connect HOST:PORT ARGS`` to completion; its merged output.

    With empty ``input`` s_client quits right after the handshake. To read a reply, pass a
    request and ``-ign_eof`` and talk to a server that closes after answering (``--www``).
    """
    argv = ["openssl", "s_client", "-connect", f"{host}:{port}", *args]
    return run(argv, input=input, timeout=timeout).stdout.decode(errors="replace")


def ssl_alert_numbers(output: str) -> list[int]:
    """The alert numbers OpenSSL reports (``... SSL alert number 40``) in a peer's output."""
    return [int(n) for n in re.findall(r"SSL alert number (\d+)", output)]


def node_script(script: str, *, env: dict[str, str] | None = None,
                timeout: float = 20.0) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """Run an inline Node.js script (``node -e``), bounded in time, output merged."""
    return run(["node", "-e", script], env=env, timeout=timeout)


# -- helpers added for the TLS 1.3 interop tests (tests/interop/test_tls13_*.py) ------------------


# What ``openssl s_client`` prints once its handshake is done, and for each TLS 1.3 ticket.
HANDSHAKE_DONE = "Verify return code:"
TICKET_ARRIVED = "Post-Handshake New Session Ticket arrived"


def openssl_s_client_steps(port: int, *args: str, steps: Sequence[tuple[str, bytes]] = (),
                           until: str | None = HANDSHAKE_DONE, timeout: float = WAIT,
                           host: str = "127.0.0.1") -> str:  # fmt: skip
    """``openssl s_client -connect HOST:PORT ARGS`` driven by what it prints, its stdin open.

    Each ``(text, data)`` in ``steps`` writes ``data`` once ``text`` has appeared in its output
    (after where the previous step's text was found): ``(HANDSHAKE_DONE, b"k\n")`` sends a
    KeyUpdate once connected (interactive commands need no ``-ign_eof``), ``("hello\n", ...)``
    waits for an echo. Stdin is closed once ``until`` has appeared after the last step
    (``TICKET_ARRIVED``: a TLS 1.3 ticket was read), and s_client ends. A text that never
    comes (``timeout`` in all) fails showing the output; whatever is left is killed. Output
    (stdout and stderr) merged.
    """
    # stdbuf: s_client prints through stdio, fully buffered into a file (a ticket's lines
    # would wait there until it exits).
    argv = ["stdbuf", "-o0", "openssl", "s_client", "-connect", f"{host}:{port}", *args]
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout

        def output() -> str:
            out.seek(0)
            return out.read().decode(errors="replace")

        def after(text: str, start: int) -> int:
            """Wait for ``text`` after ``start``; the position after it."""
            found = -1

            def seen() -> bool:
                nonlocal found
                found = output().find(text, start)
                if found < 0 and proc.poll() is not None:
                    found = output().find(text, start)  # all it printed before it ended
                    if found < 0:
                        raise AssertionError(f"s_client ended without {text!r}:\n{output()}")
                return found >= 0

            wait_until(seen, f"s_client did not print {text!r}",
                       max(0.0, deadline - time.monotonic()), output)  # fmt: skip
            return found + len(text)

        try:
            assert proc.stdin is not None
            cursor = 0
            for text, data in steps:
                cursor = after(text, cursor)
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.write(data)
                    proc.stdin.flush()
            if until is not None:
                after(until, cursor)
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            proc.wait(max(1.0, deadline - time.monotonic()))
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        return output()


def wait_for_output(peer: Peer, text: str, count: int = 1, timeout: float = WAIT) -> str:
    """Wait until ``text`` appears ``count`` times in a peer's output; that output."""
    wait_until(lambda: peer.output().count(text) >= count,
               f"{text!r} x{count} not in {peer.argv[:3]}'s output", timeout,
               peer.output)  # fmt: skip
    return peer.output()


def tessera_serve13(port: int, log_dir: Path, *args: str) -> Peer:
    """``tessera serve --tls1_3 ARGS`` (a wide terminal, so its per-connection lines stay whole)."""
    argv = [*TESSERA, "serve", "--port", str(port), "--tls1_3", *args]
    return Peer(argv, port=port, log_dir=log_dir, name="tessera-serve13", env={"COLUMNS": "300"})


def http_get(tls: TLSSocket, timeout: float = 10.0, limit: int = 1 << 20) -> bytes:
    """Send ``HTTP_GET`` over a connected ``TLSSocket`` and read the reply until the server
    closes (at most ``limit`` bytes, each read bounded by ``timeout``)."""
    tls.sendall(HTTP_GET)
    tls.sock.settimeout(timeout)
    page = b""
    while len(page) < limit and (chunk := tls.recv(65536)):
        page += chunk
    return page

"""Shared pieces of the benchmarks: test certificates, the server subprocess, the CPython ``ssl``
client used against both servers, and small statistics and table helpers."""

from __future__ import annotations

import contextlib
import json
import math
import os
import selectors
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tessera import ServerConfig

BENCH_DIR = Path(__file__).resolve().parent
SERVER_PROGRAM = BENCH_DIR / "server.py"
HOST = "127.0.0.1"
SNI = "localhost"
IMPLS = ("tessera", "openssl")
OP_ALLOW_NO_DHE_KEX = 1 << 10  # SSL_OP_ALLOW_NO_DHE_KEX (not exported by CPython 3.11)

# TLS 1.2 suite per certificate kind: the same for both servers, pinned by the client.
SUITE_12 = {
    "ecdsa": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "rsa": "ECDHE-RSA-AES128-GCM-SHA256",
}
CERT_KINDS = {"ecdsa": "ec", "rsa": "rsa"}  # tessera.certs key kinds: P-256, RSA-2048


# -- certificates -----------------------------------------------------------------------------
@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path


def in_memory_servers(certs: CertFiles, version: str) -> tuple[ServerConfig, ssl.SSLContext]:
    """tessera's and CPython ``ssl``'s server settings for the in-memory comparisons: one
    version (``"1.2"``/``"1.3"``), the same certificate, a session cache and ticket keys each."""
    from tessera import CertifiedKey, MemoryStore, ProtocolVersion, TicketKeyring
    from tessera import ServerConfig as Config

    v = ProtocolVersion.TLS1_3 if version == "1.3" else ProtocolVersion.TLS1_2
    config = Config(
        certificates=(CertifiedKey.load(certs.cert, certs.key),),
        min_version=v,
        max_version=v,
        session_store=MemoryStore(),
        ticket_keyring=TicketKeyring(),
    )
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tv = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    sctx.minimum_version = sctx.maximum_version = tv
    sctx.load_cert_chain(certs.cert, certs.key)
    return config, sctx


@contextlib.contextmanager
def test_certificates(kinds: Sequence[str] = ("ecdsa", "rsa")) -> Iterator[dict[str, CertFiles]]:
    """A temporary test CA and one leaf per kind (leaf + CA chain, key in PKCS#8 PEM)."""
    from tessera.certs import generate_ca, issue_leaf

    ca = generate_ca("ec")
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as tmp:
        out = {}
        for kind in kinds:
            leaf = issue_leaf(ca, names=(SNI, HOST), kind=CERT_KINDS[kind])
            chain_pem, key_pem = leaf.to_pem()
            files = CertFiles(Path(tmp, f"{kind}.crt"), Path(tmp, f"{kind}.key"))
            files.cert.write_bytes(chain_pem)
            files.key.write_bytes(key_pem)
            out[kind] = files
        yield out


# -- the server subprocess --------------------------------------------------------------------
class ServerProcess:
    """``server.py`` in its own process, controlled over its stdin/stdout (one JSON line per
    command). Always stopped on exit: ``quit``, then SIGKILL if it does not go."""

    def __init__(
        self,
        impl: str,
        certs: CertFiles,
        *,
        version: str = "1.2",
        cache: bool = True,
        cache_size: int = 20_480,
        tickets: bool = True,
        psk_ke: bool = False,
        max_seconds: float = 1800.0,
        echo: bool = False,
    ) -> None:
        self.impl = impl
        argv = [
            sys.executable,
            str(SERVER_PROGRAM),
            "--impl",
            impl,
            "--cert",
            str(certs.cert),
            "--key",
            str(certs.key),
            "--version",
            version,
            "--cache-size",
            str(cache_size),
            "--max-seconds",
            str(max_seconds),
        ]
        argv += [] if cache else ["--no-cache"]
        argv += [] if tickets else ["--no-tickets"]
        argv += ["--psk-ke"] if psk_ke else []
        argv += ["--echo"] if echo else []
        self._start(argv)

    def _start(self, argv: list[str]) -> None:
        """Start the server program ``argv`` and read its hello line (port, RSS)."""
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
        )
        self._buf = b""
        try:
            hello = self._read_line(timeout=30.0)
        except BaseException:
            self.stop()
            raise
        self.port: int = hello["port"]
        self.start_rss_kib: int = hello["rss_kib"]

    def _read_line(self, timeout: float) -> dict[str, object]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.impl} server: no answer within {timeout} s")
                if not sel.select(left):
                    continue
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise RuntimeError(
                        f"{self.impl} server exited (code {self.proc.poll()}); see stderr above"
                    )
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    def command(self, cmd: str, timeout: float = 60.0) -> dict[str, object]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd.encode() + b"\n")
        self.proc.stdin.flush()
        return self._read_line(timeout)

    def stats(self) -> dict[str, object]:
        """Counters since the previous call (the server resets them)."""
        return self.command("stats")

    def cpu_ns(self) -> int:
        """The server process's CPU time so far (ns), once it waits for its next client."""
        return process_cpu_ns(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.close()
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError, ValueError):
                if f is not None:
                    f.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def process_cpu_ns(pid: int, settle: float = 2.0) -> int:
    """CPU time of process ``pid`` (all its threads, ns, from ``/proc/<pid>/task/*/schedstat``:
    exact, where ``/proc/<pid>/stat`` counts 10 ms ticks), read once the process sleeps (it has
    finished the last connection) or after ``settle`` seconds."""
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state in ("S", "D"):
            break
        time.sleep(0.0005)
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with (
            contextlib.suppress(FileNotFoundError),
            open(f"/proc/{pid}/task/{task}/schedstat") as f,
        ):
            total += int(f.read().split()[0])
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class SServerProcess:
    """``openssl s_server -rev`` (it sends back each line, reversed: ``x\n`` stays ``x\n``),
    the anchor OpenSSL itself ships: one process, one connection at a time, its default session
    cache and tickets. Its CPU is read from /proc between rounds."""

    impl = "s_server"

    def __init__(
        self, certs: CertFiles, *, version: str = "1.2", psk_ke: bool = False,
        max_seconds: float = 1800.0,
    ) -> None:  # fmt: skip
        self.port = free_port()
        argv = [
            "timeout", str(int(max_seconds)),  # never outlives a dead parent for long
            "openssl", "s_server", "-accept", f"{HOST}:{self.port}", "-cert", str(certs.cert),
            "-key", str(certs.key), "-rev", "-quiet", "-naccept", "1000000",
        ]  # fmt: skip
        if version == "1.3":
            argv += ["-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256"]
            argv += ["-allow_no_dhe_kex"] if psk_ke else []
        else:
            argv += ["-tls1_2"]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30.0
        while True:
            try:
                socket.create_connection((HOST, self.port), timeout=1.0).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"openssl s_server did not start: {argv}") from None
                time.sleep(0.02)
        self.pid = self._server_pid()

    def _server_pid(self) -> int:
        """The s_server process (the child of ``timeout``)."""
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            children = f.read().split()
        return int(children[0]) if children else self.proc.pid

    def cpu_ns(self) -> int:
        return process_cpu_ns(self.pid)

    def stats(self) -> dict[str, object]:
        return {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait(5.0)

    def __enter__(self) -> SServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the client (CPython ssl, the same for both servers) ----------------------------------------
def client_context(
    version: str = "1.2",
    cert_kind: str = "ecdsa",
    *,
    tickets: bool = True,
    psk_ke: bool = False,
    group: str | None = None,
) -> ssl.SSLContext:
    """A CPython ssl client context: verification off (the server's cost is what we measure),
    the version pinned, and for TLS 1.2 the suite pinned to the certificate's AES-128-GCM one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = v
    if version == "1.2":
        ctx.set_ciphers(SUITE_12[cert_kind])
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    if psk_ke:
        ctx.options |= OP_ALLOW_NO_DHE_KEX
    if group is not None:
        ctx.set_ecdh_curve(group)  # OpenSSL 3: the only group offered
    return ctx


def open_tls(
    port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> ssl.SSLSocket:
    raw = socket.create_connection((HOST, port), timeout=10.0)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        return ctx.wrap_socket(raw, server_hostname=SNI, session=session)
    except BaseException:
        raw.close()
        raise


def close_tls(s: ssl.SSLSocket) -> None:
    """Send close_notify and wait for the server's, then close."""
    try:
        with contextlib.suppress(OSError, ValueError):
            s.unwrap()
    finally:
        s.close()


def request(op: str, n: int = 0) -> bytes:
    """The 16-byte request header ``server.py`` understands."""
    return op.encode() + str(n).rjust(15, "0").encode()


def recv_exactly(s: ssl.SSLSocket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise ConnectionError(f"server closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def transfer(s: ssl.SSLSocket, direction: str, size: int, payload: bytes) -> float:
    """Move ``size`` bytes over ``s`` with ``server.py``'s requests (``S``: the server sends,
    ``R``: the client sends ``payload`` repeatedly, the server answers one byte); the client's
    wall seconds from the request to the last byte (or the answer)."""
    t0 = time.perf_counter()
    if direction == "server->client":
        buf = memoryview(bytearray(1 << 18))
        s.sendall(request("S", size))
        got = 0
        while got < size:
            n = s.recv_into(buf)
            if not n:
                raise ConnectionError(f"server closed after {got} of {size} bytes")
            got += n
    else:
        view = memoryview(payload)
        s.sendall(request("R", size))
        sent = 0
        while sent < size:
            k = min(size - sent, len(payload))
            s.sendall(view[:k])
            sent += k
        recv_exactly(s, 1)
    return time.perf_counter() - t0


def handshake_once(
    port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None, ping: bool = False
) -> tuple[bool, ssl.SSLSession | None]:
    """One connection: handshake (resuming ``session`` if given), optionally one ping round trip
    (so a TLS 1.3 client reads its tickets), close. Returns (resumed, the session to reuse)."""
    s = open_tls(port, ctx, session)
    try:
        if ping:
            s.sendall(request("P"))
            recv_exactly(s, 1)
        return s.session_reused, s.session
    finally:
        close_tls(s)


# -- statistics and output --------------------------------------------------------------------
def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def num(x: float) -> str:
    """A number with as many decimals as its size deserves."""
    if math.isnan(x):
        return "nan"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def spread(xs: Sequence[float]) -> str:
    """min..max, to show the noise next to a median."""
    return f"{num(min(xs))}..{num(max(xs))}" if xs else "-"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        lines.append(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def environment() -> str:
    import platform

    import cryptography

    return (
        f"Python {platform.python_version()}, {ssl.OPENSSL_VERSION}, "
        f"cryptography {cryptography.__version__}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )


def tessera_supports_tls13() -> bool:
    try:
        import tessera.handshake.server13  # noqa: F401
    except ImportError:
        return False
    return True

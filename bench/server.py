"""The benchmark server: a sequential accept loop, one connection at a time, that measures its
own CPU time per connection.

Not run by hand: the benchmark scripts start it as a subprocess (``common.ServerProcess``). It
prints one JSON line ``{"port": ...}`` once it listens on 127.0.0.1, then serves connections and
answers commands read from stdin, one JSON line each:

* ``stats``  counters since the last ``stats`` (connections, failures, resumed, CPU seconds for
  the handshakes, the data phase and the whole connections, bytes moved), then resets them;
* ``rss``    resident memory now (KiB) and what the session cache holds;
* ``quit``   exit. End of stdin also exits, so a dead parent never leaves a server behind.

After its handshake, each connection carries at most one 16-byte request from the client: an
opcode byte and 15 ASCII digits ``n``:

* ``S`` the server sends ``n`` bytes;
* ``R`` the server reads ``n`` bytes, then answers ``k``;
* ``P`` the server answers ``p`` (lets a TLS 1.3 client read its session tickets).

With ``--echo`` the request is instead one line, which the server sends back (what
``openssl s_server -rev`` does with the 2-byte line ``x\n`` that ``handshake.py`` sends).

With no request (the client sends close_notify right after the handshake) it is a handshake only.
Either way the connection ends with a close_notify exchange, so that OpenSSL keeps the session.

CPU is ``time.process_time()`` around the connection: from just after ``accept()`` to just after
the socket is closed. Start-up, the accept wait and the control commands are excluded.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import selectors
import socket
import ssl
import sys
import time
from collections.abc import Callable

REQUEST_LEN = 16
CHUNK = 1 << 20  # application write size for S requests (both servers)
RECV_SIZE = 1 << 18
PAGE = os.sysconf("SC_PAGE_SIZE")

# OpenSSL SSL_CTX_ctrl commands (ssl.h); CPython does not expose the session cache mode.
_SSL_CTRL_SET_SESS_CACHE_SIZE = 42
_SSL_CTRL_GET_SESS_CACHE_SIZE = 43
_SSL_CTRL_SET_SESS_CACHE_MODE = 44
_SSL_CTRL_GET_SESS_CACHE_MODE = 45
_SSL_SESS_CACHE_OFF = 0
_SSL_SESS_CACHE_SERVER = 2
OP_ALLOW_NO_DHE_KEX = 1 << 10  # SSL_OP_ALLOW_NO_DHE_KEX: TLS 1.3 psk_ke


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE // 1024


def _libssl() -> ctypes.CDLL:
    lib = ctypes.CDLL("libssl.so.3")  # the one CPython's _ssl is linked with (already loaded)
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_CTX_set_ciphersuites.restype = ctypes.c_int
    lib.SSL_CTX_set_ciphersuites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return lib


def _ctx_ptr(ctx: ssl.SSLContext) -> int | None:
    """The SSL_CTX inside a CPython SSLContext: PySSLContext's first field after the object
    header. Callers check it against a known value before changing anything."""
    return ctypes.c_void_p.from_address(id(ctx) + 2 * ctypes.sizeof(ctypes.c_void_p)).value


def _ssl_ctx_ctrl(ctx: ssl.SSLContext, cmd: int, larg: int) -> int:
    return int(_libssl().SSL_CTX_ctrl(_ctx_ptr(ctx), cmd, larg, None))


def set_tls13_suites(ctx: ssl.SSLContext, suites: str) -> None:
    """SSL_CTX_set_ciphersuites (CPython 3.11 has no API for TLS 1.3 suites)."""
    configure_openssl_cache(ctx, True, 0)  # validates the pointer first
    if _libssl().SSL_CTX_set_ciphersuites(_ctx_ptr(ctx), suites.encode()) != 1:
        raise SystemExit(f"OpenSSL refused TLS 1.3 suites {suites!r}")


def configure_openssl_cache(ctx: ssl.SSLContext, enabled: bool, size: int) -> None:
    mode = _ssl_ctx_ctrl(ctx, _SSL_CTRL_GET_SESS_CACHE_MODE, 0)
    if mode != _SSL_SESS_CACHE_SERVER:
        raise SystemExit(f"unexpected OpenSSL session cache mode {mode}; cannot configure it")
    if not enabled:
        _ssl_ctx_ctrl(ctx, _SSL_CTRL_SET_SESS_CACHE_MODE, _SSL_SESS_CACHE_OFF)
    elif size:
        _ssl_ctx_ctrl(ctx, _SSL_CTRL_SET_SESS_CACHE_SIZE, size)


class Counters:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.conns = 0
        self.failures = 0
        self.resumed = 0
        self.cpu_total = 0.0
        self.cpu_handshake = 0.0
        self.cpu_data = 0.0
        self.bytes = 0
        self.first_error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return dict(vars(self))


def read_exactly(recv: Callable[[int], bytes], n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


ECHO = False  # --echo: the request is a line, sent back


def serve_echo(recv: Callable[[int], bytes], sendall: Callable[[bytes], None]) -> int:
    """Send back the first line (if any), then wait for the end; returns bytes moved."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = recv(RECV_SIZE)
        if not chunk:
            return 0
        line += chunk
    sendall(line)
    while recv(RECV_SIZE):
        pass
    return len(line)


def serve_request(
    recv: Callable[[int], bytes],
    recv_some: Callable[[], int],
    sendall: Callable[[bytes], None],
    payload: bytes,
) -> tuple[int, float]:
    """Serve the optional request; returns (bytes moved, CPU seconds of the data phase)."""
    if ECHO:
        return serve_echo(recv, sendall), 0.0
    header = read_exactly(recv, REQUEST_LEN)
    if len(header) < REQUEST_LEN:
        return 0, 0.0
    t0 = time.process_time()
    op, n = header[:1], int(header[1:])
    moved = 0
    if op == b"S":
        view = memoryview(payload)
        while moved < n:
            k = min(n - moved, len(payload))
            sendall(payload if k == len(payload) else bytes(view[:k]))
            moved += k
    elif op == b"R":
        while moved < n:
            got = recv_some()
            if not got:
                break
            moved += got
        sendall(b"k")
    elif op == b"P":
        sendall(b"p")
    cpu = time.process_time() - t0
    # Wait for the client's close_notify (or end of stream).
    while recv(RECV_SIZE):
        pass
    return moved, cpu


class TesseraServer:
    def __init__(self, args: argparse.Namespace) -> None:
        from tessera import CertifiedKey, MemoryStore, ProtocolVersion, ServerConfig
        from tessera.session.keyring import TicketKeyring

        self.store = MemoryStore(max_entries=args.cache_size) if args.cache else None
        version = ProtocolVersion.TLS1_3 if args.version == "1.3" else ProtocolVersion.TLS1_2
        self.config = ServerConfig(
            certificates=(CertifiedKey.load(args.cert, args.key),),
            min_version=version,
            max_version=version,
            session_store=self.store,
            ticket_keyring=TicketKeyring() if args.tickets else None,
            psk_ke=args.psk_ke,
        )

    def handle(self, sock: socket.socket, payload: bytes) -> tuple[bool, int, float, float]:
        from tessera import TLSSocket

        # Served as the library's TLSServer serves a connection: a blocking socket whose kernel
        # receive timeout (SO_RCVTIMEO, inherited from the listening socket: see main) bounds
        # every wait, then an idle timeout. A Python socket timeout (settimeout) would add a
        # poll() before every read and write: 6 syscalls per connection here.
        tls = TLSSocket.wrap_server(sock, self.config, handshake_timeout=10.0,
                                    kernel_timeout_set=True)  # fmt: skip
        try:
            t0 = time.process_time()
            info = tls.do_handshake()
            hs = time.process_time() - t0
            tls.set_idle_timeout(10.0)

            def recv_some() -> int:
                return len(tls.recv(RECV_SIZE))

            moved, data_cpu = serve_request(tls.recv, recv_some, tls.sendall, payload)
        finally:
            tls.close()
        return info.resumed, moved, hs, data_cpu

    def cache_info(self) -> dict[str, object]:
        stats = self.config.statistics
        return {
            "entries": len(self.store) if self.store is not None else 0,
            "stats": stats.snapshot(),
            "fallbacks": stats.fallback_reasons(),
        }


class PlainServer:
    """No TLS at all: the same loop, the same echo, on the bare TCP socket. What a Python server
    pays per connection before any cryptography (the floor under both Python TLS servers)."""

    def __init__(self, args: argparse.Namespace) -> None:
        pass

    def handle(self, sock: socket.socket, payload: bytes) -> tuple[bool, int, float, float]:
        try:
            buf = memoryview(bytearray(RECV_SIZE))

            def recv_some() -> int:
                return sock.recv_into(buf)

            moved, data_cpu = serve_request(sock.recv, recv_some, sock.sendall, payload)
        finally:
            sock.close()
        return False, moved, 0.0, data_cpu

    def cache_info(self) -> dict[str, object]:
        return {"entries": 0, "stats": {}}


class OpenSSLServer:
    def __init__(self, args: argparse.Namespace) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        version = ssl.TLSVersion.TLSv1_3 if args.version == "1.3" else ssl.TLSVersion.TLSv1_2
        ctx.minimum_version = ctx.maximum_version = version
        ctx.load_cert_chain(args.cert, args.key)
        if not args.tickets:
            ctx.options |= ssl.OP_NO_TICKET
        if args.psk_ke:
            ctx.options |= OP_ALLOW_NO_DHE_KEX
        if args.version == "1.3":
            # tessera prefers TLS_AES_128_GCM_SHA256; OpenSSL would follow the client's order
            # (AES-256-GCM first). The same suite on both sides.
            set_tls13_suites(ctx, "TLS_AES_128_GCM_SHA256")
        configure_openssl_cache(ctx, args.cache, args.cache_size)
        self.ctx = ctx

    def handle(self, sock: socket.socket, payload: bytes) -> tuple[bool, int, float, float]:
        s = self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        try:
            t0 = time.process_time()
            s.do_handshake()
            hs = time.process_time() - t0
            resumed = s.session_reused
            buf = memoryview(bytearray(RECV_SIZE))

            def recv_some() -> int:
                return s.recv_into(buf)

            moved, data_cpu = serve_request(s.recv, recv_some, s.sendall, payload)
            with contextlib.suppress(OSError, ValueError):
                s.unwrap()  # our close_notify: OpenSSL drops sessions of unclean shutdowns
        finally:
            s.close()
        return resumed, moved, hs, data_cpu

    def cache_info(self) -> dict[str, object]:
        st = self.ctx.session_stats()
        return {"entries": st["number"], "stats": st}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--impl", choices=("tessera", "openssl", "plain"), required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--version", choices=("1.2", "1.3"), default="1.2")
    p.add_argument("--no-cache", dest="cache", action="store_false")
    p.add_argument("--cache-size", type=int, default=20_480)  # OpenSSL's default size
    p.add_argument("--no-tickets", dest="tickets", action="store_false")
    p.add_argument("--psk-ke", action="store_true")
    p.add_argument("--max-seconds", type=float, default=1800.0, help="exit after this long")
    p.add_argument("--echo", action="store_true", help="the request is a line, sent back")
    args = p.parse_args()
    global ECHO
    ECHO = args.echo

    kinds = {"tessera": TesseraServer, "openssl": OpenSSLServer, "plain": PlainServer}
    server: TesseraServer | OpenSSLServer | PlainServer = kinds[args.impl](args)
    payload = os.urandom(CHUNK)
    counters = Counters()

    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(128)
    # tessera: accepted sockets stay blocking and inherit this receive timeout (as TLSServer's
    # do); CPython ssl's get a Python socket timeout.
    kernel_timeout = isinstance(server, (TesseraServer, PlainServer))
    if kernel_timeout:
        from tessera.io.blocking import set_receive_timeout

        set_receive_timeout(lsock, 10.0)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, "accept")
    sel.register(sys.stdin, selectors.EVENT_READ, "control")

    def reply(obj: dict[str, object]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"port": lsock.getsockname()[1], "pid": os.getpid(), "rss_kib": rss_kib()})
    deadline = time.monotonic() + args.max_seconds
    running = True
    while running and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            if key.data == "control":
                line = sys.stdin.readline()
                words = line.split()
                if not words or words[0] == "quit":
                    running = False
                    break
                if words[0] == "stats":
                    reply(counters.as_dict())
                    counters.reset()
                elif words[0] == "rss":
                    reply({"rss_kib": rss_kib(), **server.cache_info()})
                else:
                    reply({"error": f"unknown command {line.strip()!r}"})
                continue
            try:
                conn, _ = lsock.accept()
            except OSError:
                continue
            t0 = time.process_time()
            if not kernel_timeout:
                conn.settimeout(10.0)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            counters.conns += 1
            try:
                resumed, moved, hs, data_cpu = server.handle(conn, payload)
            except Exception as e:  # count and keep serving
                counters.failures += 1
                if counters.first_error is None:
                    counters.first_error = f"{type(e).__name__}: {e}"
                with contextlib.suppress(OSError):
                    conn.close()
            else:
                counters.resumed += int(resumed)
                counters.bytes += moved
                counters.cpu_handshake += hs
                counters.cpu_data += data_cpu
            counters.cpu_total += time.process_time() - t0
    lsock.close()


if __name__ == "__main__":
    main()

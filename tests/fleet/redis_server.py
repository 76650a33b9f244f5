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
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from redis.crc import key_slot

from ports import free_port
from waiting import wait_until

ACL_USER = "fleet"
ACL_PASSWORD = "fleet-test-password"
CLUSTER_CONFIG = "cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout 1000\n"


@dataclass(frozen=True)
class RedisTls:
    """Redis over TLS only (``port 0``): clients, replication and the cluster bus. Clients
    verify the server's certificate against ``ca``; with ``auth_clients`` Redis (and the
    sentinels) also require theirs (``tls-auth-clients yes``), and this fixture's URLs, redis-cli
    and pings present ``client_cert``. The cluster bus, replication and sentinels always present
    ``client_cert`` (a certificate for client authentication) to each other."""

    cert: Path
    key: Path
    ca: Path
    client_cert: Path
    client_key: Path
    auth_clients: bool = False

    def config(self, port: int) -> str:
        return (
            f"port 0\ntls-port {port}\ntls-cert-file {self.cert}\ntls-key-file {self.key}\n"
            f"tls-client-cert-file {self.client_cert}\ntls-client-key-file {self.client_key}\n"
            f"tls-ca-cert-file {self.ca}\n"
            f"tls-auth-clients {'yes' if self.auth_clients else 'no'}\ntls-replication yes\n"
            "tls-cluster yes\n"
        )

    @property
    def cli(self) -> tuple[str, ...]:
        certs = ("--cert", str(self.client_cert), "--key", str(self.client_key))
        return ("--tls", "--cacert", str(self.ca), *(certs if self.auth_clients else ()))

    @property
    def params(self) -> list[str]:
        """redis-py's query parameters for this TLS (``ssl_ca_certs``, the client certificate)."""
        certs = [f"ssl_certfile={self.client_cert}", f"ssl_keyfile={self.client_key}"]
        return [f"ssl_ca_certs={self.ca}", *(certs if self.auth_clients else [])]

    @property
    def query(self) -> str:
        return "?" + "&".join(self.params)

    def wrap(self, sock: socket.socket) -> socket.socket:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if self.auth_clients:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        return ctx.wrap_socket(sock, server_hostname="127.0.0.1")


class RedisServer:
    def __init__(self, directory: Path | None = None, port: int | None = None,
                 extra: str = "", tls: RedisTls | None = None) -> None:  # fmt: skip
        program = shutil.which("redis-server")
        if program is None:
            raise RuntimeError("redis-server is not installed; .ci/run installs it (apt)")
        self.program = program
        self._tmp = None if directory else tempfile.TemporaryDirectory(prefix="tessera-redis-")
        self.dir = directory or Path(self._tmp.name)  # type: ignore[union-attr]
        self.port = port or free_port()
        self.tls = tls
        self.socket_path = self.dir / "redis.sock"
        self.config = self.dir / "redis.conf"
        self.config.write_text(
            "\n".join(
                [
                    tls.config(self.port) if tls else f"port {self.port}",
                    "bind 127.0.0.1",
                    f"dir {self.dir}",
                    'save ""',
                    "appendonly no",
                    f"unixsocket {self.socket_path}",
                    "unixsocketperm 700",
                    f"logfile {self.dir / 'redis.log'}",
                    "user default on nopass ~* &* +@all",
                    f"user {ACL_USER} on >{ACL_PASSWORD} ~tessera:* &* +@all",
                    extra,
                ]
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        if self.tls:
            return f"rediss://127.0.0.1:{self.port}{self.tls.query}"
        return f"redis://127.0.0.1:{self.port}"

    @property
    def acl_url(self) -> str:
        scheme, query = ("rediss", self.tls.query) if self.tls else ("redis", "")
        return f"{scheme}://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{self.port}{query}"

    @property
    def cli(self) -> tuple[str, ...]:
        """redis-cli's options to reach this server (TLS)."""
        return self.tls.cli if self.tls else ()

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
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw, \
                 (self.tls.wrap(raw) if self.tls else raw) as s:  # fmt: skip
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the port is closed, everything in memory is lost. To its whole session: a
        master forks a child to send a replica its snapshot, which would outlive it."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGCONT)
                os.killpg(self.proc.pid, signal.SIGKILL)
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


def _wait(what: str, check: Callable[[], bool], timeout: float, logs: list[Path]) -> None:
    """Wait for ``check`` (polled; an exception means "not yet"), or fail showing the tails of
    ``logs``."""

    def tails() -> str:
        return "\n".join(f"--- {p}:\n{p.read_text(errors='replace')[-1500:]}" for p in logs
                         if p.exists())  # fmt: skip

    wait_until(check, what, timeout, tails, ignore=(Exception,))


def redis_cli(port: int, *args: str, timeout: float = 10.0, cli: Sequence[str] = ()) -> str:
    """redis-cli's answer (``cli``: its options to reach the server: TLS, a password)."""
    out = subprocess.run(["redis-cli", "-p", str(port), *cli, *args], capture_output=True,
                         text=True, timeout=timeout, check=False)  # fmt: skip
    return out.stdout


class RedisCluster:
    """A real Redis Cluster on free ports in a temp dir: 3 masters, each with one replica
    (``cluster-node-timeout`` 1 s, so a killed master fails over in a few seconds). Stopped
    on exit, whatever happened."""

    def __init__(self, masters: int = 3, replicas: int = 1, tls: RedisTls | None = None) -> None:
        self.tls = tls
        self.cli = tls.cli if tls else ()
        self._tmp = tempfile.TemporaryDirectory(prefix="tessera-cluster-")
        root = Path(self._tmp.name)
        self.nodes: list[RedisServer] = []
        try:
            for i in range(masters * (1 + replicas)):
                d = root / f"n{i}"
                d.mkdir()
                bus = f"cluster-port {free_port()}\n"  # (port + 10000 may not be free)
                self.nodes.append(RedisServer(d, extra=CLUSTER_CONFIG + bus, tls=tls))
            addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
            out = subprocess.run(
                ["redis-cli", *self.cli, "--cluster", "create", *addrs, "--cluster-replicas",
                 str(replicas), "--cluster-yes"],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            if out.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{out.stdout}{out.stderr}")
            self.wait_ok(30)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return self._url("")

    @property
    def acl_url(self) -> str:
        return self._url(f"{ACL_USER}:{ACL_PASSWORD}@")

    def _url(self, creds: str) -> str:
        seeds = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:3])
        if self.tls:
            return f"rediss-cluster://{creds}{seeds}{self.tls.query}"
        return f"redis-cluster://{creds}{seeds}"

    def logs(self) -> list[Path]:
        return [n.dir / "redis.log" for n in self.nodes]

    def live(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.proc is not None]

    def wait_ok(self, timeout: float) -> None:
        """Every live node says cluster_state:ok, and every replica has synced with its master
        (a replica that never synced cannot take over: no failover would happen)."""

        def ok() -> bool:
            for n in self.live():
                if "cluster_state:ok" not in redis_cli(n.port, "cluster", "info", cli=self.cli):
                    return False
                info = redis_cli(n.port, "info", "replication", cli=self.cli)
                if "role:slave" in info and "master_link_status:up" not in info:
                    return False
            return True

        _wait("the cluster was not ok", ok, timeout, self.logs())

    def master_of(self, key: bytes) -> RedisServer:
        """The live node serving ``key``'s slot as master."""
        slot = key_slot(key)
        for n in self.live():
            info = redis_cli(n.port, "cluster", "nodes", cli=self.cli)
            for line in info.splitlines():
                fields = line.split()
                if "myself" in fields[2] and "master" in fields[2]:
                    for r in fields[8:]:
                        lo, _, hi = r.partition("-")
                        if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                            return n
        raise AssertionError(f"no live master serves slot {slot}")

    def stop(self) -> None:
        for n in self.nodes:
            n.kill()
        self._tmp.cleanup()

    def __enter__(self) -> RedisCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisSentinel:
    """A real master + replica watched by three ``redis-sentinel`` processes (quorum 2,
    down after 1 s), on free ports in a temp dir; stopped on exit."""

    MASTER = "fleetmaster"

    def __init__(self, tls: RedisTls | None = None, password: str | None = None) -> None:
        """``password``: the sentinels' own ``requirepass`` (clients and each other)."""
        self.tls = tls
        self.password = password
        self.cli = tls.cli if tls else ()
        self.sentinel_cli = (
            *self.cli,
            *(("-a", password, "--no-auth-warning") if password else ()),
        )
        self._tmp = tempfile.TemporaryDirectory(prefix="tessera-sentinel-")
        root = Path(self._tmp.name)
        self.data: list[RedisServer] = []
        self.sentinels: list[subprocess.Popen[bytes]] = []
        self.sentinel_ports: list[int] = []
        try:
            (root / "m").mkdir()
            master = RedisServer(root / "m", tls=tls)
            self.data.append(master)
            (root / "r").mkdir()
            replica = f"replicaof 127.0.0.1 {master.port}\n"
            self.data.append(RedisServer(root / "r", extra=replica, tls=tls))
            for i in range(3):
                self._start_sentinel(root / f"s{i}", master.port)
            self.wait_ready(30)
        except BaseException:
            self.stop()
            raise

    def _start_sentinel(self, d: Path, master_port: int) -> None:
        d.mkdir()
        port = free_port()
        conf = d / "sentinel.conf"
        conf.write_text(
            f"{self.tls.config(port) if self.tls else f'port {port}'}\n"
            f"{f'requirepass {self.password}' if self.password else ''}\n"
            f"bind 127.0.0.1\ndir {d}\nlogfile {d / 'sentinel.log'}\n"
            f"sentinel monitor {self.MASTER} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
            f"sentinel failover-timeout {self.MASTER} 4000\n"
            f"sentinel parallel-syncs {self.MASTER} 1\n"
        )
        self.sentinels.append(subprocess.Popen(
            ["redis-sentinel", str(conf)], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        ))  # fmt: skip
        self.sentinel_ports.append(port)

    def logs(self) -> list[Path]:
        root = Path(self._tmp.name)
        return [*(n.dir / "redis.log" for n in self.data),
                *(root / f"s{i}" / "sentinel.log" for i in range(len(self.sentinels)))]  # fmt: skip

    def wait_ready(self, timeout: float) -> None:
        """Every sentinel knows the master, the replica and the two other sentinels."""

        def ready() -> bool:
            for port in self.sentinel_ports:
                fields = redis_cli(port, "sentinel", "master", self.MASTER,
                                   cli=self.sentinel_cli).split()  # fmt: skip
                info = dict(zip(fields[::2], fields[1::2], strict=False))
                if info.get("num-other-sentinels") != "2" or info.get("num-slaves") != "1":
                    return False
            info = redis_cli(self.data[1].port, "info", "replication", cli=self.cli)
            return "master_link_status:up" in info

        _wait("the sentinels were not ready", ready, timeout, self.logs())

    @property
    def url(self) -> str:
        return self._url("")

    @property
    def acl_url(self) -> str:
        return self._url(f"{ACL_USER}:{ACL_PASSWORD}@")

    def _url(self, creds: str) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        query = list(self.tls.params) if self.tls else []
        query += [f"sentinel_password={self.password}"] if self.password else []
        scheme = "rediss-sentinel" if self.tls else "redis-sentinel"
        return f"{scheme}://{creds}{hosts}/{self.MASTER}" + ("?" + "&".join(query) if query else "")

    def master_port(self) -> int:
        out = redis_cli(self.sentinel_ports[0], "sentinel", "get-master-addr-by-name",
                        self.MASTER, cli=self.sentinel_cli).split()  # fmt: skip
        return int(out[1])

    def master(self) -> RedisServer:
        port = self.master_port()
        return next(n for n in self.data if n.port == port)

    def wait_failover(self, old_port: int, timeout: float) -> None:
        """Until the sentinels name another master and it accepts writes."""

        def moved() -> bool:
            port = self.master_port()
            info = redis_cli(port, "info", "replication", cli=self.cli)
            return port != old_port and "role:master" in info

        _wait("no failover", moved, timeout, self.logs())

    def stop(self) -> None:
        for p in self.sentinels:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        for n in self.data:
            n.kill()
        self._tmp.cleanup()

    def __enter__(self) -> RedisSentinel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

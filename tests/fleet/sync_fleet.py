"""Servers tessera does not run, fed by ``tessera keys sync``: nginx and HAProxy TLS
terminators on free ports with their own configs, the agents, a round-robin HAProxy in front,
and clients that measure cross-node resumption while keys rotate.

Used by ``tests/fleet/test_sync_*.py`` and ``bench/keys_sync.py`` (the same code for the
scaled-down soak in the suite and the full run). Every process is a :class:`peers.Peer`: its
output goes to a file, and it is stopped by whoever started it (fixtures, ``with``).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "interop"))

from peers import TESSERA, Peer, openssl_s_client, run

from conftest import free_port
from tessera.audit.census import sample
from tessera.audit.probe import Endpoint
from tessera.fleet.keyring import FleetKeyring
from tessera.fleet.keys import KeyPolicy
from tessera.fleet.redis_keys import RedisKeySource
from tessera.fleet.redis_url import sync_client
from tessera.fleet.secret import FleetSecret
from tessera.fleet.sync.targets import replace_file
from tessera.session.keyring import KeyFileFormat, TicketKey, key_file_bytes

HTTP_GET = b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"
REFRESH = 0.5  # the agents' --key-refresh: a key encrypts on their servers 1 s after publication
WIDE = {"COLUMNS": "300"}


def program(name: str) -> str:
    """nginx and haproxy live in /usr/sbin, which a non-root PATH may lack."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK)
                                  else None)  # fmt: skip
    if path is None:
        raise RuntimeError(f"{name} is not installed; .ci/run installs it")
    return path


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0,
               logs: Sequence[Peer] = ()) -> None:  # fmt: skip
    """Poll ``check`` until it holds; after ``timeout`` fail naming ``what``, with the logs."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.argv[0]} {p.log.name}:\n{p.output()[-3000:]}" for p in logs)
            raise AssertionError(f"after {timeout} s: {what}\n{tails}")
        time.sleep(0.05)


# -- servers --------------------------------------------------------------------------------
@dataclass
class Server:
    kind: str  # "nginx", "haproxy" or "apache"
    peer: Peer
    port: int
    keys: Path  # nginx: the key directory; HAProxy: the tls-ticket-keys file
    reload: str = ""  # nginx, Apache: the command that reloads it
    socket: Path | None = None  # HAProxy: its admin socket

    @property
    def label(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        return f"{self.kind}:{self.keys}"


def nginx_server(d: Path, cert: Path, key: Path, key_dir: Path) -> Server:
    """nginx (a master and one worker, so that ``nginx -s reload`` works) reading its three
    ticket key files from ``key_dir``; the page names the server."""
    port = free_port()
    prefix = d / f"nginx-{port}"
    prefix.mkdir()
    temp = "\n".join(f"  {kind}_temp_path {prefix}/{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))  # fmt: skip
    tickets = "\n".join(f"    ssl_session_ticket_key {key_dir}/ticket.{i}.key;" for i in range(3))
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 256; }}
http {{
  access_log off;
{temp}
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name localhost;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
{tickets}
    location / {{ return 200 "nginx {port}\\n"; }}
  }}
}}
""")
    nginx = program("nginx")
    base = f"{nginx} -p {prefix} -c {conf} -e stderr"
    peer = Peer(base.split(), port=port, log_dir=d, name=f"nginx-{port}")
    return Server("nginx", peer, port, key_dir, reload=f"{base} -s reload")


def haproxy_server(d: Path, bundle: Path, keys: Path) -> Server:
    """HAProxy terminating TLS with ``tls-ticket-keys KEYS`` and an admin socket."""
    port = free_port()
    sock = d / f"haproxy-{port}.sock"
    conf = d / f"haproxy-{port}.cfg"
    conf.write_text(f"""
global
  maxconn 500
  stats socket {sock} mode 600 level admin
defaults
  mode http
  timeout connect 2s
  timeout client 10s
  timeout server 10s
frontend tls
  bind 127.0.0.1:{port} ssl crt {bundle} tls-ticket-keys {keys} ssl-min-ver TLSv1.2
  http-request return status 200 content-type text/plain string "haproxy {port}"
""")
    peer = Peer([program("haproxy"), "-db", "-f", str(conf)], port=port, log_dir=d,
                name=f"haproxy-{port}")  # fmt: skip
    return Server("haproxy", peer, port, keys, socket=sock)


def balancer(d: Path, groups: dict[str, list[int]]) -> tuple[Peer, dict[str, int]]:
    """HAProxy in TCP mode (TLS passes through), one round-robin frontend per group."""
    ports = {name: free_port() for name in groups}
    sections = []
    for name, backends in groups.items():
        servers = "\n".join(f"  server {name}{i} 127.0.0.1:{p}" for i, p in enumerate(backends))
        sections.append(f"frontend {name}\n  bind 127.0.0.1:{ports[name]}\n"
                        f"  default_backend {name}_pool\nbackend {name}_pool\n"
                        f"  balance roundrobin\n{servers}\n")  # fmt: skip
    conf = d / f"balancer-{min(ports.values())}.cfg"
    conf.write_text("global\n  maxconn 1000\ndefaults\n  mode tcp\n  timeout connect 2s\n"
                    "  timeout client 20s\n  timeout server 20s\n" + "".join(sections))  # fmt: skip
    peer = Peer([program("haproxy"), "-db", "-f", str(conf)], port=min(ports.values()),
                log_dir=d, name="balancer")  # fmt: skip
    return peer, ports


def agent(d: Path, redis_url: str, secret: Path, *args: str, name: str = "keys-sync") -> Peer:
    """``tessera keys sync`` as a process (its log lines on stderr, in its log file)."""
    argv = [*TESSERA, "keys", "sync", "--redis", redis_url, "--fleet-secret", str(secret),
            "--key-refresh", str(REFRESH), *args]  # fmt: skip
    return Peer(argv, log_dir=d, name=name, env=WIDE)


def agent_for(d: Path, redis_url: str, secret: Path, server: Server, *args: str) -> Peer:
    """An agent feeding ``server``: nginx and Apache through their files and a reload, HAProxy
    through its file and its runtime API (no reload)."""
    extra = ["--exec", server.reload] if server.reload else [
        "--haproxy-socket", str(server.socket)]  # fmt: skip
    return agent(d, redis_url, secret, "--to", server.target, *extra, *args,
                 name=f"keys-sync-{server.kind}-{server.port}")  # fmt: skip


def sync_once(redis_url: str, secret: Path, *args: str) -> str:
    """``tessera keys sync --once``: its output; fails unless it exits 0."""
    argv = [*TESSERA, "keys", "sync", "--redis", redis_url, "--fleet-secret", str(secret),
            "--key-refresh", str(REFRESH), "--once", *args]  # fmt: skip
    r = run(argv, timeout=60, env=WIDE)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out
    return out


def rotate(redis_url: str, secret: Path, lead: float = 2.0) -> bytes:
    """``tessera keys rotate``: the new key's name."""
    r = run([*TESSERA, "keys", "rotate", "--redis", redis_url, "--fleet-secret", str(secret),
             "--lead", str(lead)], timeout=30)  # fmt: skip
    out = r.stdout.decode(errors="replace")
    m = re.search(r"published ticket key ([0-9a-f]{32})", out)
    assert r.returncode == 0 and m, out
    return bytes.fromhex(m.group(1))


def s_client(port: int, version: str, *args: str) -> str:
    """``openssl s_client`` GET / (tickets that arrive after the handshake are read): what it
    says of the session, ``New, TLSv1.3`` or ``Reused, TLSv1.2``."""
    out = openssl_s_client(port, version, "-ign_eof", *args, input=HTTP_GET, timeout=20)
    found = re.findall(r"^(New|Reused), (TLSv1\.[0-3]), Cipher is", out, re.M)
    assert len(found) == 1, out
    return f"{found[0][0]}, {found[0][1]}"


def encrypting_name(port: int) -> bytes | None:
    """The key name of the tickets ``port`` issues now (a full handshake's last ticket)."""
    return sample(Endpoint("127.0.0.1", port, "localhost"), 0.0, 5.0).prefix


def wait_encrypting(servers: Sequence[Server], name: bytes, others: Sequence[Peer] = (),
                    timeout: float = 30.0) -> None:  # fmt: skip
    for s in servers:
        wait_until(functools.partial(_encrypts_with, s.port, name),
                   f"{s.kind} {s.label} does not encrypt with {name.hex()}", timeout,
                   [s.peer, *others])  # fmt: skip


def _encrypts_with(port: int, name: bytes) -> bool:
    return encrypting_name(port) == name


@contextmanager
def pem_bundle(cert: Path, key: Path, d: Path) -> Iterator[Path]:
    """The certificate chain and key in one file (HAProxy's ``crt``)."""
    bundle = d / "bundle.pem"
    bundle.write_bytes(cert.read_bytes() + key.read_bytes())
    bundle.chmod(0o600)
    yield bundle


# -- clients --------------------------------------------------------------------------------
def client_context(version: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version == "tls12":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def get(port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None,
        timeout: float = 10.0) -> tuple[str, bool, ssl.SSLSession | None]:  # fmt: skip
    """One HTTPS GET: (the server that answered, resumed, the session to offer next)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle stalls
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            return _get(s)


def _get(s: ssl.SSLSocket) -> tuple[str, bool, ssl.SSLSession | None]:
    s.sendall(HTTP_GET)
    page = b""
    while len(page) < 65536 and (chunk := s.recv(65536)):
        page += chunk
    m = re.search(rb"(nginx|haproxy|apache) (\d+)", page)
    if m is None:
        raise OSError(f"unexpected answer: {page[-200:]!r}")
    return m.group(0).decode(), s.session_reused, s.session


@dataclass
class Tally:
    """Counts for one kind of server (nginx, haproxy) and one TLS version."""

    connections: int = 0
    failed: int = 0
    offered: int = 0  # reconnections offering the previous connection's session
    cross: int = 0  # ... that landed on another server than the previous connection
    cross_resumed: int = 0
    same_resumed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def cross_ratio(self) -> float:
        return self.cross_resumed / self.cross if self.cross else 0.0

    def add(self, other: Tally) -> None:
        for name in ("connections", "failed", "offered", "cross", "cross_resumed",
                     "same_resumed"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors


class Traffic:
    """Clients reconnecting through ``port`` with their previous session, as browsers do, in
    threads, until stopped; a bounded pace (``gap`` seconds between connections)."""

    def __init__(self, port: int, version: str, clients: int, gap: float = 0.02) -> None:
        self.port, self.version, self.gap = port, version, gap
        self.tallies = [Tally() for _ in range(clients)]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(t,), daemon=True)
                         for t in self.tallies]  # fmt: skip

    def start(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> Tally:
        self._stop.set()
        for t in self._threads:
            t.join(30)
        total = Tally()
        for t in self.tallies:
            total.add(t)
        return total

    def _client(self, tally: Tally) -> None:
        ctx = client_context(self.version)
        session: ssl.SSLSession | None = None
        previous = ""
        while not self._stop.is_set():
            try:
                server, resumed, new = get(self.port, ctx, session)
            except (OSError, ssl.SSLError) as e:
                tally.failed += 1
                tally.errors.append(f"{type(e).__name__}: {e}")
                session, previous = None, ""
                continue
            tally.connections += 1
            if session is not None:
                tally.offered += 1
                if server != previous:
                    tally.cross += 1
                    tally.cross_resumed += resumed
                else:
                    tally.same_resumed += resumed
            session, previous = new, server
            self._stop.wait(self.gap)


# -- a whole mixed fleet ------------------------------------------------------------------
@dataclass
class Fleet:
    servers: list[Server]
    agents: list[Peer]
    ports: dict[str, int]  # the balancer's frontend per kind
    redis_url: str
    secret: Path

    def of(self, kind: str) -> list[Server]:
        return [s for s in self.servers if s.kind == kind]

    def peers(self) -> list[Peer]:
        return [*(s.peer for s in self.servers), *self.agents]


# A server to start once its keys exist: (the --to target, start it).
Start = tuple[str, Callable[[], Server]]


@contextmanager
def fed_servers(d: Path, redis_url: str, secret: Path, starts: Sequence[Start],
                synced: bool = True) -> Iterator[tuple[list[Server], list[Peer]]]:  # fmt: skip
    """Each server started on keys of its own: the fleet's (``keys sync --once``, then an agent
    feeding it; returns once every server encrypts with the fleet's key — nginx and HAProxy,
    whose tickets carry the fleet key's name) or random ones (``synced=False``, no agent)."""
    with ExitStack() as stack:
        servers: list[Server] = []
        for target, start in starts:
            _keys(redis_url, secret, target, synced)
            servers.append(stack.enter_context(_serving(start())))
        agents = [stack.enter_context(agent_for(d, redis_url, secret, s))
                  for s in servers if synced]  # fmt: skip
        named = [s for s in servers if s.kind in ("nginx", "haproxy")]
        if synced and named:
            wait_until(lambda: current_key(redis_url, secret) is not None,
                       "no fleet key encrypts", logs=agents)  # fmt: skip
            name = current_key(redis_url, secret)
            assert name is not None
            wait_encrypting(named, name, agents)
        yield servers, agents


def nginx_start(d: Path, cert: Path, key: Path, i: int) -> Start:
    key_dir = d / f"nginx-keys-{i}"
    key_dir.mkdir()
    return f"nginx:{key_dir}", functools.partial(nginx_server, d, cert, key, key_dir)


def haproxy_start(d: Path, bundle: Path, i: int) -> Start:
    keys = d / f"haproxy-{i}.keys"
    return f"haproxy:{keys}", functools.partial(haproxy_server, d, bundle, keys)


@contextmanager
def mixed_fleet(d: Path, cert: Path, key: Path, redis_url: str, secret: Path,
                nginx: int = 2, haproxy: int = 2, synced: bool = True) -> Iterator[Fleet]:  # fmt: skip
    """``nginx`` nginx and ``haproxy`` HAProxy terminators, each fed by its own agent, behind
    one round-robin balancer (a frontend per kind); returns once every server encrypts with
    the fleet's key. ``synced=False``: the anchor — each server with random keys of its own,
    no agent (what a fleet without shared keys does)."""
    with ExitStack() as stack:
        bundle = stack.enter_context(pem_bundle(cert, key, d))
        starts = [nginx_start(d, cert, key, i) for i in range(nginx)]
        starts += [haproxy_start(d, bundle, i) for i in range(haproxy)]
        servers, agents = stack.enter_context(fed_servers(d, redis_url, secret, starts, synced))
        groups = {
            kind: [s.port for s in servers if s.kind == kind] for kind in ("nginx", "haproxy")
        }
        lb, ports = balancer(d, {k: v for k, v in groups.items() if v})
        stack.enter_context(lb)
        yield Fleet(servers, agents, ports, redis_url, secret)


def _keys(redis_url: str, secret: Path, target: str, synced: bool) -> None:
    """The first keys of a target: the fleet's (``keys sync --once``) or random ones."""
    if synced:
        sync_once(redis_url, secret, "--to", target)
        return
    kind, _, path = target.partition(":")
    keys = [TicketKey.generate(0.0) for _ in range(3)]
    if kind == "nginx":
        for i, k in enumerate(keys):
            replace_file(Path(path) / f"ticket.{i}.key", key_file_bytes([k], KeyFileFormat.NGINX))
    else:
        replace_file(Path(path), key_file_bytes(keys, KeyFileFormat.HAPROXY))


@contextmanager
def _serving(server: Server) -> Iterator[Server]:
    with server.peer:
        yield server


def current_key(redis_url: str, secret: Path, namespace: str = "default") -> bytes | None:
    """The name of the fleet key that encrypts now, read from Redis (None: none does)."""
    source = RedisKeySource(sync_client(redis_url, 2.0, 2), FleetSecret.load(secret), namespace,
                            FleetKeyring(KeyPolicy()))  # fmt: skip
    key = source.read().encrypting(time.time())
    return None if key is None else key.name

"""Where a fleet's Redis is, from one URL, and redis-py's own clients for it (sync and asyncio).

=============================================================  ================================
``--redis``                                                    redis-py client
=============================================================  ================================
``redis://[USER:PASSWORD@]HOST:PORT[/DB]``, ``rediss://…``     ``Redis`` (``rediss``: TLS)
``unix:///PATH/redis.sock``                                    ``Redis`` over a unix socket
``redis-cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…]``     ``RedisCluster`` (seed nodes)
``redis-sentinel://[USER:PASSWORD@]HOST:PORT[,…]/MASTER``      ``Sentinel.master_for(MASTER)``
=============================================================  ================================

``rediss-cluster://`` and ``rediss-sentinel://`` are the same over TLS (to the sentinels too).
Query parameters are redis-py's (``?ssl_ca_certs=/path/ca.pem``, ``ssl_cert_reqs``...); for
Sentinel, ``sentinel_username``/``sentinel_password`` authenticate to the sentinels (the URL's
own credentials are the master's).

Every client is bounded the same way: each operation may take ``timeout`` seconds (making a
TLS connection up to ``TLS_CONNECT_TIMEOUT``), is never retried (a failure costs a full
handshake, not a stall), and the pool holds at most
``max_connections``. Constructing a ``RedisCluster`` already talks to the cluster, so the
synchronous clients are a :class:`SyncRedis` facade that makes its redis-py client on first
use and again after a failed attempt: a node starts whatever state its Redis is in.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..extras import missing

try:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.asyncio.retry
    import redis.asyncio.sentinel
    import redis.cluster
    import redis.sentinel
    from redis.backoff import NoBackoff
    from redis.connection import parse_url
    from redis.lock import Lock
    from redis.retry import Retry
except ModuleNotFoundError as e:  # an extra of the distribution
    raise missing(e) from None

from ..errors import ConfigError

DEFAULT_TIMEOUT = 0.050
DEFAULT_POOL = 128
# Making a TLS connection to Redis takes more than an operation's budget: redis.asyncio builds an
# SSL context (the system's CA store, 10-100 ms of CPU on the event loop) for each connection,
# and the handshake's round trips come on top. A connection is made once and pooled; with the
# operation's 50 ms, the first one a process makes failed, costing its first resumption.
TLS_CONNECT_TIMEOUT = 0.5
EXAMPLE = "redis://127.0.0.1:6379"
SCHEMES = ("redis", "rediss", "unix", "redis-cluster", "rediss-cluster", "redis-sentinel",
           "rediss-sentinel")  # fmt: skip
_SENTINEL_QUERY = ("sentinel_username", "sentinel_password")
# Query parameters that name files: checked when the URL is read, as --cert and --key are, not
# at the first connection (where a typo would only cost resumption, quietly).
_FILE_QUERY = ("ssl_certfile", "ssl_keyfile", "ssl_ca_certs", "ssl_ca_path")


class UnexpectedReply(Exception):
    """Redis answered what no Redis server answers (a wrong port, a proxy, a stub)."""


class Topology(Enum):
    SINGLE = "Redis"
    CLUSTER = "Redis Cluster"
    SENTINEL = "Redis Sentinel"


# redis-py keyword arguments: credentials, TLS and a URL's query, passed on as they are.
Options = dict[str, Any]
# redis-py's URL parser and cluster node, which it leaves unannotated.
_redis_py_parse_url: Callable[[str], Options] = parse_url
_sync_node: Callable[[str, int], redis.cluster.ClusterNode] = redis.cluster.ClusterNode


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed ``--redis`` URL. Its repr and :meth:`describe` never show a password."""

    url: str = field(repr=False)
    topology: Topology
    nodes: tuple[tuple[str, int], ...] = ()  # seeds (Cluster), sentinels, or the one server
    master: str = ""  # Sentinel: the monitored master's name
    tls: bool = False
    username: str | None = None
    options: Options = field(default_factory=dict, repr=False)  # credentials, TLS, query
    sentinel_options: Options = field(default_factory=dict, repr=False)

    @property
    def redacted(self) -> str:
        return redacted(self.url)

    def describe(self) -> str:
        """``Redis Cluster (seeds 127.0.0.1:7000, 127.0.0.1:7001), TLS, user fleet``."""
        where = ", ".join(f"{h}:{p}" for h, p in self.nodes)
        if self.topology is Topology.CLUSTER:
            text = f"{self.topology.value} (seeds {where})"
        elif self.topology is Topology.SENTINEL:
            text = f"{self.topology.value} (master {self.master!r} via {where})"
        else:
            text = f"{self.topology.value} {where or self.redacted}"
        if self.tls:
            text += ", TLS"
        return text + (f", user {self.username}" if self.username else "")


def redacted(url: str) -> str:
    """``url`` without its password, for banners and logs (with or without a scheme)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    user = creds.partition(":")[0]
    return f"{scheme}{sep}{user + ':' if user else ''}***@{host}"


def parse(url: str, option: str = "--redis") -> RedisTarget:
    """The target a URL names, or a :class:`ConfigError` that says what to write instead."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(
            f"{option} {redacted(url)}: a Redis URL starts with its scheme, e.g. "
            f"redis://{redacted(url)} (also rediss://, unix://, redis-cluster://, "
            "redis-sentinel://)"
        )
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            f"{option} {redacted(url)}: unknown scheme {scheme}://; use one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    if scheme in ("redis", "rediss", "unix"):
        return _single(url, scheme, option)
    return _multi(url, scheme, rest, option)


def _parse_url(url: str, option: str) -> Options:
    try:
        parsed = _redis_py_parse_url(url)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{option} {redacted(url)}: {e}") from None
    for name in _FILE_QUERY:
        path = parsed.get(name)
        if path is not None and not os.access(str(path), os.R_OK):
            what = "directory" if name == "ssl_ca_path" else "file"
            raise ConfigError(f"{option} {redacted(url)}: ?{name}={path}: no such {what} "
                              "(or it cannot be read)")  # fmt: skip
    return parsed


def _single(url: str, scheme: str, option: str) -> RedisTarget:
    opts = _parse_url(url, option)
    # redis-py's sync parser names its own connection class for rediss:// and unix://; the
    # asyncio client given it would run sync connections under async retries (no connection
    # at all). Each client's from_url picks its own class from the URL.
    opts.pop("connection_class", None)
    host, port = opts.get("host"), opts.get("port", 6379)
    nodes = ((str(host), int(str(port))),) if host else ()
    user = opts.get("username")
    return RedisTarget(url, Topology.SINGLE, nodes, tls=scheme == "rediss",
                       username=str(user) if user else None, options=opts)  # fmt: skip


def _multi(url: str, scheme: str, rest: str, option: str) -> RedisTarget:
    """``redis-cluster://`` and ``redis-sentinel://``: several hosts, redis-py's parser for the
    rest (credentials, TLS, query)."""
    tls = scheme.startswith("rediss")
    rest, _, query = rest.partition("?")
    creds, at, hostpart = rest.rpartition("@")
    hosts, _, path = hostpart.partition("/")
    nodes = tuple(_host_port(h, url, option) for h in hosts.split(",") if h)
    if not nodes:
        raise ConfigError(f"{option} {redacted(url)}: name at least one HOST:PORT")
    params = parse_qsl(query, keep_blank_values=True)
    sentinel = {k: v for k, v in params if k in _SENTINEL_QUERY}
    own = urlencode([(k, v) for k, v in params if k not in _SENTINEL_QUERY])
    one = f"{'rediss' if tls else 'redis'}://{creds}{at}{hostpart.split(',')[0].split('/')[0]}"
    opts = _parse_url(one + (f"?{own}" if own else ""), option)
    for name in ("host", "port", "db", "path", "connection_class"):
        opts.pop(name, None)
    if tls:
        opts["ssl"] = True
    user = opts.get("username")
    username = str(user) if user else None
    if scheme.endswith("-cluster"):
        if path not in ("", "0"):
            raise ConfigError(f"{option} {redacted(url)}: a Redis Cluster has no database "
                              "numbers; drop the /path")  # fmt: skip
        return RedisTarget(url, Topology.CLUSTER, nodes, tls=tls, username=username,
                           options=opts)  # fmt: skip
    if not path or "/" in path:
        raise ConfigError(
            f"{option} {redacted(url)}: name the master the sentinels watch, e.g. "
            f"{scheme}://{hosts}/mymaster"
        )
    side: Options = {
        "username": sentinel.get("sentinel_username") or None,
        "password": sentinel.get("sentinel_password") or None,
    }
    if tls:
        side.update({k: v for k, v in opts.items() if k.startswith("ssl")})
    return RedisTarget(url, Topology.SENTINEL, nodes, path, tls, username, opts, side)


def _host_port(text: str, url: str, option: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{option} {redacted(url)}: {text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


# -- synchronous ------------------------------------------------------------------------------
def _bounded(timeout: float, max_connections: int, tls: bool = False) -> Options:
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": max(timeout, TLS_CONNECT_TIMEOUT) if tls else timeout,
        "max_connections": max_connections,
        "health_check_interval": 0,
        "retry_on_timeout": False,
    }


SyncClient = redis.Redis | redis.cluster.RedisCluster


def _make_sync(target: RedisTarget, timeout: float, max_connections: int) -> SyncClient:
    bounded = {**target.options, **_bounded(timeout, max_connections, target.tls)}
    if target.topology is Topology.CLUSTER:
        seeds = [_sync_node(h, p) for h, p in target.nodes]
        return redis.cluster.RedisCluster(startup_nodes=seeds, retry=Retry(NoBackoff(), 0),
                                          **bounded)  # fmt: skip
    if target.topology is Topology.SENTINEL:
        side = {**target.sentinel_options, "socket_timeout": timeout,
                "socket_connect_timeout": timeout}  # fmt: skip
        sentinels = redis.sentinel.Sentinel(list(target.nodes), sentinel_kwargs=side)
        master: redis.Redis = sentinels.master_for(target.master, retry=Retry(NoBackoff(), 0),
                                                   **bounded)  # fmt: skip
        return master
    return redis.Redis.from_url(target.url, retry=Retry(NoBackoff(), 0), **bounded)


class SyncRedis:
    """The commands a fleet uses, on a redis-py client made on first use (and made again
    after an attempt that failed: a ``RedisCluster`` cannot be made while no seed answers)."""

    def __init__(self, target: RedisTarget, timeout: float = DEFAULT_TIMEOUT,
                 max_connections: int = DEFAULT_POOL) -> None:  # fmt: skip
        self.target = target
        self.timeout = timeout
        self.max_connections = max_connections
        self._client: SyncClient | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SyncRedis({self.target.describe()})"

    @property
    def client(self) -> SyncClient:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = _make_sync(self.target, self.timeout, self.max_connections)
                client = self._client
        return client

    def get(self, key: bytes) -> object:
        return self.client.get(key)

    def getdel(self, key: bytes) -> object:
        return self.client.getdel(key)

    def set(self, key: bytes, value: bytes, ex: int | None = None, nx: bool = False) -> object:
        return self.client.set(key, value, ex=ex, nx=nx)

    def delete(self, *keys: bytes) -> object:
        return self.client.delete(*keys)

    def hgetall(self, key: bytes) -> object:
        return self.client.hgetall(key)

    def hsetnx(self, key: bytes, field: bytes, value: bytes) -> object:
        return self.client.hsetnx(key, field, value)

    def hdel(self, key: bytes, *fields: str) -> object:
        return self.client.hdel(key, *fields)

    def publish(self, channel: bytes, message: str) -> object:
        return self.client.publish(channel, message)

    def ping(self) -> bool:
        """True, or an exception: a server that does not answer PONG is not a Redis."""
        reply = self.client.ping()
        if reply is not True:
            raise UnexpectedReply(f"Redis answered {reply!r} to PING")
        return True

    def lock(self, name: str, timeout: float) -> Lock:
        """A ``SET NX PX`` lock (redis-py's), polled every 20 ms when waited for."""
        lock: Lock = self.client.lock(name, timeout=timeout, sleep=0.02)
        return lock

    def pubsub(self) -> redis.client.PubSub:
        pubsub: redis.client.PubSub = self.client.pubsub(ignore_subscribe_messages=True)
        return pubsub

    def reset(self) -> None:
        """Drop the client and its connections: the next command makes a new one."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def close(self) -> None:
        self.reset()


def sync_client(url: str | RedisTarget, timeout: float = DEFAULT_TIMEOUT,
                max_connections: int = DEFAULT_POOL) -> SyncRedis:  # fmt: skip
    """A client for a ``--redis`` URL; redis-py's pools are fork-safe, so a client made before
    ``--workers`` forks is fine."""
    target = url if isinstance(url, RedisTarget) else parse(url)
    return SyncRedis(target, timeout, max_connections)


# -- asyncio ----------------------------------------------------------------------------------
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


def async_client(url: str | RedisTarget, timeout: float = DEFAULT_TIMEOUT,
                 max_connections: int = DEFAULT_POOL) -> AsyncClient:  # fmt: skip
    """The asyncio client for a ``--redis`` URL (redis.asyncio, its own ``Retry``); it
    connects on first use, from the event loop that uses it."""
    target = url if isinstance(url, RedisTarget) else parse(url)
    bounded = {**target.options, **_bounded(timeout, max_connections, target.tls)}
    retry = redis.asyncio.retry.Retry(NoBackoff(), 0)
    if target.topology is Topology.CLUSTER:
        seeds = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in target.nodes]
        del bounded["retry_on_timeout"]  # (asyncio's RedisCluster has only ``retry``)
        return redis.asyncio.cluster.RedisCluster(startup_nodes=seeds, retry=retry, **bounded)
    if target.topology is Topology.SENTINEL:
        side = {**target.sentinel_options, "socket_timeout": timeout,
                "socket_connect_timeout": timeout}  # fmt: skip
        sentinels = redis.asyncio.sentinel.Sentinel(list(target.nodes), sentinel_kwargs=side)
        master: redis.asyncio.Redis = sentinels.master_for(target.master, retry=retry, **bounded)
        return master
    return redis.asyncio.Redis.from_url(target.url, retry=retry, **bounded)

"""The session store on Redis (redis-py), synchronous and asyncio, with the same semantics.

==========  ==================  ===============================================
operation   Redis               used for
==========  ==================  ===============================================
``put``     ``SET key v EX t``  TLS 1.2 sessions by id, TLS 1.3 stateful tickets
``get``     ``GET key``         resuming a session id
``take``    ``GETDEL key``      single-use TLS 1.3 tickets, fleet-wide
``add``     ``SET key v NX EX`` the 0-RTT strike register, fleet-wide
``delete``  ``DEL key``         a session that must not be resumed
==========  ==================  ===============================================

Keys are ``tessera:<namespace>:`` + the core's prefix (``sid:``, ``stk:``, ``0rtt:``) + the rest
in hex; every operation touches one key, so Redis Cluster works. Values are sealed with
AES-256-GCM under a key derived from the fleet secret, with the Redis key as associated data: a
dump of Redis holds no master secret, and a value moved to another key does not open (it reads
as absent, counted in ``rejected``). Every operation is bounded by ``timeout`` (50 ms by default)
and is never retried: a slow or absent Redis raises, which the connection turns into a full
handshake ("session store unavailable"). Wrap the store in :class:`~.health.GuardedStore` so a
dead Redis is not asked at all for a while.
"""

from __future__ import annotations

import math
from typing import Any

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from .secret import FleetSecret, SealedBox

DEFAULT_TIMEOUT = 0.050
DEFAULT_POOL = 128
STORE_LABEL = "session store v1"


def redis_options(timeout: float, max_connections: int) -> dict[str, Any]:
    """Connection options shared by every client: bounded, never retried, a bounded pool."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "retry_on_timeout": False,
        "max_connections": max_connections,
        "health_check_interval": 0,
    }


def sync_client(url: str, timeout: float = DEFAULT_TIMEOUT,
                max_connections: int = DEFAULT_POOL) -> redis.Redis:  # fmt: skip
    """A client for ``url`` (``redis://``, ``rediss://``, ``unix://``; ``user:password@`` for
    ACLs); redis-py's pool is fork-safe, so a client made before ``--workers`` forks is fine."""
    return redis.Redis.from_url(url, **redis_options(timeout, max_connections))


def async_client(url: str, timeout: float = DEFAULT_TIMEOUT,
                 max_connections: int = DEFAULT_POOL) -> redis.asyncio.Redis:  # fmt: skip
    return redis.asyncio.Redis.from_url(url, **redis_options(timeout, max_connections))


def redacted(url: str) -> str:
    """``url`` without its password, for banners and logs."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at:
        return url
    user = creds.partition(":")[0]
    return f"{scheme}://{user + ':' if user else ''}***@{host}"


class _Codec:
    """Redis key naming and value sealing, shared by both stores."""

    def __init__(self, secret: FleetSecret, namespace: str) -> None:
        if not namespace or any(c in namespace for c in " :{}\r\n"):
            raise ValueError("a Redis namespace is a non-empty word without ':', '{', '}'")
        self.namespace = namespace
        self.prefix = f"tessera:{namespace}:".encode()
        self._box: SealedBox = secret.box(STORE_LABEL)
        self.rejected = 0  # values that did not open: another fleet secret, or moved/tampered

    def key(self, key: bytes) -> bytes:
        kind, sep, rest = key.partition(b":")
        if not sep:
            return self.prefix + b"x:" + key.hex().encode()
        return self.prefix + kind + b":" + rest.hex().encode()

    def seal(self, rkey: bytes, value: bytes) -> bytes:
        return self._box.seal(rkey, value)

    def open(self, rkey: bytes, sealed: Any) -> bytes | None:
        if sealed is None:
            return None
        value = self._box.open(rkey, bytes(sealed))
        if value is None:
            self.rejected += 1
        return value


def _seconds(ttl: float) -> int:
    return max(1, math.ceil(ttl))


class RedisSessionStore:
    """A :class:`~tessera.session.store.SessionStore` on Redis (blocking redis-py)."""

    def __init__(self, client: redis.Redis, secret: FleetSecret, namespace: str = "default",
                 url: str = "") -> None:  # fmt: skip
        self.client = client
        self.codec = _Codec(secret, namespace)
        self.url = redacted(url)

    @classmethod
    def from_url(cls, url: str, secret: FleetSecret, namespace: str = "default",
                 timeout: float = DEFAULT_TIMEOUT) -> RedisSessionStore:  # fmt: skip
        return cls(sync_client(url, timeout), secret, namespace, url)

    def __repr__(self) -> str:
        return f"RedisSessionStore({self.url}, namespace {self.codec.namespace})"

    def put(self, key: bytes, value: bytes, ttl: float) -> None:
        k = self.codec.key(key)
        self.client.set(k, self.codec.seal(k, value), ex=_seconds(ttl))

    def get(self, key: bytes) -> bytes | None:
        k = self.codec.key(key)
        return self.codec.open(k, self.client.get(k))

    def take(self, key: bytes) -> bytes | None:
        k = self.codec.key(key)
        return self.codec.open(k, self.client.getdel(k))

    def add(self, key: bytes, value: bytes, ttl: float) -> bool:
        k = self.codec.key(key)
        return bool(self.client.set(k, self.codec.seal(k, value), ex=_seconds(ttl), nx=True))

    def delete(self, key: bytes) -> None:
        self.client.delete(self.codec.key(key))

    def ping(self) -> bool:
        return bool(self.client.ping())

    def close(self) -> None:
        self.client.close()


class AsyncRedisSessionStore:
    """The same store for asyncio (``redis.asyncio``): ``await store.get(key)`` and so on."""

    def __init__(self, client: redis.asyncio.Redis, secret: FleetSecret,
                 namespace: str = "default", url: str = "") -> None:  # fmt: skip
        self.client = client
        self.codec = _Codec(secret, namespace)
        self.url = redacted(url)

    @classmethod
    def from_url(cls, url: str, secret: FleetSecret, namespace: str = "default",
                 timeout: float = DEFAULT_TIMEOUT) -> AsyncRedisSessionStore:  # fmt: skip
        return cls(async_client(url, timeout), secret, namespace, url)

    def __repr__(self) -> str:
        return f"AsyncRedisSessionStore({self.url}, namespace {self.codec.namespace})"

    async def put(self, key: bytes, value: bytes, ttl: float) -> None:
        k = self.codec.key(key)
        await self.client.set(k, self.codec.seal(k, value), ex=_seconds(ttl))

    async def get(self, key: bytes) -> bytes | None:
        k = self.codec.key(key)
        return self.codec.open(k, await self.client.get(k))

    async def take(self, key: bytes) -> bytes | None:
        k = self.codec.key(key)
        return self.codec.open(k, await self.client.getdel(k))

    async def add(self, key: bytes, value: bytes, ttl: float) -> bool:
        k = self.codec.key(key)
        sealed = self.codec.seal(k, value)
        return bool(await self.client.set(k, sealed, ex=_seconds(ttl), nx=True))

    async def delete(self, key: bytes) -> None:
        await self.client.delete(self.codec.key(key))

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def close(self) -> None:
        await self.client.aclose()

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
in hex; every operation touches one key, so Redis Cluster works (any ``--redis`` URL of
:mod:`.redis_url`: one server, a Cluster, Sentinel). Values are sealed with AES-256-GCM under a
key derived from the fleet secret, with the Redis key as associated data: a dump of Redis holds
no master secret, and a value that does not open (another fleet secret, moved from another key,
altered) raises :class:`~tessera.errors.StoreValueRejected` — a full handshake counted as
"store value rejected" — and is counted in ``rejected``. Every operation is bounded by
``timeout`` (50 ms by default) and is never retried: a slow or absent Redis raises, which the
connection turns into a full handshake ("session store unavailable"). Wrap the store in
:class:`~.health.GuardedStore` so a dead Redis is not asked at all for a while.
"""

from __future__ import annotations

import math

from ..errors import StoreValueRejected
from .redis_url import (
    DEFAULT_TIMEOUT,
    AsyncClient,
    RedisTarget,
    SyncRedis,
    UnexpectedReply,
    async_client,
    parse,
    sync_client,
)
from .secret import FleetSecret, SealedBox

STORE_LABEL = "session store v1"


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

    def open(self, rkey: bytes, sealed: object) -> bytes | None:
        """The value, None for no value; raises :class:`~tessera.errors.StoreValueRejected`
        (counted) for a value that does not open: sealed under another fleet secret, moved
        from another key, or altered."""
        if sealed is None:
            return None
        if not isinstance(sealed, bytes) or not SealedBox.shaped(sealed):
            raise UnexpectedReply(f"Redis answered {sealed!r:.60} for a session")
        value = self._box.open(rkey, sealed)
        if value is None:
            self.rejected += 1
            raise StoreValueRejected(
                "store value rejected: sealed under another fleet secret or altered"
            )
        return value


def _seconds(ttl: float) -> int:
    return max(1, math.ceil(ttl))


class RedisSessionStore:
    """A :class:`~tessera.session.store.SessionStore` on Redis (blocking redis-py)."""

    def __init__(self, client: SyncRedis, secret: FleetSecret,
                 namespace: str = "default") -> None:  # fmt: skip
        self.client = client
        self.target: RedisTarget = client.target
        self.codec = _Codec(secret, namespace)

    @classmethod
    def from_url(cls, url: str | RedisTarget, secret: FleetSecret, namespace: str = "default",
                 timeout: float = DEFAULT_TIMEOUT) -> RedisSessionStore:  # fmt: skip
        return cls(sync_client(url, timeout), secret, namespace)

    def __repr__(self) -> str:
        return f"RedisSessionStore({self.target.redacted}, namespace {self.codec.namespace})"

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
        return self.client.ping()

    def close(self) -> None:
        self.client.close()


class AsyncRedisSessionStore:
    """The same store for asyncio (``redis.asyncio``): ``await store.get(key)`` and so on."""

    def __init__(self, client: AsyncClient, secret: FleetSecret, namespace: str = "default",
                 target: RedisTarget | None = None) -> None:  # fmt: skip
        self.client = client
        self.target = target
        self.codec = _Codec(secret, namespace)

    @classmethod
    def from_url(cls, url: str | RedisTarget, secret: FleetSecret, namespace: str = "default",
                 timeout: float = DEFAULT_TIMEOUT) -> AsyncRedisSessionStore:  # fmt: skip
        target = url if isinstance(url, RedisTarget) else parse(url)
        return cls(async_client(target, timeout), secret, namespace, target)

    def __repr__(self) -> str:
        where = self.target.redacted if self.target is not None else "Redis"
        return f"AsyncRedisSessionStore({where}, namespace {self.codec.namespace})"

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

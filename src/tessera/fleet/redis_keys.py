"""Fleet ticket keys published in Redis: minted once per rotation, refreshed everywhere.

Layout (every operation touches one key, so Redis Cluster works)::

    tessera:<ns>:ticketkeys          hash: key name (hex) -> sealed FleetKey record
    tessera:<ns>:ticketkeys:lock     SET NX PX: the node minting a key
    tessera:<ns>:ticketkeys:changed  pub/sub channel: "a key was published"

A record (schedule + key material) is sealed with AES-256-GCM under a key derived from the
fleet secret, with the hash and field names as associated data; nothing secret sits in Redis
unwrapped. Each node refreshes on a notice and on a timer (``policy.refresh``): it reads the
hash, puts back any live key it holds that Redis lacks (Redis restarted empty), erases expired
records, installs the result, and — if the next key is due — takes the lock, re-reads, and mints
it only if still due (so exactly one key per rotation, fleet-wide). Redis unreachable: the node
keeps the keys it holds; they expire on their own schedule.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

import redis
from redis.exceptions import LockError, RedisError

from ..errors import ConfigError
from .keyring import FleetKeyring
from .keys import FleetKey, KeyPolicy, KeySet
from .secret import FleetSecret

KEYS_LABEL = "ticket keys v1"
LOCK_TTL = 5.0
log = logging.getLogger("tessera.fleet")


class RedisKeySource:
    """Reads, publishes and mints a fleet's ticket keys in Redis."""

    def __init__(
        self,
        client: redis.Redis,
        secret: FleetSecret,
        namespace: str,
        keyring: FleetKeyring,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.keyring = keyring
        self.policy: KeyPolicy = keyring.policy
        self.hash_key = f"tessera:{namespace}:ticketkeys".encode()
        self.lock_key = f"tessera:{namespace}:ticketkeys:lock"
        self.channel = self.hash_key + b":changed"
        self._box = secret.box(KEYS_LABEL)
        self._clock = clock
        self.mints = 0  # keys this node minted
        self.rejected = 0  # records that did not open (another fleet secret, tampered)
        keyring.source = "Redis"

    def _aad(self, field: bytes) -> bytes:
        return self.hash_key + b"/" + field

    def read(self) -> KeySet:
        """Every record that opens (erased ones included)."""
        records: dict[bytes, bytes] = self.client.hgetall(self.hash_key)  # type: ignore[assignment]
        keys = []
        for field, sealed in records.items():
            plain = self._box.open(self._aad(field), sealed)
            if plain is None or len(field) != 32:
                self.rejected += 1
                continue
            try:
                k = FleetKey.from_bytes(plain)
            except (ValueError, ConfigError):
                self.rejected += 1
                continue
            if k.name.hex().encode() == field:
                keys.append(k)
        return KeySet.of(keys)

    def publish(self, key: FleetKey) -> None:
        field = key.name.hex().encode()
        self.client.hsetnx(self.hash_key, field, self._box.seal(self._aad(field), key.to_bytes()))

    def refresh(self) -> KeySet:
        """Read, repair, prune, install; mint the next key if it is due. The installed set."""
        now = self._clock()
        remote = self.read()
        held = self.keyring.snapshot.live(now)
        for k in held.keys:
            if k.name not in remote.by_name:
                self.publish(k)  # Redis lost it (restarted empty): every node puts it back
        erased = [k.name.hex() for k in remote.keys if now >= k.erased_at]
        if erased:
            self.client.hdel(self.hash_key, *erased)
        snap = self.keyring.install(remote)
        if snap.rotation_due(now, self.policy) and self.rotate() is not None:
            snap = self.keyring.snapshot
        self.keyring.source_error = ""
        return snap

    def rotate(self, force: bool = False) -> FleetKey | None:
        """Mint and publish the next key under the lock, if still due (``force``: now, still
        ``lead`` seconds before it encrypts). The key, or None if another node holds the lock
        or made it already."""
        lock = self.client.lock(self.lock_key, timeout=LOCK_TTL, blocking=False)
        if not lock.acquire():
            return None
        try:
            now = self._clock()
            current = self.read().live(now).merged(self.keyring.snapshot.live(now).keys)
            if not force and not current.rotation_due(now, self.policy):
                return None  # another node made it while we waited: re-checked under the lock
            start = now + self.policy.lead if force else current.next_start(now, self.policy)
            key = FleetKey.mint(now, start, self.policy)
            self.publish(key)
            self.client.publish(self.channel, key.name.hex())
            self.mints += 1
        finally:
            with contextlib.suppress(LockError, RedisError):
                lock.release()
        self.keyring.install(current.merged([key]))
        return key


class KeyRefresher:
    """A background thread that keeps a :class:`FleetKeyring` in step with Redis: a refresh on
    every pub/sub notice and at least every ``policy.refresh`` seconds."""

    def __init__(self, source: RedisKeySource) -> None:
        self.source = source
        self.refreshes = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tessera-keys", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.source.policy.refresh + 1)

    def refresh_once(self) -> bool:
        try:
            self.source.refresh()
        except Exception as e:  # Redis down, or a bug: keep the keys held, never stop refreshing
            self.failures += 1
            self.source.keyring.source_error = f"{type(e).__name__}: {e}"[:200]
            if not isinstance(e, RedisError):
                log.warning("ticket key refresh failed: %s", e)
            return False
        self.refreshes += 1
        return True

    def _run(self) -> None:
        interval = self.source.policy.refresh
        pubsub = None
        while not self._stop.is_set():
            self.refresh_once()
            try:
                if pubsub is None:
                    pubsub = self.source.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                    pubsub.subscribe(self.source.channel)
                deadline = time.monotonic() + interval
                while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
                    if pubsub.get_message(timeout=min(left, 0.5)) is not None:
                        break  # a notice: refresh now
            except RedisError:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()
                pubsub = None
                self._stop.wait(interval)
        if pubsub is not None:
            with contextlib.suppress(Exception):
                pubsub.close()

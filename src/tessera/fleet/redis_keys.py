"""Fleet ticket keys published in Redis: minted once per rotation, refreshed everywhere.

Layout (every operation touches one key, so Redis Cluster works)::

    tessera:<ns>:fleet               the fleet's check record (sealed; never expires)
    tessera:<ns>:ticketkeys          hash: key name (hex) -> sealed FleetKey record
    tessera:<ns>:ticketkeys:lock     SET NX PX: the node minting keys
    tessera:<ns>:ticketkeys:changed  pub/sub channel: "a key was published"

Records are sealed with AES-256-GCM under keys derived from the fleet secret, with the Redis key
(and field) as associated data; nothing secret sits in Redis unwrapped.

*Membership.* The first node of a fleet writes the check record (``SET NX``); every node opens it
at start and at every refresh. A node whose fleet secret does not open it belongs to another
fleet: it stops at start (:class:`ForeignFleet`) and, if it only finds out later (Redis was down
when it started), takes nothing from Redis and publishes nothing. A Redis restarted empty gets
the record back from the first node that refreshes.

*Refresh.* Each node refreshes on a pub/sub notice and on a fixed grid of ticks every
``policy.refresh`` seconds (ticks do not drift with the time a refresh takes): it checks the
record, reads the hash, puts back any live key it holds that Redis lacks (Redis restarted
empty), erases expired records, installs the result, and — when the schedule no longer covers
the horizon (see :mod:`.keys`) — takes the lock, re-reads, and mints only the keys still due
(so exactly one key per slot of the grid, fleet-wide). :class:`KeyRefresher` runs this in a
thread that no exception can stop: failures are counted per kind, logged once per kind, and
retried with a back-off; the node recovers by itself once Redis answers sensibly again.
Redis unreachable: the node keeps the keys it holds; they expire on their own schedule.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable

from ..extras import missing

try:
    from redis.client import PubSub
    from redis.exceptions import LockError, RedisError
except ModuleNotFoundError as e:  # an extra of the distribution
    raise missing(e) from None

from ..errors import ConfigError
from .failure import describe
from .keyring import FleetKeyring, SourceState
from .keys import FleetKey, KeyPolicy, KeySet
from .redis_url import SyncRedis, UnexpectedReply
from .secret import FleetSecret, SealedBox

KEYS_LABEL = "ticket keys v1"
CHECK_LABEL = "fleet check v1"
CHECK_RECORD = b"tessera fleet v1"
LOCK_TTL = 5.0  # seconds a minting node may hold the lock
LOCK_WAIT = 2.0  # seconds a node waits for another one's minting, then reads what it made
log = logging.getLogger("tessera.fleet")


class ForeignFleet(ConfigError):
    """The fleet in Redis was set up with another fleet secret."""


class RedisKeySource:
    """Checks membership, reads, publishes and mints a fleet's ticket keys in Redis."""

    def __init__(
        self,
        client: SyncRedis,
        secret: FleetSecret,
        namespace: str,
        keyring: FleetKeyring,
        clock: Callable[[], float] = time.time,
        secret_name: str = "the fleet secret",
    ) -> None:
        self.client = client
        self.keyring = keyring
        self.policy: KeyPolicy = keyring.policy
        self.namespace = namespace
        self.check_key = f"tessera:{namespace}:fleet".encode()
        self.hash_key = f"tessera:{namespace}:ticketkeys".encode()
        self.lock_key = f"tessera:{namespace}:ticketkeys:lock"
        self.channel = self.hash_key + b":changed"
        self.secret_name = secret_name  # for the error that says which secret to fix
        self._box = secret.box(KEYS_LABEL)
        self._check_box = secret.box(CHECK_LABEL)
        self._clock = clock
        self.mints = 0  # keys this node minted
        self.rejected = 0  # records that did not open (another fleet secret, tampered)
        keyring.source = "Redis"

    def _aad(self, field: bytes) -> bytes:
        return self.hash_key + b"/" + field

    # -- membership -------------------------------------------------------------------------
    def check_membership(self) -> None:
        """Open the fleet's check record, writing it first for a new fleet. Raises
        :class:`ForeignFleet` when it was sealed under another fleet secret."""
        value = self.client.get(self.check_key)
        if value is None:
            sealed = self._check_box.seal(self.check_key, CHECK_RECORD)
            if self.client.set(self.check_key, sealed, nx=True):
                return
            value = self.client.get(self.check_key)  # another node wrote it just now
        if not isinstance(value, bytes):
            raise UnexpectedReply(f"Redis answered {value!r} for {self.check_key.decode()}")
        if self._check_box.open(self.check_key, value) == CHECK_RECORD:
            return
        if not SealedBox.shaped(value):
            raise UnexpectedReply(f"Redis answered {value[:32]!r} for {self.check_key.decode()}")
        raise ForeignFleet(
            f"this node is not part of the fleet in Redis (namespace {self.namespace!r}): "
            f"{self.secret_name} does not open the fleet's check record, so the fleet was set "
            "up with another fleet secret. Give every node the same secret (--fleet-secret "
            "FILE or $TESSERA_FLEET_SECRET); to start a new fleet, use another "
            f"--redis-namespace or delete the Redis key {self.check_key.decode()}"
        )

    # -- keys -------------------------------------------------------------------------------
    def read(self) -> KeySet:
        """Every record that opens (erased ones included)."""
        records = self.client.hgetall(self.hash_key)
        if not isinstance(records, dict):
            raise UnexpectedReply(f"Redis answered {records!r} for {self.hash_key.decode()}")
        keys = []
        for field, sealed in records.items():
            plain = None
            if isinstance(field, bytes) and isinstance(sealed, bytes) and len(field) == 32:
                plain = self._box.open(self._aad(field), sealed)
            if plain is None:
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
        """Check, read, repair, prune, install; mint the keys that are due. The installed set."""
        self.check_membership()
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
        if snap.next_start(now, self.policy) is not None and self.rotate():
            snap = self.keyring.snapshot
        return snap

    def rotate(self, force: bool = False) -> list[FleetKey]:
        """Mint and publish the keys still due, under the lock (``force``: also a key that
        starts ``lead`` seconds from now). The keys minted here; none when another node holds
        the lock past ``LOCK_WAIT`` or made them already (re-checked under the lock)."""
        lock = self.client.lock(self.lock_key, LOCK_TTL)
        if not lock.acquire(blocking=True, blocking_timeout=LOCK_WAIT):
            return []
        try:
            now = self._clock()
            current = self.read().live(now).merged(self.keyring.snapshot.live(now).keys)
            minted = [FleetKey.mint(now, now + self.policy.lead, self.policy)] if force else []
            minted += current.merged(minted).due_keys(now, self.policy)
            for key in minted:
                self.publish(key)
            if minted:
                self.client.publish(self.channel, minted[-1].name.hex())
                self.mints += len(minted)
        finally:
            with contextlib.suppress(LockError, RedisError):
                lock.release()
        self.keyring.install(current.merged(minted))
        return minted


class KeyRefresher:
    """A background thread that keeps a :class:`FleetKeyring` in step with Redis: a refresh on
    every pub/sub notice and on a fixed grid of ticks ``policy.refresh`` seconds apart; after
    a failure, retries sooner (a back-off doubling up to the refresh interval)."""

    def __init__(self, source: RedisKeySource,
                 on_refresh: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.source = source
        self.on_refresh = on_refresh  # after each refresh that worked (it must not raise)
        self.refreshes = 0
        self.failures: Counter[str] = Counter()  # by kind: "ConnectionError", "refused"...
        self._logged: set[str] = set()  # kinds logged since the last refresh that worked
        self._pubsub_logged: set[str] = set()  # pub/sub failures: logged once per kind
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tessera-keys", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.source.policy.refresh + LOCK_WAIT + 1)

    def start_check(self) -> None:
        """The refresh a node makes before it serves: a node of another fleet stops here
        (:class:`ForeignFleet`); Redis unavailable is recorded, and the node starts anyway."""
        try:
            self.source.refresh()
        except ForeignFleet:
            raise
        except Exception as e:
            self._failed(type(e).__name__, e)
            return
        self.refreshes += 1

    def refresh_once(self) -> bool:
        """One refresh; never raises. True if it worked."""
        try:
            self.source.refresh()
        except ForeignFleet as e:
            self._failed("refused", e, SourceState.REFUSED)
            return False
        except Exception as e:  # Redis down, a nonsense reply, a bug: keep the keys held
            self._failed(type(e).__name__, e)
            return False
        if self._logged:
            log.warning("ticket keys: refreshed from Redis again (%d failures before)",
                        sum(self.failures.values()))  # fmt: skip
            self._logged.clear()
        self.refreshes += 1
        if self.on_refresh is not None:
            self.on_refresh()
        return True

    def _failed(self, kind: str, error: BaseException,
                state: SourceState = SourceState.UNAVAILABLE) -> None:  # fmt: skip
        self.failures[kind] += 1
        where = self.source.client.target.describe()
        text = f"{where}: {describe(error)}" if kind != "refused" else str(error)
        self.source.keyring.source_failed(text, state)
        if kind not in self._logged:  # once per kind until a refresh works again
            self._logged.add(kind)
            log.warning("ticket keys: refresh from Redis failed (%s); retrying", text[:300])

    def _run(self) -> None:
        period = self.source.policy.refresh
        first_backoff = min(period, 0.25)
        backoff = first_backoff
        base = time.monotonic()
        pubsub: PubSub | None = None
        while not self._stop.is_set():
            now = time.monotonic()
            if self.refresh_once():
                backoff = first_backoff
                due = base + (math.floor((now - base) / period) + 1) * period
            else:
                due = now + backoff
                backoff = min(backoff * 2, period)
            pubsub = self._wait(pubsub, due)
        _close(pubsub)

    def _wait(self, pubsub: PubSub | None, due: float) -> PubSub | None:
        """Wait until ``due`` or a notice on the channel (subscribing if need be); the
        subscription to keep, or None after it failed (then the wait is a plain sleep)."""
        try:
            if pubsub is None:
                pubsub = self.source.client.pubsub()
                pubsub.subscribe(self.source.channel)
            while not self._stop.is_set() and (left := due - time.monotonic()) > 0:
                message = pubsub.get_message(timeout=min(left, 0.5))
                if message is None:
                    continue
                if isinstance(message, dict) and message.get("channel") == self.source.channel:
                    return pubsub  # a notice: refresh now
                raise UnexpectedReply(f"pub/sub answered {message!r}")
        except Exception as e:  # a pub/sub that fails costs only the notices: the timer goes on
            kind = f"pub/sub {type(e).__name__}"
            self.failures[kind] += 1
            if kind not in self._pubsub_logged:
                self._pubsub_logged.add(kind)
                log.warning("ticket keys: pub/sub notices failed (%s); refreshing on the timer",
                            describe(e))  # fmt: skip
            _close(pubsub)
            self._stop.wait(max(0.0, due - time.monotonic()))
            return None
        return pubsub


def _close(pubsub: PubSub | None) -> None:
    if pubsub is not None:
        with contextlib.suppress(Exception):
            pubsub.close()

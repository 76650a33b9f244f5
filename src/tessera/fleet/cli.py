"""The fleet's command-line pieces: ``tessera serve`` options and runtime, ``tessera keys``
fleet commands, and the status lines for the banner and the ``--www`` page.

``tessera serve`` stays in charge of its own options and configuration; it asks a
:class:`FleetRuntime` for the session store and ticket keyring to use and for a server — a
plain :class:`~tessera.io.blocking.TLSServer`, or a :class:`~.supervisor.Supervisor` that looks
like one — so the fleet adds no branches to ``serve``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from . import supervisor
from .health import AsyncGuardedStore, GuardedStore
from .keyring import FleetKeyring
from .keys import MAX_DECRYPT, MAX_ENCRYPT, FleetKey, KeyPolicy
from .secret import ENV_VAR, FleetSecret

if TYPE_CHECKING:
    from ..config import ServerConfig
    from ..session.keyring import TicketKeySource
    from ..session.store import SessionStore
    from .redis_keys import KeyRefresher
    from .supervisor import MakeServer, Server

DEFAULT_REFRESH = 5.0


@dataclass(frozen=True, slots=True)
class FleetOptions:
    workers: int = 1
    redis_url: str | None = None
    fleet_secret: str | None = None
    namespace: str = "default"
    key_refresh: float = DEFAULT_REFRESH
    redis_timeout: float = 0.050


def fleet_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--workers``, ``--redis``, ``--fleet-secret``, ``--redis-namespace``,
    ``--key-refresh`` and ``--redis-timeout``; the command receives them as ``fleet``."""

    @functools.wraps(f)
    def wrapper(*args: Any, workers: int, redis_url: str | None, fleet_secret: str | None,
                redis_namespace: str, key_refresh: float, redis_timeout: float,
                **kwargs: Any) -> Any:  # fmt: skip
        opts = FleetOptions(workers, redis_url, fleet_secret, redis_namespace, key_refresh,
                            redis_timeout)  # fmt: skip
        return f(*args, fleet=opts, **kwargs)

    for opt in reversed(
        [
            click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
                         help="Worker processes sharing the port (SO_REUSEPORT)."),
            click.option("--redis", "redis_url", metavar="URL",
                         help="Share sessions and ticket keys through Redis "
                              "(redis://, rediss://, unix://; user:password@ for ACLs)."),
            click.option("--fleet-secret", metavar="FILE", type=click.Path(dir_okay=False),
                         help=f"The fleet secret sealing values in Redis (default: ${ENV_VAR})."),
            click.option("--redis-namespace", default="default", show_default=True,
                         metavar="NS", help="Redis keys start with tessera:NS: ."),
            click.option("--key-refresh", default=DEFAULT_REFRESH, show_default=True,
                         type=click.FloatRange(min=0.05),
                         help="Seconds between fleet ticket key refreshes; a new key is "
                              "published twice this long before it encrypts."),
            click.option("--redis-timeout", default=0.050, show_default=True,
                         type=click.FloatRange(min=0.001),
                         help="Seconds each Redis operation may take."),
        ]
    ):  # fmt: skip
        wrapper = opt(wrapper)
    return wrapper


class FleetRuntime:
    """What ``tessera serve`` uses for sessions, ticket keys and serving, given the fleet
    options: all unchanged when there is no fleet (one process, no Redis)."""

    def __init__(self, opts: FleetOptions, keyring: TicketKeySource | None, *,
                 generated_keys: bool, rotation: float, keep: int) -> None:  # fmt: skip
        if opts.fleet_secret and not opts.redis_url:
            raise click.UsageError("--fleet-secret goes with --redis URL")
        self.opts = opts
        self.secret = FleetSecret.load(opts.fleet_secret) if opts.redis_url else None
        self.policy = KeyPolicy(
            rotation=min(rotation, MAX_ENCRYPT),
            decrypt_for=min(rotation * keep, MAX_DECRYPT),
            refresh=opts.key_refresh,
        )
        self.guarded: GuardedStore | AsyncGuardedStore | None = None
        self.refresher: KeyRefresher | None = None
        self.fleet_keyring: FleetKeyring | None = None
        self._keyring = keyring
        shared = opts.redis_url is not None or opts.workers > 1
        if keyring is not None and generated_keys and shared:
            self.fleet_keyring = FleetKeyring(self.policy)
            self._keyring = self.fleet_keyring
            if opts.redis_url is None:  # the supervisor owns the keys: the first one at once
                self.fleet_keyring.source = "the supervisor"
                self.mint(immediate=True)
            else:
                self.refresher = self._redis_refresher(self.fleet_keyring)

    # -- what serve asks for ------------------------------------------------------------------
    @property
    def keyring(self) -> TicketKeySource | None:
        return self._keyring

    def session_store(self, default: SessionStore | None) -> SessionStore | None:
        """The Redis store (behind a circuit breaker) when there is Redis, else ``default``."""
        if self.opts.redis_url is None or default is None:
            return default
        from .redis_store import RedisSessionStore

        assert self.secret is not None
        store = RedisSessionStore.from_url(
            self.opts.redis_url, self.secret, self.opts.namespace, self.opts.redis_timeout
        )
        self.guarded = GuardedStore(store)
        return self.guarded

    def async_session_store(self) -> AsyncGuardedStore | None:
        """The asyncio Redis store behind a circuit breaker (``tessera proxy``), or None
        without Redis. Its connections are made by the event loop that first uses it."""
        if self.opts.redis_url is None:
            return None
        from .redis_store import AsyncRedisSessionStore

        assert self.secret is not None
        store = AsyncRedisSessionStore.from_url(
            self.opts.redis_url, self.secret, self.opts.namespace, self.opts.redis_timeout
        )
        guarded = AsyncGuardedStore(store)
        self.guarded = guarded
        return guarded

    def server(self, make_server: MakeServer, address: tuple[str, int],
               grace: float = supervisor.GRACE) -> Server:  # fmt: skip
        """``grace``: seconds each worker gets to stop (drain) after SIGTERM."""
        if self.refresher is not None:
            self.refresher.refresh_once()  # keys (or the first key's schedule) for the banner
        if self.opts.workers > 1:
            owned = self.fleet_keyring if self.refresher is None else None
            return supervisor.Supervisor(
                make_server, address, self.opts.workers, keyring=owned,
                mint=self.mint if owned is not None else None,
                on_worker_start=self._start_refresher, grace=grace,
            )  # fmt: skip
        server = make_server(address, False)
        self._start_refresher()
        return server

    def banner_lines(self) -> list[str]:
        lines = []
        o = self.opts
        if o.redis_url is not None:
            from .redis_store import redacted

            lines.append(f"fleet: Redis {redacted(o.redis_url)}, keys tessera:{o.namespace}:*, "
                         f"{o.redis_timeout * 1000:g} ms per operation")  # fmt: skip
            if self.guarded is not None:
                lines.append(f"fleet: session store {self.guarded.health().describe()}")
        if o.workers > 1:
            per = (
                ""
                if o.redis_url
                else ("; session ids and single-use tickets are per worker (--redis shares them)")
            )
            lines.append(f"fleet: {o.workers} workers on one port (SO_REUSEPORT){per}")
        if self.fleet_keyring is not None:
            kr = self.fleet_keyring
            p = self.policy
            lines.append(
                f"fleet: ticket keys from {kr.source}: encrypt {p.rotation:g} s, "
                f"decrypt {p.decrypt_for:g} s more, published {p.lead:g} s ahead"
            )
            if kr.source_error:
                lines.append(f"fleet: ticket keys not refreshed: {kr.source_error}")
            lines += [f"  key {n}  age {a}  {s}" for n, a, s in kr.describe()]
        return lines

    # -- keys -----------------------------------------------------------------------------
    def _redis_refresher(self, keyring: FleetKeyring) -> KeyRefresher:
        from .redis_keys import KeyRefresher, RedisKeySource
        from .redis_store import sync_client

        assert self.opts.redis_url is not None and self.secret is not None
        client = sync_client(self.opts.redis_url, max(self.opts.redis_timeout, 0.5), 4)
        return KeyRefresher(RedisKeySource(client, self.secret, self.opts.namespace, keyring))

    def _start_refresher(self) -> None:
        if self.refresher is not None:
            self.refresher.start()

    def mint(self, immediate: bool = False) -> bool:
        """The supervisor's rotation: a new key when due; True if the keys changed."""
        kr = self.fleet_keyring
        assert kr is not None
        now = time.time()
        snap = kr.snapshot.live(now)
        if not snap.rotation_due(now, self.policy):
            return False
        start = snap.next_start(now, self.policy, immediate=immediate)
        kr.install(snap.merged([FleetKey.mint(now, start, self.policy)]))
        return True


def status_lines(config: ServerConfig) -> list[str]:
    """The fleet's part of the ``--www`` page: worker, store health, ticket keys."""
    lines = []
    w = supervisor.WORKER
    if w is not None:
        lines.append(f"  worker: {w.index} of {w.count} (pid {w.pid})")
    store = config.session_store
    if isinstance(store, GuardedStore | AsyncGuardedStore):
        lines.append(f"  session store: {store.store!r}: {store.health().describe()}")
    kr = config.ticket_keyring
    if isinstance(kr, FleetKeyring):
        failed = f"; last refresh failed: {kr.source_error}" if kr.source_error else ""
        lines.append(f"  ticket keys from {kr.source}{failed}:")
        lines += [f"    {n}  age {a}  {s}" for n, a, s in kr.describe()] or ["    (none)"]
    return ["", "Fleet:", *lines] if lines else []


# -- tessera keys fleet-secret / rotate / list ------------------------------------------------
@click.command("fleet-secret")
@click.option("-o", "--out", "path", required=True, type=click.Path(dir_okay=False),
              help="File to write (mode 0600).")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace an existing file.")
def fleet_secret_command(path: str, force: bool) -> None:
    """Write a new random fleet secret (for --fleet-secret)."""
    FleetSecret.generate().write(path, force=force)
    click.echo(f"wrote a new fleet secret to {path} (mode 0600); give it to every node", err=True)


def _redis_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(
        [
            click.option("--redis", "redis_url", required=True, metavar="URL",
                         help="The fleet's Redis."),
            click.option("--fleet-secret", metavar="FILE", type=click.Path(dir_okay=False),
                         help=f"The fleet secret (default: ${ENV_VAR})."),
            click.option("--redis-namespace", default="default", show_default=True,
                         metavar="NS"),
        ]
    ):  # fmt: skip
        f = opt(f)
    return f


def _source(redis_url: str, fleet_secret: str | None, namespace: str,
            policy: KeyPolicy) -> Any:  # fmt: skip
    from .redis_keys import RedisKeySource
    from .redis_store import sync_client

    secret = FleetSecret.load(fleet_secret)
    return RedisKeySource(sync_client(redis_url, 2.0, 2), secret, namespace, FleetKeyring(policy))


@click.command("rotate")
@_redis_options
@click.option("--lead", default=2 * DEFAULT_REFRESH, show_default=True, type=float,
              help="Seconds before the new key encrypts: at least twice the nodes' "
                   "--key-refresh.")  # fmt: skip
@click.option("--rotation", default=MAX_ENCRYPT, show_default=True, type=float,
              help="Seconds the new key encrypts (at most 3600).")  # fmt: skip
@click.option("--decrypt-for", default=MAX_DECRYPT, show_default=True, type=float,
              help="Seconds it decrypts after that (at most 7200).")  # fmt: skip
def rotate_command(redis_url: str, fleet_secret: str | None, redis_namespace: str, lead: float,
                   rotation: float, decrypt_for: float) -> None:  # fmt: skip
    """Publish a new fleet ticket key now; it encrypts after --lead seconds."""
    from redis.exceptions import RedisError

    policy = KeyPolicy(rotation, decrypt_for, refresh=lead / 2, lead=lead)
    source = _source(redis_url, fleet_secret, redis_namespace, policy)
    try:
        key = source.rotate(force=True)
    except RedisError as e:
        raise click.ClickException(f"cannot reach Redis ({e}); check --redis") from None
    if key is None:
        raise click.ClickException("another node is minting a key right now; try again")
    click.echo(f"published ticket key {key.name.hex()}; it encrypts in {policy.lead:g} s")


@click.command("list")
@_redis_options
def list_command(redis_url: str, fleet_secret: str | None, redis_namespace: str) -> None:
    """The fleet's ticket keys in Redis: names, ages, states (never key material)."""
    from redis.exceptions import RedisError
    from rich.console import Console
    from rich.table import Table

    source = _source(redis_url, fleet_secret, redis_namespace, KeyPolicy())
    try:
        keys = source.read()
    except RedisError as e:
        raise click.ClickException(f"cannot reach Redis ({e}); check --redis") from None
    now = time.time()
    enc = keys.encrypting(now)
    table = Table(title=f"ticket keys in tessera:{redis_namespace}:ticketkeys")
    for column in ("name", "age", "state", "encrypts", "erased in"):
        table.add_column(column)
    for k in reversed(keys.keys):
        table.add_row(
            k.name.hex(), f"{now - k.created:.0f} s", k.state(now, enc).value,
            f"{k.encrypts_from - now:+.0f} s .. {k.encrypts_until - now:+.0f} s",
            f"{k.erased_at - now:.0f} s",
        )  # fmt: skip
    Console(width=160).print(table)
    if source.rejected:
        click.echo(f"{source.rejected} record(s) did not open with this fleet secret", err=True)

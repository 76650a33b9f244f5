"""The fleet's command-line pieces: ``tessera serve``/``proxy`` options and runtime, ``tessera
keys`` fleet commands, and every fleet line of the banner, the ``--www`` page and the metrics.

``tessera serve`` and ``tessera proxy`` stay in charge of their own options and configuration;
they ask a :class:`FleetRuntime` for the session store and ticket keyring to use, how much 0-RTT
data is safe, and for a server — a plain one, or a :class:`~.supervisor.Supervisor` that looks
like one — so the fleet adds no branches to them. Whatever they print about the fleet comes
from here (:meth:`FleetRuntime.banner_lines`, :func:`status_lines`, :func:`store_words`), from
the same state, so no two places can contradict each other.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from ..cli.command import Command, FiniteFloatRange, Unreachable
from ..errors import ConfigError, StoreError
from ..session.store import MemoryStore
from . import supervisor
from .failure import describe
from .health import AsyncGuardedStore, Breaker, GuardedStore
from .hygiene import disable_core_dumps
from .keyring import FleetKeyring, SourceState
from .keys import MAX_DECRYPT, MAX_ENCRYPT, KeyPolicy
from .secret import SOURCE_HELP, FleetSecret, secret_source
from .strikes import SharedStrikeStore, StrikeClient

if TYPE_CHECKING:
    from ..config import ServerConfig
    from ..session.keyring import TicketKeySource
    from ..session.store import SessionStore
    from .redis_keys import KeyRefresher, RedisKeySource
    from .redis_url import RedisTarget
    from .supervisor import MakeServer, Server

DEFAULT_REFRESH = 5.0
START_PROBE_TIMEOUT = 1.0  # seconds the start-up probe of Redis may take (not per operation)
NO_SHARED_REGISTER = (
    "0-RTT off: the ticket keys come from --ticket-keys files, which other servers may share, "
    "and no replay register is shared with them (--redis shares one)"
)


@dataclass(frozen=True, slots=True)
class FleetOptions:
    workers: int = 1
    redis_url: str | None = None
    fleet_secret: str | None = None
    namespace: str = "default"
    key_refresh: float = DEFAULT_REFRESH
    redis_timeout: float = 0.050


def redis_url_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--redis``: a URL with a scheme Redis clients know (checked before anything starts)."""
    if value is None:
        return None
    from .redis_url import parse

    try:
        parse(value)
    except ConfigError as e:
        raise click.BadParameter(str(e).partition(": ")[2] or str(e)) from None
    return value


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
            click.option("--redis", "redis_url", metavar="URL", callback=redis_url_option,
                         help="Share sessions and ticket keys through Redis: redis://HOST:PORT, "
                              "rediss:// (TLS), unix:///PATH, redis-cluster://HOST:PORT[,...] "
                              "(seed nodes), redis-sentinel://HOST:PORT[,...]/MASTER; "
                              "USER:PASSWORD@ for ACLs."),
            click.option("--fleet-secret", metavar="FILE", type=click.Path(dir_okay=False),
                         help=SOURCE_HELP),
            click.option("--redis-namespace", default="default", show_default=True,
                         metavar="NS", help="Redis keys start with tessera:NS: ."),
            click.option("--key-refresh", default=DEFAULT_REFRESH, show_default=True,
                         type=FiniteFloatRange(min=0.05),
                         help="Seconds between fleet ticket key refreshes; a new key is "
                              "published at least twice this long before it encrypts."),
            click.option("--redis-timeout", default=0.050, show_default=True,
                         type=FiniteFloatRange(min=0.001),
                         help="Seconds each Redis operation may take."),
        ]
    ):  # fmt: skip
        wrapper = opt(wrapper)
    return wrapper


class FleetRuntime:
    """What ``tessera serve`` and ``tessera proxy`` use for sessions, ticket keys and serving,
    given the fleet options: all unchanged when there is no fleet (one process, no Redis).

    Made before anything serves: it loads the fleet secret, disables core dumps, probes Redis
    once (a store never reached is *unavailable since start*, not healthy) and makes the first
    key refresh — where a node of another fleet stops (:class:`~.redis_keys.ForeignFleet`, a
    :class:`~tessera.errors.ConfigError`)."""

    def __init__(self, opts: FleetOptions, keyring: TicketKeySource | None, *,
                 generated_keys: bool, rotation: float, keep: int) -> None:  # fmt: skip
        if opts.fleet_secret and not opts.redis_url:
            raise click.UsageError("--fleet-secret goes with --redis URL")
        disable_core_dumps()  # private keys and ticket keys are in memory from now on
        self.opts = opts
        self.generated_keys = generated_keys
        self.target: RedisTarget | None = None
        self.secret: FleetSecret | None = None
        if opts.redis_url is not None:
            from .redis_url import parse

            self.target = parse(opts.redis_url)
            self.secret = FleetSecret.load(opts.fleet_secret)
        self.policy = KeyPolicy(
            rotation=min(rotation, MAX_ENCRYPT),
            decrypt_for=min(rotation * keep, MAX_DECRYPT),
            refresh=opts.key_refresh,
        )
        self.guarded: GuardedStore | AsyncGuardedStore | None = None
        self.breaker = Breaker()  # the session store's, probed at start
        self.refresher: KeyRefresher | None = None
        self.fleet_keyring: FleetKeyring | None = None
        self.strikes: StrikeClient | None = None
        self._keyring = keyring
        shared = opts.redis_url is not None or opts.workers > 1
        if keyring is not None and generated_keys and shared:
            self.fleet_keyring = FleetKeyring(self.policy)
            self._keyring = self.fleet_keyring
            if opts.redis_url is None:  # the supervisor owns the keys and the 0-RTT register
                self.fleet_keyring.source = "the supervisor"
                self.mint()
                self.strikes = StrikeClient()
        if self.target is not None:
            self._probe_store()
            if self.fleet_keyring is not None:
                self.refresher = self._redis_refresher(self.fleet_keyring)
                self.refresher.start_check()

    # -- what serve and proxy ask for ---------------------------------------------------------
    @property
    def keyring(self) -> TicketKeySource | None:
        return self._keyring

    def session_store(self, default: SessionStore | None) -> SessionStore | None:
        """The Redis store (behind the circuit breaker) when there is Redis; the supervisor's
        0-RTT register in front of ``default`` for workers that share keys; else ``default``."""
        if default is None:
            return None
        if self.target is None:
            if self.strikes is not None and isinstance(default, MemoryStore):
                return SharedStrikeStore(default, self.strikes)
            return default
        from .redis_store import RedisSessionStore

        assert self.secret is not None
        store = RedisSessionStore.from_url(
            self.target, self.secret, self.opts.namespace, self.opts.redis_timeout
        )
        self.guarded = GuardedStore(store, self.breaker)
        return self.guarded

    def async_session_store(self) -> AsyncGuardedStore | None:
        """The asyncio Redis store behind the circuit breaker (``tessera proxy``), or None
        without Redis. Its connections are made by the event loop that first uses it."""
        if self.target is None:
            return None
        from .redis_store import AsyncRedisSessionStore

        assert self.secret is not None
        store = AsyncRedisSessionStore.from_url(
            self.target, self.secret, self.opts.namespace, self.opts.redis_timeout
        )
        guarded = AsyncGuardedStore(store, self.breaker)
        self.guarded = guarded
        return guarded

    def early_data(self, requested: int) -> int:
        """The 0-RTT limit that cannot be replayed: ``requested`` wherever the strike register
        is shared as widely as the ticket keys (Redis, the supervisor, one process); 0 for keys
        from files without Redis (other servers may hold the same keys)."""
        if requested and self.target is None and not self.generated_keys:
            return 0
        return requested

    def server(self, make_server: MakeServer, address: tuple[str, int],
               grace: float = supervisor.GRACE) -> Server:  # fmt: skip
        """``grace``: seconds each worker gets to stop (drain) after SIGTERM."""
        if self.opts.workers > 1:
            owned = self.fleet_keyring if self.refresher is None else None
            return supervisor.Supervisor(
                make_server, address, self.opts.workers, keyring=owned,
                mint=self.mint if owned is not None else None,
                on_worker_start=self._start_refresher, strikes=self.strikes, grace=grace,
            )  # fmt: skip
        server = make_server(address, False)
        self._start_refresher()
        return server

    # -- what it says -------------------------------------------------------------------------
    def banner_lines(self, early_data: int = 0) -> list[str]:
        """The fleet's banner lines; ``early_data``: the --max-early-data asked for."""
        lines = []
        o = self.opts
        if self.target is not None:
            lines.append(f"fleet: {self.target.describe()}, keys tessera:{o.namespace}:*, "
                         f"{o.redis_timeout * 1000:g} ms per operation")  # fmt: skip
            lines.append(f"fleet: session store {self.breaker.health().describe()}")
        if o.workers > 1:
            per = "; session ids and single-use tickets are per worker (--redis shares them)"
            lines.append(f"fleet: {o.workers} workers on one port (SO_REUSEPORT)"
                         f"{'' if self.target else per}")  # fmt: skip
        if early_data and not self.early_data(early_data):
            lines.append(f"fleet: {NO_SHARED_REGISTER}")
        elif early_data and self.strikes is not None:
            lines.append("fleet: 0-RTT replays refused across workers (the supervisor keeps "
                         "the strike register)")  # fmt: skip
        if self.fleet_keyring is not None:
            kr = self.fleet_keyring
            p = self.policy
            lines.append(
                f"fleet: ticket keys from {kr.describe_source()}: encrypt {p.rotation:g} s, "
                f"decrypt {p.decrypt_for:g} s more, published {p.lead:g} s ahead"
            )
            lines += [f"  key {n}  age {a}  {s}" for n, a, s in kr.describe()]
        return lines

    # -- keys -----------------------------------------------------------------------------
    def _probe_store(self) -> None:
        """Ask Redis once (a client of its own, a generous timeout): the breaker then says
        what the store really is before the first handshake."""
        from .redis_url import sync_client

        assert self.target is not None
        client = sync_client(self.target, START_PROBE_TIMEOUT, 1)
        try:
            client.ping()
        except Exception as e:  # any failure: unavailable since start, never a failed start
            self.breaker.start_failed(e)
        finally:
            client.close()

    def _redis_refresher(self, keyring: FleetKeyring) -> KeyRefresher:
        from .redis_keys import KeyRefresher, RedisKeySource
        from .redis_url import sync_client

        assert self.target is not None and self.secret is not None
        client = sync_client(self.target, max(self.opts.redis_timeout, 0.5), 4)
        name = secret_source(self.opts.fleet_secret)
        source = RedisKeySource(client, self.secret, self.opts.namespace, keyring,
                                secret_name=name)  # fmt: skip
        return KeyRefresher(source, on_refresh=self._heal_store)

    def _heal_store(self) -> None:
        """After a key refresh that worked: if the session store is not healthy and due for a
        probe, ping Redis on the refresher's connection, so the status does not wait for a
        handshake that needs the store to say it is back."""
        if self.refresher is None or not self.breaker.probe_due():
            return
        try:
            self.breaker.admit()  # now the probe (a handshake may have taken it: then done)
        except StoreError:
            return
        try:
            self.refresher.source.client.ping()
        except Exception as e:
            self.breaker.failed(e)
        else:
            self.breaker.succeeded()

    def _start_refresher(self) -> None:
        if self.refresher is not None:
            self.refresher.start()

    def mint(self) -> bool:
        """The supervisor's rotation: the keys that are due; True if the keys changed."""
        kr = self.fleet_keyring
        assert kr is not None
        now = time.time()
        snap = kr.snapshot.live(now)
        due = snap.due_keys(now, self.policy)
        if due:
            kr.install(snap.merged(due))
        return bool(due)


def store_words(store: object) -> str | None:
    """How a banner names a fleet's session store ("shared through Redis"), or None for a
    store of this process alone (a memory cache says its own size)."""
    inner = getattr(store, "inner", store)  # a metered store wraps the fleet's
    if isinstance(inner, GuardedStore | AsyncGuardedStore):
        return "shared through Redis"
    return None


def keyring_is_fleet(keyring: object) -> bool:
    """Whether the fleet's lines describe this keyring (then a banner says nothing else)."""
    return isinstance(keyring, FleetKeyring)


def status_lines(config: ServerConfig) -> list[str]:
    """The fleet's part of the ``--www`` page: worker, store health, ticket keys."""
    lines = []
    w = supervisor.WORKER
    if w is not None:
        lines.append(f"  worker: {w.index} of {w.count} (pid {w.pid})")
    store = config.async_session_store if config.session_store is None else config.session_store
    inner = getattr(store, "inner", store)
    if isinstance(inner, GuardedStore | AsyncGuardedStore):
        lines.append(f"  session store: {inner.store!r}: {inner.health().describe()}")
    kr = config.ticket_keyring
    if isinstance(kr, FleetKeyring):
        lines.append(f"  ticket keys from {kr.describe_source()}:")
        lines += [f"    {n}  age {a}  {s}" for n, a, s in kr.describe()] or ["    (none)"]
    return ["", "Fleet:", *lines] if lines else []


def key_source_up(keyring: object) -> tuple[str, str, bool] | None:
    """(source, state, up) of a fleet keyring, for the metrics; None for any other keyring."""
    if not isinstance(keyring, FleetKeyring):
        return None
    return keyring.source, keyring.state.value, keyring.state is SourceState.HEALTHY


# -- tessera keys fleet-secret / rotate / list ------------------------------------------------
@click.command("fleet-secret", cls=Command)
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
                         callback=redis_url_option,
                         help="The fleet's Redis (redis://, rediss://, unix://, "
                              "redis-cluster://, redis-sentinel://; as for tessera serve)."),
            click.option("--fleet-secret", metavar="FILE", type=click.Path(dir_okay=False),
                         help=SOURCE_HELP),
            click.option("--redis-namespace", default="default", show_default=True,
                         metavar="NS"),
        ]
    ):  # fmt: skip
        f = opt(f)
    return f


def _source(redis_url: str, fleet_secret: str | None, namespace: str,
            policy: KeyPolicy) -> RedisKeySource:  # fmt: skip
    from .redis_keys import RedisKeySource
    from .redis_url import sync_client

    disable_core_dumps()
    try:
        secret = FleetSecret.load(fleet_secret)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    return RedisKeySource(sync_client(redis_url, 2.0, 2), secret, namespace, FleetKeyring(policy))


@click.command("rotate", cls=Command)
@_redis_options
@click.option("--lead", default=2 * DEFAULT_REFRESH, show_default=True,
              type=FiniteFloatRange(min=0, min_open=True),
              help="Seconds before the new key encrypts: at least twice the nodes' "
                   "--key-refresh.")  # fmt: skip
@click.option("--rotation", default=MAX_ENCRYPT, show_default=True,
              type=FiniteFloatRange(min=0, min_open=True),
              help="Seconds the new key encrypts (at most 3600).")  # fmt: skip
@click.option("--decrypt-for", default=MAX_DECRYPT, show_default=True,
              type=FiniteFloatRange(min=0, min_open=True),
              help="Seconds it decrypts after that (at most 7200).")  # fmt: skip
def rotate_command(redis_url: str, fleet_secret: str | None, redis_namespace: str, lead: float,
                   rotation: float, decrypt_for: float) -> None:  # fmt: skip
    """Publish a new fleet ticket key now; it encrypts after --lead seconds."""
    policy = KeyPolicy(rotation, decrypt_for, refresh=lead / 2, lead=lead)
    source = _source(redis_url, fleet_secret, redis_namespace, policy)
    try:
        source.check_membership()
        minted = source.rotate(force=True)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    except Exception as e:
        raise _unreachable(source, e) from None
    if not minted:
        raise click.ClickException("another node is minting a key right now; try again")
    click.echo(f"published ticket key {minted[0].name.hex()}; it encrypts in {policy.lead:g} s")


def _unreachable(source: RedisKeySource, error: Exception) -> click.ClickException:
    """Redis could not be reached (exit status 3) or answered what no Redis answers (1)."""
    from redis import exceptions as redis_errors

    where = source.client.target.describe()
    cause = error.__cause__ or error.__context__
    unreachable = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError,
                   redis_errors.RedisClusterUnreachableError)  # fmt: skip
    if isinstance(cause, OSError) or isinstance(error, unreachable):
        # connection refused, a TLS handshake Redis refused...: what to change in --redis
        return Unreachable(f"cannot reach {where} (--redis): {describe(error)}")
    return click.ClickException(f"cannot use {where} (--redis): {error}")


@click.command("list", cls=Command)
@_redis_options
def list_command(redis_url: str, fleet_secret: str | None, redis_namespace: str) -> None:
    """The fleet's ticket keys in Redis: names, ages, states (never key material)."""
    from rich.console import Console
    from rich.table import Table

    source = _source(redis_url, fleet_secret, redis_namespace, KeyPolicy())
    try:
        keys = source.read()
    except Exception as e:
        raise _unreachable(source, e) from None
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

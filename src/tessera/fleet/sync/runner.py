"""``tessera keys sync``'s runner: options -> an agent and its refresher -> once, or a loop.

The command line (:mod:`tessera.cli.keys`) only parses; everything it asks for is here, so that
tests and other front ends run the agent the same way.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from ...addresses import parse_address
from ...errors import ConfigError
from ..hygiene import disable_core_dumps
from ..keys import MAX_DECRYPT, MAX_ENCRYPT, KeyPolicy
from ..redis_keys import KeyRefresher
from ..redis_url import redacted
from ..secret import FleetSecret, secret_source
from .agent import SyncAgent, follow, redis_keyring
from .haproxy import HaproxyRuntime
from .metrics import serve_metrics
from .targets import TargetError, on_persistent_disk, parse_targets

log = logging.getLogger("tessera.keys.sync")


@dataclass(frozen=True, slots=True)
class SyncOptions:
    redis_url: str
    fleet_secret: str | None = None
    namespace: str = "default"
    redis_timeout: float = 0.5
    specs: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    exec_timeout: float = 30.0
    sockets: tuple[str, ...] = ()
    key_refresh: float = 5.0
    rotation: float = MAX_ENCRYPT
    keep: int = 2
    metrics: str | None = None

    @property
    def policy(self) -> KeyPolicy:
        """The nodes' policy for the same options (``tessera serve``/``proxy``)."""
        return KeyPolicy(
            rotation=min(self.rotation, MAX_ENCRYPT),
            decrypt_for=min(self.rotation * self.keep, MAX_DECRYPT),
            refresh=self.key_refresh,
        )


class UsageProblem(ValueError):
    """An option that cannot be used; ``option`` names it."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


def build(o: SyncOptions) -> tuple[SyncAgent, KeyRefresher]:
    """The agent for ``o`` and the refresher that will feed its keyring (not started)."""
    try:
        targets = parse_targets(o.specs)
    except TargetError as e:
        raise UsageProblem("--to", str(e)) from None
    if o.sockets and not any(t.kind == "haproxy" for t in targets):
        raise UsageProblem("--haproxy-socket", "goes with --to haproxy:FILE (the keys to push)")
    if o.metrics is not None:
        try:
            parse_address(o.metrics, "--metrics")
        except ValueError as e:
            raise UsageProblem("--metrics", str(e)) from None
    disable_core_dumps()  # the fleet secret and ticket keys are in memory from now on
    secret = FleetSecret.load(o.fleet_secret)
    policy = o.policy
    name = secret_source(o.fleet_secret)
    try:
        keyring, refresher = redis_keyring(o.redis_url, secret, o.namespace, policy,
                                           o.redis_timeout, name)  # fmt: skip
    except (ConfigError, ValueError) as e:
        raise UsageProblem("--redis", str(e).partition(": ")[2] or str(e)) from None
    agent = SyncAgent(
        keyring, targets, lead=policy.lead, local_lifetime=policy.rotation,
        haproxy=[HaproxyRuntime(p) for p in o.sockets], commands=o.commands,
        exec_timeout=o.exec_timeout,
    )  # fmt: skip
    for t in targets:
        kind = on_persistent_disk(t)
        if kind is not None:
            log.warning("%s is on %s, not tmpfs: ticket keys reach a persistent disk; use a "
                        "directory under /run", t.label, kind)  # fmt: skip
    return agent, refresher


def sync_once(agent: SyncAgent, refresher: KeyRefresher,
              sleep: Callable[[float], None] = time.sleep) -> str | None:  # fmt: skip
    """``--once``: a refresh and a pass; None if everything was done, else what failed. When
    the fleet's key is only waiting for the lead time (a new fleet, a rotation with a short
    lead), wait for it (at most the lead) and pass again, rather than leave a local key."""
    refresher.start_check()  # a fleet with another secret stops here (ForeignFleet)
    if agent.keyring.source_error:
        error = agent.keyring.source_error
        return f"cannot read the fleet's keys from Redis ({error}); nothing written"
    agent.step()
    waiting = agent.lead_wait(agent.clock())
    if waiting is not None:
        name, seconds = waiting
        log.info("fleet key %s may encrypt here in %.1f s (the lead time): waiting for it",
                 name.hex(), seconds)  # fmt: skip
        sleep(seconds)
        refresher.refresh_once()
        agent.step()
    failed = [a.last_error for a in agent.actions() if a.due]
    return "; ".join(failed) or None


def run(agent: SyncAgent, refresher: KeyRefresher, o: SyncOptions) -> None:
    """Follow the fleet until SIGTERM or SIGINT; SIGHUP rewrites every target."""
    stop = threading.Event()

    def on_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        agent.wake.set()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        agent.resync()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    if o.metrics is not None:
        host, port = serve_metrics(agent, parse_address(o.metrics, "--metrics"))
        log.info("metrics at http://%s:%d/metrics", host, port)
    policy = o.policy
    log.info(
        "following the fleet's ticket keys in %s (tessera:%s:*): refresh every %g s; a key "
        "encrypts here once published %g s ago; targets %s",
        redacted(o.redis_url), o.namespace, policy.refresh, policy.lead,
        ", ".join(t.label for t in agent.targets),
    )  # fmt: skip
    refresher.start_check()  # the fleet's keys for the first pass; another fleet stops here
    follow(agent, refresher, stop, policy.refresh)
    log.info("stopped")

"""The ``tessera keys sync`` agent: keep other servers' ticket keys in step with the fleet's.

It is a member of the fleet keyring like a tessera node — the same :class:`.FleetKeyring`,
refreshed from Redis by the same :class:`.KeyRefresher` (a pub/sub notice and a timer), minting
the next key when it is due (under the fleet's lock: exactly one per rotation) — but instead of
sealing tickets it writes what its servers read: each pass computes the :class:`.KeyView` of
the moment, writes the targets whose keys changed, pushes HAProxy's runtime API, then runs the
``--exec`` commands. A pass runs on every change of the keyring and at every moment the view
changes by the clock (a key starts or stops encrypting, becomes old enough, is erased).

Failures never stop it: a file that cannot be written, a HAProxy that does not answer or a
command that fails is logged with what went wrong, counted, and retried with a back-off (1 s
doubling to 30 s) until it works. With Redis away the keyring keeps the keys it holds, on their
own schedule; the agent says so, and when the encrypting key stops with no successor known, its
servers encrypt with a local key (see :mod:`.view`). Logs name keys, never key material.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ...session.keyring import TicketKey
from ..keyring import FleetKeyring
from ..keys import KeyPolicy, KeySet
from ..redis_keys import KeyRefresher, RedisKeySource
from ..redis_url import parse, sync_client
from ..secret import FleetSecret
from .haproxy import HaproxyError, HaproxyRuntime
from .targets import Held, Target, haproxy_ring
from .view import KeyView, key_view, next_change

log = logging.getLogger("tessera.keys.sync")

MAX_BACKOFF = 30.0
EXEC_TIMEOUT = 30.0
OUTPUT_TAIL = 400


class NotifyingKeyring(FleetKeyring):
    """A fleet keyring that sets :attr:`changed` whenever a refresh installs keys."""

    def __init__(self, policy: KeyPolicy, keys: KeySet | None = None,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        super().__init__(policy, keys, clock)
        self.changed = threading.Event()

    def install(self, keys: KeySet) -> KeySet:
        snap = super().install(keys)
        self.changed.set()
        return snap


@dataclass
class Action:
    """One thing a pass may have to do — write a target, bring a HAProxy in step, run a
    command — with its failures and its back-off."""

    kind: str  # "write", "haproxy_socket", "exec"
    label: str
    due: bool = False
    retry_at: float = 0.0
    failures: int = 0  # in a row
    total_failures: int = 0
    done: int = 0
    last_error: str = ""
    last_ok: float = 0.0

    def ready(self, now: float) -> bool:
        return self.due and now >= self.retry_at

    def request(self) -> None:
        """Do it at the next pass (a new change: no back-off)."""
        self.due, self.retry_at, self.failures = True, 0.0, 0

    def succeeded(self, now: float) -> None:
        if self.failures:
            log.info("%s: works again after %d failure(s)", self.label, self.failures)
        self.due, self.failures, self.last_error, self.last_ok = False, 0, "", now
        self.done += 1

    def failed(self, now: float, error: str) -> None:
        self.failures += 1
        self.total_failures += 1
        self.last_error = error
        delay = min(MAX_BACKOFF, 2.0 ** (self.failures - 1))
        self.retry_at = now + delay
        log.error("%s (failure %d; retrying in %g s)", error, self.failures, delay)


@dataclass
class _Push:
    runtime: HaproxyRuntime
    target: Target
    action: Action
    synced: tuple[bytes, bytes] | None = None  # (encrypting, last) as last brought in step


@dataclass
class _Command:
    command: str
    action: Action


def run_command(command: str, timeout: float) -> str | None:
    """Run ``command`` with ``/bin/sh -c``: None when it succeeded, else what went wrong."""
    try:
        proc = subprocess.run(
            ["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"still running after {timeout:g} s, stopped"
    except OSError as e:
        return str(e)
    if proc.returncode == 0:
        return None
    out = proc.stdout.decode("utf-8", "replace").strip()[-OUTPUT_TAIL:]
    return f"exit status {proc.returncode}" + (f": {out}" if out else "")


@dataclass
class SyncAgent:
    """Writes ``targets`` from ``keyring`` (refreshed by someone else: see :func:`follow`)."""

    keyring: NotifyingKeyring
    targets: Sequence[Target]
    lead: float  # a fleet key encrypts here only once published this long ago
    local_lifetime: float  # a local key encrypts at most this long (the rotation)
    haproxy: Sequence[HaproxyRuntime] = ()
    commands: Sequence[str] = ()
    exec_timeout: float = EXEC_TIMEOUT
    clock: Callable[[], float] = time.time
    rng: Callable[[int], bytes] = os.urandom
    view: KeyView | None = field(default=None, init=False)
    last_sync: float = field(default=0.0, init=False)  # the last pass that left all in step
    held: dict[str, Held | None] = field(default_factory=dict, init=False)
    # per target: the key its server encrypts with since the last write, and whether local
    written: dict[str, tuple[TicketKey, bool]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.writes = {t.label: Action("write", t.label) for t in self.targets}
        self.pushes = [
            _Push(r, t, Action("haproxy_socket", f"HAProxy at {r.path} ({t.path})"))
            for r in self.haproxy
            for t in self.targets
            if t.kind == "haproxy"
        ]
        self.runs = [_Command(c, Action("exec", f"--exec {c!r}")) for c in self.commands]
        self.held = {t.label: None for t in self.targets}
        self._local: TicketKey | None = None
        self._logged: tuple[bytes, ...] = ()
        self._source_error = ""
        self._resync = False
        self._was_local = False
        self._lock = threading.Lock()

    @property
    def wake(self) -> threading.Event:
        return self.keyring.changed

    def actions(self) -> list[Action]:
        return [*self.writes.values(), *(p.action for p in self.pushes),
                *(r.action for r in self.runs)]  # fmt: skip

    def in_step(self) -> bool:
        """Whether the last pass left every target, HAProxy and command done."""
        return not any(a.due for a in self.actions())

    def lead_wait(self, now: float) -> tuple[bytes, float] | None:
        """When the targets encrypt with a local key only because the fleet's key is not yet
        old enough here: (its name, seconds until it may encrypt); else None."""
        view = self.view
        if view is None or not view.local or not view.upcoming:
            return None
        k = view.upcoming[0]
        start = max(k.encrypts_from, k.created + self.lead)
        return (k.name, start - now) if 0 < start - now <= self.lead else None

    def resync(self) -> None:
        """Rewrite every target at the next pass, push and run the commands again (SIGHUP:
        safe in a signal handler, it takes no lock)."""
        self._resync = True
        self.wake.set()

    # -- one pass ------------------------------------------------------------------------
    def step(self) -> float | None:
        """Write what changed, push, run the commands; when the next pass is due (None: only
        on a change of the keyring)."""
        with self._lock:
            now = self.clock()
            if self._resync:
                self._resync = False
                self.held = dict.fromkeys(self.held)
                for push in self.pushes:
                    push.synced = None
            self._note_source(now)
            view = self.view = self._view(now)
            if self._write_targets(view, now):
                for run in self.runs:
                    run.action.request()
            self._push_haproxy(view, now)
            self._run_commands(now)
            if self.in_step():
                self.last_sync = now
            return self._next_pass(view, now)

    def _view(self, now: float) -> KeyView:
        local = self._local
        if local is None:
            local = self._local = TicketKey.generate(now, 80, self.rng)
        view = key_view(self.keyring.snapshot, now, self.lead, local)
        if view.local and (not self._was_local or now - local.created >= self.local_lifetime):
            # A local key lives ``local_lifetime`` from when it starts encrypting.
            local = self._local = TicketKey.generate(now, 80, self.rng)
            view = dataclasses.replace(view, encrypting=local)
        self._was_local = view.local
        if view.names() != self._logged:
            self._logged = view.names()
            log.info("keys now: %s", self.describe(view, now))
        return view

    def _write_targets(self, view: KeyView, now: float) -> list[Target]:
        changed = []
        for target in self.targets:
            action = self.writes[target.label]
            holds = target.holds(view)
            if holds != self.held[target.label]:
                action.due = True
            if not action.ready(now):
                continue
            try:
                target.write(view)
            except OSError as e:
                action.failed(now, f"cannot write {target.label}: {e}")
                continue
            self.held[target.label] = holds
            encrypting = target.encrypting(view)
            self.written[target.label] = encrypting, view.local
            action.succeeded(now)
            changed.append(target)
            log.info("wrote %s: it encrypts with %s", target.label, encrypting.name.hex())
        return changed

    def _push_haproxy(self, view: KeyView, now: float) -> None:
        """HAProxy's memory follows the view whether or not its file could be written."""
        _, encrypting, last = haproxy_ring(view)
        for push in self.pushes:
            if push.synced != (encrypting.name, last.name) and not push.action.due:
                push.action.request()
            if not push.action.ready(now):
                continue
            try:
                pushed = push.runtime.sync(push.target.path, encrypting, last)
            except HaproxyError as e:
                push.action.failed(now, str(e))
                continue
            push.synced = encrypting.name, last.name
            push.action.succeeded(now)
            if pushed:
                log.info("%s: pushed %d key(s); it encrypts with %s, next %s", push.action.label,
                         pushed, encrypting.name.hex(), last.name.hex())  # fmt: skip

    def _run_commands(self, now: float) -> None:
        for run in self.runs:
            if not run.action.ready(now):
                continue
            error = run_command(run.command, self.exec_timeout)
            if error is None:
                run.action.succeeded(now)
                log.info("ran %s", run.action.label)
            else:
                run.action.failed(now, f"{run.action.label} failed: {error}")

    def _next_pass(self, view: KeyView, now: float) -> float | None:
        times = [a.retry_at for a in self.actions() if a.due]
        change = next_change(self.keyring.snapshot, now, self.lead)
        if change is not None:
            times.append(change)
        if view.local and self._local is not None:
            times.append(self._local.created + self.local_lifetime)
        return min(times, default=None)

    # -- what the logs say -------------------------------------------------------------------
    def _note_source(self, now: float) -> None:
        error = self.keyring.source_error
        if error and not self._source_error:
            snap = self.keyring.snapshot.live(now)
            enc = snap.encrypting(now)
            until = (
                f"; {enc.name.hex()} encrypts for {enc.encrypts_until - now:.0f} s more"
                if enc
                else ""
            )
            log.warning(
                "cannot refresh the fleet's keys (%s): keeping the %d key(s) held until they "
                "expire%s", error, len(snap.keys), until,
            )  # fmt: skip
        elif self._source_error and not error:
            log.info("the fleet's keys are refreshed again")
        self._source_error = error

    def describe(self, view: KeyView, now: float) -> str:
        """One line naming the keys and their roles (never key material)."""
        if view.fleet_key is not None:
            left = view.fleet_key.encrypts_until - now
            parts = [f"encrypting {view.encrypting.name.hex()} (for {left:.0f} s more)"]
        else:
            why = self._why_local(view, now)
            parts = [f"encrypting a local key {view.encrypting.name.hex()} ({why})"]
        for k in view.upcoming:
            start = max(k.encrypts_from, k.created + self.lead)
            parts.append(f"next {k.name.hex()} (encrypts in {start - now:.0f} s)")
        if view.retired:
            parts.append("decrypt-only " + ", ".join(k.name.hex() for k in view.retired))
        return "; ".join(parts)

    def _why_local(self, view: KeyView, now: float) -> str:
        alone = "tickets resume on this server only"
        if view.upcoming:
            k = view.upcoming[0]
            if k.encrypts_from <= now:
                return (f"fleet key {k.name.hex()} was published {now - k.created:.1f} s ago, "
                        f"less than the lead time of {self.lead:g} s; {alone}")  # fmt: skip
            return f"no fleet key encrypts before {k.name.hex()}; {alone}"
        if self.keyring.source_error:
            return f"the fleet's Redis is unavailable and no key it published encrypts; {alone}"
        return f"no fleet key encrypts now; {alone}"


# -- following the fleet -------------------------------------------------------------------------
def redis_keyring(url: str, secret: FleetSecret, namespace: str, policy: KeyPolicy,
                  timeout: float, secret_name: str,
                  ) -> tuple[NotifyingKeyring, KeyRefresher]:  # fmt: skip
    """A keyring fed from the fleet's Redis (as a node's: any URL a node takes, Cluster and
    Sentinel included), and the refresher that feeds it."""
    keyring = NotifyingKeyring(policy)
    client = sync_client(parse(url), timeout, 4)
    source = RedisKeySource(client, secret, namespace, keyring, secret_name=secret_name)
    return keyring, KeyRefresher(source)


def follow(agent: SyncAgent, refresher: KeyRefresher, stop: threading.Event,
           interval: float) -> None:  # fmt: skip
    """Run passes until ``stop`` is set (set :attr:`SyncAgent.wake` too, to stop at once): on
    every change of the keyring, when the view changes by the clock, when a retry is due, and
    at least every ``interval`` seconds."""
    refresher.start()
    try:
        while not stop.is_set():
            agent.wake.clear()
            due = agent.step()
            timeout = interval if due is None else min(interval, max(0.0, due - agent.clock()))
            agent.wake.wait(timeout)
    finally:
        refresher.stop()

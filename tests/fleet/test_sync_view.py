"""``tessera keys sync``, in memory: which keys a synced server holds when, the files each
target writes (read back with the one reader of each layout), HAProxy's ring arithmetic, and
the agent's passes with a fixed clock — change detection, failures retried with back-off,
``--exec`` commands run after each change, Redis away."""

from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path

import pytest

from tessera.fleet.keys import FleetKey, KeyPolicy, KeySet
from tessera.fleet.sync.agent import NotifyingKeyring, SyncAgent, run_command
from tessera.fleet.sync.haproxy import HaproxyError, HaproxyRuntime, ring_pushes
from tessera.fleet.sync.targets import (
    ApacheTarget,
    HaproxyTarget,
    NginxTarget,
    NodeTarget,
    TargetError,
    filesystem_type,
    narrow,
    parse_target,
    parse_targets,
)
from tessera.fleet.sync.view import KeyView, key_view, next_change
from tessera.session.keyring import KeyFileFormat, TicketKey, read_key_file


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "tessera.keys.sync")


POLICY = KeyPolicy(rotation=100.0, decrypt_for=200.0, refresh=5.0)  # lead 10 s
LEAD = POLICY.lead
LOCAL = TicketKey.generate(0.0)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fleet_key(created: float, start: float) -> FleetKey:
    return FleetKey.mint(created, start, POLICY)


# Three keys on the schedule: old (encrypted 0..100), cur (100..200), nxt (200..300).
SCHEDULE = fleet_key(-10, 0), fleet_key(90, 100), fleet_key(190, 200)


def schedule() -> tuple[FleetKey, FleetKey, FleetKey]:
    return SCHEDULE


# -- the view -------------------------------------------------------------------------------------
def test_roles_on_the_schedule() -> None:
    old, cur, nxt = schedule()
    view = key_view(KeySet.of([old, cur, nxt]), 195.0, LEAD, LOCAL)
    assert view.encrypting is cur.key and view.fleet_key is cur and not view.local
    assert view.upcoming == (nxt,) and view.retired == (old,)
    assert view.decrypt_only() == (nxt.key, old.key)
    # At 200 the next key encrypts (published 10 s before: the lead), cur only decrypts.
    view = key_view(KeySet.of([old, cur, nxt]), 200.0, LEAD, LOCAL)
    assert view.encrypting is nxt.key and view.retired == (cur, old) and view.upcoming == ()


def test_a_fresh_fleet_key_never_encrypts_before_the_lead() -> None:
    """A new fleet's first key encrypts at once for the nodes; a synced server waits the lead
    time with a local key, holding the fleet key meanwhile (decrypt-only)."""
    first = fleet_key(1000.0, 1000.0)
    snap = KeySet.of([first])
    for now in (1000.0, 1005.0, 1009.99):
        view = key_view(snap, now, LEAD, LOCAL)
        assert view.local and view.encrypting is LOCAL and view.upcoming == (first,), now
    assert key_view(snap, 1010.0, LEAD, LOCAL).encrypting is first.key


def test_a_short_lead_rotation_lets_the_current_key_go_on() -> None:
    """``keys rotate --lead 1`` makes a key that the schedule starts after 1 s: here the key it
    replaces encrypts on (its own window is still open) until the new one is old enough."""
    cur = fleet_key(0.0, 10.0)
    forced = fleet_key(50.0, 51.0)
    snap = KeySet.of([cur, forced])
    view = key_view(snap, 52.0, LEAD, LOCAL)
    assert view.encrypting is cur.key and view.upcoming == (forced,)
    assert key_view(snap, 60.0, LEAD, LOCAL).encrypting is forced.key


def test_an_expired_key_never_encrypts() -> None:
    """Redis away: the last key stops on schedule and nothing replaces it; a local key
    encrypts and the fleet key still decrypts until it is erased."""
    old, cur, _ = schedule()
    snap = KeySet.of([old, cur])
    view = key_view(snap, 200.0, LEAD, LOCAL)
    assert view.local and view.retired == (cur, old)
    assert cur.key in view.decrypt_only()
    view = key_view(snap, cur.erased_at, LEAD, LOCAL)
    assert view.local and view.retired == ()


def test_next_change() -> None:
    old, cur, nxt = schedule()
    snap = KeySet.of([old, cur, nxt])
    assert next_change(snap, 150.0, LEAD) == 200.0  # cur stops, nxt starts
    assert next_change(snap, 200.0, LEAD) == old.erased_at
    assert next_change(KeySet.of([fleet_key(0, 0)]), 1.0, LEAD) == LEAD  # old enough here
    assert next_change(KeySet(), 0.0, LEAD) is None


# -- target files ---------------------------------------------------------------------------------
def view_at(now: float = 195.0) -> KeyView:
    return key_view(KeySet.of(schedule()), now, LEAD, LOCAL)


def test_nginx_files(tmp_path: Path) -> None:
    old, cur, nxt = schedule()
    target = NginxTarget(tmp_path)
    target.write(view_at())
    files = target.files()
    assert [read_key_file(f, KeyFileFormat.NGINX, 0)[0].name for f in files] == [
        cur.name, nxt.name, old.name,
    ]  # fmt: skip
    assert files[0].read_bytes() == cur.key.name + cur.key.hmac_key + cur.key.aes_key
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [f.name for f in files]  # no temp left


def test_nginx_fills_missing_slots_with_random_keys(tmp_path: Path) -> None:
    first = fleet_key(0.0, 0.0)
    view = key_view(KeySet.of([first]), 20.0, LEAD, LOCAL)
    target = NginxTarget(tmp_path)
    assert target.holds(view) == (first.name, None, None)
    target.write(view)
    names = [read_key_file(f, KeyFileFormat.NGINX, 0)[0].name for f in target.files()]
    assert names[0] == first.name and len(set(names)) == 3


def test_haproxy_file_order(tmp_path: Path) -> None:
    old, cur, nxt = schedule()
    target = HaproxyTarget(tmp_path / "keys")
    target.write(view_at())
    lines = (tmp_path / "keys").read_text().splitlines()
    assert [base64.b64decode(line)[:16] for line in lines] == [old.name, cur.name, nxt.name]
    assert base64.b64decode(lines[1]) == cur.name + cur.key.aes_key + cur.key.hmac_key
    # HAProxy's reading of it (the second to last line encrypts) is the fleet's.
    assert read_key_file(tmp_path / "keys", KeyFileFormat.HAPROXY, 0)[0].name == cur.name
    # No next key yet: the encrypting key is last too (the runtime API can append the next).
    view = key_view(KeySet.of([old, cur]), 150.0, LEAD, LOCAL)
    assert target.holds(view) == (old.name, cur.name, cur.name)


def test_node_and_apache_get_one_derived_48_byte_key(tmp_path: Path) -> None:
    _, cur, _ = schedule()
    node, apache = NodeTarget(tmp_path / "node.key"), ApacheTarget(tmp_path / "apache.key")
    node.write(view_at())
    apache.write(view_at())
    small = narrow(cur.key)
    assert len(small.aes_key) == 16 and len(small.hmac_key) == 16
    assert small.name != cur.name and narrow(cur.key) == small  # deterministic
    assert (tmp_path / "node.key").read_bytes() == small.name + small.hmac_key + small.aes_key
    (back,) = read_key_file(tmp_path / "apache.key", KeyFileFormat.APACHE, small.created)
    assert back == small
    assert node.encrypting(view_at()) == small


def test_parse_targets(tmp_path: Path) -> None:
    assert parse_target(f"nginx:{tmp_path}").label == f"nginx:{tmp_path}"
    assert parse_target(f"haproxy:{tmp_path}/k").kind == "haproxy"
    with pytest.raises(TargetError, match="FORMAT one of nginx, haproxy, node, apache"):
        parse_target(f"lighttpd:{tmp_path}")
    with pytest.raises(TargetError, match="no such directory"):
        parse_target(f"nginx:{tmp_path}/absent")
    with pytest.raises(TargetError, match="directory for the file"):
        parse_target(f"node:{tmp_path}/absent/k")
    with pytest.raises(TargetError, match="twice"):
        parse_targets([f"nginx:{tmp_path}", f"nginx:{tmp_path}"])


def test_filesystem_type(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/sda1 / ext4 rw 0 0\ntmpfs /run tmpfs rw 0 0\n")
    assert filesystem_type(Path("/run/tessera"), str(mounts)) == "tmpfs"
    assert filesystem_type(Path("/runner"), str(mounts)) == "ext4"
    assert filesystem_type(Path("/x"), str(tmp_path / "absent")) is None


# -- HAProxy's ring ----------------------------------------------------------------------------
def names(*keys: TicketKey) -> list[bytes]:
    return [k.name for k in keys]


def test_ring_pushes_in_step() -> None:
    d, e, n = (TicketKey.generate(0) for _ in range(3))
    assert ring_pushes(names(d, e, e), e, e) == []
    assert ring_pushes(names(d, e, n), e, n) == []
    assert ring_pushes(names(d, e, e), e, n) == [n]  # the next key published
    assert ring_pushes(names(d, e, n), n, n) == [n]  # it starts encrypting
    assert ring_pushes(names(d, e, n), n, e) == [e]


def test_ring_pushes_out_of_step() -> None:
    a, b, c, e, n = (TicketKey.generate(0) for _ in range(5))
    assert ring_pushes(names(a, b, c), e, n) == [e, n]
    assert ring_pushes(names(a, b, c), e, e) == [e, e]


def simulate(ring: list[TicketKey], pushes: list[TicketKey]) -> list[TicketKey]:
    """HAProxy's ``set ssl tls-key``: the oldest is overwritten, the new key is last."""
    for k in pushes:
        ring = [*ring[1:], k]
    return ring


def test_every_push_in_step_keeps_the_fleet_key_encrypting() -> None:
    """On the schedule (publish, start, publish, start...), after every single push HAProxy
    encrypts with the key the fleet encrypts with."""
    keys = [TicketKey.generate(0) for _ in range(6)]
    ring = [keys[0], keys[1], keys[1]]
    for i in range(1, 5):
        cur, nxt = keys[i], keys[i + 1]
        for enc, last in ((cur, nxt), (nxt, nxt)):  # next published; then it encrypts
            for k in ring_pushes(names(*ring), enc, last):
                ring = simulate(ring, [k])
                assert ring[-2] is enc
            assert ring[-1] is last


# -- the agent ------------------------------------------------------------------------------------
def agent_for(tmp_path: Path, clock: Clock, *keys: FleetKey, commands: tuple[str, ...] = (),
              rng: object = os.urandom) -> SyncAgent:  # fmt: skip
    keyring = NotifyingKeyring(POLICY, KeySet.of(keys), clock=clock)
    (tmp_path / "nginx").mkdir(exist_ok=True)
    targets = [NginxTarget(tmp_path / "nginx"), HaproxyTarget(tmp_path / "haproxy.keys")]
    return SyncAgent(keyring, targets, lead=LEAD, local_lifetime=POLICY.rotation,
                     commands=commands, clock=clock)  # fmt: skip


def nginx_names(tmp_path: Path) -> list[bytes]:
    return [
        read_key_file(tmp_path / "nginx" / f"ticket.{i}.key", KeyFileFormat.NGINX, 0)[0].name
        for i in range(3)
    ]


def test_agent_writes_on_change_only_and_runs_commands(tmp_path: Path) -> None:
    old, cur, nxt = schedule()
    clock = Clock(150.0)
    log = tmp_path / "ran"
    agent = agent_for(tmp_path, clock, old, cur, commands=(f"echo ran >> {log}",))
    assert agent.step() == 200.0  # cur stops then
    assert nginx_names(tmp_path)[0] == cur.name and log.read_text() == "ran\n"
    clock.now = 160.0
    agent.step()
    assert log.read_text() == "ran\n"  # nothing changed: nothing written, nothing run
    agent.keyring.install(KeySet.of([old, cur, nxt]))  # the next key is published
    assert agent.wake.is_set()
    agent.step()
    assert nginx_names(tmp_path)[:2] == [cur.name, nxt.name] and log.read_text() == "ran\n" * 2
    clock.now = 200.0
    agent.step()
    assert nginx_names(tmp_path)[:2] == [nxt.name, cur.name] and log.read_text() == "ran\n" * 3
    assert agent.in_step() and agent.last_sync == 200.0
    assert agent.written["nginx:" + str(tmp_path / "nginx")] == (nxt.key, False)


def test_agent_retries_a_failed_command_with_back_off(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    _, cur, _ = schedule()
    clock = Clock(150.0)
    flag = tmp_path / "ok"
    agent = agent_for(tmp_path, clock, cur, commands=(f"test -e {flag} || (echo no; exit 3)",))
    due = agent.step()
    assert due == 151.0 and not agent.in_step()
    (run,) = agent.runs
    assert run.action.failures == 1 and "exit status 3: no" in run.action.last_error
    assert "failed: exit status 3: no (failure 1; retrying in 1 s)" in caplog.text
    clock.now = 151.0
    assert agent.step() == 153.0  # 2 s after the second failure
    flag.touch()
    clock.now = 153.0
    agent.step()
    assert agent.in_step() and run.action.total_failures == 2 and run.action.done == 1
    assert "works again after 2 failure(s)" in caplog.text


def test_agent_retries_a_failed_write(tmp_path: Path) -> None:
    _, cur, _ = schedule()
    clock = Clock(150.0)
    agent = agent_for(tmp_path, clock, cur)
    (tmp_path / "nginx").rename(tmp_path / "gone")
    agent.step()
    failed = agent.writes["nginx:" + str(tmp_path / "nginx")]
    assert failed.failures == 1 and "cannot write nginx:" in failed.last_error
    assert agent.writes["haproxy:" + str(tmp_path / "haproxy.keys")].done == 1
    (tmp_path / "gone").rename(tmp_path / "nginx")
    clock.now = 151.0
    agent.step()
    assert agent.in_step() and nginx_names(tmp_path)[0] == cur.name


def test_agent_keeps_the_last_keys_while_redis_is_away(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """The keyring keeps what it holds; the agent says so, the key encrypts until its window
    ends, then a local key does (never the expired one), and it still decrypts."""
    old, cur, _ = schedule()
    clock = Clock(150.0)
    agent = agent_for(tmp_path, clock, old, cur)
    agent.step()
    agent.keyring.source_error = "ConnectionError: Connection refused"
    clock.now = 160.0
    agent.step()
    assert "cannot refresh the fleet's keys (ConnectionError: Connection refused): keeping the " \
           "2 key(s) held until they expire" in caplog.text  # fmt: skip
    assert nginx_names(tmp_path)[0] == cur.name
    clock.now = 200.0
    agent.step()
    enc, *rest = nginx_names(tmp_path)
    assert enc not in (cur.name, old.name) and rest == [cur.name, old.name]
    assert "encrypting a local key" in caplog.text and "Redis is unavailable" in caplog.text
    assert agent.written["nginx:" + str(tmp_path / "nginx")][1] is True


def test_run_command_reports_what_went_wrong() -> None:
    assert run_command("true", 5) is None
    assert run_command("echo oops >&2; exit 4", 5) == "exit status 4: oops"
    assert run_command("sleep 5", 0.2) == "still running after 0.2 s, stopped"


def test_logs_name_keys_never_key_material(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old, cur, nxt = schedule()
    clock = Clock(195.0)
    agent_for(tmp_path, clock, old, cur, nxt).step()
    assert cur.name.hex() in caplog.text and nxt.name.hex() in caplog.text
    for k in (old, cur, nxt):
        for secret in (k.key.aes_key, k.key.hmac_key):
            assert secret.hex() not in caplog.text
            assert base64.b64encode(secret).decode() not in caplog.text


def test_a_local_key_rotates_too(tmp_path: Path) -> None:
    """No fleet key at all (Redis never answered): a local key encrypts, and is replaced after
    the rotation time like any key — no lifetime is stretched, local or not."""
    clock = Clock(1000.0)
    agent = agent_for(tmp_path, clock)
    assert agent.step() == 1000.0 + POLICY.rotation
    first = nginx_names(tmp_path)[0]
    clock.now = 1050.0
    agent.step()
    assert nginx_names(tmp_path)[0] == first
    clock.now = 1100.0
    agent.step()
    assert nginx_names(tmp_path)[0] != first
    assert agent.written["nginx:" + str(tmp_path / "nginx")][1] is True


class RecordingHaproxy(HaproxyRuntime):
    """HAProxy's runtime API as the agent sees it, recorded (the real one is tested against
    HAProxy in test_sync_haproxy.py)."""

    def __init__(self) -> None:
        super().__init__("/nonexistent/haproxy.sock")
        self.synced: list[tuple[bytes, bytes]] = []
        self.down = False

    def sync(self, path: str | os.PathLike[str], encrypting: TicketKey, last: TicketKey) -> int:
        if self.down:
            raise HaproxyError(f"cannot talk to HAProxy at {self.path}: refused")
        self.synced.append((encrypting.name, last.name))
        return 1


def test_haproxy_memory_follows_the_fleet_even_when_its_file_cannot_be_written(
    tmp_path: Path,
) -> None:
    old, cur, nxt = schedule()
    clock = Clock(150.0)
    runtime = RecordingHaproxy()
    keyring = NotifyingKeyring(POLICY, KeySet.of([old, cur]), clock=clock)
    (tmp_path / "h").mkdir()
    target = HaproxyTarget(tmp_path / "h" / "keys")
    agent = SyncAgent(keyring, [target], lead=LEAD, local_lifetime=POLICY.rotation,
                      haproxy=[runtime], clock=clock)  # fmt: skip
    agent.step()
    assert runtime.synced == [(cur.name, cur.name)]
    agent.step()
    assert len(runtime.synced) == 1  # in step: nothing pushed
    (tmp_path / "h").rename(tmp_path / "gone")  # the file cannot be written any more
    keyring.install(KeySet.of([old, cur, nxt]))
    clock.now = 195.0
    agent.step()
    assert runtime.synced[-1] == (cur.name, nxt.name)
    assert agent.writes[target.label].failures == 1
    runtime.down = True  # HAProxy restarting: retried with back-off
    clock.now = 200.0
    assert agent.step() == 201.0
    (push,) = agent.pushes
    assert push.action.failures == 1 and "refused" in push.action.last_error
    runtime.down = False
    clock.now = 201.0
    agent.step()
    assert runtime.synced[-1] == (nxt.name, nxt.name) and push.action.failures == 0
    agent.resync()
    agent.step()
    assert runtime.synced[-1] == (nxt.name, nxt.name) and len(runtime.synced) == 4

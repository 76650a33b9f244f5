"""Redis goes away under a running ``tessera keys sync``: the agent says so, keeps writing the
keys it holds on their own schedule until they expire, never writes an expired key (or one
published less than the lead time ago) as the encrypting one — a local key encrypts instead —
and follows the fleet again once Redis is back. Short lifetimes (3 s encrypting, 3 s more
decrypting) so that the whole schedule runs out in seconds."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from redis_server import RedisServer
from sync_fleet import agent, current_key, wait_until

from tessera.fleet.keyring import FleetKeyring
from tessera.fleet.keys import KeyPolicy, KeySet
from tessera.fleet.redis_keys import RedisKeySource
from tessera.fleet.redis_url import sync_client
from tessera.fleet.secret import FleetSecret
from tessera.session.keyring import KeyFileFormat, read_key_file

pytestmark = pytest.mark.interop

WROTE = re.compile(r"^(\S+ \S+) INFO wrote nginx:\S+: it encrypts with ([0-9a-f]{32})$", re.M)
LEAD = 1.0  # the agent's: twice --key-refresh (sync_fleet.REFRESH)


def fleet_keys(url: str, secret: Path) -> KeySet:
    source = RedisKeySource(sync_client(url, 2.0, 2), FleetSecret.load(secret), "default",
                            FleetKeyring(KeyPolicy()))  # fmt: skip
    return source.read()


def nginx_names(d: Path) -> list[bytes]:
    return [read_key_file(d / f"ticket.{i}.key", KeyFileFormat.NGINX, 0)[0].name for i in range(3)]


def logged_at(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def test_redis_away_keys_kept_until_they_expire_then_a_local_key(
    tmp_path: Path, redis_server: RedisServer, secret_file: Path
) -> None:
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    args = ("--to", f"nginx:{keys_dir}", "--ticket-rotation", "3", "--ticket-keep", "1")
    with agent(tmp_path, redis_server.url, secret_file, *args) as sync:
        # Kill Redis just after the second key was minted: the next mint is a rotation away,
        # so the keys read now are all the agent holds.
        wait_until(lambda: len(fleet_keys(redis_server.url, secret_file).keys) >= 2,
                   "no second key published", logs=[sync])  # fmt: skip
        held = fleet_keys(redis_server.url, secret_file)
        redis_server.kill()
        last = held.keys[-1]
        wait_until(lambda: "cannot refresh the fleet's keys" in sync.output(),
                   "the agent does not say Redis is away", logs=[sync])  # fmt: skip
        wait_until(lambda: time.time() > last.erased_at + 0.5 and
                   "encrypting a local key" in sync.output(),
                   "the held keys did not run out", timeout=30, logs=[sync])  # fmt: skip
        names = nginx_names(keys_dir)
        assert not set(names) & {k.name for k in held.keys}, "an erased key is still written"
        out = sync.output()
        assert re.search(r"keeping the \d key\(s\) held until they expire", out), out
        assert "the fleet's Redis is unavailable" in out

        # Every write made a fleet key the encrypting one only within its window and after
        # the lead time; the rest of the time, a local key encrypted.
        by_name = {k.name.hex(): k for k in held.keys}
        fleet_writes = local_writes = 0
        for stamp, name in WROTE.findall(out):
            at = logged_at(stamp)
            k = by_name.get(name)
            if k is None:
                local_writes += 1
                continue
            fleet_writes += 1
            assert k.created + LEAD - 0.05 <= at < k.encrypts_until, (name, at, k)
        assert fleet_writes and local_writes, out

        # Redis is back (empty): the agent follows the fleet again; a new key encrypts.
        redis_server.start()
        wait_until(lambda: "the fleet's keys are refreshed again" in sync.output(),
                   "the agent does not see Redis back", logs=[sync])  # fmt: skip
        wait_until(lambda: current_key(redis_server.url, secret_file) is not None,
                   "no fleet key encrypts", logs=[sync])  # fmt: skip
        wait_until(lambda: nginx_names(keys_dir)[0] == current_key(redis_server.url, secret_file),
                   "the files do not follow the fleet again", logs=[sync])  # fmt: skip
        assert "Traceback" not in sync.output()

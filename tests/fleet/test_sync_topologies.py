"""``tessera keys sync`` takes the same ``--redis`` URLs as the nodes: a real Redis Cluster
(3 masters, 3 replicas) and a master + replica watched by three sentinels. The agent writes the
key a ``tessera serve`` node of the same fleet encrypts with, follows a ``keys rotate`` through
pub/sub on that topology, and an agent given another fleet secret refuses to join — naming the
fleet secret, writing nothing."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet_helpers import fleet_node
from peers import TESSERA, run
from redis_server import RedisCluster, RedisSentinel, RedisServer
from sync_fleet import agent, encrypting_name, sync_once, wait_until

from conftest import Pki, require_program
from tessera.fleet.secret import FleetSecret
from tessera.session.keyring import KeyFileFormat, read_key_file

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module", params=["cluster", "sentinel"])
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    require_program("redis-sentinel")
    with RedisCluster() if request.param == "cluster" else RedisSentinel() as redis:
        yield redis.url


def nginx_name(d: Path) -> bytes:
    return read_key_file(d / "ticket.0.key", KeyFileFormat.NGINX, 0)[0].name


def encrypts_with(port: int, name: bytes) -> bool:
    return encrypting_name(port) == name


def test_agent_and_node_share_keys_on_cluster_and_sentinel(
    redis_url: str, pki: Pki, tmp_path: Path, secret_file: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    ns = ("--redis-namespace", f"sync{tmp_path.name[-8:]}".replace("_", ""))
    sync_once(redis_url, secret_file, "--to", f"nginx:{keys}", *ns)
    with fleet_node(pki, tmp_path, redis_url, secret_file, namespace=ns[1]) as node, \
         agent(tmp_path, redis_url, secret_file, "--to", f"nginx:{keys}", *ns) as sync:  # fmt: skip
        assert node.port is not None
        first = nginx_name(keys)
        wait_until(functools.partial(encrypts_with, node.port, first),
                   "the node does not encrypt with the agent's key", logs=[node, sync])  # fmt: skip
        r = run([*TESSERA, "keys", "rotate", "--redis", redis_url, "--fleet-secret",
                 str(secret_file), "--lead", "2", *ns], timeout=30)  # fmt: skip
        assert r.returncode == 0, r.stdout
        new = bytes.fromhex(r.stdout.decode().split("published ticket key ")[1][:32])
        wait_until(lambda: nginx_name(keys) == new, "the agent did not follow the rotation",
                   logs=[sync])  # fmt: skip
        wait_until(functools.partial(encrypts_with, node.port, new), "the node's new key",
                   logs=[node])  # fmt: skip
        assert "Traceback" not in sync.output()


def test_an_agent_with_another_secret_refuses_to_join(redis_server: RedisServer,
                                                      secret_file: Path, tmp_path: Path) -> None:  # fmt: skip
    keys = tmp_path / "keys"
    keys.mkdir()
    sync_once(redis_server.url, secret_file, "--to", f"nginx:{keys}")
    before = {p.name: p.read_bytes() for p in keys.iterdir()}
    other = tmp_path / "other.secret"
    FleetSecret.generate().write(other)
    for mode in (("--once",), ()):
        r = run([*TESSERA, "keys", "sync", "--redis", redis_server.url, "--fleet-secret",
                 str(other), "--to", f"nginx:{keys}", *mode], timeout=30)  # fmt: skip
        out = r.stdout.decode(errors="replace")
        assert r.returncode == 2, out
        assert "is not part of the fleet" in out and str(other) in out, out
        assert "Traceback" not in out
    assert {p.name: p.read_bytes() for p in keys.iterdir()} == before  # nothing written

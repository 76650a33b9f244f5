"""Beyond one Redis: nodes sharing a real Redis Cluster (3 masters, 3 replicas) or a master +
replica watched by 3 sentinels. Cross-node resumption for TLS 1.2 ids and tickets, TLS 1.3
stateless and single-use tickets (CPython ``ssl`` and OpenSSL clients), ACL credentials in the
URL, 0-RTT replays refused through the shared strike register, ``tessera proxy`` and ``tessera
keys list`` on the same URLs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fleet_helpers import (
    client_context,
    early_data_replay_refused,
    fleet_node,
    http_backend,
    openssl_resumes_across,
    proxy_node,
    python_get,
    wait_output,
)
from peers import TESSERA, Peer, openssl_s_client, run
from redis_server import RedisCluster, RedisSentinel, RedisServer, redis_cli
from resumption_helpers import outcomes

from conftest import Pki, require_program
from tessera.fleet.keyring import FleetKeyring, SourceState
from tessera.fleet.keys import KeyPolicy
from tessera.fleet.redis_keys import KeyRefresher, RedisKeySource
from tessera.fleet.redis_url import sync_client
from tessera.fleet.secret import FleetSecret
from waiting import wait_until

pytestmark = pytest.mark.interop


@dataclass
class Topology:
    kind: str
    url: str
    acl_url: str
    nodes: tuple[Peer, Peer]  # stateless tickets, 0-RTT on; B connects as the ACL user
    stateful: tuple[Peer, Peer]  # single-use tickets (GETDEL), namespace "sf"
    ports: list[int]  # every redis-server of the topology

    def subscribers(self, channel: bytes) -> int:
        """Clients subscribed to ``channel`` on any server (classic pub/sub is per node)."""
        total = 0
        for port in self.ports:
            out = redis_cli(port, "pubsub", "numsub", channel.decode()).split()
            total += int(out[1]) if len(out) == 2 else 0
        return total


@pytest.fixture(scope="module", params=["cluster", "sentinel"])
def topology(request: pytest.FixtureRequest, pki: Pki, shared_secret_file: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:  # fmt: skip
    require_program("redis-sentinel")
    d = tmp_path_factory.mktemp(request.param)
    with RedisCluster() if request.param == "cluster" else RedisSentinel() as redis:
        secret = shared_secret_file
        early = ("--max-early-data", "16384")
        sf = ("--stateful-tickets", "--max-early-data", "16384")
        with fleet_node(pki, d, redis.url, secret, *early, name="a") as a, \
             fleet_node(pki, d, redis.acl_url, secret, *early, name="b") as b, \
             fleet_node(pki, d, redis.url, secret, *sf, namespace="sf", name="c") as c, \
             fleet_node(pki, d, redis.acl_url, secret, *sf, namespace="sf", name="d") as dd:  # fmt: skip
            servers = redis.nodes if isinstance(redis, RedisCluster) else redis.data
            yield Topology(request.param, redis.url, redis.acl_url, (a, b), (c, dd),
                           [n.port for n in servers])  # fmt: skip
            for node in (a, b, c, dd):
                assert "Traceback" not in node.output(), node.output()


@pytest.mark.parametrize("mode", ["tls12-id", "tls12-ticket", "tls13", "tls13-single-use"])
def test_cpython_resumes_on_the_other_node(topology: Topology, pki: Pki, mode: str) -> None:
    a, b = topology.stateful if mode == "tls13-single-use" else topology.nodes
    ctx = client_context(pki.ca_file, "tls13" if mode.startswith("tls13") else mode)
    reused, first, _ = python_get(a.port or 0, ctx)
    assert not reused and first is not None
    assert (mode == "tls12-id") == (not first.has_ticket)
    session = first
    for node in (b, a, b):  # back and forth, each connection on the other node
        reused, session, page = python_get(node.port or 0, ctx, session)
        assert reused, page
    if mode == "tls13-single-use":  # the first ticket, used on B already, is gone fleet-wide
        reused, _, page = python_get(a.port or 0, ctx, first)
        assert not reused and "single-use ticket already used" in page, page


@pytest.mark.parametrize(
    ("version", "flags", "resumed_by"),
    [("-tls1_2", ("-no_ticket",), "session_id"), ("-tls1_2", (), "ticket"), ("-tls1_3", (), "psk")],
    ids=["tls12-id", "tls12-ticket", "tls13-ticket"],
)  # fmt: skip
def test_openssl_resumes_on_the_other_node(topology: Topology, pki: Pki, tmp_path: Path,
                                           version: str, flags: tuple[str, ...],
                                           resumed_by: str) -> None:  # fmt: skip
    a, b = topology.nodes
    page = openssl_resumes_across(a, b, pki, tmp_path, version, flags, resumed_by)
    assert "ticket keys from Redis (healthy)" in page.text, page.text


def test_0rtt_replay_to_the_other_node_is_refused(topology: Topology, pki: Pki,
                                                  tmp_path: Path) -> None:  # fmt: skip
    early_data_replay_refused(*topology.nodes, pki, tmp_path)


def test_proxy_and_keys_list_on_the_same_url(topology: Topology, pki: Pki,
                                             shared_secret_file: Path, tmp_path: Path) -> None:  # fmt: skip
    """Two ``tessera proxy`` nodes on the topology: a TLS 1.2 ticket sealed by one resumes on the
    other (OpenSSL), a TLS 1.3 session too (CPython); ``tessera keys list`` shows the keys."""
    with http_backend(tmp_path) as backend:
        (tmp_path / "index.html").write_text("hello fleet\n")
        secret = shared_secret_file
        with proxy_node(pki, tmp_path, backend.port or 0, topology.url, secret, name="pa") as pa, \
             proxy_node(pki, tmp_path, backend.port or 0, topology.acl_url, secret,
                        name="pb") as pb:  # fmt: skip
            sess = tmp_path / "p.pem"
            ca = ("-CAfile", str(pki.ca_file))
            out = openssl_s_client(pa.port or 0, "-tls1_2", *ca, "-sess_out", str(sess))
            assert outcomes(out) == ["New"], out
            out = openssl_s_client(pb.port or 0, "-tls1_2", *ca, "-sess_in", str(sess))
            assert outcomes(out) == ["Reused"], out
            ctx = client_context(pki.ca_file, "tls13")
            reused, session, page = python_get(pa.port or 0, ctx)
            assert "hello fleet" in page and session is not None
            reused, _, _ = python_get(pb.port or 0, ctx, session)
            assert reused
            for p in (pa, pb):
                text = wait_output(p, "fleet: ticket keys from Redis (")
                assert "UserWarning" not in text and "Traceback" not in text, text
                assert (
                    f"fleet: Redis {'Cluster' if topology.kind == 'cluster' else 'Sentinel'}"
                    in text
                )
    r = run([*TESSERA, "keys", "list", "--redis", topology.url, "--fleet-secret",
             str(shared_secret_file)], timeout=30, env={"COLUMNS": "200"})  # fmt: skip
    listing = r.stdout.decode(errors="replace")
    assert r.returncode == 0 and "encrypting" in listing, listing


def test_key_records_lock_and_pubsub_on_the_topology(topology: Topology,
                                                     fleet_secret: FleetSecret) -> None:  # fmt: skip
    """The key ring's Redis records work on the topology: six nodes refreshing at once on an
    empty namespace mint exactly one first key (the lock), and a key published by one reaches
    another through pub/sub at once (its timer alone would take 30 s)."""
    policy = KeyPolicy(rotation=600, decrypt_for=600, refresh=30)
    ns = f"pubsub-{topology.kind}"

    def source() -> RedisKeySource:
        return RedisKeySource(sync_client(topology.url, 1.0), fleet_secret, ns,
                              FleetKeyring(policy))  # fmt: skip

    nodes = [source() for _ in range(6)]
    barrier = threading.Barrier(len(nodes))

    def refresh(n: RedisKeySource) -> None:
        barrier.wait()
        n.refresh()

    threads = [threading.Thread(target=refresh, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(n.mints for n in nodes) == 1
    assert len({tuple(n.keyring.snapshot.by_name) for n in nodes}) == 1
    listener = nodes[1]
    refresher = KeyRefresher(listener)
    refresher.start()
    try:
        wait_until(lambda: topology.subscribers(listener.channel),  # after its first refresh
                   "the listener never subscribed", details=lambda: str(refresher.failures))  # fmt: skip
        assert listener.keyring.state is SourceState.HEALTHY
        (new,) = nodes[0].rotate(force=True)
        # well before the 30 s timer, however loaded the box
        wait_until(lambda: new.name in listener.keyring.snapshot.by_name,
                   "no refresh on the notice", 15, lambda: str(refresher.failures))  # fmt: skip
    finally:
        refresher.stop()


def test_proxy_on_one_redis_starts_without_warnings(pki: Pki, redis_server: RedisServer,
                                                    secret_file: Path, tmp_path: Path) -> None:  # fmt: skip
    """The asyncio client gets redis.asyncio's own Retry: no redis-py UserWarning at start."""
    with http_backend(tmp_path) as backend, \
         proxy_node(pki, tmp_path, backend.port or 0, redis_server.url, secret_file) as p:  # fmt: skip
        ctx = client_context(pki.ca_file, "tls12-id")
        python_get(p.port or 0, ctx)  # the store is used (and its client made) by the loop
        text = wait_output(p, "fleet: ticket keys from Redis (")
        assert "fleet: session store healthy" in text, text
        assert "Warning" not in text and "Traceback" not in text, text

"""The fleet over TLS Redis (``rediss://``, ``rediss-cluster://``, ``rediss-sentinel://``): real
redis-server and redis-sentinel processes that speak only TLS (``port 0``), replication and the
cluster bus over TLS too, the sentinels behind a password of their own. Nodes resume each
other's sessions through them; a node that cannot verify Redis's certificate, or gives the
sentinels a wrong password, serves every connection with full handshakes and says why."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from fleet_helpers import (
    client_context,
    fleet_node,
    http_backend,
    openssl_resumes_across,
    proxy_node,
    python_get,
    wait_output,
)
from peers import TESSERA, Peer, run
from redis_server import ACL_PASSWORD, RedisCluster, RedisSentinel, RedisServer, RedisTls

from conftest import Pki, require_program
from tessera.certs import generate_ca

pytestmark = pytest.mark.interop

SENTINEL_PASSWORD = "sentinel-test-password"
TOPOLOGIES = ["single", "cluster", "sentinel"]


@dataclass
class TlsTopology:
    kind: str
    url: str
    acl_url: str
    nodes: tuple[Peer, Peer]  # B connects as the ACL user
    tls: RedisTls


@pytest.fixture(scope="module")
def redis_tls(pki: Pki) -> RedisTls:
    """Redis's certificate is the test PKI's server leaf (SAN 127.0.0.1), under its CA."""
    return RedisTls(pki.rsa_cert, pki.rsa_key, pki.ca_file, pki.client_cert, pki.client_key)


@pytest.fixture(scope="module")
def client_auth_tls(redis_tls: RedisTls) -> RedisTls:
    """The same, with Redis and the sentinels requiring a client certificate."""
    return replace(redis_tls, auth_clients=True)


@contextlib.contextmanager
def _tls_fleet(kind: str, pki: Pki, tls: RedisTls, secret: Path,
               d: Path) -> Iterator[TlsTopology]:  # fmt: skip
    """A TLS Redis of ``kind`` and two nodes on it (B as the ACL user), all stopped after."""
    require_program("redis-sentinel")
    redis: RedisServer | RedisCluster | RedisSentinel
    if kind == "single":
        redis = RedisServer(tls=tls)
    elif kind == "cluster":
        redis = RedisCluster(tls=tls)
    else:
        redis = RedisSentinel(tls=tls, password=SENTINEL_PASSWORD)
    with redis, fleet_node(pki, d, redis.url, secret, name="a") as a, \
                fleet_node(pki, d, redis.acl_url, secret, name="b") as b:  # fmt: skip
        yield TlsTopology(kind, redis.url, redis.acl_url, (a, b), tls)
        for node in (a, b):
            assert "Traceback" not in node.output(), node.output()


@pytest.fixture(scope="module", params=TOPOLOGIES)
def tls_topology(request: pytest.FixtureRequest, pki: Pki, redis_tls: RedisTls,
                 shared_secret_file: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsTopology]:  # fmt: skip
    d = tmp_path_factory.mktemp(f"tls-{request.param}")
    with _tls_fleet(request.param, pki, redis_tls, shared_secret_file, d) as topology:
        yield topology


@pytest.fixture(scope="module", params=TOPOLOGIES)
def client_auth_topology(request: pytest.FixtureRequest, pki: Pki, client_auth_tls: RedisTls,
                         shared_secret_file: Path,
                         tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsTopology]:  # fmt: skip
    """Redis (and its sentinels) with ``tls-auth-clients yes``; the nodes' URLs give the client
    certificate as ``?ssl_certfile=…&ssl_keyfile=…``."""
    d = tmp_path_factory.mktemp(f"tls-auth-{request.param}")
    with _tls_fleet(request.param, pki, client_auth_tls, shared_secret_file, d) as topology:
        assert "ssl_certfile=" in topology.url and "ssl_keyfile=" in topology.acl_url
        yield topology


RESUMPTIONS = pytest.mark.parametrize(
    ("version", "flags", "resumed_by"),
    [("-tls1_2", ("-no_ticket",), "session_id"), ("-tls1_2", (), "ticket"), ("-tls1_3", (), "psk")],
    ids=["tls12-id", "tls12-ticket", "tls13-ticket"],
)  # fmt: skip


def _resume_across(topology: TlsTopology, pki: Pki, tmp_path: Path, version: str,
                   flags: tuple[str, ...], resumed_by: str) -> None:  # fmt: skip
    a, b = topology.nodes
    page = openssl_resumes_across(a, b, pki, tmp_path, version, flags, resumed_by)
    assert "ticket keys from Redis (healthy)" in page.text, page.text
    for node in (a, b):
        text = wait_output(node, "fleet: ticket keys from Redis (")
        assert ", TLS" in text, text  # the banner says the link is encrypted
        assert SENTINEL_PASSWORD not in text and ACL_PASSWORD not in text, text


@RESUMPTIONS
def test_nodes_resume_each_other_through_tls_redis(tls_topology: TlsTopology, pki: Pki,
                                                   tmp_path: Path, version: str,
                                                   flags: tuple[str, ...],
                                                   resumed_by: str) -> None:  # fmt: skip
    _resume_across(tls_topology, pki, tmp_path, version, flags, resumed_by)


@RESUMPTIONS
def test_nodes_resume_each_other_through_redis_requiring_client_certs(
    client_auth_topology: TlsTopology,
    pki: Pki,
    tmp_path: Path,
    version: str,
    flags: tuple[str, ...],
    resumed_by: str,
) -> None:
    _resume_across(client_auth_topology, pki, tmp_path, version, flags, resumed_by)


def _proxy_and_keys_list(topology: TlsTopology, pki: Pki, secret: Path, tmp_path: Path) -> None:
    """The asyncio clients (tessera proxy): a TLS 1.3 session made through one proxy resumes on
    a serve node; ``tessera keys list`` reads the same keys."""
    with http_backend(tmp_path) as backend:
        (tmp_path / "index.html").write_text("hello tls fleet\n")
        with proxy_node(pki, tmp_path, backend.port or 0, topology.acl_url, secret,
                        name="p") as p:  # fmt: skip
            ctx = client_context(pki.ca_file, "tls13")
            _, session, page = python_get(p.port or 0, ctx)
            assert "hello tls fleet" in page and session is not None
            reused, _, page = python_get(topology.nodes[0].port or 0, ctx, session)
            assert reused, page
            text = wait_output(p, "fleet: ticket keys from Redis (")
            assert "Warning" not in text and "Traceback" not in text, text
    listing = _keys_list(topology.url, secret)
    assert listing.returncode == 0 and "encrypting" in listing.text, listing.text


@dataclass
class Listing:
    returncode: int
    text: str


def _keys_list(url: str, secret: Path) -> Listing:
    r = run([*TESSERA, "keys", "list", "--redis", url, "--fleet-secret", str(secret)],
            timeout=30, env={"COLUMNS": "200"})  # fmt: skip
    return Listing(r.returncode, r.stdout.decode(errors="replace"))  # (stderr merged)


def test_proxy_and_keys_list_over_tls(tls_topology: TlsTopology, pki: Pki,
                                      shared_secret_file: Path, tmp_path: Path) -> None:  # fmt: skip
    _proxy_and_keys_list(tls_topology, pki, shared_secret_file, tmp_path)


def test_proxy_and_keys_list_with_a_client_certificate(client_auth_topology: TlsTopology,
                                                       pki: Pki, shared_secret_file: Path,
                                                       tmp_path: Path) -> None:  # fmt: skip
    _proxy_and_keys_list(client_auth_topology, pki, shared_secret_file, tmp_path)


def _with_query(url: str, query: str) -> str:
    base, _, _ = url.partition("?")
    return f"{base}?{query}"


def test_an_untrusted_redis_certificate_costs_resumption_not_connections(
    tls_topology: TlsTopology, pki: Pki, shared_secret_file: Path, tmp_path: Path
) -> None:
    """A node that trusts another CA refuses Redis's certificate: it serves every connection
    (full handshakes), never resumes through the fleet, and its banner says the store is
    unreachable rather than healthy."""
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(generate_ca("ec").to_pem()[0])
    url = _with_query(tls_topology.url, f"ssl_ca_certs={other_ca}")
    if tls_topology.kind == "sentinel":
        url += f"&sentinel_password={SENTINEL_PASSWORD}"
    with fleet_node(pki, tmp_path, url, shared_secret_file, name="untrusting") as node:
        text = wait_output(node, "fleet: ticket keys from Redis (")
        assert "(healthy)" not in text and "<redis." not in text, text
        assert "?ssl_ca_certs=" in text, text  # what to change, in the option's words
        ctx = client_context(pki.ca_file, "tls12-ticket")
        for _ in range(3):
            reused, _, page = python_get(node.port or 0, ctx)
            assert not reused and "Protocol" in page, page
        assert "Traceback" not in node.output(), node.output()


def test_a_node_without_the_client_certificate_costs_resumption_not_connections(
    client_auth_topology: TlsTopology, pki: Pki, shared_secret_file: Path, tmp_path: Path
) -> None:
    """Redis (and the sentinels) require a client certificate that the URL does not give: a
    serve node (redis-py's sync clients) and a proxy (asyncio) serve every connection, resume
    none of the fleet's sessions, and say which ``--redis`` parameters to give;
    ``tessera keys list`` fails saying the same."""
    topology = client_auth_topology
    query = f"ssl_ca_certs={pki.ca_file}"
    if topology.kind == "sentinel":
        query += f"&sentinel_password={SENTINEL_PASSWORD}"
    url = _with_query(topology.url, query)
    ctx = client_context(pki.ca_file, "tls13")
    _, session, _ = python_get(topology.nodes[0].port or 0, ctx)  # a session of the fleet's
    assert session is not None
    (tmp_path / "index.html").write_text("hello certless proxy\n")
    with fleet_node(pki, tmp_path, url, shared_secret_file, name="certless") as node, \
         http_backend(tmp_path) as backend, \
         proxy_node(pki, tmp_path, backend.port or 0, url, shared_secret_file,
                    name="certless-proxy") as proxy:  # fmt: skip
        for peer, served in ((node, "Protocol"), (proxy, "hello certless proxy")):
            text = wait_output(peer, "fleet: ticket keys from Redis (")
            assert "(healthy)" not in text and "<redis." not in text, text
            assert "?ssl_certfile=" in text, text  # what to give, in the option's words
            for _ in range(3):
                reused, _, page = python_get(peer.port or 0, ctx, session)
                assert not reused and served in page, page
            out = peer.output()
            assert "Traceback" not in out and "<redis." not in out, out
    listing = _keys_list(url, shared_secret_file)
    assert listing.returncode != 0 and "?ssl_certfile=" in listing.text, listing.text
    assert "Traceback" not in listing.text and "<redis." not in listing.text, listing.text


def test_a_wrong_sentinel_password_is_said_and_survived(pki: Pki, redis_tls: RedisTls,
                                                        shared_secret_file: Path,
                                                        tmp_path: Path) -> None:  # fmt: skip
    """Sentinels that require a password: the right one in ``sentinel_password`` finds the
    master; a wrong one leaves the node serving full handshakes, and no log line carries either
    password."""
    require_program("redis-sentinel")
    with RedisSentinel(tls=redis_tls, password=SENTINEL_PASSWORD) as redis:
        wrong = redis.url.replace(SENTINEL_PASSWORD, "not-the-password")
        assert wrong != redis.url
        with fleet_node(pki, tmp_path, wrong, shared_secret_file, name="wrong") as node:
            text = wait_output(node, "fleet: ticket keys from Redis (")
            assert "(healthy)" not in text and "<redis." not in text, text
            assert "?sentinel_password=" in text, text
            reused, _, page = python_get(node.port or 0, client_context(pki.ca_file, "tls13"))
            assert not reused and "Protocol" in page, page
            out = node.output()
        assert "not-the-password" not in out and SENTINEL_PASSWORD not in out, out
        assert "Traceback" not in out, out


def test_the_ca_certificate_is_checked_by_a_real_peer(redis_tls: RedisTls, pki: Pki) -> None:
    """The fixture's own premise: the Redis really speaks TLS only, with this CA's certificate
    (redis-cli over TLS answers; plain TCP gets no PONG)."""
    with RedisServer(tls=redis_tls) as server:
        assert server.ping()
        out = run(["redis-cli", "-p", str(server.port), *redis_tls.cli, "ping"], timeout=10)
        assert out.stdout.strip() == b"PONG", out
        plain = run(["redis-cli", "-p", str(server.port), "ping"], timeout=10)
        assert b"PONG" not in plain.stdout, plain

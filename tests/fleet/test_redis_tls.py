"""The fleet over TLS Redis (``rediss://``, ``rediss-cluster://``, ``rediss-sentinel://``): real
redis-server and redis-sentinel processes that speak only TLS (``port 0``), replication and the
cluster bus over TLS too, the sentinels behind a password of their own. Nodes resume each
other's sessions through them; a node that cannot verify Redis's certificate, or gives the
sentinels a wrong password, serves every connection with full handshakes and says why."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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


@pytest.fixture(scope="module", params=["single", "cluster", "sentinel"])
def tls_topology(request: pytest.FixtureRequest, pki: Pki, redis_tls: RedisTls,
                 shared_secret_file: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsTopology]:  # fmt: skip
    require_program("redis-sentinel")
    d = tmp_path_factory.mktemp(f"tls-{request.param}")
    redis: RedisServer | RedisCluster | RedisSentinel
    if request.param == "single":
        redis = RedisServer(tls=redis_tls)
    elif request.param == "cluster":
        redis = RedisCluster(tls=redis_tls)
    else:
        redis = RedisSentinel(tls=redis_tls, password=SENTINEL_PASSWORD)
    with redis:
        secret = shared_secret_file
        with fleet_node(pki, d, redis.url, secret, name="a") as a, \
             fleet_node(pki, d, redis.acl_url, secret, name="b") as b:  # fmt: skip
            yield TlsTopology(request.param, redis.url, redis.acl_url, (a, b), redis_tls)
            for node in (a, b):
                assert "Traceback" not in node.output(), node.output()


@pytest.mark.parametrize(
    ("version", "flags", "resumed_by"),
    [("-tls1_2", ("-no_ticket",), "session_id"), ("-tls1_2", (), "ticket"), ("-tls1_3", (), "psk")],
    ids=["tls12-id", "tls12-ticket", "tls13-ticket"],
)  # fmt: skip
def test_nodes_resume_each_other_through_tls_redis(tls_topology: TlsTopology, pki: Pki,
                                                   tmp_path: Path, version: str,
                                                   flags: tuple[str, ...],
                                                   resumed_by: str) -> None:  # fmt: skip
    a, b = tls_topology.nodes
    page = openssl_resumes_across(a, b, pki, tmp_path, version, flags, resumed_by)
    assert "ticket keys from Redis (healthy)" in page.text, page.text
    for node in (a, b):
        text = wait_output(node, "fleet: ticket keys from Redis (")
        assert ", TLS" in text, text  # the banner says the link is encrypted
        assert SENTINEL_PASSWORD not in text and ACL_PASSWORD not in text, text


def test_proxy_and_keys_list_over_tls(tls_topology: TlsTopology, pki: Pki,
                                      shared_secret_file: Path, tmp_path: Path) -> None:  # fmt: skip
    """The asyncio clients (tessera proxy) over TLS: a TLS 1.3 session made through one proxy
    resumes on a serve node; ``tessera keys list`` reads the same keys."""
    with http_backend(tmp_path) as backend:
        (tmp_path / "index.html").write_text("hello tls fleet\n")
        with proxy_node(pki, tmp_path, backend.port or 0, tls_topology.acl_url,
                        shared_secret_file, name="p") as p:  # fmt: skip
            ctx = client_context(pki.ca_file, "tls13")
            _, session, page = python_get(p.port or 0, ctx)
            assert "hello tls fleet" in page and session is not None
            reused, _, page = python_get(tls_topology.nodes[0].port or 0, ctx, session)
            assert reused, page
            text = wait_output(p, "fleet: ticket keys from Redis (")
            assert "Warning" not in text and "Traceback" not in text, text
    r = run([*TESSERA, "keys", "list", "--redis", tls_topology.url, "--fleet-secret",
             str(shared_secret_file)], timeout=30, env={"COLUMNS": "200"})  # fmt: skip
    listing = r.stdout.decode(errors="replace")
    assert r.returncode == 0 and "encrypting" in listing, listing


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

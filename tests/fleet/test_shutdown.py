"""A node that stops closes its Redis connections itself, while its event loop still runs: left
to the garbage collector, redis.asyncio's pooled connections outlived the loop (Python's
``ResourceWarning: unclosed resource <TCPTransport ...>``; over TLS, uvloop could print a
traceback writing to a transport already closed). Over plain and TLS Redis, for serve and
proxy, with Python's resource warnings on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet_helpers import (
    client_context,
    fleet_node,
    http_backend,
    proxy_node,
    python_get,
    wait_output,
)
from peers import Peer
from redis_server import RedisServer, RedisTls

from conftest import Pki

pytestmark = pytest.mark.interop

WARNINGS = {"PYTHONWARNINGS": "always::ResourceWarning"}
NOISE = ("nclosed", "ResourceWarning", "Traceback", "Fatal error")


@pytest.fixture(params=["redis", "rediss"])
def redis_url(request: pytest.FixtureRequest, pki: Pki) -> Iterator[str]:
    tls = None
    if request.param == "rediss":
        tls = RedisTls(pki.rsa_cert, pki.rsa_key, pki.ca_file, pki.client_cert, pki.client_key)
    with RedisServer(tls=tls) as redis:
        yield redis.url


def resumed_twice(port: int, pki: Pki) -> None:
    ctx = client_context(pki.ca_file, "tls12-id")  # the session goes through Redis
    _, session, _ = python_get(port, ctx)
    assert python_get(port, ctx, session)[0], "not resumed through Redis"


def resumes_then_stops_quietly(node: Peer, pki: Pki) -> None:
    try:
        wait_output(node, "signals:")
        assert node.port is not None
        resumed_twice(node.port, pki)
    finally:
        quiet_stop(node)


def quiet_stop(node: Peer) -> None:
    out = node.stop()
    assert node.proc.returncode == 0, out
    for word in NOISE:
        assert word not in out, out


def test_serve_closes_its_redis_connections(pki: Pki, tmp_path: Path, redis_url: str,
                                            secret_file: Path) -> None:  # fmt: skip
    node = fleet_node(pki, tmp_path, redis_url, secret_file, env=WARNINGS)
    resumes_then_stops_quietly(node, pki)


def test_proxy_closes_its_redis_connections(pki: Pki, tmp_path: Path, redis_url: str,
                                            secret_file: Path) -> None:  # fmt: skip
    with http_backend(tmp_path) as backend:
        assert backend.port is not None
        node = proxy_node(pki, tmp_path, backend.port, redis_url, secret_file, env=WARNINGS)
        resumes_then_stops_quietly(node, pki)

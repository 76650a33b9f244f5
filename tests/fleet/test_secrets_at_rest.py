"""Secrets at rest: after traffic of every kind (TLS 1.2 session ids, TLS 1.3 single-use tickets,
0-RTT strike marks, fleet ticket keys), with the servers writing SSLKEYLOGFILE, a dump of every
Redis value holds none of the logged secrets, no ticket key bytes and not the fleet secret."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from fleet_helpers import client_context, fleet_node, python_get, s_client_get, wait_for_tickets
from peers import HTTP_GET
from redis_server import RedisServer

from conftest import Pki
from tessera.fleet.keyring import FleetKeyring
from tessera.fleet.keys import KeyPolicy
from tessera.fleet.redis_keys import RedisKeySource
from tessera.fleet.secret import FleetSecret

pytestmark = pytest.mark.interop


def dump_all(url: str) -> tuple[bytes, dict[str, int]]:
    """Every key and value in Redis, concatenated; and how many keys of each kind."""
    r = redis.Redis.from_url(url)
    parts: list[bytes] = []
    kinds: dict[str, int] = {}
    for key in r.scan_iter("*"):
        kind = key.split(b":")[2].decode() if key.count(b":") >= 2 else "?"
        kinds[kind] = kinds.get(kind, 0) + 1
        parts.append(key)
        t = r.type(key)
        if t == b"string":
            parts.append(r.get(key) or b"")
        elif t == b"hash":
            for f, v in r.hgetall(key).items():
                parts += [f, v]
        else:
            raise AssertionError(f"unexpected Redis type {t!r} for {key!r}")
    return b"\0".join(parts), kinds


def keylog_secrets(path: Path) -> list[bytes]:
    out = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) == 3 and not line.startswith("#"):
            out.append(bytes.fromhex(fields[2]))
    return out


def test_no_secret_in_redis(pki: Pki, redis_server: RedisServer, secret_file: Path,
                            fleet_secret: FleetSecret, tmp_path: Path) -> None:  # fmt: skip
    logs = [tmp_path / "a.keylog", tmp_path / "b.keylog"]
    a = fleet_node(pki, tmp_path, redis_server.url, secret_file, "--stateful-tickets", name="a",
                   env={"SSLKEYLOGFILE": str(logs[0])})  # fmt: skip
    b = fleet_node(pki, tmp_path, redis_server.url, secret_file, "--max-early-data", "1024",
                   name="b", env={"SSLKEYLOGFILE": str(logs[1])})  # fmt: skip
    with a, b:
        wait_for_tickets(b, pki)
        for port in (a.port or 0, b.port or 0):
            for version in ("tls12-id", "tls12-ticket", "tls13"):
                ctx = client_context(pki.ca_file, version)
                session = None
                for _ in range(3):
                    _, session, _ = python_get(port, ctx, session)
        sess = tmp_path / "sess.pem"
        early = tmp_path / "early.txt"
        early.write_bytes(HTTP_GET)
        s_client_get(b, pki, "-sess_out", str(sess))
        out = s_client_get(b, pki, "-sess_in", str(sess), "-early_data", str(early))
        assert "Early data was accepted" in out, out
        s_client_get(a, pki, "-sess_out", str(sess))  # a single-use ticket left in Redis

    dump, kinds = dump_all(redis_server.url)
    assert kinds.get("sid", 0) >= 2 and kinds.get("stk", 0) >= 1 and kinds.get("0rtt", 0) >= 1
    assert kinds.get("ticketkeys", 0) == 1, kinds
    secrets = [s for log in logs for s in keylog_secrets(log)]
    assert len(secrets) > 20
    source = RedisKeySource(redis.Redis.from_url(redis_server.url), fleet_secret, "default",
                            FleetKeyring(KeyPolicy()))  # fmt: skip
    ticket_keys = [m for k in source.read().keys for m in (k.key.hmac_key, k.key.aes_key)]
    assert ticket_keys
    for secret in [*secrets, *ticket_keys, fleet_secret.secret]:
        assert secret not in dump
        assert secret.hex().encode() not in dump
    assert fleet_secret.secret.hex().encode() not in dump

"""Two real nginx, each fed by its own ``tessera keys sync`` (files + ``nginx -s reload``), share
the fleet's ticket keys: TLS 1.2 tickets and TLS 1.3 sessions made on one resume on the other;
after ``tessera keys rotate`` a session made before the rotation still resumes on the other
node, new tickets carry the new key name, and ``tessera check --backends`` says so."""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_helpers import address, check_json, mechanism
from fleet_helpers import fleet_node
from peers import Peer, wait_for_output
from redis_server import RedisServer
from sync_fleet import (
    Server,
    current_key,
    encrypting_name,
    fed_servers,
    nginx_start,
    rotate,
    s_client,
    wait_encrypting,
    wait_until,
)

from conftest import Pki
from tessera.audit.keynames import KeyNameStatus
from tessera.session.keyring import KeyFileFormat, read_key_file

pytestmark = pytest.mark.interop


@pytest.fixture
def pair(tmp_path: Path, pki: Pki, redis_server: RedisServer,
         secret_file: Path) -> Iterator[tuple[list[Server], list[Peer]]]:  # fmt: skip
    starts = [nginx_start(tmp_path, pki.ecdsa_cert, pki.ecdsa_key, i) for i in range(2)]
    with fed_servers(tmp_path, redis_server.url, secret_file, starts) as pair:
        yield pair


def test_two_nginx_resume_each_others_sessions_across_a_rotation(
    pair: tuple[list[Server], list[Peer]], tmp_path: Path, redis_server: RedisServer,
    secret_file: Path,
) -> None:  # fmt: skip
    (a, b), agents = pair
    for version, protocol in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        s = tmp_path / f"before{version}.pem"
        assert s_client(a.port, version, "-sess_out", str(s)) == f"New, {protocol}"
        assert s_client(b.port, version, "-sess_in", str(s)) == f"Reused, {protocol}"
        assert s_client(a.port, version, "-sess_in", str(s)) == f"Reused, {protocol}"

    new = rotate(redis_server.url, secret_file, lead=2.0)
    wait_encrypting([a, b], new, agents)
    # Sessions made on A before the rotation still resume on B (the old key decrypts there).
    for version, protocol in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        before = tmp_path / f"before{version}.pem"
        assert s_client(b.port, version, "-sess_in", str(before)) == f"Reused, {protocol}"

    rc, doc = check_json("--backends", f"{a.label},{b.label}", "--sni", "localhost",
                         "--attempts", "3", "--mechanisms", "ticket,psk",
                         "--expect", "ticket,psk")  # fmt: skip
    assert rc == 0, doc
    for server in (a, b):
        backend = address(doc, server.label, "backend")
        assert backend["key_names"]["status"] == KeyNameStatus.KEY_NAME.value
        assert backend["key_names"]["names"] == [new.hex()], backend["key_names"]
        assert mechanism(backend, "ticket")["verdict"] == "resumes"
    cross = [c for c in doc["matrix"] if c["from"] != c["to"]]
    assert cross and all(c["resumed"] for c in cross), cross
    # Each agent reloaded its nginx and named the keys, never their material.
    for agent, server in zip(agents, (a, b), strict=True):
        wait_for_output(agent, f"wrote nginx:{server.keys}: it encrypts with {new.hex()}")
        log = wait_for_output(agent, "ran --exec")  # (logged once nginx -s reload returned)
        assert "Traceback" not in log
        for f in server.keys.iterdir():
            key = read_key_file(f, KeyFileFormat.NGINX, 0)[0]
            for secret in (key.aes_key, key.hmac_key):
                assert secret.hex() not in log and base64.b64encode(secret).decode() not in log


def test_a_tessera_node_and_a_synced_nginx_share_one_keyring(
    tmp_path: Path, pki: Pki, redis_server: RedisServer, secret_file: Path
) -> None:
    """``tessera serve`` and an nginx fed by ``keys sync`` in one fleet: both encrypt with the
    fleet's key, before and after a rotation, whoever minted it (their tickets do not open on
    each other — different session formats — but no key is minted twice or used early)."""
    starts = [nginx_start(tmp_path, pki.ecdsa_cert, pki.ecdsa_key, 0)]
    with fleet_node(pki, tmp_path, redis_server.url, secret_file, name="tessera") as node, \
         fed_servers(tmp_path, redis_server.url, secret_file, starts) as ((nginx,), agents):  # fmt: skip
        assert node.port is not None
        name = current_key(redis_server.url, secret_file)
        assert name is not None
        wait_until(functools.partial(encrypts_with, node.port, name), "tessera's key",
                   logs=[node])  # fmt: skip
        new = rotate(redis_server.url, secret_file, lead=2.0)
        wait_encrypting([nginx], new, agents)
        wait_until(functools.partial(encrypts_with, node.port, new), "tessera's new key",
                   logs=[node])  # fmt: skip


def encrypts_with(port: int, name: bytes) -> bool:
    return encrypting_name(port) == name

"""Two real nginx, each fed by its own ``tessera keys sync`` (files + ``nginx -s reload``), share
the fleet's ticket keys: TLS 1.2 tickets and TLS 1.3 sessions made on one resume on the other;
after ``tessera keys rotate`` a session made before the rotation still resumes on the other
node, new tickets carry the new key name, and ``tessera check --backends`` says so."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_helpers import address, check_json, mechanism
from peers import Peer, openssl_s_client
from redis_server import RedisServer
from resumption_helpers import session_lines
from sync_fleet import (
    HTTP_GET,
    Server,
    agent_for,
    current_key,
    nginx_server,
    rotate,
    sync_once,
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
    servers: list[Server] = []
    agents: list[Peer] = []
    try:
        for i in range(2):
            key_dir = tmp_path / f"keys-{i}"
            key_dir.mkdir()
            sync_once(redis_server.url, secret_file, "--to", f"nginx:{key_dir}")
            servers.append(nginx_server(tmp_path, pki.ecdsa_cert, pki.ecdsa_key, key_dir))
            agents.append(agent_for(tmp_path, redis_server.url, secret_file, servers[-1]))
        wait_until(lambda: current_key(redis_server.url, secret_file) is not None,
                   "no fleet key encrypts", logs=agents)  # fmt: skip
        name = current_key(redis_server.url, secret_file)
        assert name is not None
        wait_encrypting(servers, name, agents)
        yield servers, agents
    finally:
        for p in [*agents, *(s.peer for s in servers)]:
            p.stop()


def s_client(port: int, version: str, *args: str) -> str:
    """openssl s_client GET / (the server closes after answering, tickets are read)."""
    out = openssl_s_client(port, version, "-ign_eof", *args, input=HTTP_GET, timeout=20)
    assert "nginx" in out, out
    return out


def resumed(port: int, version: str, session: Path) -> str:
    """``Reused, TLSv1.3`` or ``New, TLSv1.3``: what s_client says."""
    ((found, protocol, _),) = session_lines(s_client(port, version, "-sess_in", str(session)))
    return f"{found}, {protocol}"


def new_session(port: int, version: str, session: Path) -> None:
    ((found, _, _),) = session_lines(s_client(port, version, "-sess_out", str(session)))
    assert found == "New", found


def test_two_nginx_resume_each_others_sessions_across_a_rotation(
    pair: tuple[list[Server], list[Peer]], tmp_path: Path, redis_server: RedisServer,
    secret_file: Path,
) -> None:  # fmt: skip
    (a, b), agents = pair
    for version, protocol in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        s = tmp_path / f"before{version}.pem"
        new_session(a.port, version, s)
        assert resumed(b.port, version, s) == f"Reused, {protocol}"
        assert resumed(a.port, version, s) == f"Reused, {protocol}"

    new = rotate(redis_server.url, secret_file, lead=2.0)
    wait_encrypting([a, b], new, agents)
    # Sessions made on A before the rotation still resume on B (the old key decrypts there).
    assert resumed(b.port, "-tls1_2", tmp_path / "before-tls1_2.pem") == "Reused, TLSv1.2"
    assert resumed(b.port, "-tls1_3", tmp_path / "before-tls1_3.pem") == "Reused, TLSv1.3"

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
        log = agent.output()
        assert f"wrote nginx:{server.keys}: it encrypts with {new.hex()}" in log, log
        assert "ran --exec" in log and "Traceback" not in log
        for f in server.keys.iterdir():
            key = read_key_file(f, KeyFileFormat.NGINX, 0)[0]
            for secret in (key.aes_key, key.hmac_key):
                assert secret.hex() not in log and base64.b64encode(secret).decode() not in log

"""Two real HAProxy TLS terminators, each fed by its own ``tessera keys sync`` through its
``tls-ticket-keys`` file and its runtime API (``set ssl tls-key``): sessions made on one resume
on the other, across ``tessera keys rotate`` — and HAProxy is never reloaded (the same process
throughout, no ``--exec``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_helpers import address, check_json
from peers import Peer, openssl_s_client
from redis_server import RedisServer
from resumption_helpers import session_lines
from sync_fleet import (
    HTTP_GET,
    Server,
    agent_for,
    current_key,
    haproxy_server,
    pem_bundle,
    rotate,
    sync_once,
    wait_encrypting,
    wait_until,
)

from conftest import Pki
from tessera.fleet.sync.haproxy import HaproxyRuntime
from tessera.session.keyring import KeyFileFormat, read_key_file

pytestmark = pytest.mark.interop


@pytest.fixture
def pair(tmp_path: Path, pki: Pki, redis_server: RedisServer,
         secret_file: Path) -> Iterator[tuple[list[Server], list[Peer]]]:  # fmt: skip
    servers: list[Server] = []
    agents: list[Peer] = []
    try:
        with pem_bundle(pki.ecdsa_cert, pki.ecdsa_key, tmp_path) as bundle:
            for i in range(2):
                keys = tmp_path / f"haproxy-{i}.keys"
                sync_once(redis_server.url, secret_file, "--to", f"haproxy:{keys}")
                servers.append(haproxy_server(tmp_path, bundle, keys))
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


def outcome(port: int, version: str, *args: str) -> str:
    out = openssl_s_client(port, version, "-ign_eof", *args, input=HTTP_GET, timeout=20)
    assert f"haproxy {port}" in out, out
    ((found, protocol, _),) = session_lines(out)
    return f"{found}, {protocol}"


def test_two_haproxy_rotate_through_the_runtime_api_without_a_reload(
    pair: tuple[list[Server], list[Peer]], tmp_path: Path, redis_server: RedisServer,
    secret_file: Path,
) -> None:  # fmt: skip
    (a, b), agents = pair
    pids = [s.peer.proc.pid for s in (a, b)]
    sessions = {}
    for version, protocol in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        sessions[version] = s = tmp_path / f"before{version}.pem"
        assert outcome(a.port, version, "-sess_out", str(s)) == f"New, {protocol}"
        assert outcome(b.port, version, "-sess_in", str(s)) == f"Reused, {protocol}"

    new = rotate(redis_server.url, secret_file, lead=2.0)
    wait_encrypting([a, b], new, agents)
    assert outcome(b.port, "-tls1_2", "-sess_in", str(sessions["-tls1_2"])) == "Reused, TLSv1.2"
    assert outcome(b.port, "-tls1_3", "-sess_in", str(sessions["-tls1_3"])) == "Reused, TLSv1.3"

    rc, doc = check_json("--backends", f"{a.label},{b.label}", "--sni", "localhost",
                         "--attempts", "3", "--mechanisms", "ticket,psk",
                         "--expect", "ticket,psk")  # fmt: skip
    assert rc == 0, doc
    for server in (a, b):
        assert address(doc, server.label, "backend")["key_names"]["names"] == [new.hex()]
    assert all(c["resumed"] for c in doc["matrix"] if c["from"] != c["to"]), doc["matrix"]

    # No reload: the same HAProxy processes, which the agents only talked to.
    assert [s.peer.proc.pid for s in (a, b)] == pids
    assert all(s.peer.proc.poll() is None for s in (a, b))
    for agent, server in zip(agents, (a, b), strict=True):
        log = agent.output()
        assert "--exec" not in " ".join(agent.argv) and "ran --exec" not in log
        assert f"pushed 1 key(s); it encrypts with {new.hex()}" in log, log
        # The file holds the same keys, in HAProxy's order (for its next start).
        keys = read_key_file(server.keys, KeyFileFormat.HAPROXY, 0)
        assert keys[0].name == new
        assert server.socket is not None
        runtime = HaproxyRuntime(server.socket)
        ring = runtime.ring(runtime.reference(server.keys))
        assert ring[-2:] == [new, new], ring  # encrypting, and last until the next is published

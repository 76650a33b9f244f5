"""Two real HAProxy TLS terminators, each fed by its own ``tessera keys sync`` through its
``tls-ticket-keys`` file and its runtime API (``set ssl tls-key``): sessions made on one resume
on the other, across ``tessera keys rotate`` — and HAProxy is never reloaded (the same process
throughout, no ``--exec``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_helpers import address, check_json
from peers import Peer, wait_for_output
from redis_server import RedisServer
from sync_fleet import (
    Server,
    agent_for,
    fed_servers,
    haproxy_server,
    haproxy_start,
    pem_bundle,
    rotate,
    s_client,
    wait_encrypting,
)

from conftest import Pki
from tessera.fleet.sync.haproxy import HaproxyRuntime
from tessera.fleet.sync.targets import replace_file
from tessera.session.keyring import KeyFileFormat, TicketKey, key_file_bytes, read_key_file

pytestmark = pytest.mark.interop


@pytest.fixture
def pair(tmp_path: Path, pki: Pki, redis_server: RedisServer,
         secret_file: Path) -> Iterator[tuple[list[Server], list[Peer]]]:  # fmt: skip
    with pem_bundle(pki.ecdsa_cert, pki.ecdsa_key, tmp_path) as bundle:
        starts = [haproxy_start(tmp_path, bundle, i) for i in range(2)]
        with fed_servers(tmp_path, redis_server.url, secret_file, starts) as pair:
            yield pair


def test_two_haproxy_rotate_through_the_runtime_api_without_a_reload(
    pair: tuple[list[Server], list[Peer]], tmp_path: Path, redis_server: RedisServer,
    secret_file: Path,
) -> None:  # fmt: skip
    (a, b), agents = pair
    pids = [s.peer.proc.pid for s in (a, b)]
    sessions = {}
    for version, protocol in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        sessions[version] = s = tmp_path / f"before{version}.pem"
        assert s_client(a.port, version, "-sess_out", str(s)) == f"New, {protocol}"
        assert s_client(b.port, version, "-sess_in", str(s)) == f"Reused, {protocol}"

    new = rotate(redis_server.url, secret_file, lead=2.0)
    wait_encrypting([a, b], new, agents)
    assert s_client(b.port, "-tls1_2", "-sess_in", str(sessions["-tls1_2"])) == "Reused, TLSv1.2"
    assert s_client(b.port, "-tls1_3", "-sess_in", str(sessions["-tls1_3"])) == "Reused, TLSv1.3"

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
        log = wait_for_output(agent, f"pushed 1 key(s); it encrypts with {new.hex()}")
        assert "--exec" not in " ".join(agent.argv) and "ran --exec" not in log
        # The file holds the same keys, in HAProxy's order (for its next start).
        keys = read_key_file(server.keys, KeyFileFormat.HAPROXY, 0)
        assert keys[0].name == new
        assert server.socket is not None
        runtime = HaproxyRuntime(server.socket)
        ring = runtime.ring(runtime.reference(server.keys))
        assert ring[-2:] == [new, new], ring  # encrypting, and last until the next is published


def test_haproxy_holding_48_byte_keys_gets_a_clear_error(tmp_path: Path, pki: Pki,
                                                          redis_server: RedisServer,
                                                          secret_file: Path) -> None:  # fmt: skip
    """A HAProxy started on a file of 48-byte keys (written by hand) cannot take the fleet's
    80-byte keys at run time: the agent says so and what to do, retries, and HAProxy serves."""
    keys = tmp_path / "hand.keys"
    replace_file(keys, key_file_bytes([TicketKey.generate(0.0, 48) for _ in range(3)],
                                      KeyFileFormat.HAPROXY))  # fmt: skip
    with pem_bundle(pki.ecdsa_cert, pki.ecdsa_key, tmp_path) as bundle, \
         haproxy_server(tmp_path, bundle, keys).peer as peer:  # fmt: skip
        assert peer.port is not None
        server = Server("haproxy", peer, peer.port, keys, socket=tmp_path /
                        f"haproxy-{peer.port}.sock")  # fmt: skip
        with agent_for(tmp_path, redis_server.url, secret_file, server) as sync:
            out = wait_for_output(sync, "(failure 2; retrying in 2 s)", timeout=30)
        assert "received a key of wrong size" in out, out
        assert "restart HAProxy once on the file keys sync wrote" in out, out
        assert s_client(peer.port, "-tls1_3") == "New, TLSv1.3"
        # The file is the fleet's now (80-byte keys): HAProxy's next start takes them.
        assert all(len(k.aes_key) == 32 for k in read_key_file(keys, KeyFileFormat.HAPROXY, 0))

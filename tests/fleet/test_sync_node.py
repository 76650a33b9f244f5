"""Two Node.js TLS servers running the key-sync page's lines (``setTicketKeys`` on a watched
file), each fed by its own ``tessera keys sync --to node:FILE``: a ticket made on one resumes on
the other, TLS 1.2 and TLS 1.3; after ``tessera keys rotate`` both issue tickets under the new
derived key — and, as the page says plainly, a session made before the rotation no longer
resumes (Node holds one key at a time)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import Peer
from redis_server import RedisServer
from sync_fleet import (
    agent,
    current_key,
    encrypting_name,
    free_port,
    rotate,
    s_client,
    sync_once,
    wait_until,
)

from conftest import Pki, require_program
from tessera.session.keyring import KeyFileFormat, read_key_file

pytestmark = pytest.mark.interop

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "keys-sync.md").read_text()


def page_node_server() -> str:
    """docs/keys-sync.md's Node.js lines (the block that calls ``setTicketKeys``)."""
    blocks = re.findall(r"^```javascript\n(.*?)^```", PAGE, re.M | re.S)
    (code,) = [b for b in blocks if "setTicketKeys" in b]
    return code


def node_server(d: Path, pki: Pki, keys: Path) -> Peer:
    port = free_port()
    code = (page_node_server().replace('"site.key"', json.dumps(str(pki.ecdsa_key)))
            .replace('"site.crt"', json.dumps(str(pki.ecdsa_cert)))
            .replace("8443", str(port)))  # fmt: skip
    return Peer(["node", "-e", code], port=port, log_dir=d, name=f"node-{port}",
                env={"TICKET_KEYS": str(keys)})  # fmt: skip


def encrypts_with(port: int, name: bytes) -> bool:
    return encrypting_name(port) == name


def key_name(path: Path) -> bytes:
    return read_key_file(path, KeyFileFormat.NATIVE, 0)[0].name


@pytest.fixture
def pair(tmp_path: Path, pki: Pki, redis_server: RedisServer,
         secret_file: Path) -> Iterator[tuple[list[Peer], list[Path]]]:  # fmt: skip
    require_program("node")
    files = [tmp_path / f"node-{i}.key" for i in range(2)]
    peers: list[Peer] = []
    try:
        for f in files:
            sync_once(redis_server.url, secret_file, "--to", f"node:{f}")
            peers.append(node_server(tmp_path, pki, f))
            peers.append(agent(tmp_path, redis_server.url, secret_file, "--to", f"node:{f}"))
        assert key_name(files[0]) == key_name(files[1])
        yield peers[0::2], files
    finally:
        for p in peers:
            p.stop()


def test_two_node_servers_share_the_derived_key(
    pair: tuple[list[Peer], list[Path]], tmp_path: Path, redis_server: RedisServer,
    secret_file: Path,
) -> None:  # fmt: skip
    (a, b), files = pair
    assert a.port is not None and b.port is not None
    before = key_name(files[0])
    fleet = current_key(redis_server.url, secret_file)
    assert fleet is not None and before != fleet  # a key of its own, derived from the fleet's
    for version, protocol in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        s = tmp_path / f"s{version}.pem"
        assert s_client(a.port, version, "-sess_out", str(s)) == f"New, {protocol}"
        assert s_client(b.port, version, "-sess_in", str(s)) == f"Reused, {protocol}"

    rotate(redis_server.url, secret_file, lead=2.0)
    wait_until(lambda: key_name(files[0]) != before and key_name(files[1]) != before,
               "the agents did not write the new key")  # fmt: skip
    after = key_name(files[0])
    assert key_name(files[1]) == after
    for port in (a.port, b.port):  # fs.watchFile polls every second
        wait_until(functools.partial(encrypts_with, port, after),
                   "Node did not load the new key", logs=[a, b])  # fmt: skip
    # One key at a time: the rotation cost the tickets made under the previous key.
    assert s_client(b.port, "-tls1_2", "-sess_in", str(tmp_path / "s-tls1_2.pem")) == \
        "New, TLSv1.2"  # fmt: skip

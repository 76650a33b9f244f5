"""Two real Apache httpd (mod_ssl, ``SSLSessionTicketKeyFile``), each fed by its own ``tessera
keys sync --to apache:FILE --exec 'apache2 -k graceful'``: a TLS 1.2 ticket made on one resumes
on the other; after ``tessera keys rotate`` both issue tickets under the new derived key, and —
one key at a time — a ticket from before the rotation no longer resumes."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_helpers import apache, program
from peers import Peer
from redis_server import RedisServer
from sync_fleet import (
    Server,
    Start,
    encrypting_name,
    fed_servers,
    rotate,
    s_client,
    wait_until,
)

from conftest import Pki
from tessera.session.keyring import KeyFileFormat, read_key_file

pytestmark = pytest.mark.interop


def apache_start(d: Path, pki: Pki, keys: Path) -> Start:
    """Apache reading ``keys``; its agent reloads it with ``apache2 -k graceful``."""

    def start() -> Server:
        peer = apache(d, pki, f"SSLSessionTickets on\nSSLSessionTicketKeyFile {keys}")
        assert peer.port is not None
        conf = d / f"apache-{peer.port}" / "httpd.conf"
        reload = f"{program('apache2')} -f {conf} -k graceful"
        return Server("apache", peer, peer.port, keys, reload=reload)

    return f"apache:{keys}", start


@pytest.fixture
def pair(tmp_path: Path, pki: Pki, redis_server: RedisServer,
         secret_file: Path) -> Iterator[tuple[list[Server], list[Peer]]]:  # fmt: skip
    starts = [apache_start(tmp_path, pki, tmp_path / f"apache-{i}.key") for i in range(2)]
    with fed_servers(tmp_path, redis_server.url, secret_file, starts) as pair:
        yield pair


def key_name(path: Path) -> bytes:
    return read_key_file(path, KeyFileFormat.APACHE, 0)[0].name


def encrypts_with(port: int, name: bytes) -> bool:
    return encrypting_name(port) == name


def test_two_apache_share_the_derived_key(pair: tuple[list[Server], list[Peer]], tmp_path: Path,
                                          redis_server: RedisServer, secret_file: Path) -> None:  # fmt: skip
    (a, b), agents = pair
    name = key_name(a.keys)
    assert key_name(b.keys) == name
    for s in (a, b):
        wait_until(functools.partial(encrypts_with, s.port, name), "Apache does not use the key",
                   logs=[s.peer, *agents])  # fmt: skip
    session = tmp_path / "s.pem"
    assert s_client(a.port, "-tls1_2", "-sess_out", str(session)) == "New, TLSv1.2"
    assert s_client(b.port, "-tls1_2", "-sess_in", str(session)) == "Reused, TLSv1.2"

    rotate(redis_server.url, secret_file, lead=2.0)
    wait_until(lambda: key_name(a.keys) != name and key_name(b.keys) != name,
               "the agents did not write the new key", logs=agents)  # fmt: skip
    new = key_name(a.keys)
    assert key_name(b.keys) == new
    for s in (a, b):
        wait_until(functools.partial(encrypts_with, s.port, new),
                   "Apache did not reload the new key", logs=[s.peer, *agents])  # fmt: skip
    assert (
        s_client(b.port, "-tls1_2", "-sess_in", str(session)) == "New, TLSv1.2"
    )  # one key at a time
    for agent in agents:
        assert "ran --exec" in agent.output() and "Traceback" not in agent.output()

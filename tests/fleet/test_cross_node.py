"""Cross-node resumption: two ``tessera serve`` processes sharing a Redis. A session made on node
A resumes on node B — TLS 1.2 by id and by ticket, TLS 1.3 stateless and single-use tickets —
with OpenSSL, CPython ``ssl`` and Node.js clients; a 0-RTT replay sent to the other node is
refused."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet_helpers import (
    early_data_replay_refused,
    fleet_node,
    openssl_resumes_across,
    outcome,
    page_from,
    s_client_get,
    wait_for_tickets,
    wait_output,
)
from peers import HTTP_GET, Peer, node_script, openssl_s_client
from redis_server import RedisServer

from conftest import Pki, require_program

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def pair(pki: Pki, shared_redis: RedisServer, shared_secret_file: Path,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Peer, Peer]]:  # fmt: skip
    """Nodes A and B: stateless tickets, 0-RTT accepted (the strike register in Redis)."""
    require_program("openssl")
    d = tmp_path_factory.mktemp("cross")
    args = ("--max-early-data", "16384")
    with fleet_node(pki, d, shared_redis.url, shared_secret_file, *args, name="a") as a, \
         fleet_node(pki, d, shared_redis.url, shared_secret_file, *args, name="b") as b:  # fmt: skip
        wait_for_tickets(a, pki)
        wait_for_tickets(b, pki)
        yield a, b


@pytest.fixture(scope="module")
def stateful_pair(pki: Pki, shared_redis: RedisServer, shared_secret_file: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Peer, Peer]]:  # fmt: skip
    """Nodes C and D: TLS 1.3 single-use tickets kept in Redis (GETDEL), own namespace."""
    d = tmp_path_factory.mktemp("cross-stateful")
    args = ("--stateful-tickets", "--max-early-data", "16384")
    with fleet_node(pki, d, shared_redis.acl_url, shared_secret_file, *args, namespace="sf",
                    name="c") as c, \
         fleet_node(pki, d, shared_redis.acl_url, shared_secret_file, *args, namespace="sf",
                    name="d") as dd:  # fmt: skip
        yield c, dd


# -- OpenSSL ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "flags", "resumed_by"),
    [
        ("-tls1_2", ("-no_ticket",), "session_id"),
        ("-tls1_2", (), "ticket"),
        ("-tls1_3", (), "psk"),
    ],
    ids=["tls12-id", "tls12-ticket", "tls13-ticket"],
)
def test_openssl_resumes_on_the_other_node(pair: tuple[Peer, Peer], pki: Pki, tmp_path: Path,
                                           version: str, flags: tuple[str, ...],
                                           resumed_by: str) -> None:  # fmt: skip
    openssl_resumes_across(*pair, pki, tmp_path, version, flags, resumed_by)


def test_tls13_single_use_ticket_resumes_once_fleet_wide(stateful_pair: tuple[Peer, Peer],
                                                         pki: Pki, tmp_path: Path) -> None:  # fmt: skip
    c, d = stateful_pair
    sess = tmp_path / "sess.pem"
    assert outcome(s_client_get(c, pki, "-sess_out", str(sess))) == "New"
    page = page_from(d, pki, "-sess_in", str(sess))
    assert page.outcome == "Reused" and page.fields["Resumed"] == "yes, by psk", page.text
    again = page_from(c, pki, "-sess_in", str(sess))  # the same ticket, back on node C
    assert again.outcome == "New", again.text
    assert again.reason("single-use ticket already used") >= 1, again.text


@pytest.mark.parametrize("nodes", ["pair", "stateful_pair"])
def test_0rtt_replay_to_the_second_node_is_refused(nodes: str, request: pytest.FixtureRequest,
                                                   pki: Pki, tmp_path: Path) -> None:  # fmt: skip
    a, b = request.getfixturevalue(nodes)
    early_data_replay_refused(a, b, pki, tmp_path)
    page = page_from(b, pki)
    assert page.stats["early_data_rejected"] >= 1, page.text


# -- CPython ssl ------------------------------------------------------------------------------
def _python_get(port: int, ctx: ssl.SSLContext,
                session: ssl.SSLSession | None = None) -> tuple[bool, ssl.SSLSession | None]:  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
         ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:  # fmt: skip
        s.sendall(HTTP_GET)
        while s.recv(65536):
            pass
        return s.session_reused, s.session


@pytest.mark.parametrize("case", ["tls12-id", "tls12-ticket", "tls13", "tls13-single-use"])
def test_cpython_ssl_resumes_on_the_other_node(request: pytest.FixtureRequest, pki: Pki,
                                               case: str) -> None:  # fmt: skip
    a, b = request.getfixturevalue("stateful_pair" if case == "tls13-single-use" else "pair")
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    if case.startswith("tls12"):
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if case == "tls12-id":
        ctx.options |= ssl.OP_NO_TICKET
    assert a.port and b.port
    reused, session = _python_get(a.port, ctx)
    assert not reused and session is not None
    assert (case == "tls12-id") == (not session.has_ticket)
    reused, _ = _python_get(b.port, ctx, session)
    assert reused


# -- Node.js ----------------------------------------------------------------------------------
NODE_CROSS = r"""
const tls = require('tls'), fs = require('fs'), crypto = require('crypto');
const [portA, portB, ca, mode] = process.argv.slice(1);
const opts = {host: '127.0.0.1', servername: 'localhost', ca: fs.readFileSync(ca)};
if (!mode.startsWith('tls13')) opts.maxVersion = 'TLSv1.2';
if (mode === 'tls12-id') opts.secureOptions = crypto.constants.SSL_OP_NO_TICKET;
function get(port, session) {
  return new Promise((resolve, reject) => {
    let last = null, reused = null;
    const s = tls.connect({...opts, port: +port, session}, () => {
      reused = s.isSessionReused();
      s.write('GET / HTTP/1.0\r\n\r\n');
    });
    s.on('session', (sess) => { last = sess; });
    s.on('data', () => {});
    s.on('error', reject);
    s.on('close', () => resolve({reused, session: last}));
  });
}
(async () => {
  const first = await get(portA);
  const second = await get(portB, first.session);
  console.log(JSON.stringify({first: first.reused, second: second.reused,
                              got: first.session !== null}));
})().catch((e) => { console.log('ERROR ' + e); process.exit(1); });
"""


@pytest.mark.parametrize("mode", ["tls12-id", "tls12-ticket", "tls13", "tls13-single-use"])
def test_node_resumes_on_the_other_node(request: pytest.FixtureRequest, pki: Pki,
                                        mode: str) -> None:  # fmt: skip
    require_program("node")
    a, b = request.getfixturevalue("stateful_pair" if mode == "tls13-single-use" else "pair")
    r = node_script(NODE_CROSS.replace("process.argv.slice(1)", json.dumps(
        [str(a.port), str(b.port), str(pki.ca_file), mode])))  # fmt: skip
    out = r.stdout.decode(errors="replace")
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"first": False, "second": True, "got": True}, out


def test_status_page_shows_store_and_keys(pair: tuple[Peer, Peer], pki: Pki) -> None:
    a, _ = pair
    page = page_from(a, pki)
    assert "session store: AsyncRedisSessionStore(redis://127.0.0.1:" in page.text
    assert "healthy" in page.text and "ticket keys from Redis" in page.text
    assert "encrypting" in page.text
    banner = wait_output(a, "ticket keys from Redis (")
    assert "fleet: Redis 127.0.0.1:" in banner and "key " in banner
    assert "session store healthy" in banner and "ticket keys from Redis (healthy)" in banner
    assert "in memory only" not in banner and "cache of ?" not in banner
    out = openssl_s_client(a.port or 0, "-tls1_3", "-CAfile", str(pki.ca_file))
    assert "Verify return code: 0" in out

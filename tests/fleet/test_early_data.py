"""0-RTT is never replayable by design: the strike register is shared wherever the ticket keys
are. ``--workers 2`` without Redis (the supervisor holds the register), two nodes sharing only a
``--ticket-keys`` file (no shared register: early data refused, and the banner says why), and a
ticket that allows 0-RTT offered to a fleet node that does not accept it."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest
from fleet_helpers import fleet_node, outcome, s_client_get, wait_output
from peers import HTTP_GET, Peer
from redis_server import RedisServer
from resumption_helpers import parse_status_page

from conftest import Pki, require_program
from tessera.session.keyring import KeyFileFormat, TicketKey, write_key_file
from tessera.session.resumption import EarlyDataRefusal

pytestmark = pytest.mark.interop

REPLAYS = 8
EARLY = ("--max-early-data", "16384")


def ticket(peer: Peer, pki: Pki, sess: Path) -> str:
    out = s_client_get(peer, pki, "-sess_out", str(sess))
    assert outcome(out) == "New", out
    return out


def early(peer: Peer, pki: Pki, sess: Path, req: Path) -> tuple[bool, str]:
    """One connection resuming ``sess`` with the GET as 0-RTT data: (accepted, the page)."""
    out = s_client_get(peer, pki, "-sess_in", str(sess), "-early_data", str(req))
    assert "Reused, TLSv1.3" in out, out
    accepted = "Early data was accepted" in out
    assert accepted or "Early data was rejected" in out, out
    return accepted, out


def worker(page: str) -> str:
    m = re.search(r"worker: (\d+) of 2", page)
    assert m, page
    return m.group(1)


def test_replays_across_workers_are_refused(pki: Pki, tmp_path: Path) -> None:
    """One 0-RTT flight accepted, then at least 8 replays landing on both workers (the kernel
    spreads them): not one delivered, each refused as a replay."""
    require_program("openssl")
    req = tmp_path / "req.txt"
    req.write_bytes(HTTP_GET)
    with fleet_node(pki, tmp_path, None, None, "--workers", "2", "-q", *EARLY) as node:
        wait_output(node, "0-RTT replays refused across workers")
        sess = tmp_path / "sess.pem"
        ticket(node, pki, sess)
        accepted, first = early(node, pki, sess, req)
        assert accepted, first
        seen: Counter[str] = Counter()
        delivered = 0
        deadline = time.monotonic() + 60
        while sum(seen.values()) < REPLAYS or min(seen["1"], seen["2"]) < 2:
            assert time.monotonic() < deadline, seen
            accepted, out = early(node, pki, sess, req)
            delivered += accepted
            seen[worker(out)] += 1
        print(f"replays: {dict(seen)}, delivered {delivered}")
        assert delivered == 0, seen
        page = parse_status_page(out)
        assert page.fields["Early data"] == f"rejected ({EarlyDataRefusal.REPLAY.value})", page.text


def test_nodes_sharing_only_a_key_file_refuse_early_data(pki: Pki, tmp_path: Path) -> None:
    """Two nodes with the same --ticket-keys file and no Redis: a ticket of one resumes on the
    other, but no strike register spans them, so 0-RTT is off (the tickets allow none) and the
    banner says why; 8 attempts on both deliver nothing early."""
    require_program("openssl")
    keys = tmp_path / "ticket.key"
    write_key_file(keys, [TicketKey.generate(time.time(), 80)], KeyFileFormat.NATIVE)
    req = tmp_path / "req.txt"
    req.write_bytes(HTTP_GET)
    args = ("--ticket-keys", str(keys), "-q", *EARLY)
    with fleet_node(pki, tmp_path, None, None, *args, name="a") as a, \
         fleet_node(pki, tmp_path, None, None, *args, name="b") as b:  # fmt: skip
        for node in (a, b):
            wait_output(node, "0-RTT off: the ticket keys come from --ticket-keys files")
        sess = tmp_path / "sess.pem"
        first = ticket(a, pki, sess)
        assert "Max Early Data: 0" in first, first
        delivered = 0
        for i in range(REPLAYS):
            out = s_client_get(b if i % 2 else a, pki, "-sess_in", str(sess),
                               "-early_data", str(req))  # fmt: skip
            assert "Reused, TLSv1.3" in out, out  # the shared keys still resume
            delivered += "Early data was accepted" in out
        assert delivered == 0


def test_a_0rtt_ticket_offered_to_a_node_without_0rtt(pki: Pki, redis_server: RedisServer,
                                                      secret_file: Path, tmp_path: Path) -> None:  # fmt: skip
    """A ticket that allows 0-RTT (issued by node A) offered with early data to node B of the
    same fleet, which accepts none: it resumes, refuses the early data, and the GET sent after
    the handshake is answered."""
    require_program("openssl")
    req = tmp_path / "req.txt"
    req.write_bytes(HTTP_GET)
    with fleet_node(pki, tmp_path, redis_server.url, secret_file, *EARLY, name="a") as a, \
         fleet_node(pki, tmp_path, redis_server.url, secret_file, name="b") as b:  # fmt: skip
        sess = tmp_path / "sess.pem"
        first = ticket(a, pki, sess)
        assert "Max Early Data: 16384" in first, first
        accepted, out = early(b, pki, sess, req)
        assert not accepted, out
        page = parse_status_page(out)
        assert page.fields["Resumed"] == "yes, by psk", out
        assert page.fields["Early data"] == f"rejected ({EarlyDataRefusal.DISABLED.value})", out
        assert page.stats["early_data_rejected"] >= 1, out

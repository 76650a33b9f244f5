"""``tessera check`` against ``tessera serve`` nodes, each resumption switch set on purpose;
two nodes sharing a ticket key file or not (the cross-backend matrix); a node whose ticket key
rotates every two seconds during ``--watch``; the command's JSON (validated against the
schema), its table, and its exit codes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_helpers import (
    address,
    audit_backends,
    audit_one,
    check_cli,
    check_json,
    mechanism,
    tessera_node,
)
from peers import Peer
from resumption_helpers import outcomes, wait_for

from conftest import Pki, free_port
from tessera.audit import Mechanism, Reason
from tessera.audit.identify import ServerKind
from tessera.audit.keynames import KeyNameStatus
from tessera.audit.report import NO_RTT_SAVED
from tessera.session.keyring import KeyFileFormat, TicketKey, write_key_file

pytestmark = pytest.mark.interop

ID, TICKET, PSK, PSK_KE, EARLY = (Mechanism.SESSION_ID, Mechanism.TICKET, Mechanism.PSK,
                                  Mechanism.PSK_KE, Mechanism.EARLY_DATA)  # fmt: skip


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("check-tessera")


@pytest.fixture(scope="module")
def everything(logs: Path, pki: Pki) -> Iterator[Peer]:
    """Every mechanism on: cache, tickets, psk_ke, 0-RTT (strike register in the cache)."""
    with tessera_node(logs, pki, "--psk-ke", "--max-early-data", "4096") as peer:
        yield peer


def key_file(path: Path) -> bytes:
    """A native 80-byte ticket key file; returns its key name (its first 16 bytes)."""
    key = TicketKey.generate(time.time(), 80)
    write_key_file(path, [key], KeyFileFormat.NATIVE)
    return path.read_bytes()[:16]


def test_every_mechanism_resumes_json(everything: Peer) -> None:
    port = everything.port
    rc, doc = check_json(f"127.0.0.1:{port}", "--sni", "localhost", "--attempts", "3",
                         "--expect", "id,ticket,psk,psk_ke,0rtt")  # fmt: skip
    assert rc == 0, doc["checks"]
    a = address(doc, f"127.0.0.1:{port}", "target")
    for name in ("id", "ticket", "psk", "psk_ke", "0rtt"):
        m = mechanism(a, name)
        assert (m["verdict"], m["resumed"], m["attempts"]) == ("resumes", 3, 3), m
        assert all(o["resumed"] for o in m["attempt_outcomes"]), m
    ticket, psk, psk_ke, early = (mechanism(a, n) for n in ("ticket", "psk", "psk_ke", "0rtt"))
    assert ticket["issued"]["lifetime_hint_s"] == 7200 and ticket["issued"]["ticket_size"] > 64
    assert ticket["extended_master_secret"] is True
    assert psk["issued"]["tickets_per_connection"] == 2 and psk["tickets_per_resumption"] == 1
    assert psk["renews_ticket"] is True
    assert early["issued"]["max_early_data"] == 4096
    # Round trips: TLS 1.2 2 -> 1; TLS 1.3 1 -> 1 (no saving, said so); 0-RTT data at once.
    t12 = mechanism(a, "id")["timing"]
    assert (t12["full"]["round_trips"], t12["resumed"]["round_trips"]) == (2, 1)
    assert t12["round_trips_saved"] == 1
    assert (psk["timing"]["full"]["round_trips"], psk["timing"]["resumed"]["round_trips"]) == (1, 1)
    assert psk["timing"]["round_trips_saved"] == 0 and psk["timing"]["note"] == NO_RTT_SAVED
    assert early["timing"]["resumed"]["data_round_trips"] == 0
    assert early["timing"]["round_trips_saved"] == 1
    # psk_ke: resumed without a key exchange (the client offered psk_ke alone).
    assert psk_ke["resumed"] == 3
    # The replay probe: the same flight twice, refused the second time (strike register).
    replay = early["replay"]
    assert replay["tested"] and replay["first_accepted"] and replay["identical_first_flight"]
    assert replay["replay_accepted"] is False, replay
    names = a["key_names"]
    assert names["status"] == "key_name" and len(names["names"]) == 1, names


def test_server_counts_agree(logs: Path, pki: Pki) -> None:
    """What tessera serve printed per connection: one New per full handshake (the first
    contact, which identifies the server, and three for the ticket), one Reused per resumption
    the auditor reported."""
    with tessera_node(logs, pki) as node:
        assert node.port is not None
        results = audit_one(node.port, TICKET, attempts=3)
        assert results[TICKET].resumed == 3
        wait_for(lambda: len(outcomes(node.output())) >= 7, what="7 New/Reused lines")
        assert outcomes(node.output()) == ["New"] * 4 + ["Reused"] * 3


@pytest.mark.parametrize(
    ("args", "resumes", "reasons"),
    [
        # --no-ticket: no TLS 1.2 tickets; TLS 1.3 resumes with single-use (stateful) tickets, as
        # with openssl s_server -no_ticket; psk_ke alone is still refused
        (
            ("--no-ticket",),
            {ID, PSK},
            {TICKET: Reason.NO_TICKET_ISSUED, PSK_KE: Reason.PSK_MODE_REFUSED},
        ),
        (("--no-cache",), {TICKET, PSK}, {ID: Reason.NO_SESSION_ID_ISSUED}),
        (("--num-tickets", "0"), {ID, TICKET}, {PSK: Reason.NO_TICKET_ISSUED}),
        (("--stateful-tickets",), {ID, TICKET, PSK}, {PSK_KE: Reason.PSK_MODE_REFUSED}),
        (
            ("--tls1_3",),
            {PSK},
            {ID: Reason.VERSION_NOT_ENABLED, TICKET: Reason.VERSION_NOT_ENABLED},
        ),
        (("--tls1_2",), {ID, TICKET}, {PSK: Reason.VERSION_NOT_ENABLED}),
    ],
    ids=["no-ticket", "no-cache", "num-tickets-0", "stateful-tickets", "tls1_3", "tls1_2"],
)
def test_resumption_switches(logs: Path, pki: Pki, args: tuple[str, ...],
                             resumes: set[Mechanism], reasons: dict[Mechanism, Reason]) -> None:  # fmt: skip
    with tessera_node(logs, pki, *args) as node:
        assert node.port is not None
        results = audit_one(node.port, ID, TICKET, PSK, PSK_KE)
    for m, r in results.items():
        if m in resumes:
            assert r.verdict == "resumes", (m, r.reason, r.evidence)
        else:
            assert r.resumed == 0, (m, r.evidence)
        if m in reasons:
            assert r.reason is reasons[m], (m, r.reason, r.evidence)


def test_stateful_tickets_have_no_key_name(logs: Path, pki: Pki) -> None:
    """Stateful TLS 1.3 tickets are ids into the cache: no key name in them; the TLS 1.2
    tickets (RFC 5077, sealed under the keyring) have one."""
    with tessera_node(logs, pki, "--stateful-tickets") as node:
        assert node.port is not None
        report = audit_one(node.port, TICKET, PSK)
    assert report[PSK].issued.ticket_size is not None and report[PSK].issued.ticket_size < 64
    from tessera.audit.keynames import analyse

    tls13 = [t for h in report[PSK].handshakes for t in h.tickets]
    assert analyse(tls13).status is KeyNameStatus.NO_KEY_NAME
    tls12 = [t for h in report[TICKET].handshakes for t in h.tickets]
    assert analyse(tls12).status is KeyNameStatus.KEY_NAME


def test_two_nodes_sharing_a_key_file(logs: Path, pki: Pki, tmp_path: Path) -> None:
    """Same ticket keys, separate session caches: tickets and PSKs resume across the pair,
    session ids only where they were issued; both nodes show the key file's key name."""
    name = key_file(tmp_path / "shared.key")
    keys = ("--ticket-keys", str(tmp_path / "shared.key"))
    with tessera_node(logs, pki, *keys) as a, tessera_node(logs, pki, *keys) as b:
        assert a.port is not None and b.port is not None
        report = audit_backends([a.port, b.port], ID, TICKET, PSK, server_type=ServerKind.TESSERA)
    la, lb = f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"
    cells = {(c.mechanism, c.source, c.target): c for c in report.matrix}
    assert len(cells) == 3 * 4
    for src in (la, lb):
        for dst in (la, lb):
            assert cells[(TICKET, src, dst)].resumed, cells[(TICKET, src, dst)]
            assert cells[(PSK, src, dst)].resumed, cells[(PSK, src, dst)]
            id_cell = cells[(ID, src, dst)]
            assert id_cell.resumed is (src == dst), id_cell
            if src != dst:
                assert id_cell.outcome.reason is Reason.SESSION_ID_UNKNOWN
    for a_report in report.addresses:
        assert a_report.key_names.names == (name,)
    assert not any("different ticket keys" in w for w in report.warnings)
    # Default expectations: ids resume on each node alone, not across: per-host caches, a
    # warning (with the tessera remedy), not a failure.
    assert not report.failed_checks, report.failed_checks
    (warning,) = report.warned_checks
    assert warning.name == "id across backends"
    assert warning.remedies == ("give every node the same --redis URL (it shares the session "
                                "cache and the ticket keys)",)  # fmt: skip
    assert report.exit_code == 0


def test_two_nodes_with_different_key_files(logs: Path, pki: Pki, tmp_path: Path) -> None:
    name_a = key_file(tmp_path / "a.key")
    name_b = key_file(tmp_path / "b.key")
    with (
        tessera_node(logs, pki, "--ticket-keys", str(tmp_path / "a.key")) as a,
        tessera_node(logs, pki, "--ticket-keys", str(tmp_path / "b.key")) as b,
    ):
        assert a.port is not None and b.port is not None
        rc, doc = check_json("--backends", f"127.0.0.1:{a.port},127.0.0.1:{b.port}",
                             "--sni", "localhost", "--attempts", "2",
                             "--mechanisms", "ticket,psk", "--expect", "ticket,psk")  # fmt: skip
    la, lb = f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"
    assert rc == 1
    assert address(doc, la)["key_names"]["names"] == [name_a.hex()]
    assert address(doc, lb)["key_names"]["names"] == [name_b.hex()]
    for cell in doc["matrix"]:
        same = cell["from"] == cell["to"]
        assert cell["resumed"] is same, cell
        if not same:
            assert cell["reason"] == "ticket_key_unknown", cell
    (warning,) = [w for w in doc["warnings"] if "different ticket keys" in w]
    assert la in warning and lb in warning
    failed = {c["name"]: c for c in doc["checks"] if not c["passed"]}
    assert set(failed) == {
        f"{m} {x} → {y}" for m in ("ticket", "psk") for x, y in ((la, lb), (lb, la))
    }
    # tessera serve names itself nowhere over an echo: the remedy is the generic one.
    assert {a["server"]["kind"] for a in doc["addresses"]} == {"generic"}
    assert "ssl_session_ticket_key" in failed[f"ticket {la} → {lb}"]["remedies"][0]


def test_rotation_seen_during_watch(logs: Path, pki: Pki) -> None:
    """A key rotated every 2 s, watched every 0.6 s: the census sees each new key and
    estimates the period to within one probe interval. (tessera's keyring rotates at the first
    use after the period, here a probe: the keys live 2.4 s.)"""
    interval, rotation = 0.6, 2.0
    with tessera_node(logs, pki, "--ticket-rotation", str(rotation), "--ticket-keep", "1") as node:
        rc, doc = check_json(f"127.0.0.1:{node.port}", "--sni", "localhost",
                             "--mechanisms", "psk", "--attempts", "1", "--expect", "none",
                             "--watch", "7s", "--interval", f"{interval}s")  # fmt: skip
    assert rc == 0
    census = doc["census"]
    (c,) = census["addresses"]
    assert c["key_names"]["status"] == "key_name"
    assert len(c["keys"]) >= 3 and len(c["rotations_at_s"]) >= 2, c
    assert abs(c["estimated_rotation_period_s"] - rotation) <= interval, c
    assert c["several_keys_at_once"] is False
    assert census["rounds"] >= 11


def test_table_names_the_failing_checks(logs: Path, pki: Pki) -> None:
    with tessera_node(logs, pki, "--no-ticket") as node:
        rc, out = check_cli(f"127.0.0.1:{node.port}", "--sni", "localhost", "--attempts", "1",
                            "--expect", "id,ticket")  # fmt: skip
    assert rc == 1, out
    # Not a terminal: plain ASCII tables.
    assert re.search(r"\| TLS 1\.2 session id\s+\| 1/1 ", out), out
    assert re.search(r"\| TLS 1\.2 ticket\s+\| not offered ", out), out
    assert f"✗ 127.0.0.1:{node.port} ticket\n    0/1 resumed (no ticket issued" in out, out
    assert "fix: drop --no-ticket" not in out  # unidentified: the generic remedy
    assert "fix: turn session tickets on (nginx ssl_session_tickets" in out, out
    assert "1 check(s) failed" in out, out


def test_unreachable_target_exits_3_with_one_message() -> None:
    port = free_port()  # nothing listens there
    rc, doc = check_json(f"127.0.0.1:{port}", "--attempts", "1", "--mechanisms", "id,psk")
    assert rc == 3
    a = address(doc, f"127.0.0.1:{port}")
    assert a["reachable"] is False and a["mechanisms"] == []
    assert doc["errors"] == [f"cannot connect to 127.0.0.1:{port}: connection refused"]
    rc, out = check_cli(f"127.0.0.1:{port}", "--attempts", "1")
    assert rc == 3
    assert out.strip() == f"error: cannot connect to 127.0.0.1:{port}: connection refused", out


def test_resolve_all_audits_every_address(everything: Peer) -> None:
    rc, doc = check_json(f"localhost:{everything.port}", "--resolve-all", "--attempts", "1",
                         "--mechanisms", "ticket,psk")  # fmt: skip
    assert rc == 0, doc["checks"]
    labels = [(a["address"], a["role"], a["sni"]) for a in doc["addresses"]]
    assert (f"127.0.0.1:{everything.port}", "backend", "localhost") in labels
    assert all(role == "backend" for _, role, _ in labels)

"""``tessera check`` against ``openssl s_server`` configured on purpose, and its verdicts
compared with OpenSSL's own client: ``s_client -reconnect`` (TLS 1.2: New/Reused on five
reconnections, with and without tickets), ``-sess_out``/``-sess_in`` (TLS 1.3 PSK) and
``-early_data`` (0-RTT). The 0-RTT replay probe is checked against what s_server prints: the
early data it received, once or twice.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from audit_helpers import address, audit_one, check_json, mechanism, s_server
from peers import HTTP_GET, TICKET_ARRIVED, Peer, openssl_s_client, openssl_s_client_steps
from resumption_helpers import outcomes

from conftest import Pki, free_port, require_program
from tessera.audit import Mechanism, Reason
from tessera.audit.mechanisms import EARLY_DATA

pytestmark = pytest.mark.interop

ID, TICKET, PSK, PSK_KE, EARLY = (Mechanism.SESSION_ID, Mechanism.TICKET, Mechanism.PSK,
                                  Mechanism.PSK_KE, Mechanism.EARLY_DATA)  # fmt: skip


@dataclass(frozen=True)
class Variant:
    args: tuple[str, ...]
    www: bool  # -www (s_server cannot combine it with -early_data)
    resumes: frozenset[Mechanism]  # what the auditor must find resuming N/N
    reasons: dict[Mechanism, Reason]  # why the others do not


VARIANTS = {
    "default": Variant((), True, frozenset({ID, TICKET, PSK}),
                       {PSK_KE: Reason.PSK_MODE_REFUSED, EARLY: Reason.EARLY_DATA_REFUSED}),
    "no_ticket": Variant(("-no_ticket",), True, frozenset({ID, PSK}),
                         {TICKET: Reason.NO_TICKET_ISSUED}),
    "no_cache": Variant(("-no_cache",), True, frozenset({TICKET, PSK}),
                        {ID: Reason.NO_SESSION_ID_ISSUED}),
    "no_ticket_no_cache": Variant(("-no_ticket", "-no_cache"), True, frozenset(),
                                  {ID: Reason.NO_SESSION_ID_ISSUED,
                                   TICKET: Reason.NO_TICKET_ISSUED,
                                   PSK: Reason.STATEFUL_TICKET_UNKNOWN}),
    "num_tickets_0": Variant(("-num_tickets", "0"), True, frozenset({ID, TICKET}),
                             {PSK: Reason.NO_TICKET_ISSUED}),
    "allow_no_dhe_kex": Variant(("-allow_no_dhe_kex",), True, frozenset({ID, TICKET, PSK, PSK_KE}),
                                {}),
    "early_data": Variant(("-early_data",), False, frozenset({ID, TICKET, PSK, EARLY}), {}),
    "early_data_no_anti_replay": Variant(("-early_data", "-no_anti_replay"), False,
                                         frozenset({ID, TICKET, PSK, EARLY}), {}),
}  # fmt: skip


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_program("openssl")
    d = tmp_path_factory.mktemp("check-openssl")
    (d / "early.txt").write_bytes(b"early data from s_client\n")
    return d


def start(variant: Variant, logs: Path, pki: Pki) -> Peer:
    if variant.www:
        return s_server(logs, pki, *variant.args)
    port = free_port()
    argv = ["openssl", "s_server", "-accept", str(port), "-cert", str(pki.ecdsa_cert),
            "-key", str(pki.ecdsa_key), *variant.args]  # fmt: skip
    return Peer(argv, port=port, log_dir=logs, name="s_server-raw", stdin=subprocess.PIPE)


def s_client_reused_tls12(port: int, *args: str) -> bool:
    """s_client -tls1_2 -reconnect: True when the five reconnections were Reused, False when
    they were New (anything else fails the test)."""
    out = openssl_s_client(port, "-tls1_2", "-reconnect", *args)
    found = outcomes(out)
    assert len(found) == 6 and found[0] == "New", out
    assert len(set(found[1:])) == 1, f"s_client reused only sometimes: {found}\n{out}"
    return found[1] == "Reused"


def s_client_tls13(server: Peer, www: bool, *args: str) -> str:
    """s_client -tls1_3 reading what comes after the handshake: a -www server's page (its
    tickets, if any, come before it), or a raw s_server's first ticket (the -early_data
    variants issue them)."""
    assert server.port is not None
    if www:
        return openssl_s_client(server.port, "-tls1_3", "-ign_eof", *args, input=HTTP_GET)
    return openssl_s_client_steps(server.port, "-tls1_3", *args, until=TICKET_ARRIVED)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_verdicts_agree_with_openssl_s_client(name: str, logs: Path, pki: Pki,
                                              tmp_path: Path) -> None:  # fmt: skip
    variant = VARIANTS[name]
    with start(variant, logs, pki) as server:
        assert server.port is not None
        results = audit_one(server.port, attempts=2)
        for m, r in results.items():
            if m in variant.resumes:
                assert r.verdict == "resumes" and r.resumed == 2, (m, r.evidence)
                assert r.reason is None
            else:
                assert r.resumed == 0, (m, r.evidence)
                if m in variant.reasons:
                    assert r.reason is variant.reasons[m], (m, r.reason, r.evidence)
        # OpenSSL's client, on the same server.
        id_reused = s_client_reused_tls12(server.port, "-no_ticket")
        assert id_reused == (ID in variant.resumes), name
        any12_reused = s_client_reused_tls12(server.port)
        assert any12_reused == bool({ID, TICKET} & variant.resumes), name
        sess = tmp_path / "sess.pem"
        first = s_client_tls13(server, variant.www, "-sess_out", str(sess))
        assert outcomes(first) == ["New"], first
        if not sess.exists():  # no ticket: nothing to resume with
            assert PSK not in variant.resumes and "NewSessionTicket" not in first, first
            assert results[PSK].reason is Reason.NO_TICKET_ISSUED
            return
        second = s_client_tls13(server, variant.www, "-sess_in", str(sess))
        assert outcomes(second) == (["Reused"] if PSK in variant.resumes else ["New"]), second
        if EARLY in variant.resumes:
            sess2 = tmp_path / "sess2.pem"
            s_client_tls13(server, variant.www, "-sess_out", str(sess2))
            early = s_client_tls13(server, variant.www, "-sess_in", str(sess2), "-early_data",
                                   str(logs / "early.txt"))  # fmt: skip
            assert "Early data was accepted" in early, early


def test_replay_probe_matches_what_s_server_received(logs: Path, pki: Pki) -> None:
    """With anti-replay (OpenSSL's default for 0-RTT: single-use tickets) the replayed flight's
    early data is refused; with -no_anti_replay s_server takes it a second time. Each case is
    checked in s_server's own output: the auditor's early data printed once per acceptance."""
    marker = EARLY_DATA.decode().strip()
    for args, replayed in ((("-early_data",), False),
                           (("-early_data", "-no_anti_replay"), True)):  # fmt: skip
        with start(Variant(args, False, frozenset(), {}), logs, pki) as server:
            assert server.port is not None
            result = audit_one(server.port, EARLY, attempts=1)[EARLY]
            replay = result.replay
            assert replay is not None and replay.tested and replay.first_accepted
            assert replay.identical_first_flight, replay.evidence
            assert replay.replay_accepted is replayed, replay.evidence
            assert ("ACCEPTED the early data twice" in replay.evidence) is replayed
            # One 0-RTT attempt, the probe's first flight, and its replay when accepted.
            out = server.stop()
            assert out.count(marker) == 2 + int(replayed), out


def test_stateful_tickets_without_a_cache_get_the_cache_remedy(logs: Path, pki: Pki) -> None:
    """-no_ticket -no_cache: TLS 1.3 tickets are 32-byte session ids and the cache that would
    find them is off. The cause is the cache (not "unknown key"), the server names itself by
    its -www page, and the remedy says to drop -no_cache (and -no_ticket)."""
    with s_server(logs, pki, "-no_ticket", "-no_cache") as server:
        label = f"127.0.0.1:{server.port}"
        rc, doc = check_json(label, "--attempts", "2", "--mechanisms", "id,ticket,psk")
    assert rc == 1
    a = address(doc, label)
    assert a["server"] == {"kind": "openssl", "product": "openssl s_server",
                           "evidence": "its HTTP answer is openssl s_server's page"}  # fmt: skip
    psk = mechanism(a, "psk")
    assert psk["reason"] == "stateful_ticket_unknown" and psk["issued"]["ticket_size"] == 32
    assert "32-byte ticket is too short to carry a session" in psk["evidence"], psk
    (failed,) = [c for c in doc["checks"] if c["status"] == "failed"]
    assert failed["name"] == f"{label} resumes"
    fixes = " | ".join(failed["remedies"])
    assert "drop -no_cache" in fixes and "drop -no_ticket" in fixes, fixes


def test_a_version_the_server_refuses_is_not_enabled(logs: Path, pki: Pki) -> None:
    """s_server -tls1_2 answers a TLS 1.3-only ClientHello with protocol_version: "not enabled"
    (not "connection failed"); the TLS 1.2 mechanisms pass the default, and --expect psk fails
    with the remedy."""
    with s_server(logs, pki, "-tls1_2") as server:
        label = f"127.0.0.1:{server.port}"
        rc, doc = check_json(label, "--attempts", "1", "--mechanisms", "id,psk")
        assert rc == 0, doc["checks"]
        psk = mechanism(address(doc, label), "psk")
        assert (psk["verdict"], psk["reason"]) == ("not enabled", "version_not_enabled"), psk
        assert "protocol_version" in psk["evidence"]
        rc, doc = check_json(label, "--attempts", "1", "--mechanisms", "id,psk",
                             "--expect", "psk")  # fmt: skip
    assert rc == 1
    (failed,) = [c for c in doc["checks"] if c["status"] == "failed"]
    assert failed["remedies"] == ["allow TLS 1.3 (SSL_CTX_set_max_proto_version; s_server: drop "
                                  "-tls1_2)"]  # fmt: skip

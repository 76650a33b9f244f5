"""``tessera check`` against Debian's nginx, configured on purpose, and two nginx instances
with different ``ssl_session_ticket_key`` files behind HAProxy (TCP mode, round robin): the
auditor must name both backends, report that they do not share ticket keys and say, in nginx's
terms (nginx names itself in its Server header), what to change. Two nginx sharing one key file
pass the default ``--expect any`` (their per-host session caches are a warning, pointing at
``--expect ticket,psk``). TLS 1.2 verdicts are compared with ``openssl s_client -reconnect`` on
the same server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_helpers import (
    address,
    audit_one,
    check_cli,
    check_json,
    haproxy,
    mechanism,
    nginx,
    program,
)
from peers import openssl_s_client
from resumption_helpers import outcomes

from conftest import Pki
from tessera.audit import Mechanism, Reason
from tessera.audit.keynames import KeyNameStatus

pytestmark = pytest.mark.interop

ID, TICKET, PSK = Mechanism.SESSION_ID, Mechanism.TICKET, Mechanism.PSK


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    program("nginx")
    program("haproxy")
    return tmp_path_factory.mktemp("check-nginx")


def reused_after_first(port: int, *args: str) -> list[str]:
    out = openssl_s_client(port, "-tls1_2", "-reconnect", *args)
    found = outcomes(out)
    assert len(found) == 6 and found[0] == "New", out
    return found[1:]


def test_shared_session_cache(logs: Path, pki: Pki) -> None:
    """ssl_session_cache shared: session ids resume; tickets (on by default) too."""
    with nginx(logs, pki, "ssl_session_cache shared:TLS:1m;") as server:
        assert server.port is not None
        r = audit_one(server.port, ID, TICKET, PSK)
        assert reused_after_first(server.port, "-no_ticket") == ["Reused"] * 5
    assert r[ID].verdict == "resumes" and r[TICKET].verdict == "resumes"
    assert r[PSK].verdict == "resumes"
    assert r[TICKET].issued.lifetime_hint == 300  # nginx's default ssl_session_timeout


def test_tickets_off(logs: Path, pki: Pki) -> None:
    """ssl_session_tickets off with nginx's default cache ("none": a session id is sent but
    nothing is stored): nothing resumes, and the reasons say why."""
    with nginx(logs, pki, "ssl_session_tickets off;") as server:
        assert server.port is not None
        r = audit_one(server.port, ID, TICKET, PSK)
        assert reused_after_first(server.port) == ["New"] * 5
        assert reused_after_first(server.port, "-no_ticket") == ["New"] * 5
    assert r[TICKET].reason is Reason.NO_TICKET_ISSUED
    assert "no session_ticket extension" in r[TICKET].evidence
    assert r[ID].reason is Reason.SESSION_ID_UNKNOWN and r[ID].issued.session_id is True
    # TLS 1.3 tickets become ids into a cache that keeps nothing: the cache is the cause.
    assert r[PSK].resumed == 0 and r[PSK].reason is Reason.STATEFUL_TICKET_UNKNOWN
    assert r[PSK].issued.ticket_size == 32


def test_default_cache_gets_the_nginx_remedy(logs: Path, pki: Pki) -> None:
    """nginx's default session cache ("none") issues session ids it cannot resume: a warning,
    with the directive that fixes it; nginx is named from its Server header."""
    with nginx(logs, pki, "") as server:
        label = f"127.0.0.1:{server.port}"
        rc, doc = check_json(label, "--sni", "localhost", "--attempts", "2",
                             "--mechanisms", "id,ticket,psk")  # fmt: skip
    assert rc == 0, doc["checks"]
    front = address(doc, label)
    assert front["server"]["kind"] == "nginx", front["server"]
    assert front["server"]["evidence"].startswith("HTTP Server header: nginx/"), front["server"]
    (warning,) = [c for c in doc["checks"] if c["status"] == "warning"]
    assert warning["name"] == f"{label} id"
    assert "ssl_session_cache shared:SSL:10m;" in warning["remedies"][0], warning


def test_tickets_off_with_shared_cache(logs: Path, pki: Pki) -> None:
    """Tickets off, shared cache on: TLS 1.3 tickets become ids into the cache (stateful):
    they resume, and they carry no key name."""
    conf = "ssl_session_cache shared:TLS:1m; ssl_session_tickets off;"
    with nginx(logs, pki, conf) as server:
        assert server.port is not None
        r = audit_one(server.port, ID, TICKET, PSK)
    assert r[ID].verdict == "resumes" and r[PSK].verdict == "resumes"
    assert r[TICKET].reason is Reason.NO_TICKET_ISSUED
    assert r[PSK].issued.ticket_size == 32


@pytest.fixture(scope="module")
def key_files(logs: Path) -> tuple[Path, Path]:
    a, b = logs / "a.key", logs / "b.key"
    for f in (a, b):
        f.write_bytes(os.urandom(80))
        f.chmod(0o600)
    return a, b


@pytest.fixture(scope="module")
def fleet(logs: Path, pki: Pki, key_files: tuple[Path, Path]) -> Iterator[tuple[int, int, int]]:
    """Two nginx with different ticket keys (and their own caches) behind HAProxy."""
    ka, kb = key_files
    with (
        nginx(logs, pki, f"ssl_session_ticket_key {ka};") as a,
        nginx(logs, pki, f"ssl_session_ticket_key {kb};") as b,
    ):
        assert a.port is not None and b.port is not None
        with haproxy(logs, [a.port, b.port]) as lb:
            assert lb.port is not None
            yield lb.port, a.port, b.port


def test_unshared_ticket_keys_behind_haproxy(fleet: tuple[int, int, int],
                                             key_files: tuple[Path, Path]) -> None:  # fmt: skip
    lb, a, b = fleet
    la, lb_label, lbb = f"127.0.0.1:{a}", f"127.0.0.1:{lb}", f"127.0.0.1:{b}"
    name_a, name_b = (f.read_bytes()[:16].hex() for f in key_files)
    rc, doc = check_json(lb_label, "--backends", f"{la},{lbb}", "--sni", "localhost",
                         "--attempts", "3", "--mechanisms", "id,ticket,psk")  # fmt: skip
    assert rc == 1
    # Each backend alone: tickets resume, under its own key file's name.
    for label, name in ((la, name_a), (lbb, name_b)):
        backend = address(doc, label, "backend")
        assert mechanism(backend, "ticket")["verdict"] == "resumes", backend
        assert mechanism(backend, "psk")["verdict"] == "resumes", backend
        assert backend["key_names"]["status"] == KeyNameStatus.KEY_NAME.value
        assert backend["key_names"]["names"] == [name]
    # Across them: refused, the key name offered is not one the other backend issues under.
    for cell in doc["matrix"]:
        if cell["from"] != cell["to"] and cell["mechanism"] in ("ticket", "psk"):
            assert not cell["resumed"] and cell["reason"] == "ticket_key_unknown", cell
            assert cell["offered_key_name"] in (name_a, name_b)
            assert "is not one" in cell["evidence"], cell
    # The load balancer's address shows both keys, each attributed to its backend.
    front = address(doc, lb_label, "target")
    assert set(front["key_names"]["names"]) == {name_a, name_b}, front["key_names"]
    owners = {o["key_name"]: o["backends"] for o in front["key_owners"]}
    assert owners == {name_a: [la], name_b: [lbb]}
    assert mechanism(front, "ticket")["resumed"] < 3  # round robin lands on the other node
    warnings = " | ".join(doc["warnings"])
    assert "backends use different ticket keys" in warnings
    assert la in warnings and lbb in warnings
    failed = {c["name"]: c for c in doc["checks"] if not c["passed"]}
    assert f"ticket {la} → {lbb}" in failed and f"ticket {lbb} → {la}" in failed
    assert f"psk {la} → {lbb}" in failed
    # What to change, in nginx's terms (each backend and the balancer say they are nginx).
    assert {a["server"]["kind"] for a in doc["addresses"]} == {"nginx"}
    (fix,) = failed[f"ticket {la} → {lbb}"]["remedies"]
    assert "the same ssl_session_ticket_key files" in fix and "tessera keys sync" in fix, fix
    # nginx's default cache keeps nothing: session ids are a warning on each node, with the
    # directive; across nodes they are not required (they do not resume on either alone).
    assert f"id {la} → {lbb}" not in failed
    warned = {c["name"]: c for c in doc["checks"] if c["status"] == "warning"}
    assert "ssl_session_cache shared:SSL:10m;" in warned[f"{la} id"]["remedies"][0], warned


def test_haproxy_round_robin_seen_by_openssl(fleet: tuple[int, int, int]) -> None:
    """OpenSSL's client through the same HAProxy: reconnections alternate between the nodes,
    so its ticket (and session id) resumes on every other connection at most."""
    lb, _, _ = fleet
    reused = reused_after_first(lb)
    assert reused.count("Reused") <= 3 and "New" in reused, reused


@pytest.fixture(scope="module")
def shared_fleet(logs: Path, pki: Pki, key_files: tuple[Path, Path]) -> Iterator[tuple[int, int]]:
    """Two nginx sharing one ticket key file (each with its own session cache)."""
    key = key_files[0]
    conf = f"ssl_session_ticket_key {key}; ssl_session_cache shared:TLS:1m;"
    with nginx(logs, pki, conf) as a, nginx(logs, pki, conf) as b:
        assert a.port is not None and b.port is not None
        yield a.port, b.port


def test_a_correctly_shared_fleet_passes_the_default(shared_fleet: tuple[int, int]) -> None:
    """Tickets and PSKs resume across; session ids only where they were issued: exit 0 under
    the default --expect, the per-host caches named in one warning pointing at --expect
    ticket,psk; with --expect ticket,psk no warning is left."""
    a, b = (f"127.0.0.1:{p}" for p in shared_fleet)
    rc, out = check_cli("--backends", f"{a},{b}", "--sni", "localhost", "--attempts", "2",
                        "--mechanisms", "id,ticket,psk")  # fmt: skip
    assert rc == 0, out
    flat = " ".join(out.split())
    assert "1 warning(s) (" in flat and "! id across backends" in flat, out
    assert "nginx's session cache is per host" in flat and "(--expect ticket,psk)" in flat, out
    rc, doc = check_json("--backends", f"{a},{b}", "--sni", "localhost", "--attempts", "2",
                         "--mechanisms", "ticket,psk", "--expect", "ticket,psk")  # fmt: skip
    assert rc == 0, doc["checks"]
    assert all(c["status"] == "passed" for c in doc["checks"]), doc["checks"]
    assert all(c["resumed"] for c in doc["matrix"]), doc["matrix"]

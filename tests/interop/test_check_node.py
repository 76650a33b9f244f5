"""``tessera check`` against two Node.js ``tls`` servers sharing one ``ticketKeys`` file.

With Node's default ``sessionIdContext`` (derived from each process's command line, which
differs) neither server resumes the other's tickets although both seal under the same key: the
auditor must say so — the same key name came back, so the key was known and the session was
refused — and tell the operator to set one explicit ``sessionIdContext``. With the same explicit
context both resume each other's tickets and PSKs, and the default ``--expect any`` passes.
Node keeps no session cache: its session ids are issued and never resumed (a warning, with the
Node remedy).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_helpers import address, check_cli, check_json, mechanism, node_tls

from conftest import Pki, require_program

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_program("node")
    return tmp_path_factory.mktemp("check-node")


@pytest.fixture(scope="module")
def keys(logs: Path) -> Path:
    path = logs / "ticket.keys"
    path.write_bytes(os.urandom(48))  # Node's ticketKeys: name 16 | HMAC 16 | AES 16
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def default_context(logs: Path, pki: Pki, keys: Path) -> Iterator[tuple[str, str]]:
    with node_tls(logs, pki, keys) as a, node_tls(logs, pki, keys) as b:
        yield f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"


@pytest.fixture(scope="module")
def same_context(logs: Path, pki: Pki, keys: Path) -> Iterator[tuple[str, str]]:
    with node_tls(logs, pki, keys, "fleet") as a, node_tls(logs, pki, keys, "fleet") as b:
        yield f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"


def test_default_session_context_is_the_cause(default_context: tuple[str, str],
                                              keys: Path) -> None:  # fmt: skip
    a, b = default_context
    rc, doc = check_json("--backends", f"{a},{b}", "--attempts", "2",
                         "--mechanisms", "id,ticket,psk", "--server-type", "node")  # fmt: skip
    assert rc == 1
    name = keys.read_bytes()[:16].hex()
    for label in (a, b):
        backend = address(doc, label, "backend")
        assert backend["key_names"]["names"] == [name]  # one key name on both
        assert mechanism(backend, "ticket")["verdict"] == "resumes"
        assert mechanism(backend, "psk")["verdict"] == "resumes"
        ids = mechanism(backend, "id")
        assert ids["verdict"] == "does not resume" and ids["reason"] == "session_id_unknown"
    across = [c for c in doc["matrix"] if c["from"] != c["to"] and c["mechanism"] != "id"]
    assert len(across) == 4
    for cell in across:
        assert not cell["resumed"]
        # Not "unknown key": the server answered under the very key name we offered.
        assert cell["reason"] == "session_refused_same_key", cell
        assert cell["offered_key_name"] == name
        assert f"under the key name of ours ({name[:12]}…)" in cell["evidence"], cell
    failed = {c["name"]: c for c in doc["checks"] if c["status"] == "failed"}
    assert set(failed) == {f"{m} {x} → {y}" for m in ("ticket", "psk") for x, y in ((a, b), (b, a))}
    for c in failed.values():
        (fix,) = c["remedies"]
        assert "the same explicit sessionIdContext" in fix, fix
    warned = {c["name"]: c for c in doc["checks"] if c["status"] == "warning"}
    assert "'newSession'" in warned[f"{a} id"]["remedies"][0]


def test_same_explicit_context_resumes_across(same_context: tuple[str, str]) -> None:
    a, b = same_context
    rc, doc = check_json("--backends", f"{a},{b}", "--attempts", "2",
                         "--mechanisms", "ticket,psk", "--expect", "ticket,psk")  # fmt: skip
    assert rc == 0, [c for c in doc["checks"] if not c["passed"]]
    assert len(doc["matrix"]) == 8 and all(c["resumed"] for c in doc["matrix"]), doc["matrix"]
    assert not [c for c in doc["checks"] if c["status"] != "passed"]


def test_the_table_says_what_to_change(default_context: tuple[str, str]) -> None:
    """The text output: the cause in the matrix, the check and its remedy, once."""
    a, b = default_context
    rc, out = check_cli("--backends", f"{a},{b}", "--attempts", "1", "--mechanisms", "ticket",
                        "--server-type", "node")  # fmt: skip
    assert rc == 1, out
    assert "Node.js (--server-type)" in out, out
    assert f"✗ ticket {a} → {b}" in out and f"✗ ticket {b} → {a}" in out, out
    flat = " ".join(out.split())
    assert "fix: give every server the same explicit sessionIdContext" in flat, out
    assert flat.count("fix: as above") == 1, out

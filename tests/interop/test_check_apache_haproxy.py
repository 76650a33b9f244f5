"""``tessera check`` against Apache httpd with mod_ssl and against HAProxy terminating TLS, each
configured on purpose: the verdicts, the causes and the remedies in each server's own terms.

Apache names itself in its ``Server`` header. HAProxy answering with ``http-request return``
does not name itself (no ``Server`` header): it is unidentified (generic remedies) unless
``--server-type haproxy`` says what it is.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_helpers import address, apache, check_json, haproxy_tls, mechanism, program

from conftest import Pki

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    program("apache2")
    program("haproxy")
    d = tmp_path_factory.mktemp("check-apache")
    d.chmod(0o755)  # Apache's child runs as nobody
    return d


def key_file(path: Path, size: int) -> str:
    path.write_bytes(os.urandom(size))
    path.chmod(0o600)
    return path.read_bytes()[:16].hex()


def test_apache_without_a_session_cache(logs: Path, pki: Pki) -> None:
    """No SSLSessionCache: mod_ssl issues no session id (tickets still work), which the default
    accepts; --expect id fails with the SSLSessionCache directive. Apache is named from its
    Server header."""
    with apache(logs, pki, "SSLSessionTickets on") as server:
        label = f"127.0.0.1:{server.port}"
        args = (label, "--sni", "localhost", "--attempts", "2", "--mechanisms", "id,ticket,psk")
        rc, doc = check_json(*args)
        assert rc == 0, doc["checks"]
        rc, expecting = check_json(*args, "--expect", "id,ticket")
    assert rc == 1
    a = address(doc, label)
    assert a["server"]["kind"] == "apache" and a["server"]["product"].startswith("Apache/2.4")
    assert mechanism(a, "ticket")["verdict"] == "resumes"
    ids = mechanism(a, "id")
    assert (ids["verdict"], ids["reason"]) == ("not offered", "no_session_id_issued"), ids
    (failed,) = [c for c in expecting["checks"] if c["status"] == "failed"]
    assert failed["name"] == f"{label} id"
    assert failed["remedies"][0].startswith("add `SSLSessionCache shmcb:"), failed


@pytest.fixture(scope="module")
def apache_pair(logs: Path, pki: Pki) -> Iterator[tuple[str, str, str, str]]:
    """Two Apache with a session cache each and their own SSLSessionTicketKeyFile."""
    names, labels = [], []
    servers = []
    try:
        for i in range(2):
            key = logs / f"apache-{i}.key"
            names.append(key_file(key, 48))
            cache = f"shmcb:{logs}/scache-{i}(512000)"
            conf = f"SSLSessionCache {cache}\nSSLSessionTicketKeyFile {key}"
            servers.append(apache(logs, pki, conf))
            labels.append(f"127.0.0.1:{servers[-1].port}")
        yield labels[0], labels[1], names[0], names[1]
    finally:
        for s in servers:
            s.stop()


def test_apache_pair_with_different_ticket_key_files(apache_pair: tuple[str, str, str, str]) -> None:  # fmt: skip
    a, b, name_a, name_b = apache_pair
    rc, doc = check_json("--backends", f"{a},{b}", "--sni", "localhost", "--attempts", "2",
                         "--mechanisms", "id,ticket,psk")  # fmt: skip
    assert rc == 1
    assert address(doc, a)["key_names"]["names"] == [name_a]
    assert address(doc, b)["key_names"]["names"] == [name_b]
    for label in (a, b):  # each alone: every mechanism resumes (the cache is on)
        for m in ("id", "ticket", "psk"):
            assert mechanism(address(doc, label), m)["verdict"] == "resumes"
    for cell in doc["matrix"]:
        if cell["from"] != cell["to"] and cell["mechanism"] != "id":
            assert cell["reason"] == "ticket_key_unknown", cell
    failed = {c["name"]: c for c in doc["checks"] if c["status"] == "failed"}
    assert set(failed) == {f"{m} {x} → {y}" for m in ("ticket", "psk") for x, y in ((a, b), (b, a))}
    assert (
        "the same SSLSessionTicketKeyFile on every node"
        in failed[f"ticket {a} → {b}"]["remedies"][0]
    )
    (warning,) = [c for c in doc["checks"] if c["status"] == "warning"]
    assert warning["name"] == "id across backends"
    assert "SSLSessionCache redis:HOST:PORT" in warning["remedies"][0], warning


def test_haproxy_terminators_with_different_keys(logs: Path, pki: Pki) -> None:
    """Two HAProxy terminating TLS, each with its own tls-ticket-keys file: tickets resume on
    each, not across (unknown key). Unidentified, the remedy is generic; told it is HAProxy,
    the remedy is the tls-ticket-keys file and the runtime API."""
    keys = []
    names = []
    for i in range(2):
        k = logs / f"haproxy-{i}.keys"
        raw = [os.urandom(48) for _ in range(3)]  # HAProxy wants three at least
        k.write_text("".join(base64.b64encode(r).decode() + "\n" for r in raw))
        k.chmod(0o600)
        keys.append(k)
        names.append(raw[1][:16].hex())  # the next-to-last key encrypts
    with haproxy_tls(logs, pki, keys[0]) as x, haproxy_tls(logs, pki, keys[1]) as y:
        a, b = f"127.0.0.1:{x.port}", f"127.0.0.1:{y.port}"
        args = ("--backends", f"{a},{b}", "--sni", "localhost", "--attempts", "2",
                "--mechanisms", "ticket,psk")  # fmt: skip
        rc, found = check_json(*args)
        rc2, told = check_json(*args, "--server-type", "haproxy")
    assert rc == rc2 == 1
    assert {ad["server"]["kind"] for ad in found["addresses"]} == {"generic"}
    assert address(found, a)["key_names"]["names"] == [names[0]]
    assert address(found, b)["key_names"]["names"] == [names[1]]
    for doc in (found, told):
        for cell in doc["matrix"]:
            if cell["from"] != cell["to"]:
                assert cell["reason"] == "ticket_key_unknown", cell
    generic = next(c for c in found["checks"] if c["name"] == f"ticket {a} → {b}")
    assert "HAProxy tls-ticket-keys" in generic["remedies"][0], generic
    tailored = next(c for c in told["checks"] if c["name"] == f"ticket {a} → {b}")
    fix = tailored["remedies"][0]
    assert "the same tls-ticket-keys file" in fix and "set ssl tls-key" in fix, fix

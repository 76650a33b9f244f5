"""The auditor's step after the verdict, in isolation: the causes the tickets prove (same key
name, a ticket too short to be anything but a cache id, an unknown key), the fix each cause
calls for, the remedy in each server's terms, the server named from its HTTP answer, which
checks fail and which only warn, contradictory options, ``--targets`` files, the key clock of
continuous mode, and the JSON schema's vocabularies."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest

from tessera.audit.checks import Status, contradiction, evaluate
from tessera.audit.classify import Mechanism, Outcome, Reason, classify, failed
from tessera.audit.identify import ServerKind, identify
from tessera.audit.keynames import KeyNames, KeyNameStatus
from tessera.audit.matrix import Cell, refine
from tessera.audit.mechanisms import Issued, MechanismResult, Timing
from tessera.audit.probe import Endpoint, Handshake, TicketSeen
from tessera.audit.remedy import Fix, fix_for, remedy
from tessera.audit.report import schema
from tessera.audit.watcher import _KeyClock
from tessera.cli.check import read_targets
from tessera.enums import ProtocolVersion
from tessera.session.model import ClientSession, ServerSession

KEY_A, KEY_B = b"A" * 16, b"B" * 16
EP = Endpoint("127.0.0.1", 1, "localhost")


def session13(ticket: bytes) -> ClientSession:
    state = ServerSession(ProtocolVersion.TLS1_3, 0x1301, bytes(32), False, 0.0, 7200, "localhost")
    return ClientSession(state, b"", ticket)


def seen(ticket: bytes) -> TicketSeen:
    return TicketSeen(session13(ticket), 7200, 1, 0.0)


def full_handshake(*new_tickets: bytes) -> Handshake:
    """A TLS 1.3 connection that did not resume and brought ``new_tickets``."""
    return Handshake(
        EP, version="TLSv1.3", cipher_suite=0x1301, tickets=tuple(seen(t) for t in new_tickets)
    )


def test_a_new_ticket_under_our_key_name_is_a_refused_session() -> None:
    """Node.js with shared ticketKeys and another sessionIdContext: the server opened our
    ticket (it answered under the same key name) and refused the session."""
    ours = KEY_A + os.urandom(128)
    out = classify(Mechanism.PSK, session13(ours), full_handshake(KEY_A + os.urandom(128)))
    assert out.reason is Reason.SESSION_REFUSED
    assert "under the key name of ours (414141414141…)" in out.evidence


def test_a_short_ticket_is_a_cache_id_the_cache_lacked() -> None:
    """openssl s_server -no_ticket -no_cache: 32-byte stateful tickets, no cache to find them."""
    out = classify(Mechanism.PSK, session13(os.urandom(32)), full_handshake(os.urandom(32)))
    assert out.reason is Reason.STATEFUL_TICKET_UNKNOWN and "32-byte ticket" in out.evidence
    out = classify(Mechanism.PSK, session13(os.urandom(32)), full_handshake())
    assert out.reason is Reason.STATEFUL_TICKET_UNKNOWN


def test_another_key_name_stays_undecided_until_the_key_names_are_known() -> None:
    ours = KEY_A + os.urandom(128)
    out = classify(Mechanism.PSK, session13(ours), full_handshake(KEY_B + os.urandom(128)))
    assert out.reason is Reason.TICKET_REISSUED
    assert classify(Mechanism.PSK, session13(ours), full_handshake()).reason is (
        Reason.TICKET_IGNORED
    )
    cell = Cell(Mechanism.PSK, "a:1", "b:1", True, out, KEY_A)
    proven = KeyNames(KeyNameStatus.KEY_NAME, (KEY_B,), 4, "")
    refined = refine(cell, proven)
    assert refined.outcome.reason is Reason.TICKET_KEY_UNKNOWN
    assert "is not one b:1 issues under (424242424242…)" in refined.outcome.evidence
    # Unproven key names (e.g. Go's random IVs) or our own key among them: nothing is claimed.
    assert refine(cell, KeyNames(KeyNameStatus.UNVERIFIED, (), 2, "")) == cell
    assert refine(cell, KeyNames(KeyNameStatus.KEY_NAME, (KEY_A, KEY_B), 4, "")) == cell


def test_a_protocol_version_alert_means_not_enabled() -> None:
    refused = Handshake(EP, error="AlertReceived: protocol_version (70): the peer sent a fatal")
    assert failed(Mechanism.PSK, refused) == (
        Reason.VERSION_NOT_ENABLED,
        "TLS 1.3 not enabled: the server answered AlertReceived: protocol_version (70): the "
        "peer sent a fatal",
    )
    reset = Handshake(EP, error="the server closed the connection")
    assert failed(Mechanism.TICKET, reset)[0] is Reason.CONNECTION_FAILED


def test_each_cause_has_a_fix_and_each_fix_a_generic_remedy() -> None:
    for reason in Reason:
        if reason is not Reason.CONNECTION_FAILED:
            assert fix_for(Mechanism.TICKET, reason) is not None, reason
    assert fix_for(Mechanism.SESSION_ID, Reason.SESSION_ID_UNKNOWN) is Fix.SESSION_CACHE
    assert fix_for(Mechanism.SESSION_ID, Reason.SESSION_ID_UNKNOWN, across=True) is (
        Fix.SHARED_CACHE
    )
    assert fix_for(Mechanism.TICKET, Reason.TICKET_KEY_UNKNOWN, across=True) is (
        Fix.SHARE_TICKET_KEYS
    )
    assert fix_for(Mechanism.TICKET, Reason.TICKET_REISSUED) is Fix.SPREAD  # one address
    assert fix_for(Mechanism.PSK, Reason.VERSION_NOT_ENABLED) is Fix.ENABLE_TLS13
    assert fix_for(Mechanism.SESSION_ID, Reason.VERSION_NOT_ENABLED) is Fix.ENABLE_TLS12
    for fix in Fix:
        for kind in ServerKind:
            assert remedy(fix, kind), (fix, kind)


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        (ServerKind.NGINX, "ssl_session_ticket_key"),
        (ServerKind.HAPROXY, "set ssl tls-key"),
        (ServerKind.NODE, "ticketKeys"),
        (ServerKind.APACHE, "SSLSessionTicketKeyFile"),
        (ServerKind.OPENSSL, "SSL_CTX_set_tlsext_ticket_keys"),
        (ServerKind.TESSERA, "--fleet-secret"),
        (ServerKind.GENERIC, "tessera keys sync"),
    ],
)
def test_sharing_keys_in_each_servers_terms(kind: ServerKind, words: str) -> None:
    assert words in remedy(Fix.SHARE_TICKET_KEYS, kind)


@pytest.mark.parametrize(
    ("answer", "kind", "product"),
    [
        (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n\r\n", ServerKind.NGINX, "nginx/1.22.1"),
        (b"HTTP/1.1 404 Not Found\r\nserver: Apache/2.4.71 (Debian)\r\n\r\n", ServerKind.APACHE,
         "Apache/2.4.71 (Debian)"),
        (b"HTTP/1.0 200 ok\r\n\r\n<pre>\ns_server -accept 4433 -www\n", ServerKind.OPENSSL,
         "openssl s_server"),
        (b"HTTP/1.0 200 ok\r\n\r\n<html><head><title>tessera</title>", ServerKind.TESSERA,
         "tessera serve"),
        (b"HTTP/1.1 503 Service Unavailable\r\n\r\n<h1>503 Service Unavailable</h1>\nNo server "
         b"is available to handle this request.", ServerKind.HAPROXY, "HAProxy"),
        (b"HTTP/1.1 200 OK\r\nX-Powered-By: Express\r\n\r\n", ServerKind.NODE,
         "Node.js (Express)"),
        (b"HTTP/1.1 200 OK\r\nServer: Caddy\r\n\r\n", ServerKind.GENERIC, "Caddy"),
        (b"HTTP/1.1 200 OK\r\n\r\nhello", ServerKind.GENERIC, None),
        (b"GET / HTTP/1.1\r\n", ServerKind.GENERIC, None),  # an echo server
        (b"", ServerKind.GENERIC, None),
    ],
)  # fmt: skip
def test_the_server_named_by_its_http_answer(answer: bytes, kind: ServerKind,
                                             product: str | None) -> None:  # fmt: skip
    identity = identify(answer)
    assert (identity.kind, identity.product) == (kind, product), identity
    assert identity.evidence


def result(mechanism: Mechanism, resumed: int, reason: Reason | None = None) -> MechanismResult:
    none = Timing(0, None, None, None, None)
    return MechanismResult(mechanism, "a:1", True, 2, resumed, reason, "seen", (), Issued(), None,
                           None, None, None, None, none, none)  # fmt: skip


def test_per_host_session_caches_warn_and_unshared_tickets_fail() -> None:
    """Under --expect any: ids that resume on each backend but not across are one warning with
    the shared-cache remedy; tickets that do the same fail, with the keys remedy."""
    resumes = [result(Mechanism.SESSION_ID, 2), result(Mechanism.TICKET, 2)]
    id_cell = Cell(Mechanism.SESSION_ID, "a:1", "b:1", True,
                   Outcome(False, Reason.SESSION_ID_UNKNOWN, "new id"))  # fmt: skip
    ticket_cell = Cell(Mechanism.TICKET, "a:1", "b:1", True,
                       Outcome(False, Reason.TICKET_KEY_UNKNOWN, "unknown"), KEY_A)  # fmt: skip
    kinds = {"a:1": ServerKind.NGINX, "b:1": ServerKind.NGINX}
    checks = evaluate(("any",), [("a:1", resumes), ("b:1", resumes)], [id_cell, ticket_cell],
                      kinds)  # fmt: skip
    by = {c.name: c for c in checks}
    assert by["id across backends"].status is Status.WARNING
    assert "nginx's session cache is per host" in by["id across backends"].remedies[0]
    assert by["ticket a:1 → b:1"].status is Status.FAILED
    assert "ssl_session_ticket_key" in by["ticket a:1 → b:1"].remedies[0]
    # With --expect id the ids must resume across too.
    checks = evaluate(("id",), [("a:1", resumes), ("b:1", resumes)], [id_cell], kinds)
    assert {c.name: c.status for c in checks}["id a:1 → b:1"] is Status.FAILED


def test_a_mechanism_issued_but_not_resumed_is_a_warning() -> None:
    results = [result(Mechanism.SESSION_ID, 0, Reason.SESSION_ID_UNKNOWN),
               result(Mechanism.TICKET, 2), result(Mechanism.PSK_KE, 0, Reason.PSK_MODE_REFUSED)]  # fmt: skip
    checks = evaluate(("any",), [("a:1", results)], [], {"a:1": ServerKind.APACHE})
    assert [(c.name, c.status) for c in checks] == [
        ("a:1 resumes", Status.PASSED),
        ("a:1 id", Status.WARNING),  # psk_ke is off by choice in most servers: no warning
    ]
    assert checks[1].remedies[0].startswith("add `SSLSessionCache shmcb:")


def test_contradictions() -> None:
    probed = (Mechanism.PSK,)
    assert contradiction(("id",), probed) == (
        "--expect id needs --mechanisms to include id (it is not probed)"
    )
    assert contradiction(("none", "psk"), tuple(Mechanism)) is not None
    assert contradiction(("any",), probed) is None
    assert contradiction(("psk",), probed) is None


def test_targets_file(tmp_path: Path) -> None:
    f = tmp_path / "targets"
    f.write_text(
        "# the fleet\n\nweb.example:443\n"
        "lb.example:443 sni=www.example backends=10.0.0.1:443,10.0.0.2:443 name=shop "
        "server-type=nginx  # behind the balancer\n"
    )
    lines = read_targets(str(f))
    assert [(x.target, x.sni, x.backends, x.name, x.server_type) for x in lines] == [
        ("web.example:443", None, None, None, None),
        ("lb.example:443", "www.example", "10.0.0.1:443,10.0.0.2:443", "shop", "nginx"),
    ]
    for bad, says in (("a:1 port=2", "'port=2'"), ("a:1 server-type=iis", "'iis'"),
                      ("a", "expected HOST:PORT"), ("# nothing\n", "lists no target")):  # fmt: skip
        f.write_text(bad)
        with pytest.raises(click.BadParameter, match=says):
            read_targets(str(f))
    with pytest.raises(click.BadParameter, match="cannot read"):
        read_targets(str(tmp_path / "missing"))


def test_key_clock_gives_the_age_of_the_oldest_key_in_use() -> None:
    clock = _KeyClock()
    assert clock.age("t", [KEY_A], 100.0) == 0.0
    assert clock.age("t", [KEY_A], 160.0) == 60.0
    assert clock.age("t", [KEY_B], 200.0) == 0.0  # rotated: a new key is young
    assert clock.age("t", [KEY_A, KEY_B], 230.0) == 130.0  # two in use: the older one
    assert clock.age("t", [], 230.0) is None


def test_schema_vocabularies_match_the_code() -> None:
    defs = schema()["$defs"]
    assert defs["reason"]["anyOf"][0]["enum"] == [r.value for r in Reason]
    assert set(defs["address"]["properties"]["server"]["anyOf"][1]["properties"]["kind"]
               ["enum"]) == {k.value for k in ServerKind}  # fmt: skip
    verdicts = defs["mechanism"]["properties"]["verdict"]["enum"]
    assert {"resumes", "partly", "does not resume", "not offered", "not enabled",
            "failed"} == set(verdicts)  # fmt: skip
    assert defs["service"]["properties"]["schema_version"] == {"const": 2}

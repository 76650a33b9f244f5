"""The auditor's pure parts: what tickets say about key names, the census's rotation period,
the checks behind the exit code, and the command's option parsing."""

from __future__ import annotations

import os

import click
import pytest

from tessera.audit.census import Sample, summarise
from tessera.audit.checks import evaluate, parse_expect
from tessera.audit.classify import Mechanism, Outcome, Reason, classify
from tessera.audit.keynames import KeyNameStatus, analyse
from tessera.audit.matrix import Cell
from tessera.audit.probe import Endpoint, Handshake, TicketSeen
from tessera.cli.check import parse_duration
from tessera.enums import ExtensionType, ProtocolVersion
from tessera.events import ServerHelloReceived
from tessera.session.model import ClientSession, ServerSession

KEY_A, KEY_B, KEY_C = b"A" * 16, b"B" * 16, b"C" * 16


def ticket(
    prefix: bytes | None, connection: int, size: int = 144, version: int = ProtocolVersion.TLS1_3
) -> TicketSeen:
    body = (prefix if prefix is not None else os.urandom(16)) + os.urandom(size - 16)
    suite = 0x1301 if version == ProtocolVersion.TLS1_3 else 0xC02B
    state = ServerSession(version, suite, bytes(48 if suite == 0xC02B else 32), False, 0.0, 7200)
    return TicketSeen(ClientSession(state, b"", body), 7200, connection, 0.0)


def test_shared_prefixes_are_key_names() -> None:
    names = analyse([ticket(KEY_A, 1), ticket(KEY_A, 1), ticket(KEY_A, 2), ticket(KEY_B, 3)])
    assert names.status is KeyNameStatus.KEY_NAME
    assert names.names == (KEY_A, KEY_B)  # B seen once, after a rotation


def test_a_rotation_between_two_tickets_of_one_connection() -> None:
    names = analyse([ticket(KEY_A, 1), ticket(KEY_A, 2), ticket(KEY_B, 2), ticket(KEY_B, 3)])
    assert names.status is KeyNameStatus.KEY_NAME and names.names == (KEY_A, KEY_B)


def test_random_prefixes_are_no_key_name() -> None:
    """Go 1.21+ starts a ticket with a random IV: nothing recurs."""
    names = analyse([ticket(None, 1), ticket(None, 1), ticket(None, 2)])
    assert names.status is KeyNameStatus.NO_KEY_NAME and names.names == ()
    assert "even tickets of one connection" in names.evidence


def test_too_few_tickets_are_unverified() -> None:
    assert analyse([ticket(None, 1)]).status is KeyNameStatus.UNVERIFIED
    assert analyse([ticket(None, 1), ticket(None, 2)]).status is KeyNameStatus.UNVERIFIED
    assert analyse([]).status is KeyNameStatus.NO_TICKETS


def test_short_tickets_are_stateful_ids() -> None:
    names = analyse([ticket(KEY_A, 1, size=32), ticket(KEY_A, 2, size=32)])
    assert names.status is KeyNameStatus.NO_KEY_NAME and "too short" in names.evidence


def test_versions_are_judged_apart() -> None:
    """RFC 5077 TLS 1.2 tickets beside stateful TLS 1.3 ids: the TLS 1.2 key name counts."""
    tickets = [ticket(KEY_A, i, version=ProtocolVersion.TLS1_2) for i in (1, 2)]
    tickets += [ticket(None, i, size=32) for i in (3, 4, 5)]
    names = analyse(tickets)
    assert names.status is KeyNameStatus.KEY_NAME and names.names == (KEY_A,)
    assert "TLSv1.2" in names.evidence and "TLSv1.3" in names.evidence


def samples(plan: list[tuple[float, bytes]], address: str = "a:1") -> list[Sample]:
    return [
        Sample(at, address, "TLSv1.3", (ticket(p, i), ticket(p, i)), None)
        for i, (at, p) in enumerate(plan)
    ]


def test_rotation_period_from_first_sightings() -> None:
    plan = [(t / 2, KEY_A if t < 5 else KEY_B if t < 10 else KEY_C) for t in range(14)]
    census = summarise(samples(plan), 6.5, 0.5, 14, ["a:1"])
    (c,) = census.addresses
    assert c.rotations == (2.5, 5.0) and c.period_s == 2.5 and not c.alternating
    assert [k.name for k in c.keys] == [KEY_A, KEY_B, KEY_C]
    assert census.warnings == ()


def test_alternating_keys_are_several_keys_at_once() -> None:
    plan = [(t, KEY_A if t % 2 else KEY_B) for t in range(6)]
    census = summarise(samples(plan, "lb:1"), 5, 1, 6, ["lb:1"])
    (c,) = census.addresses
    assert c.alternating and c.period_s is None
    assert "do not share ticket keys" in census.warnings[0]


def test_backends_with_different_keys_are_warned_about() -> None:
    s = samples([(0, KEY_A), (1, KEY_A)], "a:1") + samples([(0, KEY_B), (1, KEY_B)], "b:1")
    census = summarise(s, 1, 1, 2, ["a:1", "b:1"], backends=["a:1", "b:1"])
    assert any("backends use different ticket keys" in w for w in census.warnings)
    assert dict(census.shared) == {KEY_A: ("a:1",), KEY_B: ("b:1",)}


def test_a_key_older_than_a_day_is_warned_about() -> None:
    census = summarise(samples([(0, KEY_A), (90000, KEY_A)]), 90000, 3600, 2, ["a:1"])
    assert census.warnings == ("a:1: the same ticket key for more than 24 h",)


def test_expect_words() -> None:
    assert parse_expect("id, ticket,PSK") == ("id", "ticket", "psk")
    with pytest.raises(ValueError, match="unknown mechanism tickets"):
        parse_expect("tickets")
    with pytest.raises(ValueError):
        parse_expect(" , ")


def test_matrix_checks_under_any() -> None:
    """With the default expectation, a mechanism that works on both backends must work across
    them; one that works on neither is not required across them."""
    cell = Cell(
        Mechanism.TICKET, "a:1", "b:1", True, Outcome(False, Reason.TICKET_REISSUED, "new ticket")
    )
    no_id = Cell(
        Mechanism.SESSION_ID,
        "a:1",
        "b:1",
        False,
        Outcome(False, Reason.NO_SESSION_ID_ISSUED, "empty id"),
    )
    checks = evaluate(("any",), [], [cell, no_id])
    assert checks == []  # no per-address results passed: nothing required across
    assert [c.name for c in evaluate(("ticket",), [], [cell, no_id])] == ["ticket a:1 → b:1"]


def test_durations() -> None:
    assert parse_duration("10m", "--watch") == 600
    assert parse_duration("1.5h", "--watch") == 5400
    assert parse_duration("90", "--watch") == 90
    assert parse_duration("250ms", "--interval") == 0.25
    for bad in ("soon", "0s", "-1m", "10 minutes"):
        with pytest.raises(click.BadParameter):
            parse_duration(bad, "--watch")


# -- classification from what the client saw -------------------------------------------------
def tls12_session(ems: bool = True, sni: str | None = "localhost") -> ClientSession:
    state = ServerSession(ProtocolVersion.TLS1_2, 0xC02B, bytes(48), ems, 0.0, 300, sni)
    return ClientSession(state, b"\x01" * 32, b"")


def hello(offered: bytes, answered: bytes, *extensions: int) -> ServerHelloReceived:
    return ServerHelloReceived(ProtocolVersion.TLS1_2, 0xC02B, offered, answered, extensions)


def test_classify_from_evidence() -> None:
    ep = Endpoint("127.0.0.1", 1, "localhost")
    ems = ExtensionType.extended_master_secret
    session = tls12_session()
    unknown = Handshake(
        ep, version="TLSv1.2", cipher_suite=0xC02B, hello=hello(b"\x01" * 32, b"\x02" * 32, ems)
    )
    out = classify(Mechanism.SESSION_ID, session, unknown)
    assert out.reason is Reason.SESSION_ID_UNKNOWN and "0101010101010101…" in out.evidence
    no_ems = Handshake(
        ep, version="TLSv1.2", cipher_suite=0xC02B, hello=hello(b"\x01" * 32, b"\x02" * 32)
    )
    assert classify(Mechanism.SESSION_ID, session, no_ems).reason is Reason.EMS_MISMATCH
    other_suite = Handshake(
        ep, version="TLSv1.2", cipher_suite=0xC02F, hello=hello(b"\x01" * 32, b"\x02" * 32, ems)
    )
    out = classify(Mechanism.SESSION_ID, session, other_suite)
    assert out.reason is Reason.VERSION_OR_SUITE_CHANGED and "ECDHE-RSA" in out.evidence
    other_name = Handshake(
        Endpoint("127.0.0.1", 1, "other.test"),
        version="TLSv1.2",
        cipher_suite=0xC02B,
        hello=hello(b"\x01" * 32, b"\x02" * 32, ems),
    )
    assert classify(Mechanism.SESSION_ID, session, other_name).reason is Reason.SNI_MISMATCH
    failed = Handshake(ep, error="TCP connect failed: refused")
    out = classify(Mechanism.TICKET, session, failed)
    assert out.reason is Reason.CONNECTION_FAILED and "refused" in out.evidence

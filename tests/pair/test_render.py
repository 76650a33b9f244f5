"""The one renderer of a connection (``tessera.observe.render``): the fields of a full handshake,
a TLS 1.2 resumption by session id and by ticket, a TLS 1.3 PSK resumption, early data accepted
and rejected — and the page, the summary, the JSON record and the log lines all say the same."""

from __future__ import annotations

import json

import pytest

from tessera.cli.connect import JSON_FIELDS
from tessera.cli.www import info_rows
from tessera.events import ConnectionInfo
from tessera.observe.logs import ConnectionRecord, format_record, handshake_line
from tessera.observe.render import Extra, Field, by_key, connection_fields, session_line, values

from .helpers import ConnectionPair, World
from .test_tls13_early_data import finish, start_early, ticket_for
from .test_tls13_support import client13, server13

TLS12_SUITE = "ECDHE-ECDSA-AES128-GCM-SHA256"


def fields_of(info: ConnectionInfo, extra: Extra | None = None) -> dict[str, Field]:
    return by_key(connection_fields(info, extra or Extra()))


def resumed12(world: World, tickets: bool) -> tuple[ConnectionPair, ConnectionPair]:
    server = world.server_config(ticket_keyring=world.keyring() if tickets else None)
    client = world.client_config(session_tickets=tickets, cipher_suites=TLS12_SUITE)
    return world.connect(client, server), world.connect(client, server)


def test_a_full_handshake(world: World) -> None:
    first, _ = resumed12(world, tickets=True)
    f = fields_of(first.server.info)
    assert f["protocol"].value == "TLSv1.2" and f["cipher"].value == TLS12_SUITE
    assert f["cipher_iana"].value == "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
    assert f["resumed"].value is False and f["resumed"].text == "no"
    assert f["resumed_by"].value is None and f["kind"].value == "full"
    assert f["resumption"].text == "full handshake; nothing offered to resume"
    assert f["extended_master_secret"].value is True and f["extended_master_secret"].text == "yes"
    assert f["early_data"].value is None and f["early_data"].text == "no"
    assert f["server_name"].value == "localhost" and f["alpn"].text == "(none)"
    assert f["group"].value == "x25519" and not f["reason"].shown
    # The client's view of the same connection names it the same way.
    c = fields_of(first.client.info, Extra(target="127.0.0.1:1", verified=True))
    for key in ("protocol", "cipher", "cipher_iana", "resumed", "resumed_by", "kind", "group"):
        assert c[key] == f[key], key
    assert c["target"].value == "127.0.0.1:1" and c["verified"].text == "yes"
    assert c["resumption"].value is None  # the client has no server decision


@pytest.mark.parametrize("tickets", [False, True], ids=["session_id", "ticket"])
def test_a_tls12_resumption(world: World, tickets: bool) -> None:
    _, second = resumed12(world, tickets)
    by = "ticket" if tickets else "session_id"
    for info in (second.server.info, second.client.info):
        f = fields_of(info)
        assert f["resumed"].value is True and f["resumed"].text == f"yes, by {by}"
        assert f["resumed_by"].value == by and f["kind"].value == by
    f = fields_of(second.server.info)
    assert f["resumption"].text == f"resumed by {by}"
    assert f["ticket_key"].shown is tickets
    if not tickets:
        assert f["session_id"].value == second.server.info.session_id.hex().upper() != ""


def test_a_tls13_psk_resumption_and_a_fallback(world: World) -> None:
    server = server13(world)
    client = client13(world)
    first = world.connect(client, server)
    second = world.connect(client, server)
    f = fields_of(second.server.info)
    assert f["protocol"].value == "TLSv1.3" and f["resumed_by"].value == "psk"
    assert f["kind"].value == "psk" and f["resumed"].text == "yes, by psk"
    assert f["extended_master_secret"].value is None
    assert f["extended_master_secret"].text == "n/a (TLS 1.3)"
    assert fields_of(first.server.info)["kind"].value == "full"
    # A server that cannot open the ticket: a full handshake and the reason, named once.
    other = server13(world)
    fell_back = world.connect(client, other)
    f = fields_of(fell_back.server.info)
    assert f["resumed"].value is False and f["offered"].value == "psk"
    assert f["reason"].shown and f["reason"].value in f["resumption"].text


def test_early_data_accepted(world: World) -> None:
    server = server13(world, max_early_data_size=1024)
    pair = start_early(world, server, ticket_for(world, server))
    finish(pair)
    for info in (pair.server.info, pair.client.info):
        f = fields_of(info)
        assert f["early_data"].value == "accepted" and f["early_data"].text == "accepted"
        assert f["kind"].value == "psk_0rtt" and f["resumed_by"].value == "psk"
    assert fields_of(pair.server.info)["resumption"].text == "resumed by psk with 0-RTT"


def test_early_data_rejected(world: World) -> None:
    issuer = server13(world, max_early_data_size=1024)
    refuser = server13(world, max_early_data_size=0, ticket_keyring=issuer.ticket_keyring,
                       session_store=issuer.session_store)  # fmt: skip
    pair = start_early(world, refuser, ticket_for(world, issuer))
    finish(pair)
    f = fields_of(pair.server.info)
    assert f["early_data"].value == "rejected" and f["kind"].value == "psk"
    assert f["early_data"].text == "rejected (0-RTT disabled on this server)"
    # The client learns only that it was refused (the edge tells the renderer).
    c = fields_of(pair.client.info, Extra(early_data_rejected=True))
    assert c["early_data"].value == "rejected" and c["early_data"].text == "rejected"
    log = format_record(ConnectionRecord(("127.0.0.1", 9), pair.server.info))
    assert 'early_data="rejected (0-RTT disabled on this server)"' in log


@pytest.mark.parametrize("tickets", [False, True], ids=["session_id", "ticket"])
def test_the_edges_format_the_same_fields(world: World, tickets: bool) -> None:
    """The page, the JSON record, the text log, the JSON log and serve's line, for one resumed
    connection: the same values under the same names."""
    _, second = resumed12(world, tickets)
    info = second.server.info
    f = fields_of(info)
    page = dict(info_rows(info))
    assert page["Protocol"] == f["protocol"].text == "TLSv1.2"
    assert page["Cipher"] == f["cipher"].text and page["Resumed"] == f["resumed"].text
    record = values(connection_fields(info), JSON_FIELDS)
    assert record["resumed_by"] == f["resumed_by"].value and record["cipher"] == TLS12_SUITE
    log = json.loads(format_record(ConnectionRecord(None, info), "json"))
    assert log["resumed"] == record["resumed_by"] and log["version"] == record["protocol"]
    assert log["cipher"] == record["cipher_iana"] and log["sni"] == record["server_name"]
    text = format_record(ConnectionRecord(None, info))
    assert f"resumed={record['resumed_by']}" in text
    line = handshake_line(None, info)
    assert line.endswith(f"{session_line(info)} (resumed by {record['resumed_by']})")
    assert session_line(info) == f"Reused, TLSv1.2, Cipher is {TLS12_SUITE}"

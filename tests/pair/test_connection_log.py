"""Connection log lines: timestamp, peer, what was negotiated, how it resumed or why not;
text and JSON; no secret in either."""

from __future__ import annotations

import json

from tessera.observe.logs import ConnectionRecord, format_record

from .helpers import World


def test_text_and_json_say_why_a_session_was_not_resumed(world: World) -> None:
    server = world.server_config(ticket_keyring=None)
    client = world.client_config(session_tickets=False)
    first = world.connect(client, world.server_config(ticket_keyring=None))
    p = world.pair(client, server, session=first.client.session, address=None)
    p.handshake()
    rec = ConnectionRecord(("127.0.0.1", 5555), p.server.info, 517, 2048, 0.25, started=0.5)
    text = format_record(rec)
    assert text.startswith("1970-01-01T00:00:00.500Z 127.0.0.1:5555 sni=localhost TLSv1.2 ")
    assert 'resumed=no reason="unknown session id"' in text
    assert text.endswith("in=517 out=2048 duration=0.25s")
    obj = json.loads(format_record(rec, "json"))
    assert obj["resumed"] == "no" and obj["reason"] == "unknown session id"
    assert obj["offered"] == "session_id" and obj["peer"] == "127.0.0.1:5555"
    secret = p.server._state.master_secret.hex()
    assert secret not in text and secret not in json.dumps(obj)


def test_resumed_connections_and_failures(world: World) -> None:
    server = world.server_config()
    client = world.client_config()
    world.connect(client, server)
    p = world.connect(client, server)
    text = format_record(ConnectionRecord(("::1", 1), p.server.info))
    assert "resumed=ticket" in text and "ticket_key=" in text and "handshake=" in text
    failed = format_record(ConnectionRecord(("10.0.0.1", 2), None, error="handshake_failure (40)"))
    assert failed.endswith(' 10.0.0.1:2 in=0 out=0 duration=0.0s error="handshake_failure (40)"')

"""The Prometheus observer: counters that match the handshakes made (full, each resumption
kind, a fallback with its reason, 0-RTT, a failure), store operations timed, ticket keys read
at scrape time — scraped over HTTP and parsed with prometheus-client's own parser."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port
from tessera import FallbackReason
from tessera.errors import TLSError
from tessera.observe.metrics import PrometheusObserver

from .helpers import Direction, World
from .test_tls13_support import client13, server13, tickets


def samples(registry_text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(registry_text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(metrics: PrometheusObserver) -> str:
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            return r.read().decode()
    finally:
        server.shutdown()
        thread.join(5)


def test_counters_match_the_handshakes(world: World) -> None:
    keyring = world.keyring()
    metrics = PrometheusObserver(keyring=keyring, clock=world.clock)
    store = metrics.instrument(world.store())
    kw: dict[str, Any] = {"observers": (metrics,), "ticket_keyring": keyring}
    server12 = world.server_config(session_store=store, **kw)
    server_13 = server13(world, session_store=store, max_early_data_size=100, **kw)

    client = world.client_config()
    world.connect(client, server12)  # full, a ticket issued
    world.connect(client, server12)  # resumed by ticket
    id_client = world.client_config(session_tickets=False)
    world.connect(id_client, server12)  # full, id cached (put)
    world.connect(id_client, server12)  # resumed by id (get: hit)
    stranger = world.client_config(session_tickets=False)
    first = world.connect(stranger, world.server_config(ticket_keyring=None))
    p = world.pair(stranger, server12, session=first.client.session, address=None)
    p.handshake()  # an unknown id: full, fallback counted (get: miss)

    c13 = client13(world)
    t = tickets(world.connect(c13, server_13))[0]
    zero = world.pair(c13, server_13, session=t, address=None)
    zero.client.start_handshake(early_data=b"hi")
    zero.pump()  # psk with 0-RTT (add: stored)

    bad = world.pair(world.client_config(), server12)
    bad.start()
    bad.deliver(Direction.C2S)
    with pytest.raises(TLSError):
        bad.inject(Direction.C2S, bytes((21, 3, 3, 0, 2, 2, 40)))  # a fatal alert mid-handshake

    text = scrape(metrics)
    h = "tessera_handshakes_total"
    assert value(text, h, version="TLSv1.2", kind="full") == 3
    assert value(text, h, version="TLSv1.2", kind="ticket") == 1
    assert value(text, h, version="TLSv1.2", kind="session_id") == 1
    assert value(text, h, version="TLSv1.3", kind="full") == 1
    assert value(text, h, version="TLSv1.3", kind="psk_0rtt") == 1
    reason = FallbackReason.UNKNOWN_SESSION_ID.value
    assert value(text, "tessera_resumption_fallbacks_total", reason=reason) == 1
    # every reason the core knows is exported, from zero
    for r in FallbackReason:
        assert (
            "tessera_resumption_fallbacks_total",
            (("reason", r.value),),
        ) in samples(text)
    assert value(text, "tessera_early_data_total", result="accepted", reason="") == 1
    assert (
        value(text, "tessera_handshake_failures_total", alert="handshake_failure", sent="received")
        == 1
    )
    ops = "tessera_store_operations_total"
    assert value(text, ops, op="put", result="ok") == 2  # two full handshakes by id
    assert value(text, ops, op="get", result="hit") == 1
    assert value(text, ops, op="get", result="miss") == 1
    assert value(text, ops, op="add", result="stored") == 1
    assert value(text, "tessera_store_operation_duration_seconds_count", op="get") == 2
    assert value(text, "tessera_store_up") == 1
    assert value(text, "tessera_handshake_duration_seconds_count", kind="full") == 4
    assert value(text, "tessera_tickets_issued_total", version="TLSv1.3") >= 3
    assert value(text, "tessera_ticket_keys", state="encrypting") == 1
    key = keyring.keys()[0]
    age = value(text, "tessera_ticket_key_age_seconds", key=key.name.hex()[:8], state="encrypting")
    assert age == pytest.approx(world.clock() - key.created)
    assert 0 < value(text, "tessera_ticket_key_rotation_seconds") <= keyring.rotation_interval


def test_a_failing_store_shows_in_the_metrics(world: World) -> None:
    class Down:
        def __getattr__(self, name: str) -> Any:
            def fail(*args: Any) -> Any:
                raise ConnectionError("store down")

            return fail

    metrics = PrometheusObserver()
    server = world.server_config(
        session_store=metrics.instrument(Down()), ticket_keyring=None, observers=(metrics,)
    )
    client = world.client_config(session_tickets=False)
    p = world.connect(client, server)
    assert p.server.info is not None and p.server.info.resumed is False
    text = scrape(metrics)
    assert value(text, "tessera_store_operations_total", op="put", result="error") >= 1
    assert value(text, "tessera_store_up") == 0

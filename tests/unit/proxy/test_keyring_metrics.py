"""A fleet keyring's keys as the metrics see them: pending, encrypting, decrypt-only, and the
seconds until the encrypting key changes; and the metrics address option."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tessera.addresses import parse_address
from tessera.fleet.keyring import FleetKeyring
from tessera.fleet.keys import FleetKey, KeyPolicy, KeySet
from tessera.observe.exporter import MetricsExporter
from tessera.observe.metrics import register_keyring

POLICY = KeyPolicy(rotation=60.0, decrypt_for=120.0, refresh=5.0)


def keyring_at(now: float) -> FleetKeyring:
    old = FleetKey.mint(900.0, 900.0, POLICY)  # encrypted 900..960, decrypts until 1080
    current = FleetKey.mint(950.0, 960.0, POLICY)  # encrypts 960..1020
    upcoming = FleetKey.mint(1005.0, 1020.0, POLICY)  # published, encrypts from 1020
    return FleetKeyring(POLICY, KeySet.of([old, current, upcoming]), clock=lambda: now)


def test_key_states_and_next_rotation() -> None:
    kr = keyring_at(1010.0)
    states = sorted((state, created) for _, state, created, _ in kr.key_states())
    assert states == [("decrypt_only", 900.0), ("encrypting", 950.0), ("pending", 1005.0)]
    assert kr.next_rotation() == 1020.0
    gap = FleetKeyring(POLICY, KeySet.of([FleetKey.mint(1000.0, 1030.0, POLICY)]),
                       clock=lambda: 1010.0)  # fmt: skip
    assert gap.next_rotation() == 1030.0  # nothing encrypts yet: when the next key starts
    assert FleetKeyring(POLICY).next_rotation() is None


def test_the_collector_reads_fleet_keys() -> None:
    registry = CollectorRegistry()
    register_keyring(registry, keyring_at(1010.0), clock=lambda: 1010.0)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
    }
    for state in ("pending", "encrypting", "decrypt_only"):
        assert samples[("tessera_ticket_keys", (("state", state),))] == 1
    assert samples[("tessera_ticket_key_rotation_seconds", ())] == 10.0
    ages = sorted(v for (n, _), v in samples.items() if n == "tessera_ticket_key_age_seconds")
    assert ages == [5.0, 60.0, 110.0]


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:9100", "--metrics") == ("127.0.0.1", 9100)
    assert parse_address("[::1]:9100", "--metrics") == ("::1", 9100)
    for bad in ("9100", "host:", "host:99999", ":80"):
        with pytest.raises(ValueError, match="--metrics takes HOST:PORT"):
            parse_address(bad, "--metrics")


def test_single_process_exporter_serves_its_observer() -> None:
    exporter = MetricsExporter(("127.0.0.1", 0))
    host, port = exporter.start()
    try:
        exporter.observer.accept_failed("EMFILE")
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        assert 'tessera_accept_errors_total{error="EMFILE"} 1.0' in text
    finally:
        exporter.close()

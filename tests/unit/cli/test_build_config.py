"""The pure step of ``tessera serve`` and ``tessera proxy``: options (as click or a config file
gives them) and what was loaded for them -> a ServerConfig, with no I/O; and the option
combinations that cannot work, refused with the option's words."""

from __future__ import annotations

import pytest

from tessera import ServerConfig, generate_self_signed
from tessera.cli.serve_config import (
    Loaded,
    ProxyOptions,
    ServeOptions,
    build_proxy_config,
    build_server_config,
)
from tessera.config import ClientAuth
from tessera.crypto.suites import BY_CODE
from tessera.enums import NamedGroup, ProtocolVersion
from tessera.errors import ConfigError
from tessera.session.keyring import TicketKeyring
from tessera.session.resumption.awaited import AsyncMemoryStore
from tessera.session.store import MemoryStore

CERTS = (generate_self_signed("ec"),)


def loaded(**kwargs: object) -> Loaded:
    values: dict[str, object] = {
        "certificates": CERTS,
        "keyring": TicketKeyring(),
        "store": MemoryStore(10),
    }
    values.update(kwargs)
    return Loaded(**values)  # type: ignore[arg-type]


def test_serve_defaults_are_openssl_like_resumption() -> None:
    keyring, store = TicketKeyring(), MemoryStore(10)
    config = build_server_config(ServeOptions(), loaded(keyring=keyring, store=store))
    assert isinstance(config, ServerConfig)
    assert config.certificates == CERTS
    assert config.ticket_keyring is keyring and config.session_store is store
    assert config.num_tickets == 2 and not config.stateful_tickets
    assert config.session_timeout == 300.0 and config.ticket_lifetime == 7200
    assert config.min_version == ProtocolVersion.TLS1_2
    assert config.max_version == ProtocolVersion.TLS1_3
    assert config.client_auth is ClientAuth.NONE and config.max_early_data_size == 0
    assert config.async_session_store is None


def test_serve_options_reach_the_config() -> None:
    opts = ServeOptions(
        tls1_3=True, ciphersuites="TLS_CHACHA20_POLY1305_SHA256", groups="P-256:X25519",
        alpn="h2,http/1.1", num_tickets=4, max_early_data=1024, ticket_age_skew=3.0,
        psk_ke=True, session_timeout=60.0, ticket_lifetime=600, client_renegotiation=True,
    )  # fmt: skip
    awaited = AsyncMemoryStore(MemoryStore(10))
    config = build_server_config(opts, loaded(store=None, async_store=awaited))
    assert config.min_version == config.max_version == ProtocolVersion.TLS1_3
    tls13 = config.suites_for(ProtocolVersion.TLS1_3)
    assert [s.name for s in tls13] == ["TLS_CHACHA20_POLY1305_SHA256"]
    assert config.groups == (NamedGroup.secp256r1, NamedGroup.x25519)
    assert config.alpn_protocols == (b"h2", b"http/1.1")
    assert (config.num_tickets, config.max_early_data_size) == (4, 1024)
    assert (config.max_ticket_age_skew, config.session_timeout) == (3.0, 60.0)
    assert config.psk_ke and config.client_renegotiation and config.ticket_lifetime == 600
    assert config.async_session_store is awaited and config.session_store is None


def test_serve_no_ticket_makes_tls13_tickets_stateful_when_there_is_a_cache() -> None:
    opts = ServeOptions(no_ticket=True)
    config = build_server_config(opts, loaded(keyring=None))
    assert config.ticket_keyring is None and config.stateful_tickets
    no_cache = ServeOptions(no_ticket=True, no_cache=True)
    assert not build_server_config(no_cache, loaded(keyring=None, store=None)).stateful_tickets


def test_serve_tls12_suites_by_openssl_name() -> None:
    opts = ServeOptions(tls1_2=True, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")
    config = build_server_config(opts, loaded())
    tls12 = config.suites_for(ProtocolVersion.TLS1_2)
    assert [BY_CODE[s.code].openssl_name for s in tls12] == ["ECDHE-ECDSA-AES256-GCM-SHA384"]


def test_serve_client_certificates_need_a_ca_file() -> None:
    with pytest.raises(ConfigError, match="--verify-client needs --client-ca"):
        build_server_config(ServeOptions(verify_client="require"), loaded())
    with pytest.raises(ConfigError, match="--client-cert-path needs --www and --client-ca"):
        build_server_config(ServeOptions(client_cert_paths=("/admin",)), loaded())


@pytest.mark.parametrize(
    ("opts", "words"),
    [
        (ServeOptions(keys=("k.pem",)), "--key needs --cert"),
        (ServeOptions(save_cert="out.pem", certs=("c.pem",)), "--save-cert writes generated"),
        (ServeOptions(ticket_keys=("t.key",), no_ticket=True), "--no-ticket turns tickets off"),
        (ServeOptions(max_connections=0), "--max-connections must be at least 1"),
    ],
)
def test_serve_options_that_cannot_work_are_refused(opts: ServeOptions, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        build_server_config(opts, loaded())


def test_rotation_options_apply_to_generated_keys_only() -> None:
    opts = ServeOptions(ticket_keys=("t.key",), ticket_rotation=60.0)
    opts.check()  # a default-looking value is fine: only a given option is refused
    with pytest.raises(ConfigError, match="--ticket-rotation applies to generated keys"):
        opts.check(lambda name: name == "ticket_rotation")


def test_the_engine_settings_come_from_the_options() -> None:
    opts = ServeOptions(max_connections=50, max_connections_per_client=0, idle_timeout=30.0,
                        handshake_timeout=5.0, drain_timeout=4.0, loop="asyncio")  # fmt: skip
    engine = opts.engine
    assert engine.max_connections == 50 and engine.max_per_client is None  # 0: no cap
    assert (engine.idle_timeout, engine.handshake_timeout) == (30.0, 5.0)
    assert (engine.drain_timeout, engine.shutdown_timeout, engine.loop) == (4.0, 4.0, "asyncio")


def test_proxy_config_awaits_its_store() -> None:
    opts = ProxyOptions(listen="127.0.0.1:8443", backend="[::1]:8080", session_timeout=30.0,
                        tls1_2=True, alpn="http/1.1")  # fmt: skip
    awaited = AsyncMemoryStore(MemoryStore(10))
    config = build_proxy_config(opts, loaded(store=None, async_store=awaited))
    assert config.async_session_store is awaited
    assert config.session_timeout == 30.0 and config.alpn_protocols == (b"http/1.1",)
    assert config.max_version == ProtocolVersion.TLS1_2
    assert (opts.listen_address, opts.backend_address) == (("127.0.0.1", 8443), ("::1", 8080))


@pytest.mark.parametrize("field", ["listen", "backend"])
def test_proxy_addresses_are_checked(field: str) -> None:
    values = {"listen": "127.0.0.1:8443", "backend": "127.0.0.1:8080", field: "nowhere"}
    with pytest.raises(ConfigError, match=f"--{field}"):
        build_proxy_config(ProxyOptions(**values), loaded())


def test_proxy_needs_listen_and_backend() -> None:
    with pytest.raises(ConfigError, match="--listen HOST:PORT is needed"):
        ProxyOptions(backend="127.0.0.1:8080").check()
    with pytest.raises(ConfigError, match="--backend HOST:PORT is needed"):
        ProxyOptions(listen="127.0.0.1:8443").check()

"""``--redis`` URLs: each scheme to its topology and redis-py's options, errors that say what to
write, passwords never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from tessera.errors import ConfigError
from tessera.fleet.redis_url import Topology, parse, redacted


def test_single_server_urls() -> None:
    t = parse("redis://127.0.0.1:6390/2")
    assert (t.topology, t.nodes, t.tls) == (Topology.SINGLE, (("127.0.0.1", 6390),), False)
    assert t.describe() == "Redis 127.0.0.1:6390"
    t = parse("rediss://fleet:s3cret@redis.example:6380")
    assert t.tls and t.username == "fleet" and t.options["password"] == "s3cret"
    assert "s3cret" not in t.describe() and "s3cret" not in repr(t)
    assert t.redacted == "rediss://fleet:***@redis.example:6380"
    t = parse("unix:///run/redis/redis.sock")
    assert t.topology is Topology.SINGLE and t.options["path"] == "/run/redis/redis.sock"


def test_cluster_urls(tmp_path: Path) -> None:
    t = parse("redis-cluster://a:7000,b:7001,[::1]:7002")
    assert t.topology is Topology.CLUSTER
    assert t.nodes == (("a", 7000), ("b", 7001), ("::1", 7002))
    assert t.describe() == "Redis Cluster (seeds a:7000, b:7001, ::1:7002)"
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    t = parse(f"rediss-cluster://u:pw@a:7000?ssl_ca_certs={ca}")
    assert t.tls and t.options["ssl"] is True and t.options["ssl_ca_certs"] == str(ca)
    assert t.options["username"] == "u" and t.options["password"] == "pw"
    assert "pw" not in t.describe() and t.describe().endswith("TLS, user u")
    for name in ("host", "port", "db", "connection_class"):
        assert name not in t.options


def test_sentinel_urls() -> None:
    t = parse("redis-sentinel://u:pw@s1:26379,s2:26379/mymaster?sentinel_password=sp")
    assert t.topology is Topology.SENTINEL and t.master == "mymaster"
    assert t.nodes == (("s1", 26379), ("s2", 26379))
    assert t.options["password"] == "pw" and t.sentinel_options["password"] == "sp"
    assert "sentinel_password" not in t.options
    assert t.describe() == "Redis Sentinel (master 'mymaster' via s1:26379, s2:26379), user u"
    t = parse("rediss-sentinel://s1:26379/m?ssl_cert_reqs=none")
    assert t.sentinel_options["ssl"] is True and t.sentinel_options["ssl_cert_reqs"] == "none"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("127.0.0.1:6379", "e.g. redis://127.0.0.1:6379"),
        ("http://h:1", "unknown scheme http://"),
        ("redis-sentinel://h:26379", "name the master the sentinels watch"),
        ("redis-sentinel://h:26379/a/b", "name the master the sentinels watch"),
        ("redis-cluster://h:7000/3", "no database numbers"),
        ("redis-cluster://h", "'h' is not HOST:PORT"),
        ("redis-cluster://h:99999", "not HOST:PORT"),
        ("redis-cluster://", "at least one HOST:PORT"),
    ],
)
def test_errors_say_what_to_write(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match="--redis") as e:
        parse(url)
    assert says in str(e.value)


def test_redacted() -> None:
    assert redacted("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    assert redacted("u:pw@h:1") == "u:***@h:1"
    with pytest.raises(ConfigError) as e:
        parse("fleet:s3cret@h:6379")
    assert "s3cret" not in str(e.value) and "redis://fleet:***@h:6379" in str(e.value)
    assert redacted("redis://:pw@h:1") == "redis://***@h:1"
    assert redacted("redis://h:1") == "redis://h:1"


@pytest.mark.parametrize("scheme", ["rediss://a:6379", "rediss-cluster://a:7000",
                                    "rediss-sentinel://s:26379/mymaster"])  # fmt: skip
@pytest.mark.parametrize("name", ["ssl_certfile", "ssl_keyfile", "ssl_ca_certs"])
def test_a_missing_file_in_the_query_is_a_usage_error(tmp_path: Path, scheme: str,
                                                      name: str) -> None:  # fmt: skip
    """Named when the URL is read, as --cert is: at the first connection a typo would only
    cost resumption, with a TLS error that does not say which file."""
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError) as e:
        parse(f"{scheme}?{name}={missing}", "--redis")
    assert str(e.value).endswith(f"?{name}={missing}: no such file (or it cannot be read)")
    assert str(e.value).startswith("--redis ")

"""``tessera keys fleet-secret / rotate / list`` as processes against a real Redis, and
``tessera serve`` refusing fleet options that cannot work."""

from __future__ import annotations

import stat
from pathlib import Path

from peers import TESSERA, run
from redis_server import RedisServer

from conftest import free_port
from tessera.fleet.keyring import FleetKeyring
from tessera.fleet.keys import KeyPolicy
from tessera.fleet.redis_keys import RedisKeySource
from tessera.fleet.redis_url import sync_client
from tessera.fleet.secret import FleetSecret


def tessera(*args: str) -> tuple[int, str]:
    r = run([*TESSERA, *args], timeout=30, env={"COLUMNS": "200"})
    return r.returncode, r.stdout.decode(errors="replace")


def test_fleet_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "fleet.secret"
    rc, out = tessera("keys", "fleet-secret", "-o", str(path))
    assert rc == 0, out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = FleetSecret.load(path)
    assert first.secret.hex() not in out
    rc, out = tessera("keys", "fleet-secret", "-o", str(path))
    assert rc != 0 and "--force" in out
    assert FleetSecret.load(path) == first
    rc, out = tessera("keys", "fleet-secret", "-o", str(path), "--force")
    assert rc == 0 and FleetSecret.load(path) != first


def test_rotate_and_list(redis_server: RedisServer, secret_file: Path,
                         fleet_secret: FleetSecret) -> None:  # fmt: skip
    base = ["--redis", redis_server.url, "--fleet-secret", str(secret_file)]
    rc, out = tessera("keys", "rotate", *base, "--lead", "30")
    assert rc == 0, out
    name = out.split("ticket key ")[1].split(";")[0]
    rc, out = tessera("keys", "rotate", *base, "--redis-namespace", "other")
    assert rc == 0, out
    rc, listing = tessera("keys", "list", *base)
    assert rc == 0, listing
    assert name in listing and "published" in listing
    assert listing.count("published") == 1  # the other namespace's key is not listed
    src = RedisKeySource(sync_client(redis_server.url, 1.0), fleet_secret, "default",
                         FleetKeyring(KeyPolicy()))  # fmt: skip
    (key,) = src.read().keys
    assert key.key.hmac_key.hex() not in listing and key.key.aes_key.hex() not in listing
    assert key.encrypts_from - key.created == 30
    wrong = secret_file.parent / "wrong.secret"
    FleetSecret.generate().write(wrong)
    rc, out = tessera("keys", "list", "--redis", redis_server.url, "--fleet-secret", str(wrong))
    assert rc == 0 and "did not open with this fleet secret" in out


def test_unreachable_redis_and_missing_secret(tmp_path: Path, secret_file: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    rc, out = tessera("keys", "list", "--redis", url, "--fleet-secret", str(secret_file))
    assert rc != 0 and "cannot reach Redis" in out and "--redis" in out
    rc, out = tessera("serve", "--redis", url)
    assert rc != 0 and "--fleet-secret" in out
    rc, out = tessera("serve", "--fleet-secret", str(secret_file))
    assert rc != 0 and "--redis" in out


def test_redis_url_without_a_scheme_is_a_usage_error(secret_file: Path) -> None:
    """``--redis HOST:PORT`` (no scheme) gets a usage error saying what to write, for serve,
    proxy and keys — never a traceback."""
    for argv in (
        ["serve", "--redis", "127.0.0.1:6379", "--fleet-secret", str(secret_file)],
        ["proxy", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:9", "--redis",
         "127.0.0.1:6379", "--fleet-secret", str(secret_file)],
        ["keys", "list", "--redis", "127.0.0.1:6379", "--fleet-secret", str(secret_file)],
        ["keys", "rotate", "--redis", "127.0.0.1:6379", "--fleet-secret", str(secret_file)],
    ):  # fmt: skip
        rc, out = tessera(*argv)
        assert rc == 2, (argv, out)
        assert "Traceback" not in out, out
        assert "redis://127.0.0.1:6379" in out and "--redis" in out, out
    rc, out = tessera("keys", "list", "--redis", "redis-sentinel://127.0.0.1:26379",
                      "--fleet-secret", str(secret_file))  # fmt: skip
    assert rc == 2 and "name the master the sentinels watch" in out, out
    rc, out = tessera("keys", "list", "--redis", "http://127.0.0.1:6379",
                      "--fleet-secret", str(secret_file))  # fmt: skip
    assert rc == 2 and "unknown scheme http://" in out, out

"""TicketKeyring (rotation, keep, erasure, static keys, install) and ticket key files."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from tessera import KeyFileFormat, TicketKey, TicketKeyring
from tessera.errors import ConfigError
from tessera.session.keyring import read_key_file, write_key_file


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def key(n: int, created: float = 0.0, size: int = 80) -> TicketKey:
    half = 16 if size == 48 else 32
    return TicketKey(bytes([n]) * 16, bytes([n + 100]) * half, bytes([n + 200]) * half, created)


# -- rotation -----------------------------------------------------------------------------------
def test_generated_key_rotates_on_schedule() -> None:
    clock = Clock(1000.0)
    ring = TicketKeyring(rotation_interval=60, keep=2, clock=clock)
    first = ring.encryption_key()
    assert first is not None and first.created == 1000.0
    clock.now = 1059.9
    assert ring.encryption_key() is first
    clock.now = 1060.0
    second = ring.encryption_key()
    assert second is not first and second.created == 1060.0
    assert ring.decryption_key(first.name) == (first, False)
    assert ring.decryption_key(second.name) == (second, True)
    assert ring.keys() == [second, first]


def test_keep_limits_decrypt_only_keys() -> None:
    clock = Clock()
    ring = TicketKeyring(rotation_interval=10, keep=2, clock=clock)
    made = []
    for i in range(5):
        clock.now = i * 10
        made.append(ring.encryption_key())
    assert ring.keys() == made[::-1][:3]
    assert ring.decryption_key(made[1].name) is None
    assert ring.decryption_key(made[2].name) == (made[2], False)
    assert ring.max_key_age == 30


def test_keep_zero() -> None:
    clock = Clock()
    ring = TicketKeyring(rotation_interval=10, keep=0, clock=clock)
    old = ring.encryption_key()
    clock.now = 10
    new = ring.encryption_key()
    assert ring.decryption_key(old.name) is None
    assert ring.decryption_key(new.name) == (new, True)


def test_keys_are_erased_after_max_age_when_rotation_catches_up() -> None:
    clock = Clock()
    ring = TicketKeyring(rotation_interval=100, keep=3, clock=clock)
    old = ring.encryption_key()
    clock.now = 1000  # long idle: one rotation, and the old key is past 400 s
    new = ring.encryption_key()
    assert new is not old
    assert ring.decryption_key(old.name) is None
    assert ring.keys() == [new]


def test_key_erased_once_older_than_max_age() -> None:
    """The module docstring: "A key is erased once it is older than rotation_interval *
    (keep + 1)". Here the second key was made late (no traffic at 100 s), so the first key
    reaches its maximum age (200 s) while the current key is still fresh."""
    clock = Clock()
    ring = TicketKeyring(rotation_interval=100, keep=1, clock=clock)
    a = ring.encryption_key()
    clock.now = 150
    b = ring.encryption_key()
    assert b is not a and ring.decryption_key(a.name) == (a, False)
    clock.now = 249  # a is 249 s old, past max_key_age = 200
    assert ring.decryption_key(a.name) is None


def test_manual_rotate() -> None:
    clock = Clock()
    ring = TicketKeyring(rotation_interval=100, keep=1, clock=clock)
    a = ring.encryption_key()
    b = ring.rotate()
    assert ring.encryption_key() is b
    assert ring.decryption_key(a.name) == (a, False)
    assert ring.rotations == 2


def test_generated_keys_use_rng_and_size() -> None:
    calls: list[int] = []

    def rng(n: int) -> bytes:
        calls.append(n)
        return os.urandom(n)

    ring = TicketKeyring(key_size=48, rng=rng, clock=Clock())
    k = ring.encryption_key()
    assert (len(k.name), len(k.hmac_key), len(k.aes_key)) == (16, 16, 16)
    assert calls == [16, 16, 16]
    with pytest.raises(ConfigError):
        TicketKey.generate(0, size=64)


# -- static keys --------------------------------------------------------------------------------
def test_static_keys_never_rotate() -> None:
    clock = Clock()
    k1, k2 = key(1), key(2)
    ring = TicketKeyring([k1, k2], clock=clock)
    assert ring.generate is False
    clock.now = 10**9
    assert ring.encryption_key() is k1
    assert ring.decryption_key(k2.name) == (k2, False)
    assert ring.rotations == 0


def test_static_key_lifetime_erases() -> None:
    clock = Clock(100.0)
    k1, k2 = key(1, created=90.0), key(2, created=0.0)
    ring = TicketKeyring([k1, k2], static_key_lifetime=50, clock=clock)
    assert ring.decryption_key(k2.name) is None  # 100 s old
    assert ring.encryption_key() is k1
    clock.now = 140.0
    assert ring.encryption_key() is None  # every key expired: no tickets at all
    assert ring.decryption_key(k1.name) is None


def test_install_replaces_atomically() -> None:
    ring = TicketKeyring([key(1)], clock=Clock())
    ring.install([key(3), key(1)])
    assert ring.encryption_key() == key(3)
    assert ring.decryption_key(key(1).name) == (key(1), False)
    ring.install([])
    assert ring.encryption_key() is None and ring.keys() == []


def test_install_keeps_the_whole_list() -> None:
    """An installed list is never truncated to ``keep`` (that silently lost keys a fleet or a
    HAProxy file still needed); ``keep`` only bounds generated rotations."""
    ring = TicketKeyring([key(1)], keep=1, clock=Clock())
    ring.install([key(1), key(2), key(3)])
    assert ring.decryption_key(key(3).name) == (key(3), False)
    assert [k.name[0] for k in ring.keys()] == [1, 2, 3]  # noqa: SIM118 (a list, not a dict)


def test_install_refuses_duplicate_names() -> None:
    ring = TicketKeyring([key(1)], clock=Clock())
    with pytest.raises(ConfigError, match="share a key name"):
        ring.install([key(2), key(2)])
    assert ring.keys() == [key(1)]


def test_keyring_validation() -> None:
    with pytest.raises(ConfigError):
        TicketKeyring(rotation_interval=0)
    with pytest.raises(ConfigError):
        TicketKeyring(keep=-1)
    for args in (
        (b"x" * 15, bytes(16), bytes(16)),
        (bytes(16), bytes(15), bytes(16)),
        (bytes(16), bytes(16), bytes(24)),
    ):
        with pytest.raises(ConfigError):
            TicketKey(*args)


def test_key_repr_hides_secrets() -> None:
    k = key(7)
    assert k.hmac_key.hex() not in repr(k) and "aes_key" not in repr(k)


# -- key files ----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [48, 80])
def test_native_layout(tmp_path: Path, size: int) -> None:
    k = TicketKey.generate(0.0, size)
    write_key_file(tmp_path / "k", [k], KeyFileFormat.NATIVE)
    raw = (tmp_path / "k").read_bytes()
    assert raw == k.name + k.hmac_key + k.aes_key and len(raw) == size
    (back,) = read_key_file(tmp_path / "k", KeyFileFormat.NATIVE, created=5.0)
    assert (back.name, back.hmac_key, back.aes_key, back.created) == (
        k.name,
        k.hmac_key,
        k.aes_key,
        5.0,
    )
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_nginx_48_is_name_aes_hmac(tmp_path: Path) -> None:
    k = TicketKey.generate(0.0, 48)
    write_key_file(tmp_path / "k", [k], KeyFileFormat.NGINX)
    assert (tmp_path / "k").read_bytes() == k.name + k.aes_key + k.hmac_key
    (back,) = read_key_file(tmp_path / "k", KeyFileFormat.NGINX, 0.0)
    assert back == k


def test_nginx_80_is_name_hmac_aes(tmp_path: Path) -> None:
    k = TicketKey.generate(0.0, 80)
    write_key_file(tmp_path / "k", [k], KeyFileFormat.NGINX)
    assert (tmp_path / "k").read_bytes() == k.name + k.hmac_key + k.aes_key
    assert read_key_file(tmp_path / "k", KeyFileFormat.NGINX, 0.0) == [k]


def test_same_bytes_different_formats() -> None:
    raw = bytes(range(48))
    native = TicketKey.from_bytes(raw, KeyFileFormat.NATIVE, 0)
    nginx = TicketKey.from_bytes(raw, KeyFileFormat.NGINX, 0)
    assert native.hmac_key == raw[16:32] and native.aes_key == raw[32:]
    assert nginx.aes_key == raw[16:32] and nginx.hmac_key == raw[32:]


def test_apache_is_48_bytes_name_hmac_aes(tmp_path: Path) -> None:
    """mod_ssl's SSLSessionTicketKeyFile: exactly 48 bytes, name | HMAC secret | AES key."""
    k = TicketKey.generate(0.0, 48)
    write_key_file(tmp_path / "k", [k], KeyFileFormat.APACHE)
    assert (tmp_path / "k").read_bytes() == k.name + k.hmac_key + k.aes_key
    assert read_key_file(tmp_path / "k", KeyFileFormat.APACHE, 0.0) == [k]
    with pytest.raises(ConfigError, match="apache ticket key is 48 bytes"):
        TicketKey.generate(0.0, 80).to_bytes(KeyFileFormat.APACHE)
    (tmp_path / "k80").write_bytes(bytes(80))
    with pytest.raises(ConfigError, match="apache ticket key file is 48 bytes"):
        read_key_file(tmp_path / "k80", KeyFileFormat.APACHE, 0.0)


@pytest.mark.parametrize("size", [48, 80])
def test_haproxy_round_trip(tmp_path: Path, size: int) -> None:
    keys = [TicketKey.generate(0.0, size) for _ in range(3)]
    write_key_file(tmp_path / "k", keys, KeyFileFormat.HAPROXY)
    lines = (tmp_path / "k").read_text().splitlines()
    assert len(lines) == 3
    assert base64.b64decode(lines[0]) == keys[0].name + keys[0].aes_key + keys[0].hmac_key
    back = read_key_file(tmp_path / "k", KeyFileFormat.HAPROXY, 0.0)
    # HAProxy encrypts with the second-to-last line; the rest still decrypt.
    assert back[0] == keys[1]
    assert sorted(k.name for k in back) == sorted(k.name for k in keys)


def test_haproxy_single_line_and_comments(tmp_path: Path) -> None:
    k = TicketKey.generate(0.0, 48)
    (tmp_path / "k").write_text(
        "# comment\n\n" + base64.b64encode(k.to_bytes(KeyFileFormat.HAPROXY)).decode() + "\n"
    )
    assert read_key_file(tmp_path / "k", KeyFileFormat.HAPROXY, 0.0) == [k]


@pytest.mark.parametrize(
    ("fmt", "content"),
    [
        (KeyFileFormat.NATIVE, bytes(47)),
        (KeyFileFormat.NATIVE, bytes(81)),
        (KeyFileFormat.NGINX, b""),
        (KeyFileFormat.HAPROXY, b"not base64!!\n"),
        (KeyFileFormat.HAPROXY, b"# only a comment\n"),
        (KeyFileFormat.HAPROXY, base64.b64encode(bytes(50)) + b"\n"),
    ],
)
def test_bad_key_files(tmp_path: Path, fmt: KeyFileFormat, content: bytes) -> None:
    (tmp_path / "k").write_bytes(content)
    with pytest.raises(ConfigError):
        read_key_file(tmp_path / "k", fmt, 0.0)


def test_native_file_holds_one_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        write_key_file(tmp_path / "k", [key(1), key(2)], KeyFileFormat.NATIVE)


def test_keyring_from_file_keys(tmp_path: Path) -> None:
    keys = [TicketKey.generate(0.0, 80) for _ in range(3)]
    write_key_file(tmp_path / "k", keys, KeyFileFormat.HAPROXY)
    ring = TicketKeyring(read_key_file(tmp_path / "k", KeyFileFormat.HAPROXY, 0.0), clock=Clock())
    assert ring.encryption_key() == keys[1]
    for k in keys:
        found = ring.decryption_key(k.name)
        assert found is not None and found[1] is (k == keys[1])


def test_install_during_maintenance_is_never_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Erasing expired keys (static keys with a lifetime) races with install(). The erasure is
    computed and swapped under the lock, from the snapshot current there, so an install() that
    comes in the middle waits and is never overwritten (the lost update the issue reproduced).

    The maintenance is held in the middle of computing the live keys while another thread
    installs; with the computation outside the lock the install would land first and then be
    overwritten by the stale result."""
    import threading

    clock = Clock()
    clock.now = 1000.0
    stale = TicketKey(b"\xee" * 16, b"h" * 32, b"a" * 32, created=0.0)  # past its lifetime
    ring = TicketKeyring([key(1), stale], static_key_lifetime=100.0, clock=clock)
    fresh = TicketKey(b"\x42" * 16, b"h" * 32, b"a" * 32, created=1000.0)
    original = TicketKeyring._ordered
    holding, installed = threading.Event(), threading.Event()

    def slow_ordered(self: TicketKeyring, *args: object) -> list[TicketKey]:
        out = original(self, *args)  # type: ignore[arg-type]
        if threading.current_thread().name == "maintainer" and not holding.is_set():
            holding.set()
            installed.wait(0.5)  # give the installer every chance to land first
        return out

    monkeypatch.setattr(TicketKeyring, "_ordered", slow_ordered)
    maintainer = threading.Thread(target=ring.encryption_key, name="maintainer")
    maintainer.start()
    assert holding.wait(5)

    def install() -> None:
        ring.install([fresh, stale])
        installed.set()

    installer = threading.Thread(target=install)
    installer.start()
    installer.join(5)
    maintainer.join(5)
    assert ring.decryption_key(fresh.name) == (fresh, True)
    assert ring.decryption_key(stale.name) is None  # and erasure itself still happens

"""The fleet secret: made 0600, never overwritten by accident, loaded from a file or the
environment, and the AEAD that binds a value to its key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tessera.errors import ConfigError
from tessera.fleet.secret import ENV_VAR, FleetSecret


def test_written_0600_and_loaded_back(tmp_path: Path) -> None:
    s = FleetSecret.generate()
    path = tmp_path / "fleet.secret"
    s.write(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert FleetSecret.load(path) == s
    assert s.secret.hex() not in repr(s)


def test_existing_file_refused_without_force(tmp_path: Path) -> None:
    path = tmp_path / "fleet.secret"
    first = FleetSecret.generate()
    first.write(path)
    with pytest.raises(ConfigError, match="--force"):
        FleetSecret.generate().write(path)
    assert FleetSecret.load(path) == first
    second = FleetSecret.generate()
    second.write(path, force=True)
    assert FleetSecret.load(path) == second


def test_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    s = FleetSecret.generate()
    monkeypatch.setenv(ENV_VAR, s.secret.hex())
    assert FleetSecret.load() == s
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(ConfigError, match="--fleet-secret"):
        FleetSecret.load()


@pytest.mark.parametrize("text", ["", "zz" * 32, "ab" * 16])
def test_bad_secret_says_how_to_make_one(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad"
    path.write_text(text)
    with pytest.raises(ConfigError, match="tessera keys fleet-secret"):
        FleetSecret.load(path)


def test_sealed_values_bind_to_their_key_and_label() -> None:
    s = FleetSecret.generate()
    box = s.box("session store v1")
    sealed = box.seal(b"key-a", b"master secret")
    assert b"master secret" not in sealed
    assert box.open(b"key-a", sealed) == b"master secret"
    assert box.open(b"key-b", sealed) is None  # moved to another key
    assert s.box("ticket keys v1").open(b"key-a", sealed) is None  # another label
    assert FleetSecret.generate().box("session store v1").open(b"key-a", sealed) is None
    tampered = sealed[:-1] + bytes((sealed[-1] ^ 1,))
    assert box.open(b"key-a", tampered) is None
    assert box.open(b"key-a", b"short") is None
    assert box.seal(b"k", b"v") != box.seal(b"k", b"v")  # a fresh nonce each time

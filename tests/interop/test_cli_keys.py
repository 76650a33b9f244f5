"""``tessera keys``: the format option has serve's name (--ticket-key-format) and keeps the old
one (--format); ``keys show`` prints a rich table, coloured on a terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
from peers import TESSERA, run

from tessera.session.keyring import KeyFileFormat, read_key_file


def keys(*args: str, env: dict[str, str] | None = None) -> str:
    r = run([*TESSERA, "keys", *args], timeout=30, env=env)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out
    return out


@pytest.mark.parametrize("flag", ["--ticket-key-format", "--format"])
def test_both_flag_names(tmp_path: Path, flag: str) -> None:
    path = tmp_path / "keys.txt"
    keys("generate", "-o", str(path), flag, "haproxy", "--count", "3")
    loaded = read_key_file(path, KeyFileFormat.HAPROXY, 0.0)
    shown = run([*TESSERA, "keys", "show", str(path), flag, "haproxy"], timeout=30)
    lines = shown.stdout.decode().splitlines()
    assert len(lines) == 3
    for line, key in zip(lines, loaded, strict=True):
        assert line.split()[0] == key.name.hex()
    assert lines[0].split()[1:] == ["AES-256-CBC", "encrypts"]
    assert lines[1].split()[1:] == ["AES-256-CBC", "decrypts", "only"]


def test_show_colours_on_a_terminal(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    keys("generate", "-o", str(path))
    coloured = keys("show", str(path), env={"FORCE_COLOR": "1"})
    assert (
        "\x1b[" in coloured
        and read_key_file(path, KeyFileFormat.NATIVE, 0.0)[0].name.hex() in coloured
    )

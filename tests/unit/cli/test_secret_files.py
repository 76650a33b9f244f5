"""Secret files the CLI writes when asked (issue 13, item 8): ``tessera keys generate`` refuses
to replace a file without --force and always leaves mode 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from click.testing import CliRunner

from tessera.cli.main import cli


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def generate(path: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["keys", "generate", "-o", str(path), *extra])
    return result.exit_code, result.output


def test_new_key_file_is_0600(tmp_path: Path) -> None:
    path = tmp_path / "ticket.key"
    code, out = generate(path)
    assert code == 0, out
    assert mode(path) == 0o600 and len(path.read_bytes()) == 80


def test_existing_file_is_not_replaced_without_force(tmp_path: Path) -> None:
    path = tmp_path / "ticket.key"
    path.write_bytes(b"keep me")
    code, out = generate(path)
    assert code != 0
    assert "already exists" in out and "--force" in out, out
    assert path.read_bytes() == b"keep me"
    assert [p.name for p in tmp_path.iterdir()] == ["ticket.key"]  # no temporary left over


def test_force_over_a_0644_file_ends_at_0600(tmp_path: Path) -> None:
    path = tmp_path / "ticket.key"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    code, out = generate(path, "--force", "--size", "48")
    assert code == 0, out
    assert mode(path) == 0o600
    assert len(path.read_bytes()) == 48
    assert [p.name for p in tmp_path.iterdir()] == ["ticket.key"]


def test_force_replaces_a_symlink_not_its_target(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"untouched")
    os.chmod(target, 0o644)
    link = tmp_path / "ticket.key"
    link.symlink_to(target)
    code, out = generate(link)
    assert code != 0, out
    code, out = generate(link, "--force")
    assert code == 0, out
    assert not link.is_symlink() and mode(link) == 0o600
    assert target.read_bytes() == b"untouched" and mode(target) == 0o644

"""Secret files others can read get a warning (once, with the fix); core dumps are off while
secrets are loaded — in the library function and in a running ``tessera serve``."""

from __future__ import annotations

import logging
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from peers import TESSERA, Peer

from conftest import Pki, free_port
from tessera.fleet.hygiene import disable_core_dumps, warn_if_exposed
from tessera.fleet.secret import FleetSecret


def test_group_or_world_readable_secret_warns_once(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    caplog.set_level(logging.WARNING, logger="tessera")
    path = tmp_path / "fleet.secret"
    FleetSecret.generate().write(path)
    assert not warn_if_exposed(path, "fleet secret file")
    path.chmod(0o644)
    FleetSecret.load(path)
    FleetSecret.load(path)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1, warned
    assert "0644" in warned[0] and f"chmod 600 {path}" in warned[0]


def test_core_dumps_disabled_in_a_child() -> None:
    code = ("import resource; from tessera.fleet.hygiene import disable_core_dumps; "
            "print(disable_core_dumps(), resource.getrlimit(resource.RLIMIT_CORE))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout  # fmt: skip
    assert out.strip() == "True (0, 0)"
    assert disable_core_dumps.__doc__ and resource.RLIMIT_CORE  # (this process keeps its own)


def test_serve_runs_without_core_dumps_and_warns_about_key_files(pki: Pki,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    key = tmp_path / "server.key"
    key.write_bytes(pki.ecdsa_key.read_bytes())
    key.chmod(0o644)
    port = free_port()
    argv = [*TESSERA, "serve", "--port", str(port), "--cert", str(pki.ecdsa_cert),
            "--key", str(key), "-q"]  # fmt: skip
    with Peer(argv, port=port, log_dir=tmp_path, name="serve") as p:
        limits = Path(f"/proc/{p.proc.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max core file size"))
        assert line.split()[4:6] == ["0", "0"], line
        assert f"private key file {key} has permissions 0644" in p.output(), p.output()


def test_serve_refuses_dev_zero_as_a_certificate(tmp_path: Path) -> None:
    """``--cert /dev/zero``: a usage error naming the file, at once, not GiBs of memory."""
    r = subprocess.run([*TESSERA, "serve", "--port", str(free_port()), "--cert", "/dev/zero"],
                       capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "/dev/zero: the certificate file is larger than 1024 KiB" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr

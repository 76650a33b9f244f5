"""The systemd units and example configuration files in contrib/ (issue 22, item 6).

Each unit passes ``systemd-analyze verify`` without a word and ``systemd-analyze security``
under a threshold; then its ExecStart= runs exactly as written — the installed program being
this environment's ``tessera`` and /etc/tessera a temp directory holding the example config
(its addresses moved to free loopback ports) — with a real redis-server, the fleet secret only
in $CREDENTIALS_DIRECTORY as LoadCredential= leaves it, and no other environment. The service
is then used by a real client: openssl s_client resumes on tessera serve, CPython's ssl talks
to Redis through tessera proxy, and tessera keys sync writes nginx's and HAProxy's key files
and runs its exec command.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from peers import Peer, openssl_s_client, wait_for_output, wait_for_port
from redis_server import RedisServer

from conftest import Pki, free_port
from tessera.fleet.secret import FleetSecret
from tessera.session.keyring import KeyFileFormat, read_key_file
from waiting import wait_until

pytestmark = pytest.mark.interop

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
UNITS = sorted((CONTRIB / "systemd").glob("*.service"))
INSTALLED = "/opt/tessera/bin/tessera"  # where the units expect the program (a venv in /opt)
TESSERA = str(Path(sys.executable).parent / "tessera")  # where it is here
HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
    "PrivateTmp": "yes", "LimitCORE": "0", "User": "tessera",
    "LoadCredential": "fleet-secret:/etc/tessera/fleet-secret",
}  # fmt: skip
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def unit_settings(path: Path) -> dict[str, list[str]]:
    """The [Service] settings of a unit, parsed strictly: every line is a comment, a section
    header or Key=Value (no continuation lines), and the sections are the usual three."""
    settings: dict[str, list[str]] = {}
    section = ""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        if header := re.fullmatch(r"\[(\w+)\]", line):
            section = header[1]
            assert section in {"Unit", "Service", "Install"}, f"{path}:{number}: {line}"
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z]\w+", key) and not line.endswith("\\"), (path, number)
        assert section, f"{path}:{number}: a setting before any section"
        if section == "Service":
            settings.setdefault(key, []).append(value)
    return settings


def exec_start(unit: Path) -> list[str]:
    (line,) = unit_settings(unit)["ExecStart"]
    argv = shlex.split(line)
    assert argv[0] == INSTALLED, line
    return argv


def here(unit: Path, tmp_path: Path) -> Path:
    """The unit with the program where it is installed here: nothing else changes."""
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace(INSTALLED, TESSERA))
    return copy


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_the_unit_is_valid_and_hardened(unit: Path, tmp_path: Path) -> None:
    if SYSTEMD_ANALYZE is None:
        pytest.fail("systemd-analyze is not installed (Debian: systemd); scripts/test installs it")
    settings = unit_settings(unit)
    for key, value in HARDENING.items():
        assert value in settings.get(key, []), f"{unit.name}: no {key}={value}"
    command = exec_start(unit)
    name = command[1] if command[1] != "keys" else "keys-sync"
    assert command[-2:] == ["--config", f"/etc/tessera/{name}.toml"], command
    assert (CONTRIB / "etc" / "tessera" / f"{name}.toml").is_file()
    copy = here(unit, tmp_path)
    r = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(copy)], capture_output=True,
                       text=True, timeout=60, check=False)  # fmt: skip
    assert (r.returncode, r.stdout + r.stderr) == (0, ""), r.stdout + r.stderr
    # At most 2.5 on systemd's scale (0: locked down, 10: exposed).
    r = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", "--threshold=25",
                        str(copy)], capture_output=True, text=True, timeout=60,
                       check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"Overall exposure level for \S+: [0-2]\.\d OK", r.stdout), r.stdout


def test_the_sysusers_file_makes_the_units_user(tmp_path: Path) -> None:
    if shutil.which("systemd-sysusers") is None:
        pytest.fail("systemd-sysusers is not installed (Debian: systemd)")
    (tmp_path / "etc").mkdir()
    r = subprocess.run(["systemd-sysusers", f"--root={tmp_path}",
                        str(CONTRIB / "systemd" / "tessera.sysusers")], capture_output=True,
                       text=True, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text()
    assert re.search(r"^tessera:x:\d+:\d+:tessera TLS services:/:/usr/sbin/nologin$", passwd,
                     re.M), passwd  # fmt: skip


class Installed:
    """/etc/tessera in a temp dir, as the README of the units installs it, and the credential
    directory systemd makes for LoadCredential=fleet-secret:/etc/tessera/fleet-secret."""

    def __init__(self, tmp_path: Path, pki: Pki) -> None:
        self.etc = tmp_path / "etc" / "tessera"
        (self.etc / "tls").mkdir(parents=True)
        shutil.copy(pki.ecdsa_cert, self.etc / "tls" / "server.crt")
        shutil.copy(pki.ecdsa_key, self.etc / "tls" / "server.key")
        FleetSecret.generate().write(self.etc / "fleet-secret")
        self.credentials = tmp_path / "credentials"
        self.credentials.mkdir(mode=0o700)
        shutil.copy(self.etc / "fleet-secret", self.credentials / "fleet-secret")
        (self.credentials / "fleet-secret").chmod(0o400)  # as systemd leaves it
        self.tmp = tmp_path

    def config(self, name: str, **values: object) -> None:
        """The example config with /etc/tessera here and ``values`` (key: the TOML key with
        '_' for '-') replacing the lines that set them."""
        text = (CONTRIB / "etc" / "tessera" / name).read_text().replace("/etc/tessera/",
                                                                         f"{self.etc}/")  # fmt: skip
        for key, value in values.items():
            line = f"{key.replace('_', '-')} = {json.dumps(value)}"  # json: TOML here
            text, n = re.subn(rf"^{key.replace('_', '-')} = .*$", line.replace("\\", "\\\\"),
                              text, flags=re.M)  # fmt: skip
            assert n == 1, f"{name} sets no {key}"
        (self.etc / name).write_text(text)
        tomllib.loads(text)

    def start(self, unit: str, name: str) -> Peer:
        argv = exec_start(CONTRIB / "systemd" / unit)
        argv = [TESSERA, *(a.replace("/etc/tessera/", f"{self.etc}/") for a in argv[1:])]
        env = {"CREDENTIALS_DIRECTORY": str(self.credentials)}
        return Peer(argv, log_dir=self.tmp, name=name, env=env)


@pytest.fixture
def installed(tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> Installed:
    monkeypatch.delenv("TESSERA_FLEET_SECRET", raising=False)  # the credential only
    return Installed(tmp_path, pki)


def test_tessera_serve_service(installed: Installed, redis_server: RedisServer,
                               pki: Pki) -> None:  # fmt: skip
    port = free_port()
    installed.config("serve.toml", host="127.0.0.1", port=port, redis=redis_server.url,
                     metrics=f"127.0.0.1:{free_port()}")  # fmt: skip
    with installed.start("tessera-serve.service", "serve") as service:
        wait_for_output(service, "signals: HUP")
        wait_for_port(port, proc=service.proc)
        out = openssl_s_client(port, "-CAfile", str(pki.ca_file), "-reconnect", "-tls1_2")
        assert "Verify return code: 0 (ok)" in out, out
        assert out.count("Reused, TLSv1.2") == 5, out  # by the fleet's ticket keys
    assert "Traceback" not in service.output(), service.output()


def test_tessera_proxy_service(installed: Installed, redis_server: RedisServer,
                               pki: Pki) -> None:  # fmt: skip
    """Redis itself is the plaintext backend: PING through the proxy answers +PONG."""
    port = free_port()
    installed.config("proxy.toml", listen=f"127.0.0.1:{port}",
                     backend=f"127.0.0.1:{redis_server.port}", redis=redis_server.url,
                     metrics=f"127.0.0.1:{free_port()}")  # fmt: skip
    with installed.start("tessera-proxy.service", "proxy") as service:
        wait_for_port(port, proc=service.proc)
        context = ssl.create_default_context(cafile=str(pki.ca_file))
        with (
            socket.create_connection(("127.0.0.1", port), timeout=20) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"PING\r\n")
            assert tls.recv(64) == b"+PONG\r\n"
    assert "Traceback" not in service.output(), service.output()


def test_tessera_keys_sync_service(installed: Installed, redis_server: RedisServer) -> None:
    run = installed.tmp / "run" / "tessera-keys"  # the unit's RuntimeDirectory
    run.mkdir(parents=True)
    marker = installed.tmp / "reloaded"
    installed.config("keys-sync.toml", redis=redis_server.url,
                     to=[f"nginx:{run}", f"haproxy:{run}/haproxy.keys"],
                     exec=[f"echo reload >> {marker}"], metrics=f"127.0.0.1:{free_port()}")  # fmt: skip
    with installed.start("tessera-keys-sync.service", "keys-sync") as service:
        wait_until(marker.exists, "the exec command did not run", details=service.output)
        names = {p.name for p in run.iterdir()}
        assert names == {"ticket.0.key", "ticket.1.key", "ticket.2.key", "haproxy.keys"}, names
        for p in run.iterdir():
            assert os.stat(p).st_mode & 0o077 == 0, p
        (key, *_) = read_key_file(run / "ticket.0.key", KeyFileFormat.NGINX, 0.0)
        haproxy = read_key_file(run / "haproxy.keys", KeyFileFormat.HAPROXY, 0.0)
        assert key.name in {k.name for k in haproxy}
        assert "following the fleet's ticket keys" in service.output()
    assert "Traceback" not in service.output(), service.output()

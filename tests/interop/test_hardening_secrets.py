"""``tessera connect --sess-out FILE`` writes the session (its master secret or PSK) at mode 0600,
also over an existing 0644 file (issue 13, item 8)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import TESSERA, run

from conftest import Pki, serving
from tessera import (
    ClientSession,
    MemoryStore,
    ServerConfig,
    TicketKeyring,
    TLSServer,
    TLSSocket,
)

pytestmark = pytest.mark.interop


def echo(tls: TLSSocket) -> None:
    while data := tls.recv(65536):
        tls.sendall(data)


@pytest.fixture(scope="module")
def server(pki: Pki) -> Iterator[TLSServer]:
    config = ServerConfig(
        certificates=(pki.ecdsa,), session_store=MemoryStore(), ticket_keyring=TicketKeyring()
    )
    with serving(config, echo) as srv:
        yield srv


@pytest.mark.parametrize("version", ["--tls1_2", "--tls1_3"])
@pytest.mark.parametrize("existing", [False, True])
def test_sess_out_is_0600(server: TLSServer, tmp_path: Path, version: str, existing: bool) -> None:
    sess = tmp_path / "session.pem"
    if existing:
        sess.write_text("an old session\n")
        os.chmod(sess, 0o644)
    host, port = server.address
    argv = [*TESSERA, "connect", f"{host}:{port}", "--insecure", version, "--linger", "0.3",
            "--sess-out", str(sess)]  # fmt: skip
    r = run(argv, timeout=30)
    assert r.returncode == 0, r.stdout.decode(errors="replace")
    assert stat.S_IMODE(sess.stat().st_mode) == 0o600
    saved = ClientSession.from_pem(sess.read_text())
    assert saved.state.secret
    assert [p.name for p in tmp_path.iterdir()] == ["session.pem"]

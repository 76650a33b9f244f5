"""Shared fixtures: a test PKI written to disk, free ports, and peer-program helpers."""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from leftovers import check_and_kill, mark_this_session
from ports import free_port
from tessera import ServerConfig, TLSServer, TLSSocket
from tessera.certs import CertifiedKey, generate_ca, issue_leaf

__all__ = ["free_port"]  # tests import it from here

mark_this_session()  # (before any test starts a process)

# Ctrl-C reaches the programs the tests start, however the suite was launched: a shell script's
# background job (``scripts/test &``) has SIGINT ignored, which every child would inherit (and a
# Python child then never raises KeyboardInterrupt, so a test of Ctrl-C would hang).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def nothing_outlives_the_session() -> Iterator[None]:
    """After the last test (and every other session fixture, set up after this one, has been
    torn down): no process the tests started may still run. Leftovers are killed and named."""
    yield
    left = check_and_kill()
    assert not left, "processes the tests started outlived them (killed now):\n" + "\n".join(
        f"  {pid}: {cmdline}" for pid, cmdline in sorted(left.items())
    )


@dataclass(frozen=True)
class Pki:
    """A CA and server/client leaves (ECDSA P-256 and RSA-2048), in memory and as PEM files."""

    ca: CertifiedKey
    ecdsa: CertifiedKey
    rsa: CertifiedKey
    client: CertifiedKey
    ca_file: Path
    ecdsa_cert: Path
    ecdsa_key: Path
    rsa_cert: Path
    rsa_key: Path
    client_cert: Path
    client_key: Path


def _write(cert: CertifiedKey, directory: Path, name: str) -> tuple[Path, Path]:
    chain, key = cert.to_pem()
    c, k = directory / f"{name}.crt", directory / f"{name}.key"
    c.write_bytes(chain)
    k.write_bytes(key)
    return c, k


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = generate_ca("ec")
    ecdsa = issue_leaf(ca, ("localhost", "127.0.0.1"), kind="ec")
    rsa = issue_leaf(ca, ("localhost", "127.0.0.1"), kind="rsa")
    client = issue_leaf(ca, ("tessera client",), kind="ec", client=True)
    ca_file = d / "ca.crt"
    ca_file.write_bytes(ca.to_pem()[0])
    ec_c, ec_k = _write(ecdsa, d, "ecdsa")
    rsa_c, rsa_k = _write(rsa, d, "rsa")
    cl_c, cl_k = _write(client, d, "client")
    return Pki(ca, ecdsa, rsa, client, ca_file, ec_c, ec_k, rsa_c, rsa_k, cl_c, cl_k)


@pytest.fixture
def port() -> int:
    return free_port()


def require_program(name: str) -> str:
    """The path of a peer program. Missing peers are a setup error (.ci/run installs them),
    never a skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; .ci/run must install it")
    return path


@contextlib.contextmanager
def serving(config: ServerConfig, handler: Callable[[TLSSocket], None]) -> Iterator[TLSServer]:
    """An in-process TLSServer on a free loopback port, served by a thread until the end."""
    server = TLSServer(("127.0.0.1", 0), config, handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(5)

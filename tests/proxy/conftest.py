"""Fixtures for the ``tessera proxy`` tests: real backends (``http.server``, Node.js, a TCP echo,
a PROXY v2 reader) and proxies started as processes on free ports, always stopped."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fleet"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "interop"))

from peers import Peer
from proxy_helpers import backend, node_backend

from conftest import free_port


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("proxy")


@pytest.fixture(scope="module")
def http_backend(logs: Path) -> Iterator[Peer]:
    with backend("http", logs) as peer:
        yield peer


@pytest.fixture(scope="module")
def node_http_backend(logs: Path) -> Iterator[Peer]:
    with node_backend(logs) as peer:
        yield peer


@pytest.fixture(scope="module")
def echo_backend(logs: Path) -> Iterator[Peer]:
    with backend("echo", logs) as peer:
        yield peer


@pytest.fixture
def metrics_port() -> int:
    return free_port()

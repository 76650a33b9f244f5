"""Fixtures for the fleet tests: a real redis-server per test, a fleet secret file."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "interop"))

from redis_server import RedisServer

from tessera.fleet.secret import FleetSecret


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:  # its own short temp dir (a unix socket path is <= 107 bytes)
        yield server


@pytest.fixture
def fleet_secret() -> FleetSecret:
    return FleetSecret.generate()


@pytest.fixture
def secret_file(tmp_path: Path, fleet_secret: FleetSecret) -> Path:
    path = tmp_path / "fleet.secret"
    fleet_secret.write(path)
    return path


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    """One redis-server for a whole module (each test uses its own namespace)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def shared_secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fleet") / "fleet.secret"
    FleetSecret.generate().write(path)
    return path

"""Fixtures for in-memory pairs: certificates made once per session, a fresh world per test."""

from __future__ import annotations

import pytest

from tessera.certs import issue_leaf

from .helpers import Certs, World


@pytest.fixture(scope="session")
def certs(pki) -> Certs:  # type: ignore[no-untyped-def]
    alt = issue_leaf(pki.ca, ("alt.example",), kind="ec")
    return Certs(pki.ca_file, pki.ecdsa, pki.rsa, pki.client, alt, pki.ca)


@pytest.fixture
def world(certs: Certs) -> World:
    return World(certs)

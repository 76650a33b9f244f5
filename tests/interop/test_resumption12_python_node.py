"""TLS 1.2 resumption: CPython ``ssl`` and Node.js ``tls`` clients against ``tessera serve``.

Each client runs as its own process, connects three times (the second and third passing the
first connection's session), fetches the ``--www`` page over every connection and prints one
JSON line per connection: whether *it* thinks the session was reused, and the server's
``Resumed:`` line.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from peers import Peer
from resumption_helpers import node_client, py_client, server_outcomes, tessera_www

from conftest import Pki, free_port, require_program

pytestmark = pytest.mark.interop

COUNT = 3


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    with tessera_www(free_port(), tmp_path_factory.mktemp("serve"), pki) as peer:
        yield peer


def _check(results: list[dict[str, object]], by: str, ticket_key: str) -> None:
    assert len(results) == COUNT, results
    first, *rest = results
    assert first["reused"] is False
    assert first["server"] == "Resumed: no"
    for r in results:
        assert r.get("version", r.get("protocol")) == "TLSv1.2", r
    for r in rest:
        assert r["reused"] is True, results
        assert r["server"] == f"Resumed: yes, by {by}", results
    if by == "ticket":
        assert all(r[ticket_key] for r in results), results
    else:
        assert not any(r[ticket_key] for r in results), results


@pytest.mark.parametrize("no_ticket", [False, True], ids=["ticket", "session_id"])
def test_cpython_client_session_reused(server: Peer, pki: Pki, no_ticket: bool) -> None:
    """``ctx.wrap_socket(..., session=first.session)`` -> ``session_reused`` is True; with
    ``ssl.OP_NO_TICKET`` the session id does it."""
    assert server.port is not None
    before = len(server_outcomes(server, 0))
    results = py_client(server.port, pki, COUNT, no_ticket)
    _check(results, "session_id" if no_ticket else "ticket", "has_ticket")
    if no_ticket:
        # The same session id each time: the server's cache resumed it.
        assert len({r["id"] for r in results}) == 1, results
    assert server_outcomes(server, before + COUNT)[before:] == ["New"] + ["Reused"] * (COUNT - 1)


@pytest.mark.parametrize("no_ticket", [False, True], ids=["ticket", "session_id"])
def test_node_client_session_reused(server: Peer, pki: Pki, no_ticket: bool) -> None:
    """``tls.connect({session})`` with the buffer from the ``'session'`` event ->
    ``isSessionReused()``; with ``SSL_OP_NO_TICKET`` the session id does it."""
    require_program("node")
    assert server.port is not None
    before = len(server_outcomes(server, 0))
    results = node_client(server.port, pki, COUNT, no_ticket)
    _check(results, "session_id" if no_ticket else "ticket", "ticket")
    for r in results:
        assert r["cipher"], r
    assert server_outcomes(server, before + COUNT)[before:] == ["New"] + ["Reused"] * (COUNT - 1)

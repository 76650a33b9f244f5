"""TLS 1.2 resumption: ``openssl s_client`` (OpenSSL 3.0) against ``tessera serve``.

What each side prints is the evidence: s_client's ``New``/``Reused`` lines and ``-msg`` trace,
the server's per-connection lines, and the ``--www`` status page (counters and fallback reasons)
fetched over the last connection.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import Peer
from resumption_helpers import (
    GET,
    RECONNECTS,
    outcomes,
    parse_status_page,
    s_client,
    s_client_page,
    server_outcomes,
    session_lines,
    tessera_connect,
    tessera_www,
)

from conftest import Pki, free_port, require_program
from tessera import ClientSession

pytestmark = pytest.mark.interop

# server flags -> {client offers tickets: how the 5 reconnections resume (None: they don't)}
SERVER_VARIANTS = {
    "cache+tickets": ((), {True: "ticket", False: "session_id"}),
    "no-ticket": (("--no-ticket",), {True: "session_id", False: "session_id"}),
    "no-cache": (("--no-cache",), {True: "ticket", False: None}),
    "no-ticket+no-cache": (("--no-ticket", "--no-cache"), {True: None, False: None}),
}


@pytest.fixture(scope="module")
def shared_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    """One default ``tessera serve --tls1_2 --www`` (cache and tickets) for tests that only
    look at per-connection results."""
    require_program("openssl")
    with tessera_www(free_port(), tmp_path_factory.mktemp("serve"), pki) as peer:
        yield peer


@pytest.mark.parametrize("client_tickets", [True, False], ids=["tickets", "no_ticket"])
@pytest.mark.parametrize("variant", list(SERVER_VARIANTS))
def test_s_client_reconnect(
    pki: Pki, tmp_path: Path, port: int, variant: str, client_tickets: bool
) -> None:
    """``s_client -reconnect``: one full handshake, then five reconnections that resume where
    the server keeps sessions in a way the client can use, and are full handshakes otherwise."""
    require_program("openssl")
    flags, expected = SERVER_VARIANTS[variant]
    by = expected[client_tickets]
    with tessera_www(port, tmp_path, pki, *flags) as server:
        args = ["-reconnect", "-ign_eof"] + ([] if client_tickets else ["-no_ticket"])
        out = s_client(port, *args, input=GET)
        want = ["New"] + ["Reused" if by else "New"] * RECONNECTS
        assert outcomes(out) == want, out
        assert {v for _, v, _ in session_lines(out)} == {"TLSv1.2"}
        assert server_outcomes(server, 1 + RECONNECTS) == want, server.output()
        # The last connection fetched the status page: it shows how it resumed.
        page = parse_status_page(out)
        # Its counters may miss the connection before it: s_client reconnects as soon as it
        # has the server's Finished, and the server counts a resumption once it has the
        # client's. Every connection has been logged (so counted) now; one more page (one
        # more full handshake, offering nothing) shows the final counts.
        extra = [] if client_tickets else ["-no_ticket"]
        stats = parse_status_page(s_client(port, "-ign_eof", *extra, input=GET)).stats
    assert page.outcome == want[-1]
    assert page.fields["Protocol"] == "TLSv1.2"
    assert page.fields["Resumed"] == (f"yes, by {by}" if by else "no")
    if by:
        assert stats["full_handshakes"] == 1 + 1
        assert stats["resumed"] == RECONNECTS
        assert stats[f"resumed_{by}"] == RECONNECTS
        other = "session_id" if by == "ticket" else "ticket"
        assert stats[f"resumed_{other}"] == 0
    else:
        assert stats["full_handshakes"] == 1 + RECONNECTS + 1
        assert stats["resumed"] == 0
    tickets_on = "--no-ticket" not in flags and client_tickets
    cache_on = "--no-cache" not in flags
    assert stats["tickets_issued"] == (2 if tickets_on else 0)
    if not cache_on:
        assert stats["sessions_cached"] == 0
    elif by == "session_id":
        assert stats["sessions_cached"] == 2
    # (A server issuing a ticket may or may not also cache the session: RFC 5077 §3.4.)
    # OpenSSL shows a ticket only when the server issued one.
    assert ("TLS session ticket:" in out) == tickets_on, out
    if not cache_on:
        assert page.fields["Session-ID"] == "(none)" or by == "ticket"
    # Nothing the client offered was refused: no fallback reasons at all.
    assert page.reasons == {}, page.text


@pytest.mark.parametrize("client_tickets", [True, False], ids=["ticket", "session_id"])
def test_s_client_sess_out_then_sess_in(
    shared_server: Peer, tmp_path: Path, client_tickets: bool
) -> None:
    """A session saved by one ``s_client`` run (``-sess_out``) resumes in a second run
    (``-sess_in``): ``Reused, TLSv1.2``."""
    port = shared_server.port
    assert port is not None
    sess = tmp_path / "session.pem"
    extra = [] if client_tickets else ["-no_ticket"]
    first = s_client(port, "-sess_out", str(sess), *extra)
    assert outcomes(first) == ["New"], first
    assert "BEGIN SSL SESSION PARAMETERS" in sess.read_text()
    out, outcome = s_client_page(port, "-sess_in", str(sess), *extra)
    assert outcome == "Reused", out
    assert re.search(r"^Reused, TLSv1\.2, Cipher is ", out, re.MULTILINE), out
    page = parse_status_page(out)
    assert page.outcome == "Reused"
    assert page.fields["Resumed"] == ("yes, by ticket" if client_tickets else "yes, by session_id")
    assert page.fields["Protocol"] == "TLSv1.2"


_HS = re.compile(r"^(<<<|>>>) TLS 1\.2, Handshake \[length [0-9a-f]+\], (\w+)")


def _flights(out: str) -> list[tuple[str, list[str], list[str]]]:
    """Per connection in an ``s_client -msg`` trace: (New/Reused, received, sent) handshake
    message names."""
    conns: list[tuple[str, list[str], list[str]]] = []
    received: list[str] = []
    sent: list[str] = []
    for line in out.splitlines():
        m = _HS.match(line)
        if m:
            (received if m.group(1) == "<<<" else sent).append(m.group(2))
            continue
        found = outcomes(line)
        if found:
            conns.append((found[0], received, sent))
            received, sent = [], []
    return conns


@pytest.mark.parametrize("client_tickets", [True, False], ids=["ticket", "session_id"])
def test_resumed_handshake_sends_no_certificate(shared_server: Peer, client_tickets: bool) -> None:
    """``s_client -reconnect -msg``: a resumed handshake is ServerHello + Finished, with no
    Certificate, ServerKeyExchange or ServerHelloDone from the server and no
    ClientKeyExchange from the client."""
    port = shared_server.port
    assert port is not None
    out = s_client(port, "-reconnect", "-msg", *([] if client_tickets else ["-no_ticket"]))
    conns = _flights(out)
    assert [c[0] for c in conns] == ["New"] + ["Reused"] * RECONNECTS, out
    outcome, received, sent = conns[0]
    assert received[:4] == ["ServerHello", "Certificate", "ServerKeyExchange", "ServerHelloDone"]
    assert "ClientKeyExchange" in sent
    assert ("NewSessionTicket" in received) == client_tickets
    for outcome, received, sent in conns[1:]:
        assert received == ["ServerHello", "Finished"], (outcome, received, out)
        assert "Certificate" not in received and "ServerKeyExchange" not in received
        assert sent == ["ClientHello", "Finished"], (outcome, sent, out)


@pytest.mark.parametrize("lifetime", [1, 3600])
def test_ticket_lifetime_hint_is_the_configured_lifetime(
    pki: Pki, tmp_path: Path, port: int, lifetime: int
) -> None:
    """``--ticket-lifetime N``: a freshly issued ticket's lifetime hint is N seconds (RFC 5077
    §3.3; 0 would mean "unspecified"). s_client prints the hint it received, and a tessera
    client keeps the ticket that long."""
    require_program("openssl")
    sess = tmp_path / "tessera.pem"
    with tessera_www(port, tmp_path, pki, "--ticket-lifetime", str(lifetime)):
        out = s_client(port)
        rc, connect_out = tessera_connect(port, pki, "--sess-out", str(sess))
    assert outcomes(out) == ["New"] and "TLS session ticket:" in out, out
    assert rc == 0, connect_out
    saved = ClientSession.from_pem(sess.read_text())
    assert saved.ticket
    # s_client prints no hint line when the hint is 0 ("unspecified").
    hint = re.search(r"TLS session ticket lifetime hint: (\d+)", out)
    seen = (int(hint[1]) if hint else 0, saved.state.lifetime)
    assert seen == (lifetime, lifetime), (
        f"ticket lifetime hint as s_client saw it, lifetime the tessera client kept: {seen}; "
        f"configured {lifetime}\n{out}"
    )

"""TLS 1.2 resumption: the tessera client (in this process, and ``tessera connect`` as a process)
against ``openssl s_server``, a CPython ``ssl`` server and ``tessera serve``.

It resumes wherever the server allows it (session id, ticket) and does a full handshake where
the server keeps nothing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from peers import Peer, openssl_s_server
from resumption_helpers import (
    GET,
    RECONNECTS,
    node_server,
    outcomes,
    parse_status_page,
    py_server,
    s_client_page,
    server_json,
    server_outcomes,
    session_lines,
    tessera_client_config,
    tessera_connect,
    tessera_get,
    tessera_www,
)

from conftest import Pki, require_program
from tessera import ClientSession

pytestmark = pytest.mark.interop

# s_server flags -> how a tessera client resumes (None: it cannot)
S_SERVER_VARIANTS = {
    "default": ((), "ticket"),
    "no_ticket": (("-no_ticket",), "session_id"),
    "no_cache": (("-no_cache",), "ticket"),
    "no_ticket+no_cache": (("-no_ticket", "-no_cache"), None),
}


def s_server_counters(page: str) -> dict[str, int]:
    """``   2 session cache hits`` lines of ``s_server -www``'s page."""
    return {m[2]: int(m[1]) for m in re.finditer(r"^\s*(\d+) (.+?)\s*$", page, re.MULTILINE)}


def _s_server(port: int, tmp_path: Path, pki: Pki, *flags: str) -> Peer:
    require_program("openssl")
    return openssl_s_server(
        port, tmp_path, pki.ecdsa_cert, pki.ecdsa_key, "-tls1_2", "-www", *flags
    )


@pytest.mark.parametrize("variant", list(S_SERVER_VARIANTS))
def test_tessera_client_vs_s_server(pki: Pki, tmp_path: Path, port: int, variant: str) -> None:
    """Three connections from one ``ClientConfig`` (its session cache): the 2nd and 3rd resume
    by ticket or session id as ``s_server`` allows; its ``-www`` page agrees."""
    flags, by = S_SERVER_VARIANTS[variant]
    config = tessera_client_config(pki)
    infos = []
    with _s_server(port, tmp_path, pki, *flags):
        for _ in range(3):
            info, page, session = tessera_get(port, config)
            infos.append(info)
            # s_server prints the handshake's New/Reused line on its page.
            assert session_lines(page.replace("<pre>", ""))[0][0] == (
                "Reused" if info.resumed else "New"
            ), page
            if by is None:
                assert session is None  # nothing to resume with: no id, no ticket
            else:
                assert session is not None
                assert bool(session.ticket) == (by == "ticket")
                assert bool(session.session_id) == (by == "session_id")
    assert all(i.version.label == "TLSv1.2" for i in infos)
    assert [i.resumed for i in infos] == [False, by is not None, by is not None]
    assert [i.resumed_by for i in infos] == [None, by, by]
    counters = s_server_counters(page)
    assert counters["server accepts that finished"] == 3, page
    assert counters["session cache hits"] == (2 if by else 0), page
    assert counters["items in the session cache"] == (1 if by == "session_id" else 0), page


@pytest.mark.parametrize("variant", list(S_SERVER_VARIANTS))
def test_tessera_connect_reconnect_vs_s_server(
    pki: Pki, tmp_path: Path, port: int, variant: str
) -> None:
    """``tessera connect --reconnect``: ``New, TLSv1.2, Cipher is ...`` then five ``Reused``
    lines where ``s_server`` resumes, six ``New`` lines where it cannot."""
    flags, by = S_SERVER_VARIANTS[variant]
    with _s_server(port, tmp_path, pki, *flags):
        rc, out = tessera_connect(port, pki, "--reconnect", "--sni", "localhost")
    assert rc == 0, out
    lines = session_lines(out)
    assert [w for w, _, _ in lines] == ["New"] + ["Reused" if by else "New"] * RECONNECTS, out
    assert {v for _, v, _ in lines} == {"TLSv1.2"}
    assert len({c for _, _, c in lines}) == 1, out


CPYTHON_VARIANTS = {
    "default": ((), "ticket"),
    "no_ticket": (("no_ticket",), "session_id"),
    "no_cache": (("no_cache",), "ticket"),
    "no_ticket+no_cache": (("no_ticket", "no_cache"), None),
}


@pytest.mark.parametrize("variant", list(CPYTHON_VARIANTS))
def test_tessera_client_vs_cpython_server(
    pki: Pki, tmp_path: Path, port: int, variant: str
) -> None:
    """Against a CPython ``ssl`` server (``OP_NO_TICKET``, ``SSL_SESS_CACHE_OFF``): both
    sides agree on which connections were resumed."""
    opts, by = CPYTHON_VARIANTS[variant]
    config = tessera_client_config(pki)
    with py_server(port, tmp_path, pki, *opts) as server:
        infos = [tessera_get(port, config, request=b"")[0] for _ in range(3)]
        seen = server_json(server, 3)
    resumed = [False, by is not None, by is not None]
    assert [i.resumed for i in infos] == resumed
    assert [i.resumed_by for i in infos] == [None, by, by]
    assert [s["reused"] for s in seen] == resumed, seen
    assert {s["version"] for s in seen} == {"TLSv1.2"}
    stats = seen[-1]["stats"]
    assert isinstance(stats, dict)
    assert stats["hits"] == (2 if by else 0), seen


# -- tessera connect against tessera serve --------------------------------------------------
@pytest.mark.parametrize("no_ticket", [False, True], ids=["ticket", "session_id"])
def test_tessera_connect_reconnect_vs_tessera_serve(
    pki: Pki, tmp_path: Path, port: int, no_ticket: bool
) -> None:
    """``tessera connect --reconnect [--no-ticket]`` against ``tessera serve``; the server's
    counters show which mechanism resumed."""
    by = "session_id" if no_ticket else "ticket"
    with tessera_www(port, tmp_path, pki) as server:
        rc, out = tessera_connect(port, pki, "--reconnect", *(["--no-ticket"] if no_ticket else []))
        assert rc == 0, out
        want = ["New"] + ["Reused"] * RECONNECTS
        assert outcomes(out) == want, out
        assert server_outcomes(server, 1 + RECONNECTS) == want
        page_out, outcome = s_client_page(port)  # a fresh client, to read the counters
    assert outcome == "New"
    stats = parse_status_page(page_out).stats
    assert stats[f"resumed_{by}"] == RECONNECTS, page_out
    assert stats["resumed"] == RECONNECTS
    assert stats["full_handshakes"] == 2
    assert stats["tickets_issued"] == (1 if no_ticket else 2)  # the s_client fetch got one too


@pytest.mark.parametrize("no_ticket", [False, True], ids=["ticket", "session_id"])
@pytest.mark.parametrize("peer", ["tessera", "openssl"])
def test_tessera_connect_sess_out_then_sess_in(
    pki: Pki, tmp_path: Path, port: int, peer: str, no_ticket: bool
) -> None:
    """``tessera connect --sess-out F`` in one run, ``--sess-in F`` in the next: ``Reused``,
    confirmed by the server's own page."""
    by = "session_id" if no_ticket else "ticket"
    sess = tmp_path / "session.pem"
    extra = ["--no-ticket"] if no_ticket else []
    if peer == "tessera":
        server = tessera_www(port, tmp_path, pki)
    else:
        server = _s_server(port, tmp_path, pki)
    with server:
        rc, first = tessera_connect(port, pki, "--sess-out", str(sess), *extra)
        assert rc == 0, first
        assert outcomes(first) == ["New"], first
        saved = ClientSession.from_pem(sess.read_text())
        assert saved.version == 0x0303
        assert bool(saved.ticket) == (not no_ticket)
        if no_ticket:
            assert saved.session_id
        rc, second = tessera_connect(port, pki, "--sess-in", str(sess), *extra, input=GET)
    assert rc == 0, second
    assert outcomes(second) == ["Reused"], second
    assert re.search(r"^Reused, TLSv1\.2, Cipher is ", second, re.MULTILINE)
    assert f"Resumed by: {by}" in second
    if peer == "tessera":
        assert parse_status_page(second).fields["Resumed"] == f"yes, by {by}"
    else:
        assert re.search(r"^Reused, TLSv1\.2, Cipher is ", second.split("<pre>", 1)[1], re.M)


@pytest.mark.parametrize("no_ticket", [False, True], ids=["ticket", "session_id"])
def test_tessera_connect_falls_back_when_s_server_forgot(
    pki: Pki, tmp_path: Path, port: int, no_ticket: bool
) -> None:
    """A saved session offered to a restarted ``s_server`` (new ticket keys, empty cache): a
    full handshake, not an error, and the new session it yields resumes."""
    flags = ("-no_ticket",) if no_ticket else ()
    old, new = tmp_path / "old.pem", tmp_path / "new.pem"
    with _s_server(port, tmp_path, pki, *flags):
        rc, out = tessera_connect(port, pki, "--sess-out", str(old))
        assert rc == 0 and outcomes(out) == ["New"], out
    with _s_server(port, tmp_path, pki, *flags):
        rc, out = tessera_connect(
            port, pki, "--sess-in", str(old), "--sess-out", str(new), input=GET
        )
        assert rc == 0, out
        assert outcomes(out) == ["New"], out
        assert "Resumed by" not in out
        rc, again = tessera_connect(port, pki, "--sess-in", str(new))
    assert rc == 0 and outcomes(again) == ["Reused"], again
    assert ("Resumed by: session_id" if no_ticket else "Resumed by: ticket") in again


def test_tessera_client_vs_node_server(pki: Pki, tmp_path: Path, port: int) -> None:
    """Against Node.js ``tls.createServer`` (tickets, no session cache): the 2nd and 3rd
    connections resume by ticket, and Node agrees (``isSessionReused()``)."""
    keyfile = tmp_path / "node.keys"
    keyfile.write_bytes(os.urandom(48))
    config = tessera_client_config(pki)
    with node_server(port, tmp_path, pki, keyfile) as server:
        results = [tessera_get(port, config, request=b"") for _ in range(3)]
        seen = server_json(server, 3)
    assert [i.resumed_by for i, _, _ in results] == [None, "ticket", "ticket"]
    assert all(reply == "hello from node\n" for _, reply, _ in results), results
    assert [s["reused"] for s in seen] == [False, True, True], seen

"""TLS 1.3 0-RTT: ``openssl s_client -sess_in F -early_data FILE`` against ``tessera serve``.

The early data is an HTTP GET, so when the server accepts it the page comes back without the
client writing anything after the handshake. When the server refuses it (no
``--max-early-data``, a replayed ticket, a single-use ticket used twice, a HelloRetryRequest),
RFC 8446 §4.2.10 says it skips the client's 0-RTT records and completes the handshake; the GET
is then sent again as ordinary application data and the page must still come back.

Servers that refuse run with ``--handshake-timeout 3`` so that a server stuck in the handshake
gives up quickly instead of leaving the test waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import HTTP_GET, Peer, openssl_s_client, ssl_alert_numbers, tessera_serve13
from resumption_helpers import StatusPage, outcomes, parse_status_page

from conftest import Pki, free_port, require_program

pytestmark = pytest.mark.interop

MAX_EARLY = 16384
ACCEPTED_PAGE = "accepted"
REPLAY_PAGE = "rejected (replay: the ticket was already used for 0-RTT)"


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_program("openssl")
    d = tmp_path_factory.mktemp("early")
    (d / "req.txt").write_bytes(HTTP_GET)
    return d


def certs(pki: Pki) -> list[str]:
    return ["--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)]


@pytest.fixture(scope="module")
def early_server(pki: Pki, dirs: Path) -> Iterator[Peer]:
    """Accepts up to 16 KiB of 0-RTT (its own ticket keys: keys from a file another server may
    share get no 0-RTT without a shared strike register; tests/fleet/test_early_data.py)."""
    with tessera_serve13(
        free_port(), dirs, "--www", "--max-early-data", str(MAX_EARLY),
        "--handshake-timeout", "3", *certs(pki),
    ) as peer:  # fmt: skip
        yield peer


@pytest.fixture(scope="module")
def no_early_server(pki: Pki, dirs: Path) -> Iterator[Peer]:
    """No --max-early-data. (A ticket allowing 0-RTT offered to such a server of the same fleet:
    tests/fleet/test_early_data.py.)"""
    with tessera_serve13(
        free_port(), dirs, "--www", "--handshake-timeout", "3", *certs(pki),
    ) as peer:  # fmt: skip
        yield peer


@pytest.fixture(scope="module")
def stateful_server(pki: Pki, dirs: Path) -> Iterator[Peer]:
    """Single-use tickets: ids into the server's session cache."""
    with tessera_serve13(
        free_port(), dirs, "--www", "--max-early-data", str(MAX_EARLY), "--stateful-tickets",
        "--handshake-timeout", "3", *certs(pki),
    ) as peer:  # fmt: skip
        yield peer


def s_client(peer: Peer, pki: Pki, *args: str, request: bool) -> str:
    """s_client -tls1_3 -ign_eof; with ``request`` it also writes GET after the handshake
    (needed whenever the early data may be refused)."""
    assert peer.port is not None
    return openssl_s_client(
        peer.port, "-tls1_3", "-CAfile", str(pki.ca_file), "-ign_eof", *args,
        input=HTTP_GET if request else b"", timeout=15,
    )  # fmt: skip


def new_ticket(peer: Peer, pki: Pki, path: Path) -> str:
    """A full handshake that saves the session (and its tickets' max_early_data) to ``path``."""
    out = s_client(peer, pki, "-sess_out", str(path), request=True)
    assert outcomes(out) == ["New"], out
    assert path.exists(), out
    return out


def send_early(peer: Peer, pki: Pki, sess: Path, dirs: Path, *args: str, request: bool) -> str:
    return s_client(
        peer, pki, "-sess_in", str(sess), "-early_data", str(dirs / "req.txt"), *args,
        request=request,
    )  # fmt: skip


def page_of(out: str) -> StatusPage:
    return parse_status_page(out)


def test_early_data_accepted(early_server: Peer, pki: Pki, dirs: Path, tmp_path: Path) -> None:
    sess = tmp_path / "sess.pem"
    first = new_ticket(early_server, pki, sess)
    # The NewSessionTicket carries the early_data extension with the server's limit.
    assert f"Max Early Data: {MAX_EARLY}" in first, first
    assert "Early data was not sent" in first, first
    out = send_early(early_server, pki, sess, dirs, request=False)
    assert "Early data was accepted" in out, out
    assert "Reused, TLSv1.3" in out, out
    page = page_of(out)
    # The page answers the GET that travelled as 0-RTT data.
    assert page.outcome == "Reused", out
    assert page.fields["Resumed"] == "yes, by psk", out
    assert page.fields["Early data"] == ACCEPTED_PAGE, out
    assert page.stats["early_data_accepted"] >= 1, out
    assert not ssl_alert_numbers(out), out


def test_no_early_data_offered_by_tickets_without_it(
    no_early_server: Peer, pki: Pki, tmp_path: Path
) -> None:
    """Without --max-early-data tickets carry no early_data extension, and a resumption without
    0-RTT works as usual."""
    sess = tmp_path / "sess.pem"
    first = new_ticket(no_early_server, pki, sess)
    assert "Max Early Data: 0" in first, first
    assert f"Max Early Data: {MAX_EARLY}" not in first, first
    out = s_client(no_early_server, pki, "-sess_in", str(sess), request=True)
    assert "Reused, TLSv1.3" in out, out
    assert "Early data was not sent" in out, out
    assert page_of(out).fields["Early data"] == "no", out


def test_replayed_early_data_is_rejected(
    early_server: Peer, pki: Pki, dirs: Path, tmp_path: Path
) -> None:
    """The same ticket and the same 0-RTT flight twice (s_client reads the same session file):
    tessera's strike register lets the first in and refuses the replay's early data (RFC 8446
    §8). The ticket itself is reusable, so the replay still resumes and its GET, sent again after
    the handshake, is answered."""
    sess = tmp_path / "sess.pem"
    new_ticket(early_server, pki, sess)
    first = send_early(early_server, pki, sess, dirs, request=False)
    assert "Early data was accepted" in first, first
    assert page_of(first).fields["Early data"] == ACCEPTED_PAGE, first
    replay = send_early(early_server, pki, sess, dirs, request=True)
    assert "Early data was rejected" in replay, replay
    assert "Reused, TLSv1.3" in replay, replay
    page = page_of(replay)
    assert page.fields["Resumed"] == "yes, by psk", replay
    assert page.fields["Early data"] == REPLAY_PAGE, replay
    assert not ssl_alert_numbers(replay), replay


def test_replayed_early_data_with_stateful_tickets(
    stateful_server: Peer, pki: Pki, dirs: Path, tmp_path: Path
) -> None:
    """--stateful-tickets: a ticket is an id into the session cache and is taken out when used.
    The replay finds nothing, so it gets a full handshake (with the early data refused), and the
    page counts "single-use ticket already used"."""
    sess = tmp_path / "sess.pem"
    new_ticket(stateful_server, pki, sess)
    first = send_early(stateful_server, pki, sess, dirs, request=False)
    assert "Early data was accepted" in first, first
    assert "Reused, TLSv1.3" in first, first
    before = page_of(first).reason("single-use ticket already used")
    replay = send_early(stateful_server, pki, sess, dirs, request=True)
    assert "Early data was rejected" in replay, replay
    assert outcomes(replay) == ["New"], replay
    page = page_of(replay)
    assert page.fields["Resumed"] == "no", replay
    assert page.fields["Early data"] == "rejected (no resumption)", replay
    assert page.reason("single-use ticket already used") == before + 1, replay
    assert not ssl_alert_numbers(replay), replay


def test_early_data_refused_after_hello_retry_request(
    early_server: Peer, pki: Pki, dirs: Path, tmp_path: Path
) -> None:
    """0-RTT in a ClientHello whose only key share is X448: tessera answers with a
    HelloRetryRequest, which refuses the early data (RFC 8446 §4.2.10); the second ClientHello
    still resumes with the ticket."""
    sess = tmp_path / "sess.pem"
    new_ticket(early_server, pki, sess)
    out = send_early(early_server, pki, sess, dirs, "-groups", "X448:P-256", "-msg", request=True)
    assert out.count("ServerHello") == 2, out
    assert "Early data was rejected" in out, out
    assert "Reused, TLSv1.3" in out, out
    page = page_of(out)
    assert page.fields["Resumed"] == "yes, by psk", out
    assert page.fields["Early data"] == "rejected (HelloRetryRequest)", out
    assert page.fields["Group"] == "secp256r1", out

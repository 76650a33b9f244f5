"""TLS 1.2 resumption that must NOT happen: each case is a full handshake (never an error), and
the server counts why. The reason is read from the ``tessera serve --www`` page fetched over the
very connection that fell back, or from ``config.statistics`` of a ``TLSServer`` run here.

The one exception is RFC 7627 §5.3: resuming an extended-master-secret session without offering
the extension must abort, and does so in tessera exactly as in OpenSSL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from peers import openssl_s_server
from resumption_helpers import (
    GET,
    ossl_replace_ticket,
    ossl_ticket,
    outcomes,
    parse_status_page,
    s_client,
    s_client_page,
    s_client_ticket,
    tessera_connect,
    tessera_www,
)

from conftest import Pki, require_program
from tessera import (
    ClientSession,
    FallbackReason,
    ProtocolVersion,
    ServerConfig,
    TicketKeyring,
    TLSServer,
    TLSSocket,
)

pytestmark = pytest.mark.interop


def _flip(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


# -- tampered tickets -----------------------------------------------------------------------
TAMPER = {
    # where in key_name[16] | iv[16] | ciphertext | mac[32] -> the reason the server counts
    "mac": (-1, "ticket MAC or decryption failed"),
    "ciphertext": (40, "ticket MAC or decryption failed"),
    "iv": (20, "ticket MAC or decryption failed"),
    "key_name": (0, "ticket key name unknown"),
}


@pytest.mark.parametrize("where", list(TAMPER))
def test_tampered_ticket_is_a_full_handshake(
    pki: Pki, tmp_path: Path, port: int, where: str
) -> None:
    """One bit flipped in the ticket of a ``tessera connect --sess-out`` session file: the
    ``--sess-in`` run gets a full handshake and a new ticket, and the page counts the reason."""
    index, reason = TAMPER[where]
    sess = tmp_path / "session.pem"
    with tessera_www(port, tmp_path, pki):
        rc, out = tessera_connect(port, pki, "--sess-out", str(sess))
        assert rc == 0 and outcomes(out) == ["New"], out
        good = ClientSession.from_pem(sess.read_text())
        assert len(good.ticket) >= 16 + 16 + 16 + 32
        sess.write_text(replace(good, ticket=_flip(good.ticket, index)).to_pem())
        rc, out = tessera_connect(port, pki, "--sess-in", str(sess), input=GET)
    assert rc == 0, out
    assert outcomes(out) == ["New"], out
    assert "Resumed by" not in out
    page = parse_status_page(out)
    assert page.fields["Resumed"] == "no"
    assert page.reason(reason) == 1, page.text
    assert sum(page.reasons.values()) == 1, page.text
    assert page.stats["ticket_failures"] == 1
    assert page.stats["full_handshakes"] == 2
    assert page.stats["tickets_issued"] == 2  # the fallback handshake earned a new ticket


def test_unknown_key_after_restart_then_new_ticket(pki: Pki, tmp_path: Path, port: int) -> None:
    """A server restarted with new random ticket keys cannot open an old ticket: full
    handshake, "ticket key name unknown", and a new ticket (under the new key) that resumes."""
    old, new = tmp_path / "old.pem", tmp_path / "new.pem"
    with tessera_www(port, tmp_path, pki):
        assert outcomes(s_client(port, "-sess_out", str(old))) == ["New"]
    with tessera_www(port, tmp_path, pki):
        out, outcome = s_client_page(port, "-sess_in", str(old), "-sess_out", str(new))
        assert outcome == "New", out
        page = parse_status_page(out)
        assert page.reason("ticket key name unknown") == 1, page.text
        assert page.stats["ticket_failures"] == 1
        assert page.stats["tickets_issued"] == 1
        assert ossl_ticket(new.read_text())[:16] != ossl_ticket(old.read_text())[:16]
        out, outcome = s_client_page(port, "-sess_in", str(new))
        assert outcome == "Reused", out
        assert parse_status_page(out).fields["Resumed"] == "yes, by ticket"


def test_expired_ticket_and_expired_session(pki: Pki, tmp_path: Path, port: int) -> None:
    """``--ticket-lifetime 1 --session-timeout 1``: after 1.3 s neither the ticket nor the
    cached session resumes; the page counts "ticket expired" and "session expired"."""
    ticket, sid = tmp_path / "ticket.pem", tmp_path / "sid.pem"
    with tessera_www(port, tmp_path, pki, "--ticket-lifetime", "1", "--session-timeout", "1"):
        assert outcomes(s_client(port, "-sess_out", str(ticket))) == ["New"]
        assert outcomes(s_client(port, "-no_ticket", "-sess_out", str(sid))) == ["New"]
        time.sleep(1.3)  # what is tested: both lifetimes (1 s) run out; the clock must pass
        out, outcome = s_client_page(port, "-sess_in", str(ticket))
        assert outcome == "New", out
        page = parse_status_page(out)
        assert page.reason("ticket expired") == 1, page.text
        assert page.stats["timeouts"] == 1
        out, outcome = s_client_page(port, "-no_ticket", "-sess_in", str(sid))
        assert outcome == "New", out
        page = parse_status_page(out)
    assert page.reason("session expired") == 1, page.text
    assert page.reason("ticket expired") == 1
    assert page.stats["timeouts"] == 2
    assert page.stats["resumed"] == 0


def test_evicted_session_is_a_full_handshake(pki: Pki, tmp_path: Path, port: int) -> None:
    """``--cache-size 1 --no-ticket``: client B's session evicts client A's; B still resumes,
    A gets a full handshake counted as "unknown session id"."""
    a, b = tmp_path / "a.pem", tmp_path / "b.pem"
    with tessera_www(port, tmp_path, pki, "--cache-size", "1", "--no-ticket"):
        assert outcomes(s_client(port, "-sess_out", str(a))) == ["New"]
        assert outcomes(s_client(port, "-sess_out", str(b))) == ["New"]
        out, outcome = s_client_page(port, "-sess_in", str(b))
        assert outcome == "Reused", out
        out, outcome = s_client_page(port, "-sess_in", str(a))
    assert outcome == "New", out
    page = parse_status_page(out)
    assert page.reason("unknown session id") == 1, page.text
    assert page.stats["misses"] == 1
    assert page.stats["cache_entries"] == 1
    assert page.stats["cache_evictions"] >= 2  # A by B, then B by A's new session


def test_eviction_is_counted_in_session_statistics(pki: Pki, tmp_path: Path, port: int) -> None:
    """The ``evictions`` counter ("sessions dropped because the cache was full", SessionStats)
    agrees with the store's own count after an eviction."""
    with tessera_www(port, tmp_path, pki, "--cache-size", "1", "--no-ticket"):
        assert outcomes(s_client(port)) == ["New"]
        out, outcome = s_client_page(port)
    assert outcome == "New"
    page = parse_status_page(out)
    assert page.stats["cache_evictions"] == 1, page.text
    assert page.stats["evictions"] == page.stats["cache_evictions"], page.text


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        (
            ["-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
            ["-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"],
            "cipher suite not offered",
        ),
        (["-servername", "a.example"], ["-servername", "b.example"], "server name mismatch"),
    ],
    ids=["cipher", "sni"],
)
def test_changed_offer_is_a_full_handshake(
    pki: Pki, tmp_path: Path, port: int, first: list[str], second: list[str], reason: str
) -> None:
    """A session (ticket, then session id) offered with a cipher list that no longer has its
    suite, or with another SNI: full handshake, reason counted once per mechanism."""
    t, s = tmp_path / "t.pem", tmp_path / "s.pem"
    with tessera_www(port, tmp_path, pki):
        assert outcomes(s_client(port, *first, "-sess_out", str(t))) == ["New"]
        assert outcomes(s_client(port, *first, "-no_ticket", "-sess_out", str(s))) == ["New"]
        out, outcome = s_client_page(port, *second, "-sess_in", str(t))
        assert outcome == "New", out
        assert parse_status_page(out).reason(reason) == 1
        out, outcome = s_client_page(port, *second, "-no_ticket", "-sess_in", str(s))
        assert outcome == "New", out
        # Control: the unchanged offer still resumes.
        ok, ok_outcome = s_client_page(port, *first, "-sess_in", str(t))
    page = parse_status_page(out)
    assert page.reason(reason) == 2, page.text
    assert sum(page.reasons.values()) == 2, page.text
    if reason.startswith("cipher"):
        assert "Cipher is ECDHE-ECDSA-AES256-GCM-SHA384" in out
    assert ok_outcome == "Reused", ok


NO_EMS_CONF = """\
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Options = -ExtendedMasterSecret
"""


@pytest.fixture
def no_ems_env(tmp_path: Path) -> dict[str, str]:
    """OpenSSL 3.0's s_client has no -no_ems: switch EMS off through a config file."""
    conf = tmp_path / "no-ems.cnf"
    conf.write_text(NO_EMS_CONF)
    return {"OPENSSL_CONF": str(conf)}


def test_session_without_ems_resumed_with_ems(
    pki: Pki, tmp_path: Path, port: int, no_ems_env: dict[str, str]
) -> None:
    """A session made without the extended master secret is not resumed by a ClientHello that
    offers it (RFC 7627 §5.3): full handshake, now with EMS; "extended master secret mismatch".
    Both with ``openssl s_client`` and with ``tessera connect --no-ems``."""
    o, t = tmp_path / "o.pem", tmp_path / "t.pem"
    with tessera_www(port, tmp_path, pki):
        first = s_client(port, "-sess_out", str(o), env=no_ems_env)
        assert outcomes(first) == ["New"] and "Extended master secret: no" in first, first
        out, outcome = s_client_page(port, "-sess_in", str(o))
        assert outcome == "New", out
        assert "Extended master secret: yes" in out
        assert parse_status_page(out).reason("extended master secret mismatch") == 1
        rc, first = tessera_connect(port, pki, "--no-ems", "--sess-out", str(t))
        assert rc == 0 and "Extended master secret: no" in first, first
        rc, out = tessera_connect(port, pki, "--sess-in", str(t), input=GET)
    assert rc == 0, out
    assert outcomes(out) == ["New"], out
    page = parse_status_page(out)
    assert page.fields["Extended master secret"] == "yes"
    assert page.reason("extended master secret mismatch") == 2, page.text


@pytest.mark.parametrize("server", ["tessera", "openssl"])
def test_ems_session_resumed_without_ems_aborts_like_openssl(
    pki: Pki, tmp_path: Path, port: int, no_ems_env: dict[str, str], server: str
) -> None:
    """RFC 7627 §5.3: "If the original session used the extended_master_secret extension but
    the new ClientHello does not contain it, the server MUST abort the abbreviated handshake":
    a handshake_failure alert, from tessera exactly as from ``openssl s_server``."""
    require_program("openssl")
    sess = tmp_path / "ems.pem"
    if server == "tessera":
        peer = tessera_www(port, tmp_path, pki)
    else:
        peer = openssl_s_server(port, tmp_path, pki.ecdsa_cert, pki.ecdsa_key, "-tls1_2")
    with peer:
        first = s_client(port, "-sess_out", str(sess))
        assert "Extended master secret: yes" in first, first
        out = s_client(port, "-sess_in", str(sess), env=no_ems_env)
        # s_client still prints the offered session's "New, ..." summary: look at the bytes.
        assert "SSL handshake has read 7 bytes" in out, out  # one alert record, nothing else
        assert "alert handshake failure" in out and "SSL alert number 40" in out, out
        if server == "tessera":
            page_out, outcome = s_client_page(port)
            assert outcome == "New"
            page = parse_status_page(page_out)
            assert page.reason("extended master secret mismatch") == 1, page.text
            assert page.stats["resumed"] == 0


# -- ticket keys rotated out of the kept window (a TLSServer in this process) --------------
class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@contextmanager
def tessera_server(config: ServerConfig) -> Iterator[int]:
    """``TLSServer`` on a free port in a thread; yields the port."""

    def handler(tls: TLSSocket) -> None:
        tls.sock.settimeout(5)
        while tls.recv(4096):
            pass

    server = TLSServer(("127.0.0.1", 0), config, handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.address[1]
    finally:
        server.shutdown()
        thread.join(5)
        assert not thread.is_alive()


def _config(pki: Pki, keyring: TicketKeyring) -> ServerConfig:
    return ServerConfig(
        certificates=(pki.ecdsa,), ticket_keyring=keyring, max_version=ProtocolVersion.TLS1_2
    )


def _rotation_case(
    pki: Pki, tmp_path: Path, keyring: TicketKeyring, advance: Callable[[], None]
) -> None:
    """Issue a ticket; ``advance`` once (old key kept: resumes and earns a fresh ticket);
    ``advance`` again (old key erased: full handshake, "ticket key name unknown")."""
    require_program("openssl")
    config = _config(pki, keyring)
    stats = config.statistics
    t1, t2 = tmp_path / "t1.pem", tmp_path / "t2.pem"
    with tessera_server(config) as port:
        assert outcomes(s_client(port, "-sess_out", str(t1))) == ["New"]
        advance()
        out = s_client(port, "-sess_in", str(t1))
        assert outcomes(out) == ["Reused"], out
        assert stats["resumed_ticket"] == 1
        assert stats["tickets_issued"] == 2  # opened with an old key: a fresh ticket
        old, fresh = ossl_ticket(t1.read_text()), s_client_ticket(out)
        assert fresh[:16] == keyring.keys()[0].name != old[:16]
        t2.write_text(ossl_replace_ticket(t1.read_text(), fresh))
        advance()
        out = s_client(port, "-sess_in", str(t1))
        assert outcomes(out) == ["New"], out
        assert stats.reason_count(FallbackReason.TICKET_UNKNOWN_KEY) == 1
        assert stats["ticket_failures"] == 1
        # The ticket issued under the key that is still kept resumes.
        assert outcomes(s_client(port, "-sess_in", str(t2))) == ["Reused"]
    assert stats["full_handshakes"] == 2
    assert stats.fallback_reasons() == {"ticket key name unknown": 1}


def test_ticket_key_rotated_past_window_rotate(pki: Pki, tmp_path: Path) -> None:
    """``keep=1``: ``rotate()`` once keeps the old key for decryption; once more erases it."""
    keyring = TicketKeyring(keep=1)
    _rotation_case(pki, tmp_path, keyring, keyring.rotate)


def test_ticket_key_rotated_past_window_clock(pki: Pki, tmp_path: Path) -> None:
    """``keep=1``, rotation every 100 s on a fake clock: after 100 s the first key only
    decrypts; after 200 s (``rotation_interval * (keep + 1)``) it is gone."""
    clock = FakeClock()
    keyring = TicketKeyring(keep=1, rotation_interval=100, clock=clock)

    def advance() -> None:
        clock.now += 100

    _rotation_case(pki, tmp_path, keyring, advance)
    assert keyring.rotations == 3

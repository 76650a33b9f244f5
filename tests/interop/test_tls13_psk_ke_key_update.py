"""psk_ke resumption (no fresh key exchange) and KeyUpdate, against real peers.

* ``tessera serve --psk-ke`` with ``openssl s_client -allow_no_dhe_kex`` (which offers psk_ke
  besides psk_dhe_ke): the resumed ServerHello has no key_share, s_client prints no
  "Server Temp Key", and the page says no group; the tessera client with
  ``ClientConfig(psk_ke=True)`` likewise.
* KeyUpdate from interactive ``openssl s_client`` (a line ``k``: KeyUpdate; ``K``: KeyUpdate
  asking the peer to update too) against ``tessera serve --echo``: data echoed afterwards is
  intact, and tessera answers ``K`` with its own KeyUpdate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import (
    HANDSHAKE_DONE,
    HTTP_GET,
    Peer,
    http_get,
    openssl_s_client,
    openssl_s_client_steps,
    ssl_alert_numbers,
    tessera_serve13,
)
from resumption_helpers import outcomes, parse_status_page

from conftest import Pki, free_port, require_program
from tessera import ClientConfig, ClientSessionCache, ProtocolVersion, TLSSocket

pytestmark = pytest.mark.interop

TLS13 = ProtocolVersion.TLS1_3
KEY_SHARE_EXT = 'TLS server extension "key share"'


def certs(pki: Pki) -> list[str]:
    return ["--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)]


@pytest.fixture(scope="module")
def psk_ke_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    require_program("openssl")
    logs = tmp_path_factory.mktemp("psk_ke")
    with tessera_serve13(free_port(), logs, "--www", "--psk-ke", *certs(pki)) as peer:
        yield peer


@pytest.fixture(scope="module")
def dhe_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    """The default: resumption always with psk_dhe_ke."""
    require_program("openssl")
    logs = tmp_path_factory.mktemp("psk_dhe_ke")
    with tessera_serve13(free_port(), logs, "--www", *certs(pki)) as peer:
        yield peer


@pytest.fixture(scope="module")
def echo_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    require_program("openssl")
    logs = tmp_path_factory.mktemp("echo")
    with tessera_serve13(free_port(), logs, "--echo", *certs(pki)) as peer:
        yield peer


def get_page(peer: Peer, pki: Pki, *args: str) -> str:
    assert peer.port is not None
    return openssl_s_client(
        peer.port, "-tls1_3", "-CAfile", str(pki.ca_file), "-ign_eof", *args, input=HTTP_GET
    )


def resume(peer: Peer, pki: Pki, tmp_path: Path, *args: str) -> tuple[str, str]:
    """A full handshake saving the session, then a resumption with it; both outputs. Both
    use ``args``; the second adds -tlsextdebug to list the ServerHello's extensions."""
    sess = tmp_path / "sess.pem"
    first = get_page(peer, pki, "-sess_out", str(sess), *args)
    assert outcomes(first) == ["New"], first
    second = get_page(peer, pki, "-sess_in", str(sess), "-tlsextdebug", *args)
    return first, second


# -- psk_ke -----------------------------------------------------------------------------------
def test_s_client_psk_ke_resumes_without_key_share(
    psk_ke_server: Peer, pki: Pki, tmp_path: Path
) -> None:
    first, out = resume(psk_ke_server, pki, tmp_path, "-allow_no_dhe_kex")
    # The full handshake has a key exchange, of course.
    assert "Server Temp Key: X25519" in first, first
    assert parse_status_page(first).fields["Group"] == "x25519", first
    # The resumed one: PSK only.
    assert "Reused, TLSv1.3" in out, out
    assert 'TLS server extension "psk"' in out, out
    assert KEY_SHARE_EXT not in out, out
    assert "Server Temp Key" not in out, out
    page = parse_status_page(out)
    assert page.fields["Resumed"] == "yes, by psk", out
    assert page.fields["Group"] == "(none)", out
    assert not ssl_alert_numbers(out), out


def test_s_client_without_psk_ke_gets_dhe(psk_ke_server: Peer, pki: Pki, tmp_path: Path) -> None:
    """A client that offers only psk_dhe_ke (s_client's default) is resumed with a key share
    even by a server that prefers psk_ke."""
    _, out = resume(psk_ke_server, pki, tmp_path)
    assert "Reused, TLSv1.3" in out, out
    assert KEY_SHARE_EXT in out, out
    assert "Server Temp Key: X25519" in out, out
    assert parse_status_page(out).fields["Group"] == "x25519", out


def test_psk_ke_not_taken_unless_enabled(dhe_server: Peer, pki: Pki, tmp_path: Path) -> None:
    """psk_ke offered to a server without --psk-ke: resumed with psk_dhe_ke."""
    _, out = resume(dhe_server, pki, tmp_path, "-allow_no_dhe_kex")
    assert "Reused, TLSv1.3" in out, out
    assert KEY_SHARE_EXT in out, out
    assert parse_status_page(out).fields["Group"] == "x25519", out


@pytest.mark.parametrize("psk_ke", [True, False], ids=["psk_ke", "psk_dhe_ke"])
def test_tessera_client_psk_ke(psk_ke_server: Peer, pki: Pki, psk_ke: bool) -> None:
    assert psk_ke_server.port is not None
    config = ClientConfig(min_version=TLS13, cafile=pki.ca_file, psk_ke=psk_ke,
                          session_cache=ClientSessionCache())  # fmt: skip
    pages = []
    infos = []
    for _ in range(2):
        with TLSSocket.connect(
            ("127.0.0.1", psk_ke_server.port), config, "localhost", timeout=10
        ) as tls:
            page = http_get(tls)
            pages.append(parse_status_page(page.decode()))
            infos.append(tls.info)
    assert not infos[0].resumed and infos[0].group is not None
    assert infos[1].resumed and infos[1].resumed_by == "psk"
    assert pages[1].fields["Resumed"] == "yes, by psk", pages[1].text
    if psk_ke:
        assert infos[1].group is None
        assert pages[1].fields["Group"] == "(none)", pages[1].text
    else:
        assert infos[1].group is not None
        assert pages[1].fields["Group"] == "x25519", pages[1].text


# -- KeyUpdate --------------------------------------------------------------------------------
def test_s_client_key_update(echo_server: Peer, pki: Pki) -> None:
    """s_client's ``k`` sends KeyUpdate(update_not_requested); ``K`` sends
    KeyUpdate(update_requested), to which tessera must answer with a KeyUpdate of its own before
    it sends more data. Every line is echoed intact under the new keys."""
    assert echo_server.port is not None
    out = openssl_s_client_steps(
        echo_server.port, "-tls1_3", "-CAfile", str(pki.ca_file), "-msg",
        steps=[(HANDSHAKE_DONE, b"hello one\n"), ("hello one\n", b"k\n"),
               ("KEYUPDATE", b"hello two\n"), ("hello two\n", b"K\n"),
               ("KEYUPDATE", b"hello three\n"), ("hello three\n", b"k\n"),
               ("KEYUPDATE", b"K\n"), ("KEYUPDATE", b"hello four\n")],
        until="hello four\n",
    )  # fmt: skip
    assert "New, TLSv1.3" in out, out
    assert out.count("KEYUPDATE") == 4, out
    sent = out.count(">>> TLS 1.3, Handshake [length 0005], KeyUpdate")
    received = out.count("<<< TLS 1.3, Handshake [length 0005], KeyUpdate")
    assert sent == 4, out
    assert received == 2, out  # one answer per K
    for line in ("hello one", "hello two", "hello three", "hello four"):
        assert f"\n{line}\n" in out, out
    # tessera's answer to the first K arrived before the echo of the line after it.
    after_k = out.split("KEYUPDATE", 2)[2]
    assert after_k.index("<<< TLS 1.3, Handshake [length 0005], KeyUpdate") < after_k.index(
        "hello three"
    ), out
    assert not ssl_alert_numbers(out), out
    assert "error" not in out.lower(), out


def test_many_key_updates_with_bulk_data(echo_server: Peer, pki: Pki) -> None:
    """KeyUpdates interleaved with larger writes: every byte comes back."""
    assert echo_server.port is not None
    chunk = b"x" * 3000 + b"\n"
    steps: list[tuple[str, bytes]] = []
    for i in range(4):  # each line once the previous KeyUpdate went out, each K once it is echoed
        steps += [("KEYUPDATE" if i else HANDSHAKE_DONE, chunk), (chunk.decode(), b"K\n")]
    out = openssl_s_client_steps(
        echo_server.port, "-tls1_3", "-CAfile", str(pki.ca_file), steps=steps, until="KEYUPDATE"
    )
    assert out.count("x" * 3000) == 4, out[-2000:]
    assert out.count("KEYUPDATE") == 4, out[-2000:]

"""Ticket key files: ``tessera keys generate`` and ``tessera serve --ticket-keys``.

* Fleet resumption: two ``tessera serve`` processes loading one key file resume each other's
  tickets (``s_client -sess_out`` on A, ``-sess_in`` on B), for every size and layout, and across
  layouts when the test itself rewrites one key in the nginx and HAProxy byte orders.
* The byte order against real implementations: Node.js ``ticketKeys`` (48 bytes) and OpenSSL's
  ``SSL_CTX_set_tlsext_ticket_keys`` (80 bytes, called on a CPython ``ssl`` server's SSL_CTX)
  seal tickets that tessera, given the same file, opens; and tickets that tessera seals around
  their session state resume on them.
"""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

import pytest
from peers import TESSERA, Peer, run
from resumption_helpers import (
    node_server,
    ossl_master_key,
    ossl_replace_ticket,
    ossl_ticket,
    outcomes,
    parse_status_page,
    py_server,
    s_client,
    s_client_page,
    server_json,
    tessera_www,
)

from conftest import Pki, free_port, require_program
from tessera import KeyFileFormat, TicketKeyring
from tessera.session.keyring import read_key_file
from tessera.session.sealer import Opened, Rfc5077Sealer

pytestmark = pytest.mark.interop


def keys_generate(path: Path, size: int, fmt: str, count: int = 1) -> str:
    argv = [*TESSERA, "keys", "generate", "-o", str(path), "--size", str(size), "--format", fmt]
    if count != 1:
        argv += ["--count", str(count)]
    r = run(argv, timeout=30)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out
    return out


def raw_keys(path: Path, fmt: str) -> list[bytes]:
    """The keys in a file as raw bytes, in file order (HAProxy: one base64 key per line)."""
    data = path.read_bytes()
    if fmt == "haproxy":
        return [base64.b64decode(line) for line in data.split()]
    return [data]


def _serve_with_keys(port: int, tmp_path: Path, pki: Pki, keyfile: Path, fmt: str) -> Peer:
    return tessera_www(
        port, tmp_path, pki, "--ticket-keys", str(keyfile), "--ticket-key-format", fmt
    )


@pytest.mark.parametrize("fmt", ["native", "nginx", "haproxy"])
@pytest.mark.parametrize("size", [48, 80])
def test_fleet_resumption_with_a_shared_key_file(
    pki: Pki, tmp_path: Path, size: int, fmt: str
) -> None:
    """A ticket issued by server A resumes on server B (another process, another port, its own
    empty session cache), because both load the same key file."""
    require_program("openssl")
    keyfile = tmp_path / f"ticket-{size}.{fmt}"
    count = 3 if fmt == "haproxy" else 1
    said = keys_generate(keyfile, size, fmt, count)
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    keys = raw_keys(keyfile, fmt)
    assert [len(k) for k in keys] == [size] * count
    assert f"{size}-byte {fmt}" in said and all(k[:16].hex() in said for k in keys), said
    # HAProxy encrypts with the second-to-last key of the file (so that the last one can be
    # distributed first); the others encrypt with their only key.
    encrypting = keys[-2] if fmt == "haproxy" else keys[0]
    shown = run([*TESSERA, "keys", "show", str(keyfile), "--format", fmt], timeout=30)
    first = shown.stdout.decode().splitlines()[0]
    assert first.startswith(encrypting[:16].hex()) and "encrypts" in first, first
    assert ("AES-256-CBC" if size == 80 else "AES-128-CBC") in first

    sess = tmp_path / "a.pem"
    port_a, port_b = free_port(), free_port()
    with (
        _serve_with_keys(port_a, tmp_path, pki, keyfile, fmt) as a,
        _serve_with_keys(port_b, tmp_path, pki, keyfile, fmt) as b,
    ):
        assert outcomes(s_client(port_a, "-sess_out", str(sess))) == ["New"]
        out, outcome = s_client_page(port_b, "-sess_in", str(sess))
        assert all(f"keys from {keyfile.name}" in p.output() for p in (a, b)), a.output()
    assert ossl_ticket(sess.read_text())[:16] == encrypting[:16]
    assert outcome == "Reused", out
    page = parse_status_page(out)
    assert page.fields["Resumed"] == "yes, by ticket", page.text
    assert page.stats["full_handshakes"] == 0 and page.stats["resumed_ticket"] == 1


def _other_layouts(native: bytes) -> dict[str, bytes]:
    """One native key (name | HMAC key | AES key) rewritten, by these tests and not by tessera,
    in nginx's (ngx_ssl_session_ticket_keys) and HAProxy's (struct tls_sess_key) layouts."""
    half = 16 if len(native) == 48 else 32
    name, hmac_key, aes_key = native[:16], native[16 : 16 + half], native[16 + half :]
    nginx = name + aes_key + hmac_key if len(native) == 48 else native
    haproxy = base64.b64encode(name + aes_key + hmac_key) + b"\n"
    return {"nginx": nginx, "haproxy": haproxy}


@pytest.mark.parametrize("size", [48, 80])
def test_one_key_in_three_layouts_is_one_fleet(pki: Pki, tmp_path: Path, size: int) -> None:
    """The same key as a native, an nginx and a HAProxy file: a ticket from the native server
    resumes on the nginx and the HAProxy one. Loading the 48-byte native file as nginx swaps
    the HMAC and AES keys: the MAC check fails, and the page says so."""
    require_program("openssl")
    native = tmp_path / "key.native"
    keys_generate(native, size, "native")
    files = {"native": native}
    for fmt, data in _other_layouts(native.read_bytes()).items():
        files[fmt] = tmp_path / f"key.{fmt}"
        files[fmt].write_bytes(data)
    sess = tmp_path / "s.pem"
    ports = {fmt: free_port() for fmt in files}
    servers = [_serve_with_keys(ports[f], tmp_path, pki, files[f], f) for f in files]
    try:
        assert outcomes(s_client(ports["native"], "-sess_out", str(sess))) == ["New"]
        for fmt in ("nginx", "haproxy"):
            out, outcome = s_client_page(ports[fmt], "-sess_in", str(sess))
            assert outcome == "Reused", (fmt, out)
            assert parse_status_page(out).fields["Resumed"] == "yes, by ticket"
    finally:
        for s in servers:
            s.stop()
    if size == 48:
        port = free_port()
        with _serve_with_keys(port, tmp_path, pki, native, "nginx"):
            out, outcome = s_client_page(port, "-sess_in", str(sess))
        assert outcome == "New", out
        assert parse_status_page(out).reason("ticket MAC or decryption failed") == 1


# -- the byte order, proven against Node.js and OpenSSL -------------------------------------
def _foreign_server(peer: str, port: int, tmp_path: Path, pki: Pki, keyfile: Path) -> Peer:
    if peer == "node":
        return node_server(port, tmp_path, pki, keyfile)
    # CPython ssl with SSL_CTX_set_tlsext_ticket_keys(ctx, file, 80) and no session cache, so
    # that only a ticket can resume.
    return py_server(port, tmp_path, pki, "no_cache", keyfile=keyfile)


@pytest.mark.parametrize(
    ("peer", "size"), [("node", 48), ("openssl", 80)], ids=["nodejs-48", "openssl-80"]
)
def test_native_key_file_is_the_peer_layout(pki: Pki, tmp_path: Path, peer: str, size: int) -> None:
    """Node.js ``tls.createServer({ticketKeys})`` (48 bytes) and OpenSSL's
    ``SSL_CTX_set_tlsext_ticket_keys`` (80 bytes) given the native file ``tessera keys
    generate`` wrote:

    1. their ticket carries the file's key name, and tessera (same file) verifies its MAC and
       decrypts it: ``tessera serve`` counts "ticket malformed" (it cannot parse OpenSSL's
       ASN.1 session), not "MAC failed" nor "key name unknown"; the plaintext is the DER
       SSL_SESSION holding the master secret s_client printed;
    2. that state sealed again by tessera's sealer (fresh IV) resumes on the peer;
    3. a ticket that ``tessera serve`` issued with the same file is not resumed by the peer
       (full handshake, no error): the two keep different session state inside the ticket.
    """
    require_program("openssl")
    keyfile = tmp_path / f"ticket-{size}.key"
    keys_generate(keyfile, size, "native")
    raw = keyfile.read_bytes()
    foreign_sess, resealed, ours = tmp_path / "f.pem", tmp_path / "r.pem", tmp_path / "t.pem"
    fport, tport = free_port(), free_port()
    with (
        _foreign_server(peer, fport, tmp_path, pki, keyfile) as foreign,
        _serve_with_keys(tport, tmp_path, pki, keyfile, "native"),
    ):
        assert outcomes(s_client(fport, "-sess_out", str(foreign_sess))) == ["New"]
        assert outcomes(s_client(fport, "-sess_in", str(foreign_sess))) == ["Reused"]
        pem = foreign_sess.read_text()
        ticket = ossl_ticket(pem)
        assert ticket[:16] == raw[:16], "the peer put the file's first 16 bytes (name) first"

        # 1. tessera serve with the same file: MAC and decryption pass, the state is foreign.
        out, outcome = s_client_page(tport, "-sess_in", str(foreign_sess))
        assert outcome == "New", out
        page = parse_status_page(out)
        assert page.reasons == {"ticket malformed": 1}, page.text
        keyring = TicketKeyring(read_key_file(keyfile, KeyFileFormat.NATIVE, 0.0), generate=False)
        opened = Rfc5077Sealer(keyring).open(ticket)
        assert isinstance(opened, Opened), opened
        assert opened.state[0] == 0x30, "an ASN.1 SSL_SESSION"
        assert ossl_master_key(pem) in opened.state

        # 2. sealed by tessera, resumed by the peer.
        again = Rfc5077Sealer(keyring).seal(opened.state, os.urandom(16))
        assert again is not None and again != ticket and len(again) == len(ticket)
        resealed.write_text(ossl_replace_ticket(pem, again))
        out = s_client(fport, "-sess_in", str(resealed))
        assert outcomes(out) == ["Reused"], out

        # 3. a ticket with tessera's own session state: a full handshake on the peer.
        assert outcomes(s_client(tport, "-sess_out", str(ours))) == ["New"]
        assert ossl_ticket(ours.read_text())[:16] == raw[:16]
        out = s_client(fport, "-sess_in", str(ours))
        assert outcomes(out) == ["New"], out
        assert "alert" not in out.lower(), out
        seen = server_json(foreign, 4)
    assert [s["reused"] for s in seen] == [False, True, True, False], seen
    assert {s.get("version", s.get("protocol")) for s in seen} == {"TLSv1.2"}


def test_key_file_of_wrong_size_is_refused(tmp_path: Path, port: int) -> None:
    """A 47-byte key file: ``tessera serve`` exits with a message naming the sizes."""
    bad = tmp_path / "bad.key"
    bad.write_bytes(os.urandom(47))
    r = run([*TESSERA, "serve", "--port", str(port), "--tls1_2", "--ticket-keys", str(bad)],
            timeout=30)  # fmt: skip
    out = r.stdout.decode(errors="replace")
    assert r.returncode != 0, out
    assert re.search(r"48 or 80 bytes", out), out

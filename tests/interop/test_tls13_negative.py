"""TLS 1.3 failures against real peers: what must abort, and what must quietly fall back.

* A PSK binder altered on the wire (a bit flipped by a TCP proxy between ``openssl s_client``
  and ``tessera serve``) is fatal: decrypt_error (51). An altered ticket (identity) is not: the
  server cannot open it and does a full handshake.
* The RFC 8446 §4.1.3 downgrade sentinel: a proxy strips supported_versions from the tessera
  client's ClientHello, ``openssl s_server`` negotiates TLS 1.2 and says ``DOWNGRD\\x01`` in its
  random, and the tessera client aborts with illegal_parameter (47).
* Tickets that must not resume (unknown ticket key, expired, ticket age outside the server's
  window) give a full handshake; the ``--www`` page counts why.
* The NSS key log of a TLS 1.3 connection is the same on both ends (tessera as server and as
  client, full and resumed handshakes).
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest
from peers import (
    HTTP_GET,
    Peer,
    http_get,
    openssl_s_client,
    openssl_s_server,
    ssl_alert_numbers,
    tessera_serve,
    tessera_serve13,
    wait_for_output,
)
from resumption_helpers import (
    _session_fields,
    _tlv,
    der_to_pem,
    ossl_replace_ticket,
    ossl_ticket,
    outcomes,
    parse_status_page,
    pem_to_der,
)

from conftest import Pki, free_port, require_program
from tessera import ClientConfig, ClientSessionCache, ProtocolVersion, TLSSocket
from tessera.enums import AlertDescription
from tessera.errors import AlertError, IllegalParameter
from tessera.io.keylog import keylog_to_file
from tessera.messages.hello import DOWNGRADE_TLS12
from tessera.session.keyring import KeyFileFormat, TicketKey, write_key_file
from tessera.session.stats import FallbackReason
from waiting import wait_until

pytestmark = pytest.mark.interop

EXT_SUPPORTED_VERSIONS = 43
EXT_PRE_SHARED_KEY = 41


# -- a TCP proxy that rewrites the client's first TLS record -----------------------------------
def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes (each recv bounded by the socket's timeout); fewer only at EOF."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


class FirstRecordProxy:
    """Relays 127.0.0.1:``port`` to 127.0.0.1:``upstream``; the client's first TLS record (its
    ClientHello) goes through ``rewrite``, every other byte passes unchanged.

    Bounded: at most ``max_connections`` connections, each relayed for at most ``timeout`` s.
    ``hellos`` keeps (original, rewritten) first records, ``replies`` the first bytes the
    server answered on each connection, ``errors`` what ``rewrite`` raised. ``close()`` (or
    leaving the ``with`` block) stops the listener, joins every thread and closes every socket.
    """

    def __init__(self, upstream: int, rewrite: Callable[[bytes], bytes], *,
                 max_connections: int = 8, timeout: float = 10.0) -> None:  # fmt: skip
        self.upstream = upstream
        self.rewrite = rewrite
        self.max_connections = max_connections
        self.timeout = timeout
        self.hellos: list[tuple[bytes, bytes]] = []
        self.replies: list[bytes] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        accepted = 0
        while not self._stop.is_set() and accepted < self.max_connections:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted += 1
            thread = threading.Thread(target=self._relay, args=(client,), daemon=True)
            with self._lock:
                self._sockets.append(client)
                self._threads.append(thread)
            thread.start()

    def _relay(self, client: socket.socket) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            client.settimeout(self.timeout)
            header = _recv_exactly(client, 5)
            if len(header) < 5:
                return
            record = header + _recv_exactly(client, int.from_bytes(header[3:5], "big"))
            try:
                changed = self.rewrite(record)
            except Exception as e:  # reported to the test through self.errors
                self.errors.append(e)
                return
            self.hellos.append((record, changed))
            upstream = socket.create_connection(("127.0.0.1", self.upstream), self.timeout)
            with self._lock:
                self._sockets.append(upstream)
            upstream.sendall(changed)
            self._pump(client, upstream, deadline)
        except OSError:
            pass  # a peer that aborted (after an alert) or went away
        finally:
            with contextlib.suppress(OSError):
                client.close()

    def _pump(self, client: socket.socket, upstream: socket.socket, deadline: float) -> None:
        reply = b""
        route = {client: upstream, upstream: client}
        try:
            while route and not self._stop.is_set() and time.monotonic() < deadline:
                readable, _, _ = select.select(list(route), [], [], 0.1)
                for src in readable:
                    dst = route[src]
                    try:
                        data = src.recv(65536)
                    except OSError:
                        data = b""
                    if src is upstream and len(reply) < 4096:
                        reply += data
                    if data:
                        dst.sendall(data)
                    else:
                        del route[src]
                        with contextlib.suppress(OSError):
                            dst.shutdown(socket.SHUT_WR)
        finally:
            self.replies.append(reply)
            with contextlib.suppress(OSError):
                upstream.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._acceptor.join(5)
        with self._lock:
            threads, sockets = list(self._threads), list(self._sockets)
        for sock in sockets:  # wakes a relay still blocked reading a ClientHello
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        assert not self._acceptor.is_alive() and not any(t.is_alive() for t in threads)

    def __enter__(self) -> FirstRecordProxy:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()


# -- ClientHello surgery -----------------------------------------------------------------------
@dataclass(frozen=True)
class Hello:
    """A record holding exactly one ClientHello, split at its extension block."""

    record_header: bytes  # content type and record version (3 bytes)
    head: bytes  # the ClientHello body up to the extensions' length
    extensions: list[tuple[int, bytes]]

    @classmethod
    def parse(cls, record: bytes) -> Hello:
        assert record[0] == 22, "a handshake record"
        assert int.from_bytes(record[3:5], "big") == len(record) - 5
        assert record[5] == 1, "a ClientHello"
        body = record[9:]
        assert int.from_bytes(record[6:9], "big") == len(body), "one message in the record"
        pos = 2 + 32
        pos += 1 + body[pos]  # legacy_session_id
        pos += 2 + int.from_bytes(body[pos : pos + 2], "big")  # cipher_suites
        pos += 1 + body[pos]  # legacy_compression_methods
        end = pos + 2 + int.from_bytes(body[pos : pos + 2], "big")
        assert end == len(body), "the extensions end the ClientHello"
        exts, i = [], pos + 2
        while i < end:
            ext_type, n = (
                int.from_bytes(body[i : i + 2], "big"),
                int.from_bytes(body[i + 2 : i + 4], "big"),
            )
            exts.append((ext_type, body[i + 4 : i + 4 + n]))
            i += 4 + n
        assert i == end
        return cls(record[:3], body[:pos], exts)

    def types(self) -> list[int]:
        return [t for t, _ in self.extensions]

    def encode(self) -> bytes:
        block = b"".join(
            t.to_bytes(2, "big") + len(d).to_bytes(2, "big") + d for t, d in self.extensions
        )
        body = self.head + len(block).to_bytes(2, "big") + block
        message = b"\x01" + len(body).to_bytes(3, "big") + body
        return self.record_header + len(message).to_bytes(2, "big") + message


def flip_last_byte(record: bytes) -> bytes:
    """One bit of the last binder: pre_shared_key must be the ClientHello's last extension."""
    assert Hello.parse(record).types()[-1] == EXT_PRE_SHARED_KEY, "no PSK offered last"
    return record[:-1] + bytes((record[-1] ^ 0x01,))


def strip_supported_versions(record: bytes) -> bytes:
    """The ClientHello without supported_versions (extension block, handshake and record
    lengths re-encoded); a hello without the extension passes through byte for byte."""
    hello = Hello.parse(record)
    kept = [(t, d) for t, d in hello.extensions if t != EXT_SUPPORTED_VERSIONS]
    if len(kept) == len(hello.extensions):
        return record
    return Hello(hello.record_header, hello.head, kept).encode()


def server_hello_random(reply: bytes) -> tuple[int, bytes]:
    """(legacy_version, random) of the ServerHello that starts a server's first reply."""
    assert reply[0] == 22 and reply[5] == 2, f"no ServerHello: {reply[:16].hex()}"
    return int.from_bytes(reply[9:11], "big"), reply[11:43]


# -- peers -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Server:
    peer: Peer
    port: int
    keylog: Path
    ticket_key: TicketKey


def key_file(path: Path) -> TicketKey:
    key = TicketKey.generate(time.time(), 80)
    write_key_file(path, [key], KeyFileFormat.NATIVE)
    return key


def start_server(pki: Pki, work: Path, name: str, *args: str) -> tuple[Peer, Server]:
    key = key_file(work / f"{name}.ticket-keys")
    keylog = work / f"{name}.keylog"
    port = free_port()
    peer = tessera_serve13(
        port, work, "--www", "--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key),
        "--ticket-keys", str(work / f"{name}.ticket-keys"), "--keylogfile", str(keylog), *args,
    )  # fmt: skip
    return peer, Server(peer, port, keylog, key)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_program("openssl")
    return tmp_path_factory.mktemp("tls13-negative")


@pytest.fixture(scope="module")
def server(pki: Pki, work: Path) -> Iterator[Server]:
    """``tessera serve --tls1_3 --www`` with a ticket key file and a key log."""
    peer, srv = start_server(pki, work, "main")
    with peer:
        yield srv


@pytest.fixture(scope="module")
def other_server(pki: Pki, work: Path) -> Iterator[Server]:
    """The same, with another ticket key file."""
    peer, srv = start_server(pki, work, "other")
    with peer:
        yield srv


@pytest.fixture(scope="module")
def short_server(pki: Pki, work: Path) -> Iterator[Server]:
    """Tickets that live one second."""
    peer, srv = start_server(pki, work, "short", "--ticket-lifetime", "1")
    with peer:
        yield srv


def get_page(port: int, pki: Pki, *args: str) -> str:
    """``s_client -tls1_3`` with the test CA, GET / and read to the end; its output."""
    return openssl_s_client(
        port, "-tls1_3", "-CAfile", str(pki.ca_file), "-ign_eof", *args, input=HTTP_GET
    )


def new_session(srv: Server, pki: Pki, path: Path) -> dict[str, int]:
    """A full handshake that saves its session in ``path``; the fallback reasons its page
    counted so far."""
    out = get_page(srv.port, pki, "-sess_out", str(path))
    assert outcomes(out) == ["New"], out
    assert path.exists(), out
    return parse_status_page(out).reasons


def psk_offered(trace: str) -> bool:
    """Whether the (first) ClientHello in ``s_client -trace`` output has pre_shared_key."""
    hello = trace.split("ClientHello, Length=", 1)[1].split("ServerHello, Length=", 1)[0]
    return "extension_type=psk(41)" in hello


def assert_full_handshake(out: str, reason: FallbackReason, before: dict[str, int]) -> None:
    """s_client offered its PSK, got a full handshake, and the page counts ``reason`` once
    more than the page fetched before (``before``), and nothing else changed."""
    assert ssl_alert_numbers(out) == [], out
    assert psk_offered(out), out
    assert outcomes(out) == ["New"], out
    assert "Reused, TLSv1.3" not in out, out
    page = parse_status_page(out)
    assert page.outcome == "New", out
    assert page.fields["Resumed"] == "no", out
    assert page.fields["Protocol"] == "TLSv1.3", out
    expected = {**before, reason.value: before.get(reason.value, 0) + 1}
    assert page.reasons == expected, page.text


# -- 1. the PSK binder and the PSK identity ----------------------------------------------------
def test_altered_binder_is_decrypt_error(server: Server, pki: Pki, tmp_path: Path) -> None:
    """A bit flipped in the last binder byte: the ticket opens and is fresh, so tessera checks
    the binder, which fails: a fatal decrypt_error (RFC 8446 §4.2.11), no fallback."""
    sess = tmp_path / "sess.pem"
    new_session(server, pki, sess)
    logged = "handshake failed: decrypt_error (51): the PSK binder does not verify"
    failures = server.peer.output().count(logged)
    with FirstRecordProxy(server.port, flip_last_byte) as proxy:
        out = get_page(proxy.port, pki, "-sess_in", str(sess))
    wait_for_output(server.peer, logged, failures + 1)
    assert proxy.errors == [], proxy.errors
    assert len(proxy.hellos) == 1
    original, altered = proxy.hellos[0]
    assert len(original) == len(altered) and original[:-1] == altered[:-1]
    assert original[-1] ^ altered[-1] == 0x01
    assert ssl_alert_numbers(out) == [51], out
    assert "alert decrypt error" in out, out
    assert "<pre>" not in out, out
    assert "Reused, TLSv1.3" not in out, out
    # The server still works: a full handshake, and the untouched session still resumes.
    out = get_page(server.port, pki)
    assert outcomes(out) == ["New"] and parse_status_page(out).fields["Resumed"] == "no", out
    out = get_page(server.port, pki, "-sess_in", str(sess))
    assert outcomes(out) == ["Reused"], out
    assert parse_status_page(out).fields["Resumed"] == "yes, by psk", out


def test_unaltered_proxy_resumes(server: Server, pki: Pki, tmp_path: Path) -> None:
    """Control for the test above: the same proxy, not flipping anything, is transparent."""
    sess = tmp_path / "sess.pem"
    new_session(server, pki, sess)
    with FirstRecordProxy(server.port, lambda record: record) as proxy:
        out = get_page(proxy.port, pki, "-sess_in", str(sess))
    assert len(proxy.hellos) == 1
    assert Hello.parse(proxy.hellos[0][0]).types()[-1] == EXT_PRE_SHARED_KEY
    assert outcomes(out) == ["Reused"], out
    assert parse_status_page(out).fields["Resumed"] == "yes, by psk", out


def test_altered_identity_is_a_full_handshake(server: Server, pki: Pki, tmp_path: Path) -> None:
    """A bit flipped inside the ticket's ciphertext: the ticket does not open, and that is no
    error. (The ticket is altered in the session file, not on the wire: the client must compute
    its binder and transcript over the identity it sends, or the handshake could not finish.)"""
    sess = tmp_path / "sess.pem"
    before = new_session(server, pki, sess)
    ticket = bytearray(ossl_ticket(sess.read_text()))
    assert ticket[:16] == server.ticket_key.name, "tessera's ticket: key_name | iv | ..."
    ticket[40] ^= 0x01
    sess.write_text(ossl_replace_ticket(sess.read_text(), bytes(ticket)))
    out = get_page(server.port, pki, "-sess_in", str(sess), "-trace")
    assert_full_handshake(out, FallbackReason.TICKET_MAC_FAILED, before)


# -- 2. the downgrade sentinel -----------------------------------------------------------------
@pytest.fixture(scope="module")
def s_server12_13(pki: Pki, work: Path) -> Iterator[Peer]:
    """``openssl s_server -www`` with TLS 1.2 and 1.3 (its defaults)."""
    with openssl_s_server(free_port(), work, pki.ecdsa_cert, pki.ecdsa_key) as peer:
        yield peer


def test_downgrade_sentinel_aborts_with_illegal_parameter(s_server12_13: Peer, pki: Pki) -> None:
    """The tessera client offers 1.2 and 1.3; supported_versions is removed on the way, so
    s_server picks TLS 1.2 and, supporting 1.3, ends its random with DOWNGRD\\x01. The client
    must abort with illegal_parameter (RFC 8446 §4.1.3), and s_server receives that alert."""
    assert s_server12_13.port is not None
    config = ClientConfig(cafile=pki.ca_file)
    assert config.versions == (ProtocolVersion.TLS1_3, ProtocolVersion.TLS1_2)
    received = "SSL alert number 47"
    before = s_server12_13.output().count(received)
    with FirstRecordProxy(s_server12_13.port, strip_supported_versions) as proxy:
        with pytest.raises(AlertError) as info:
            TLSSocket.connect(("127.0.0.1", proxy.port), config, "localhost", timeout=10)
        out = wait_for_output(s_server12_13, received, before + 1)
    assert proxy.errors == [], proxy.errors
    original, stripped = proxy.hellos[0]
    assert EXT_SUPPORTED_VERSIONS in Hello.parse(original).types()
    kept = [e for e in Hello.parse(original).extensions if e[0] != EXT_SUPPORTED_VERSIONS]
    assert Hello.parse(stripped).extensions == kept
    assert stripped[5:] != original[5:] and stripped[9:43] == original[9:43]  # same random
    version, random = server_hello_random(proxy.replies[0])
    assert version == 0x0303 and random[-8:] == DOWNGRADE_TLS12 == b"DOWNGRD\x01"
    err = info.value
    assert isinstance(err, IllegalParameter), repr(err)
    assert err.alert is AlertDescription.illegal_parameter and int(err.alert) == 47
    assert "downgrade" in str(err), str(err)
    # "sslv3 alert ..." with an alert number: s_server read the alert from its peer (an alert
    # it sent itself would be reported under another reason).
    alert_lines = [line for line in out.splitlines() if received in line]
    assert len(alert_lines) == before + 1, out
    assert "ssl3_read_bytes:sslv3 alert illegal parameter" in alert_lines[-1], out
    assert ssl_alert_numbers(alert_lines[-1]) == [47], out


def test_tls12_only_client_through_the_same_proxy(s_server12_13: Peer, pki: Pki) -> None:
    """Control: a client that offers only TLS 1.2 sends no supported_versions (the proxy
    changes nothing), sees the same sentinel, and must not treat it as a downgrade."""
    assert s_server12_13.port is not None
    config = ClientConfig(cafile=pki.ca_file, max_version=ProtocolVersion.TLS1_2)
    with FirstRecordProxy(s_server12_13.port, strip_supported_versions) as proxy:
        with TLSSocket.connect(("127.0.0.1", proxy.port), config, "localhost", timeout=10) as tls:
            page = http_get(tls)
        assert tls.info.version == ProtocolVersion.TLS1_2
    assert proxy.errors == [], proxy.errors
    original, forwarded = proxy.hellos[0]
    assert original == forwarded
    assert EXT_SUPPORTED_VERSIONS not in Hello.parse(original).types()
    assert server_hello_random(proxy.replies[0])[1][-8:] == DOWNGRADE_TLS12
    text = page.decode(errors="replace")
    assert re.search(r"^New, TLSv1\.2, Cipher is ECDHE-ECDSA-", text, re.MULTILINE), text


def test_tessera_server_sentinel_caught_by_s_client(pki: Pki, work: Path) -> None:
    """The other way round: ``openssl s_client`` (offering 1.2 and 1.3) through the proxy that
    removes supported_versions, to a default ``tessera serve`` (1.2 and 1.3). tessera picks
    TLS 1.2 and, able to do 1.3, ends its random with DOWNGRD\\x01; OpenSSL's client detects
    it and aborts with illegal_parameter, which tessera reports as received."""
    port = free_port()
    certs = ["--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)]
    with (
        tessera_serve(port, work, "--www", *certs) as peer,
        FirstRecordProxy(port, strip_supported_versions) as proxy,
    ):
        out = openssl_s_client(proxy.port, "-CAfile", str(pki.ca_file), input=HTTP_GET)
        log = wait_for_output(peer, "handshake failed", 1)
    assert proxy.errors == [], proxy.errors
    version, random = server_hello_random(proxy.replies[0])
    assert version == 0x0303 and random[-8:] == DOWNGRADE_TLS12, random.hex()
    assert "ssl_choose_client_version:inappropriate fallback" in out, out
    assert "New, (NONE), Cipher is (NONE)" in out, out
    assert "handshake failed: illegal_parameter (47): the peer sent a fatal alert" in log, log


# -- 3. tickets that must fall back to a full handshake ----------------------------------------
def test_unknown_ticket_key(server: Server, other_server: Server, pki: Pki,
                            tmp_path: Path) -> None:  # fmt: skip
    """A ticket sealed with another server's key file: "ticket key name unknown"."""
    assert server.ticket_key.name != other_server.ticket_key.name
    sess = tmp_path / "other.pem"
    new_session(other_server, pki, sess)
    assert ossl_ticket(sess.read_text())[:16] == other_server.ticket_key.name
    before = parse_status_page(get_page(server.port, pki)).reasons
    out = get_page(server.port, pki, "-sess_in", str(sess), "-trace")
    assert_full_handshake(out, FallbackReason.TICKET_UNKNOWN_KEY, before)
    # The other server still resumes it.
    assert outcomes(get_page(other_server.port, pki, "-sess_in", str(sess))) == ["Reused"]


def test_expired_ticket(short_server: Server, pki: Pki, tmp_path: Path) -> None:
    """``--ticket-lifetime 1``, offered once that second is over: "ticket expired"."""
    sess = tmp_path / "short.pem"
    before = new_session(short_server, pki, sess)
    arrived = sess.stat().st_mtime  # s_client wrote it when the ticket came
    # Control: at once, it resumes.
    assert outcomes(get_page(short_server.port, pki, "-sess_in", str(sess))) == ["Reused"]
    time.sleep(max(0.0, arrived + 1.1 - time.time()))  # until the lifetime is over, no longer
    # OpenSSL stops offering a ticket once its whole-second age, minus one, exceeds the
    # lifetime hint: 2 s after it came. A creation time a second later gives s_client 3 s
    # instead, however slowly this box starts it (its age is still far inside the window).
    sess.write_text(shift_session_time(sess.read_text(), -1))
    out = get_page(short_server.port, pki, "-sess_in", str(sess), "-trace")
    assert "TLS session ticket lifetime hint: 1 (seconds)" in out, out
    assert_full_handshake(out, FallbackReason.TICKET_EXPIRED, before)
    assert parse_status_page(out).stats["timeouts"] >= 1


def shift_session_time(pem: str, seconds: int) -> str:
    """An OpenSSL session whose creation time ([1] INTEGER, seconds) is ``seconds`` earlier:
    s_client then reports a ticket age that much larger."""
    der = bytearray(pem_to_der(pem))
    vs, _ = _session_fields(bytes(der))[0xA1]
    tag, s, e, _ = _tlv(bytes(der), vs)
    assert tag == 0x02
    value = int.from_bytes(der[s:e], "big", signed=True)
    assert value > 1_600_000_000, value
    der[s:e] = (value - seconds).to_bytes(e - s, "big", signed=True)
    return der_to_pem(bytes(der))


def test_ticket_age_outside_the_window(server: Server, pki: Pki, tmp_path: Path) -> None:
    """tessera's tolerance is ServerConfig.max_ticket_age_skew (``--ticket-age-skew``, 10 s by
    default). A session file whose creation time is moved back 60 s makes s_client report a
    ticket age ~60 s while the server knows it is ~0 s: "ticket age outside the window"."""
    sess = tmp_path / "sess.pem"
    before = new_session(server, pki, sess)
    sess.write_text(shift_session_time(sess.read_text(), 60))
    out = get_page(server.port, pki, "-sess_in", str(sess), "-trace")
    assert_full_handshake(out, FallbackReason.PSK_AGE_INVALID, before)
    # Control: shifted by 5 s (inside the window) it resumes.
    sess2 = tmp_path / "sess2.pem"
    new_session(server, pki, sess2)
    sess2.write_text(shift_session_time(sess2.read_text(), 5))
    assert outcomes(get_page(server.port, pki, "-sess_in", str(sess2))) == ["Reused"]


def test_ticket_age_skew_option(pki: Pki, work: Path, tmp_path: Path) -> None:
    """``--ticket-age-skew 120`` widens the window: the session 60 s off now resumes."""
    peer, srv = start_server(pki, work, "skew", "--ticket-age-skew", "120")
    with peer:
        sess = tmp_path / "sess.pem"
        new_session(srv, pki, sess)
        sess.write_text(shift_session_time(sess.read_text(), 60))
        out = get_page(srv.port, pki, "-sess_in", str(sess))
    assert outcomes(out) == ["Reused"], out
    assert parse_status_page(out).reason("ticket age outside the window") == 0, out


# -- 4. SSLKEYLOGFILE --------------------------------------------------------------------------
LABELS = {
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
    "EXPORTER_SECRET",
}
KEYLOG_LINE = re.compile(r"^([A-Z_0-9]+) ([0-9a-f]{64}) ([0-9a-f]{64}|[0-9a-f]{96})$")


def keylog_by_random(path: Path) -> dict[str, set[str]]:
    """Key log lines (lower-cased) grouped by client random."""
    groups: dict[str, set[str]] = {}
    text = path.read_text() if path.exists() else ""
    for raw in text.splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        line = raw.strip()
        label, rest = line.split(" ", 1)
        line = f"{label} {rest.lower()}"
        m = KEYLOG_LINE.match(line)
        assert m, f"not an NSS key log line: {raw!r}"
        groups.setdefault(m[2], set()).add(line)
    return groups


def assert_same_keylog(theirs: Path, ours: Path, connections: int) -> None:
    """``connections`` connections in ``theirs``; tessera logged exactly the same lines for
    each (all five TLS 1.3 labels), waiting (bounded) for them to appear."""
    other = keylog_by_random(theirs)
    assert len(other) == connections, theirs.read_text()
    with contextlib.suppress(AssertionError):  # (the comparison below says what differs)
        wait_until(lambda: all(keylog_by_random(ours).get(r) == other[r] for r in other),
                   "tessera's key log lines")  # fmt: skip
    mine = keylog_by_random(ours)
    for random, lines in other.items():
        assert {line.split(" ", 1)[0] for line in lines} == LABELS, lines
        assert mine.get(random) == lines, (random, mine.get(random), lines)


def test_keylog_tessera_serve_matches_s_client(server: Server, pki: Pki, tmp_path: Path) -> None:
    keys, sess = tmp_path / "openssl.keys", tmp_path / "sess.pem"
    out = get_page(server.port, pki, "-keylogfile", str(keys), "-sess_out", str(sess))
    assert outcomes(out) == ["New"], out
    out = get_page(server.port, pki, "-keylogfile", str(keys), "-sess_in", str(sess))
    assert outcomes(out) == ["Reused"], out
    assert_same_keylog(keys, server.keylog, 2)


def test_keylog_tessera_client_matches_s_server(pki: Pki, work: Path, tmp_path: Path) -> None:
    theirs, ours = tmp_path / "openssl.keys", tmp_path / "tessera.keys"
    config = ClientConfig(
        min_version=ProtocolVersion.TLS1_3,
        max_version=ProtocolVersion.TLS1_3,
        cafile=pki.ca_file,
        session_cache=ClientSessionCache(),
        keylog=keylog_to_file(ours),
    )
    with openssl_s_server(free_port(), work, pki.ecdsa_cert, pki.ecdsa_key, "-tls1_3",
                          "-keylogfile", str(theirs)) as peer:  # fmt: skip
        assert peer.port is not None
        resumed = []
        for _ in range(2):
            with TLSSocket.connect(
                ("127.0.0.1", peer.port), config, "localhost", timeout=10
            ) as tls:
                page = http_get(tls)
            assert tls.info.version == ProtocolVersion.TLS1_3
            resumed.append(tls.info.resumed)
            text = page.decode(errors="replace")
            assert ("Reused, TLSv1.3" if tls.info.resumed else "New, TLSv1.3") in text, text
        assert resumed == [False, True]
    assert_same_keylog(theirs, ours, 2)
    assert set(keylog_by_random(ours)) == set(keylog_by_random(theirs))
    assert stat.S_IMODE(ours.stat().st_mode) == 0o600  # key material: owner only

"""TLS 1.3: CPython ``ssl`` and Node.js ``tls`` clients against ``tessera serve --tls1_3 --www``.

* CPython (this process's ``ssl`` module, i.e. OpenSSL): a default context negotiates TLS 1.3;
  the session taken after reading the page (so that the post-handshake NewSessionTickets have
  been processed) resumes with ``session=``; a server with other ticket keys does a full
  handshake instead; ``--stateful-tickets`` tickets resume exactly once.
* CPython with and without a client certificate against ``--verify-client required``: without
  one, TLS 1.3 finishes the client's side of the handshake and the client meets the server's
  certificate_required alert (116) on its first read; ``openssl s_client`` shows the same.
* Node.js: one ``'session'`` event per ticket (``--num-tickets``), every ticket resumes
  (``isSessionReused()``), ALPN with ``ALPNProtocols``.

Every outcome is checked on both ends: what the client library reports and what tessera wrote
on the status page it served over the same connection.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from peers import (
    HTTP_GET,
    Peer,
    node_script,
    openssl_s_client_steps,
    ssl_alert_numbers,
    tessera_serve,
    tessera_serve13,
)
from resumption_helpers import StatusPage, json_lines, parse_status_page, server_outcomes

from conftest import Pki, free_port, require_program
from tessera.session.keyring import KeyFileFormat, TicketKey, write_key_file

pytestmark = pytest.mark.interop

MAX_REPLY = 1 << 20  # the status page is ~1 KiB; anything near this is a runaway server
SINGLE_USE = "single-use ticket already used"
UNKNOWN_KEY = "ticket key name unknown"
CERT_REQUIREMENT = "client certificate requirement"


def certs(pki: Pki) -> list[str]:
    return ["--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)]


# -- servers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls13-python-node")


@pytest.fixture(scope="module")
def server(pki: Pki, logs: Path) -> Iterator[Peer]:
    """TLS 1.3 only, the default two tickets per handshake, ALPN http/1.1 preferred over h2."""
    with tessera_serve13(free_port(), logs, "--www", "--alpn", "http/1.1,h2", *certs(pki)) as p:
        yield p


@pytest.fixture(scope="module")
def server_1213(pki: Pki, logs: Path) -> Iterator[Peer]:
    """A default ``tessera serve --www``: TLS 1.2 and 1.3 on offer."""
    with tessera_serve(free_port(), logs, "--www", *certs(pki)) as p:
        yield p


@pytest.fixture(scope="module")
def three_tickets(pki: Pki, logs: Path) -> Iterator[Peer]:
    with tessera_serve13(free_port(), logs, "--www", "--num-tickets", "3", *certs(pki)) as p:
        yield p


@pytest.fixture(scope="module")
def stateful(pki: Pki, logs: Path) -> Iterator[Peer]:
    """Tickets are ids into the server's session cache, taken out when used."""
    with tessera_serve13(free_port(), logs, "--www", "--stateful-tickets", *certs(pki)) as p:
        yield p


@pytest.fixture(scope="module")
def client_auth(pki: Pki, logs: Path) -> Iterator[Peer]:
    args = ["--verify-client", "required", "--client-ca", str(pki.ca_file)]
    with tessera_serve13(free_port(), logs, "--www", *args, *certs(pki)) as p:
        yield p


# -- the CPython client (in this process: the peer is CPython's OpenSSL binding) ---------------


@dataclass
class Fetched:
    version: str | None
    reused: bool | None
    session: ssl.SSLSession | None
    alpn: str | None
    page: StatusPage
    reply: str


def client_context(pki: Pki, *, cert: bool = False) -> ssl.SSLContext:
    """CPython's default client context (TLS 1.2 to the highest version, i.e. 1.3)."""
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    assert ctx.maximum_version is ssl.TLSVersion.MAXIMUM_SUPPORTED
    if cert:
        ctx.load_cert_chain(pki.client_cert, pki.client_key)
    return ctx


def fetch(peer: Peer, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None) -> Fetched:
    """Connect, GET /, read to EOF (the tickets come before the page), then take the session."""
    assert peer.port is not None
    with (
        socket.create_connection(("127.0.0.1", peer.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s,
    ):
        s.sendall(HTTP_GET)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
            assert len(reply) < MAX_REPLY, reply[:200]
        text = reply.decode(errors="replace")
        return Fetched(
            s.version(),
            s.session_reused,
            s.session,
            s.selected_alpn_protocol(),
            parse_status_page(text),
            text,
        )


def assert_full(f: Fetched) -> None:
    assert f.version == "TLSv1.3", f.reply
    assert f.reused is False, f.reply
    assert f.page.outcome == "New", f.reply
    assert f.page.fields["Protocol"] == "TLSv1.3", f.reply
    assert f.page.fields["Resumed"] == "no", f.reply
    assert f.session is not None and f.session.has_ticket, f.reply
    assert "</pre></body></html>" in f.reply, f.reply


def assert_resumed(f: Fetched) -> None:
    assert f.version == "TLSv1.3", f.reply
    assert f.reused is True, f.reply
    assert f.page.outcome == "Reused", f.reply
    assert f.page.fields["Protocol"] == "TLSv1.3", f.reply
    assert f.page.fields["Resumed"] == "yes, by psk", f.reply
    assert "</pre></body></html>" in f.reply, f.reply


def test_cpython_resumes_tls13(server: Peer, pki: Pki) -> None:
    """A full handshake, then ``session=`` resumes (twice: tessera's tickets are reusable unless
    --stateful-tickets); tessera logs New then Reused, Reused."""
    ctx = client_context(pki)
    before = len(server_outcomes(server, 0))
    first = fetch(server, ctx)
    assert_full(first)
    assert first.session is not None
    assert first.session.ticket_lifetime_hint == 7200
    assert first.page.fields["SNI"] == "localhost", first.reply
    assert first.page.fields["ALPN"] == "(none)", first.reply
    for _ in range(2):
        again = fetch(server, ctx, first.session)
        assert_resumed(again)
        assert again.page.fields["Cipher"] == first.page.fields["Cipher"], again.reply
    assert server_outcomes(server, before + 3)[before:] == ["New", "Reused", "Reused"]


def test_cpython_picks_tls13_from_a_tls12_and_13_server(server_1213: Peer, pki: Pki) -> None:
    ctx = client_context(pki)
    first = fetch(server_1213, ctx)
    assert_full(first)
    again = fetch(server_1213, ctx, first.session)
    assert_resumed(again)


def test_cpython_ticket_from_other_keys_is_a_full_handshake(pki: Pki, logs: Path) -> None:
    """A ticket from a server with key file A: a restart with A resumes it; a restart with key
    file B cannot open it, does a full handshake (the page says why) and its own ticket works."""
    key_a, key_b = logs / "a.key", logs / "b.key"
    for path in (key_a, key_b):
        write_key_file(path, [TicketKey.generate(time.time(), 80)], KeyFileFormat.NATIVE)
    ctx = client_context(pki)

    def start(key: Path) -> Peer:
        return tessera_serve13(free_port(), logs, "--www", "--ticket-keys", str(key), *certs(pki))

    with start(key_a) as a:
        first = fetch(a, ctx)
    assert_full(first)
    with start(key_a) as a_again:
        assert_resumed(fetch(a_again, ctx, first.session))
    with start(key_b) as b:
        other = fetch(b, ctx, first.session)
        assert_full(other)
        assert other.page.reason(UNKNOWN_KEY) == 1, other.reply
        assert other.page.stats["ticket_failures"] == 1, other.reply
        assert_resumed(fetch(b, ctx, other.session))


def test_cpython_stateful_ticket_resumes_once(stateful: Peer, pki: Pki) -> None:
    """OpenSSL offers the same ticket every time a session object is reused; a stateful ticket
    is taken out of the cache by its first use, so the second offer is a full handshake."""
    ctx = client_context(pki)
    first = fetch(stateful, ctx)
    assert_full(first)
    used_before = first.page.reason(SINGLE_USE)
    resumed = fetch(stateful, ctx, first.session)
    assert_resumed(resumed)
    assert resumed.page.reason(SINGLE_USE) == used_before, resumed.reply
    replay = fetch(stateful, ctx, first.session)
    assert_full(replay)
    assert replay.page.reason(SINGLE_USE) == used_before + 1, replay.reply
    # The resumed connection brought a fresh single-use ticket: it resumes, once.
    assert_resumed(fetch(stateful, ctx, resumed.session))
    assert_full(fetch(stateful, ctx, resumed.session))


# -- client certificates ----------------------------------------------------------------------


def test_cpython_client_certificate(client_auth: Peer, pki: Pki) -> None:
    """With a certificate: the page is served; the session (which carries the certificate)
    resumes, which ``--verify-client required`` only allows with a certificate."""
    ctx = client_context(pki, cert=True)
    first = fetch(client_auth, ctx)
    assert_full(first)
    again = fetch(client_auth, ctx, first.session)
    assert_resumed(again)
    assert again.page.reason(CERT_REQUIREMENT) == first.page.reason(CERT_REQUIREMENT)


def test_cpython_without_client_certificate_gets_certificate_required(
    client_auth: Peer, pki: Pki
) -> None:
    """TLS 1.3: the client's handshake ends when it sends its (empty) Certificate and Finished;
    the server's certificate_required alert is what its first read returns."""
    ctx = client_context(pki)
    assert client_auth.port is not None
    with (
        socket.create_connection(("127.0.0.1", client_auth.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as s,
    ):
        assert s.version() == "TLSv1.3"
        with pytest.raises(ssl.SSLError) as info:
            s.recv(1024)
    assert info.value.reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED", repr(info.value)
    assert "certificate required" in str(info.value)
    # The server is still there for clients that have a certificate.
    assert_full(fetch(client_auth, client_context(pki, cert=True)))


def test_s_client_without_client_certificate_gets_alert_116(client_auth: Peer, pki: Pki) -> None:
    require_program("openssl")
    assert client_auth.port is not None
    out = openssl_s_client_steps(
        client_auth.port, "-tls1_3", "-CAfile", str(pki.ca_file), until="SSL alert number"
    )
    assert "New, TLSv1.3" in out, out
    assert ssl_alert_numbers(out) == [116], out
    assert "certificate required" in out, out
    # certificate_authorities in the CertificateRequest (RFC 8446 §4.2.4) named the CA.
    assert "Acceptable client certificate CA names\nCN = tessera test CA\n" in out, out


# -- Node.js ----------------------------------------------------------------------------------

# First connection without a session, collecting every 'session' event (one per
# NewSessionTicket); then one connection per collected session. One JSON line per connection.
NODE_CLIENT = r"""
const tls = require('tls'); const fs = require('fs');
const {TLS_PORT, TLS_CA, TLS_ALPN} = process.env;
function once(session) {
  return new Promise((resolve, reject) => {
    const sessions = []; let page = ''; let info = null;
    const opts = {host: '127.0.0.1', port: +TLS_PORT, servername: 'localhost',
                  ca: fs.readFileSync(TLS_CA), session};
    if (TLS_ALPN) opts.ALPNProtocols = TLS_ALPN.split(',');
    const s = tls.connect(opts);
    s.setTimeout(10000, () => { s.destroy(); reject(new Error('timeout')); });
    s.on('session', (buf) => sessions.push(buf));
    s.on('error', reject);
    s.on('secureConnect', () => {
      info = {reused: s.isSessionReused(), protocol: s.getProtocol(), alpn: s.alpnProtocol};
      s.write('GET / HTTP/1.0\r\n\r\n');
    });
    s.on('data', (d) => { page += d; });
    s.on('close', () => {
      const server = {};
      for (const l of page.split('\n')) {
        const m = /^(Protocol|Resumed|ALPN): (.*)$/.exec(l);
        if (m) server[m[1]] = m[2];
      }
      resolve([{...info, sessions: sessions.length, server}, sessions]);
    });
  });
}
(async () => {
  const [first, sessions] = await once(undefined);
  console.log(JSON.stringify(first));
  for (const session of sessions.slice(0, 5)) {
    const [r] = await once(session);
    console.log(JSON.stringify(r));
  }
})().catch((e) => { console.log('ERROR ' + e.message); process.exit(1); });
"""


def node_client(peer: Peer, pki: Pki, alpn: str = "") -> tuple[int, str, list[dict[str, object]]]:
    require_program("node")
    assert peer.port is not None
    env = {"TLS_PORT": str(peer.port), "TLS_CA": str(pki.ca_file), "TLS_ALPN": alpn}
    r = node_script(NODE_CLIENT, env=env)
    out = r.stdout.decode(errors="replace")
    return r.returncode, out, json_lines(out)


@pytest.mark.parametrize(("fixture", "tickets"), [("server", 2), ("three_tickets", 3)])
def test_node_session_events_and_resumption(
    request: pytest.FixtureRequest, pki: Pki, fixture: str, tickets: int
) -> None:
    """One 'session' event per ticket (--num-tickets); each of them resumes, and a resumed
    handshake brings one new ticket."""
    peer: Peer = request.getfixturevalue(fixture)
    rc, out, results = node_client(peer, pki)
    assert rc == 0, out
    assert len(results) == 1 + tickets, out
    first, *rest = results
    assert first["reused"] is False, out
    assert first["protocol"] == "TLSv1.3", out
    assert first["sessions"] == tickets, out
    assert first["server"] == {"Protocol": "TLSv1.3", "Resumed": "no", "ALPN": "(none)"}, out
    for r in rest:
        assert r["reused"] is True, out
        assert r["protocol"] == "TLSv1.3", out
        assert r["sessions"] == 1, out
        assert r["server"]["Resumed"] == "yes, by psk", out  # type: ignore[index]


@pytest.mark.parametrize(
    ("offer", "chosen"),
    [("h2,http/1.1", "http/1.1"), ("http/1.1", "http/1.1"), ("h2", "h2")],
)
def test_node_alpn(server: Peer, pki: Pki, offer: str, chosen: str) -> None:
    """The server's preference wins; the protocol is kept across resumption."""
    rc, out, results = node_client(server, pki, offer)
    assert rc == 0, out
    assert len(results) == 3, out
    for i, r in enumerate(results):
        assert r["protocol"] == "TLSv1.3", out
        assert r["alpn"] == chosen, out
        assert r["reused"] is (i > 0), out
        assert r["server"]["ALPN"] == chosen, out  # type: ignore[index]


def test_node_alpn_mismatch_is_no_application_protocol(server: Peer, pki: Pki) -> None:
    rc, out, results = node_client(server, pki, "spdy/3")
    assert rc != 0, out
    assert not results, out
    assert "ERROR" in out, out
    assert ssl_alert_numbers(out) == [120], out
    assert "no application protocol" in out, out

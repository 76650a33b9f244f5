"""Helpers for the TLS 1.2 resumption interop tests (``test_resumption12_*.py``).

Every peer is a real program: ``tessera serve``/``tessera connect`` (as processes),
``openssl s_client``/``s_server``, CPython ``ssl`` (``python -c``) and Node.js (``node -e``). Each
helper is bounded in time and returns what the peer printed, so that tests assert on it.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from peers import TESSERA, Peer, run

from conftest import Pki, require_program
from tessera import ClientConfig, ClientSession, ClientSessionCache, ProtocolVersion, TLSSocket
from tessera.events import ConnectionInfo
from waiting import WAIT, wait_until

GET = b"GET / HTTP/1.0\r\n\r\n"
# Rich wraps long lines at the terminal width; give the server's log room.
WIDE = {"COLUMNS": "300"}
# tessera serve's log lines add a time and the peer before, and how it resumed (or why not) after.
SESSION_LINE = re.compile(
    r"^(?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d \S+ )?(New|Reused), (TLSv1\.[0-3]), "
    r"Cipher is (\S+)(?: \(.*\))?\s*$",
    re.MULTILINE,
)
RECONNECTS = 5  # openssl s_client -reconnect and tessera connect --reconnect: 1 + 5 handshakes


# -- starting servers -----------------------------------------------------------------------
def tessera_www(port: int, log_dir: Path, pki: Pki, *args: str) -> Peer:
    """``tessera serve --tls1_2 --www`` with the test PKI's ECDSA leaf."""
    certs = ["--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)]
    argv = [*TESSERA, "serve", "--port", str(port), "--tls1_2", "--www", *certs, *args]
    return Peer(argv, port=port, log_dir=log_dir, name="tessera-serve", env=WIDE)


# -- outcomes -------------------------------------------------------------------------------
_PAGE = re.compile(r"<pre>.*?</pre>", re.DOTALL)


def session_lines(text: str) -> list[tuple[str, str, str]]:
    """(New/Reused, version, cipher) for every ``New, TLSv1.2, Cipher is ...`` line, in order;
    lines inside a tessera status page that a client printed do not count."""
    return [(m[1], m[2], m[3]) for m in SESSION_LINE.finditer(_PAGE.sub("", text))]


def outcomes(text: str) -> list[str]:
    return [line[0] for line in session_lines(text)]


def wait_for(predicate: Callable[[], bool], timeout: float = WAIT, what: str = "") -> None:
    wait_until(predicate, what, timeout)


def server_outcomes(peer: Peer, n: int, timeout: float = WAIT) -> list[str]:
    """The first ``n`` New/Reused lines a server printed (waiting for them to appear)."""
    wait_until(lambda: len(outcomes(peer.output())) >= n,
               f"{n} New/Reused lines from {peer.argv[:4]}", timeout, peer.output)  # fmt: skip
    return outcomes(peer.output())[:n]


# -- tessera serve's --www status page ------------------------------------------------------
@dataclass(frozen=True)
class StatusPage:
    """``tessera serve --www``'s page: the connection's fields, counters and fallback reasons."""

    text: str
    outcome: str  # "New" or "Reused" for the connection that fetched the page
    fields: dict[str, str]
    stats: dict[str, int]
    reasons: dict[str, int]

    def reason(self, name: str) -> int:
        return self.reasons.get(name, 0)


def parse_status_page(output: str) -> StatusPage:
    """Find and parse the tessera status page in a client's output."""
    start, end = output.find("<pre>"), output.find("</pre>")
    if start < 0 or end < start:
        raise AssertionError(f"no tessera status page in the client's output:\n{output}")
    body = output[start + 5 : end]
    lines = body.splitlines()
    outcome = ""
    fields: dict[str, str] = {}
    stats: dict[str, int] = {}
    reasons: dict[str, int] = {}
    section = "fields"
    for line in lines:
        m = SESSION_LINE.match(line)
        if m and not outcome:
            outcome = m.group(1)
            continue
        if line.startswith("Session statistics:"):
            section = "stats"
            continue
        if line.startswith("Resumption fallbacks"):
            section = "reasons"
            continue
        if line.startswith("Fleet:"):  # worker, store health, ticket keys (free text)
            section = "fleet"
            continue
        if not line.strip():
            continue
        # A field's label has no ": " (its value may: "rejected (replay: ...)"); a counter's
        # name may (a fallback reason), its value not.
        split = str.partition if section == "fields" else str.rpartition
        key, sep, value = split(line.strip(), ": ")
        if not sep:
            continue
        if section == "fields":
            fields[key] = value
        elif section == "stats":
            stats[key] = int(value)
        elif section == "reasons":
            reasons[key] = int(value)
    return StatusPage(body, outcome, fields, stats, reasons)


# -- openssl s_client -----------------------------------------------------------------------
def s_client(
    port: int,
    *args: str,
    input: bytes = b"",
    timeout: float = 20.0,
    env: dict[str, str] | None = None,
) -> str:
    """``openssl s_client -tls1_2`` to 127.0.0.1:port; stdout and stderr merged."""
    require_program("openssl")
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2", *args]
    return run(argv, input=input, timeout=timeout, env=env).stdout.decode(errors="replace")


def s_client_page(port: int, *args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """s_client that sends ``GET /`` and waits for the answer: (its output, outcome)."""
    out = s_client(port, "-ign_eof", *args, input=GET, env=env)
    found = outcomes(out)
    assert len(found) == 1, f"expected one handshake, got {found}:\n{out}"
    return out, found[0]


# -- tessera connect ------------------------------------------------------------------------
def tessera_connect(
    port: int, pki: Pki, *args: str, input: bytes = b"", timeout: float = 30.0
) -> tuple[int, str]:
    """``tessera connect 127.0.0.1:port --tls1_2 --ca CA`` as a process; (rc, output)."""
    argv = [*TESSERA, "connect", f"127.0.0.1:{port}", "--tls1_2", "--ca", str(pki.ca_file), *args]
    r = run(argv, input=input, timeout=timeout, env=WIDE)
    return r.returncode, r.stdout.decode(errors="replace")


# -- the tessera client in this process -----------------------------------------------------
def tessera_client_config(pki: Pki, **kw: object) -> ClientConfig:
    return ClientConfig(
        max_version=ProtocolVersion.TLS1_2,
        cafile=pki.ca_file,
        session_cache=ClientSessionCache(),
        **kw,  # type: ignore[arg-type]
    )


def tessera_get(
    port: int, config: ClientConfig, session: ClientSession | None = None, request: bytes = GET
) -> tuple[ConnectionInfo, str, ClientSession | None]:
    """Connect with the tessera client, send ``request``, read to the end: (info, reply,
    the session to resume next)."""
    with TLSSocket.connect(
        ("127.0.0.1", port), config, "localhost", session=session, timeout=10.0
    ) as tls:
        if request:
            tls.sendall(request)
        reply = b""
        while chunk := tls.recv(65536):
            reply += chunk
        return tls.info, reply.decode(errors="replace"), tls.session


# -- OpenSSL's SSL_SESSION (the PEM s_client -sess_out writes) ------------------------------
_OSSL_LABEL = "SSL SESSION PARAMETERS"


def _tlv(data: bytes, i: int) -> tuple[int, int, int, int]:
    """(tag, start of value, end of value, start of this TLV) for the DER item at ``i``."""
    first = i
    tag = data[i]
    n = data[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[i : i + k], "big")
        i += k
    return tag, i, i + n, first


def _session_fields(der: bytes) -> dict[int, tuple[int, int]]:
    tag, start, end, _ = _tlv(der, 0)
    assert tag == 0x30, "an SSL_SESSION is a DER SEQUENCE"
    fields: dict[int, tuple[int, int]] = {}
    i = start
    n = 0
    while i < end:
        tag, vs, ve, _ = _tlv(der, i)
        # Untagged fields by position (version, ssl_version, cipher, session_id, master_key).
        fields[tag if tag >= 0xA0 else n] = (vs, ve)
        n += 1
        i = ve
    return fields


def pem_to_der(text: str, label: str = _OSSL_LABEL) -> bytes:
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    assert begin in text, f"no {label} block in:\n{text}"
    inner = text.split(begin, 1)[1].split(end, 1)[0]
    return base64.b64decode("".join(inner.split()))


def der_to_pem(der: bytes, label: str = _OSSL_LABEL) -> str:
    body = base64.encodebytes(der).decode("ascii")
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n"


def ossl_ticket(pem: str) -> bytes:
    """The ticket in an OpenSSL session file (field [10] EXPLICIT OCTET STRING)."""
    der = pem_to_der(pem)
    vs, ve = _session_fields(der)[0xAA]
    tag, s, e, _ = _tlv(der, vs)
    assert tag == 0x04 and e == ve
    return der[s:e]


_HEXDUMP = re.compile(r"^\s+[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -]){0,15}[0-9a-f]{2})", re.MULTILINE)


def s_client_ticket(out: str) -> bytes:
    """The ticket of the last session ``s_client`` printed (its ``TLS session ticket:`` dump).

    Useful after a resumed handshake, for which ``-sess_out`` writes nothing (OpenSSL calls
    the new-session callback only for full TLS 1.2 handshakes)."""
    _, found, dump = out.rpartition("TLS session ticket:\n")
    assert found, f"s_client printed no session ticket:\n{out}"
    block = dump.split("\n\n", 1)[0]
    return bytes.fromhex("".join(m[1].replace("-", " ") for m in _HEXDUMP.finditer(block)))


def ossl_master_key(pem: str) -> bytes:
    der = pem_to_der(pem)
    vs, ve = _session_fields(der)[4]
    return der[vs:ve]


def ossl_replace_ticket(pem: str, ticket: bytes) -> str:
    """The same session with another ticket of the same length."""
    der = pem_to_der(pem)
    old = ossl_ticket(pem)
    assert len(old) == len(ticket), "the new ticket must have the old one's length"
    assert der.count(old) == 1
    return der_to_pem(der.replace(old, ticket))


# -- CPython ssl, as a separate process -----------------------------------------------------
# A client: connections to 127.0.0.1:PORT, the first without a session, the others with the
# session of the first. Each sends GET and prints one JSON line.
PY_CLIENT = r"""
import json, socket, ssl, sys
port, count, no_ticket = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
ctx.load_verify_locations(sys.argv[4])
if no_ticket:
    ctx.options |= ssl.OP_NO_TICKET
session = None
for i in range(count):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            page = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                page += chunk
            resumed = [l for l in page.decode().splitlines() if l.startswith("Resumed:")]
            print(json.dumps({"reused": s.session_reused, "version": s.version(),
                              "has_ticket": s.session.has_ticket, "id": s.session.id.hex(),
                              "server": resumed[0] if resumed else ""}), flush=True)
            if session is None:
                session = s.session
"""

# A server: answers every connection with one line and prints one JSON line per handshake
# (with the context's session_stats()). Options: no_ticket, no_cache (SSL_SESS_CACHE_OFF via
# SSL_CTX_ctrl) and a ticket key file given to SSL_CTX_set_tlsext_ticket_keys.
PY_SERVER = r"""
import ctypes, json, socket, ssl, sys
port, cert, key, opts, keyfile = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
ctx.load_cert_chain(cert, key)
if "no_ticket" in opts:
    ctx.options |= ssl.OP_NO_TICKET
ctrl = None
if "no_cache" in opts or keyfile != "-":
    libssl = ctypes.CDLL(ssl._ssl.__file__)  # resolves to the libssl CPython is linked with
    ctrl = libssl.SSL_CTX_ctrl
    ctrl.restype = ctypes.c_long
    ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    # PySSLContext is PyObject_HEAD followed by its SSL_CTX *.
    ssl_ctx = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
if "no_cache" in opts:
    ctrl(ssl_ctx, 44, 0, None)  # SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_OFF
if keyfile != "-":
    keys = open(keyfile, "rb").read()
    buf = ctypes.create_string_buffer(keys, len(keys))
    # SSL_CTRL_SET_TLSEXT_TICKET_KEYS: SSL_CTX_set_tlsext_ticket_keys(ctx, keys, 80)
    assert ctrl(ssl_ctx, 59, len(keys), buf) == 1, "SSL_CTX_set_tlsext_ticket_keys failed"
with socket.create_server(("127.0.0.1", port)) as ls:
    while True:
        c, _ = ls.accept()
        c.settimeout(10)
        try:
            with ctx.wrap_socket(c, server_side=True) as s:
                print(json.dumps({"reused": s.session_reused, "version": s.version(),
                                  "cipher": s.cipher()[0], "stats": ctx.session_stats()}),
                      flush=True)
                s.sendall(b"hello from CPython\n")
                # close_notify: OpenSSL drops a session from its cache when the connection
                # is freed without one (ssl_clear_bad_session).
                s.unwrap()
        except (OSError, ssl.SSLError) as e:
            pass  # the launcher's port probe, or a client that gave up
"""


def py_client(port: int, pki: Pki, count: int, no_ticket: bool) -> list[dict[str, object]]:
    r = run(
        [sys.executable, "-c", PY_CLIENT, str(port), str(count), "1" if no_ticket else "0",
         str(pki.ca_file)],
        timeout=30,
    )  # fmt: skip
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out
    return json_lines(out)


def py_server(port: int, log_dir: Path, pki: Pki, *opts: str, keyfile: Path | None = None) -> Peer:
    argv = [sys.executable, "-c", PY_SERVER, str(port), str(pki.ecdsa_cert), str(pki.ecdsa_key),
            ",".join(opts) or "-", str(keyfile) if keyfile else "-"]  # fmt: skip
    return Peer(argv, port=port, log_dir=log_dir, name="cpython-ssl-server")


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# -- Node.js --------------------------------------------------------------------------------
# A client: count connections, the first without a session, then with the session buffer the
# 'session' event gave. Each sends GET and prints one JSON line.
NODE_CLIENT = r"""
const tls = require('tls'); const fs = require('fs'); const crypto = require('crypto');
const [port, count, noTicket, ca] = process.argv.slice(1);
function once(session) {
  return new Promise((resolve, reject) => {
    let latest = null; let page = '';
    const opts = {host: '127.0.0.1', port: +port, servername: 'localhost',
                  ca: fs.readFileSync(ca), maxVersion: 'TLSv1.2', session};
    if (noTicket === '1') opts.secureOptions = crypto.constants.SSL_OP_NO_TICKET;
    const s = tls.connect(opts);
    s.setTimeout(10000, () => reject(new Error('timeout')));
    s.on('session', (buf) => { latest = buf; });
    s.on('error', reject);
    s.on('secureConnect', () => s.write('GET / HTTP/1.0\r\n\r\n'));
    s.on('data', (d) => { page += d; });
    s.on('end', () => {
      const line = page.split('\n').find((l) => l.startsWith('Resumed:')) || '';
      const ticket = s.getTLSTicket();
      resolve([{reused: s.isSessionReused(), protocol: s.getProtocol(),
                cipher: s.getCipher().name, ticket: ticket ? ticket.length : 0,
                server: line}, latest]);
    });
  });
}
(async () => {
  let session;
  for (let i = 0; i < +count; i++) {
    const [r, latest] = await once(session);
    console.log(JSON.stringify(r));
    if (session === undefined) session = latest;
  }
})().catch((e) => { console.log('ERROR ' + e.message); process.exit(1); });
"""

# A server with ticketKeys from a file (48 bytes: name | HMAC key | AES key); one JSON line per
# handshake.
NODE_SERVER = r"""
const tls = require('tls'); const fs = require('fs');
const [port, keyfile, cert, key] = process.argv.slice(1);
const srv = tls.createServer({cert: fs.readFileSync(cert), key: fs.readFileSync(key),
                              ticketKeys: fs.readFileSync(keyfile), maxVersion: 'TLSv1.2'},
  (s) => {
    console.log(JSON.stringify({reused: s.isSessionReused(), protocol: s.getProtocol()}));
    s.end('hello from node\n');
  });
srv.on('tlsClientError', () => {});
srv.listen(+port, '127.0.0.1');
"""


def node_client(port: int, pki: Pki, count: int, no_ticket: bool) -> list[dict[str, object]]:
    node = require_program("node")
    r = run(
        [node, "-e", NODE_CLIENT, str(port), str(count), "1" if no_ticket else "0",
         str(pki.ca_file)],
        timeout=30,
    )  # fmt: skip
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out
    return json_lines(out)


def node_server(port: int, log_dir: Path, pki: Pki, keyfile: Path) -> Peer:
    node = require_program("node")
    argv = [node, "-e", NODE_SERVER, str(port), str(keyfile), str(pki.ecdsa_cert),
            str(pki.ecdsa_key)]  # fmt: skip
    return Peer(argv, port=port, log_dir=log_dir, name="node-server")


def server_json(peer: Peer, n: int, timeout: float = WAIT) -> list[dict[str, object]]:
    """The first ``n`` JSON lines a (CPython or Node) server printed."""
    wait_until(lambda: len(json_lines(peer.output())) >= n,
               f"{n} JSON lines from {peer.argv[0]}", timeout, peer.output)  # fmt: skip
    return json_lines(peer.output())[:n]

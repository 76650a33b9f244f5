"""The tessera client over TLS 1.3 against ``openssl s_server -tls1_3`` and a CPython ``ssl``
server: tickets (``-num_tickets``, ``-no_ticket``), resumption, 0-RTT (``-early_data``),
KeyUpdate, psk_ke; through the API (``TLSSocket``) and the CLI (``tessera connect``).

s_server cannot combine ``-early_data`` with ``-www``: for 0-RTT it runs without ``-www``, reads
stdin (held open) and prints what it receives, "Early data received:" / "End of early data" for
accepted 0-RTT and "Early data was rejected" otherwise.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import (
    HTTP_GET,
    TESSERA,
    Peer,
    openssl_s_server,
    run,
    tessera_serve13,
    wait_for_output,
)
from resumption_helpers import parse_status_page, server_json

from conftest import Pki, free_port, require_program
from tessera import (
    ClientConfig,
    ClientSession,
    ClientSessionCache,
    LocalProtocolError,
    ProtocolVersion,
    TLSSocket,
)
from tessera.events import ConnectionInfo
from waiting import WAIT

pytestmark = pytest.mark.interop

TLS13 = ProtocolVersion.TLS1_3
S_SERVER_LINE = re.compile(r"^(New|Reused), TLSv1\.3, Cipher is (\S+)", re.MULTILINE)


# -- the tessera client in this process --------------------------------------------------------
def config13(pki: Pki, **kw: object) -> ClientConfig:
    """TLS 1.3 only, the test CA, a session cache of its own."""
    return ClientConfig(
        min_version=TLS13,
        max_version=TLS13,
        cafile=pki.ca_file,
        session_cache=ClientSessionCache(),
        **kw,  # type: ignore[arg-type]
    )


def cache_key(port: int) -> tuple[str, int, str]:
    return ("127.0.0.1", port, "localhost")


def read_all(tls: TLSSocket, timeout: float = 10.0) -> bytes:
    """Application data until the peer closes; the socket times out after ``timeout`` s."""
    tls.sock.settimeout(timeout)
    out = b""
    while chunk := tls.recv(65536):
        out += chunk
    return out


def wait_for_tickets(tls: TLSSocket, n: int, timeout: float = WAIT) -> None:
    """Read (and process) records until ``n`` NewSessionTickets arrived or ``timeout`` passed.
    The peer sends no application data meanwhile (s_server without -www)."""
    deadline = time.monotonic() + timeout
    tls.sock.settimeout(0.1)
    while len(tls.sessions) < n and time.monotonic() < deadline:
        try:
            if not tls._pump():
                return
        except TimeoutError:  # the socket's timeout: socket.timeout, as ssl raises it
            pass


def get(port: int, config: ClientConfig, session: ClientSession | None = None,
        request: bytes = HTTP_GET) -> tuple[ConnectionInfo, str, TLSSocket]:  # fmt: skip
    """Connect, send ``request``, read to the end: (info, reply, the closed socket)."""
    with TLSSocket.connect(
        ("127.0.0.1", port), config, "localhost", session=session, timeout=10
    ) as tls:
        tls.sendall(request)
        reply = read_all(tls).decode(errors="replace")
    return tls.info, reply, tls


def s_server_outcome(page: str) -> str:
    m = S_SERVER_LINE.search(page)
    assert m, f"no New/Reused line in s_server's page:\n{page}"
    return m[1]


# -- servers --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_program("openssl")
    return tmp_path_factory.mktemp("s_server13")


def s_server(pki: Pki, logs: Path, *args: str) -> Peer:
    return openssl_s_server(free_port(), logs, pki.ecdsa_cert, pki.ecdsa_key, "-tls1_3", *args)


def s_server_raw(pki: Pki, logs: Path, *args: str) -> Peer:
    """s_server without -www: prints what it receives; stdin is a pipe kept open (s_server
    quits at end of input)."""
    port = free_port()
    argv = ["openssl", "s_server", "-accept", str(port), "-cert", str(pki.ecdsa_cert),
            "-key", str(pki.ecdsa_key), "-tls1_3", *args]  # fmt: skip
    return Peer(argv, port=port, log_dir=logs, name="s_server-raw", stdin=subprocess.PIPE)


@pytest.fixture(scope="module")
def www(pki: Pki, logs: Path) -> Iterator[Peer]:
    with s_server(pki, logs) as peer:
        yield peer


@pytest.fixture(scope="module")
def early(pki: Pki, logs: Path) -> Iterator[Peer]:
    with s_server_raw(pki, logs, "-early_data") as peer:
        yield peer


# -- tickets and resumption ----------------------------------------------------------------
@pytest.mark.parametrize("num_tickets", [0, 1, 2, 3, 4])
def test_num_tickets(pki: Pki, logs: Path, num_tickets: int) -> None:
    """s_server -num_tickets N sends N NewSessionTickets after the handshake: the tessera client
    gets N sessions (TLSSocket.sessions, and N in the session cache), and resumes with one of
    them when N > 0."""
    with s_server(pki, logs, "-num_tickets", str(num_tickets)) as peer:
        assert peer.port is not None
        config = config13(pki)
        info, page, tls = get(peer.port, config)
        assert info.version == TLS13 and not info.resumed
        assert s_server_outcome(page) == "New", page
        assert len(tls.sessions) == num_tickets
        assert config.session_cache is not None
        assert config.session_cache.count(cache_key(peer.port)) == num_tickets
        info2, page2, _ = get(peer.port, config)
        assert info2.resumed is (num_tickets > 0), page2
        assert s_server_outcome(page2) == ("Reused" if num_tickets else "New"), page2
        if num_tickets:
            assert info2.resumed_by == "psk"
            assert info2.peer_certificates, "the resumed connection keeps the server's chain"


def test_tickets_are_used_once_each(www: Peer, pki: Pki) -> None:
    """RFC 8446 C.4: the client uses each ticket once. s_server sends 2 per handshake; a resumed
    handshake brings fresh ones, so resumption goes on."""
    assert www.port is not None
    config = config13(pki)
    assert config.session_cache is not None
    key = cache_key(www.port)
    get(www.port, config)
    assert config.session_cache.count(key) == 2
    for _ in range(3):
        info, page, tls = get(www.port, config)
        assert info.resumed, page
        assert s_server_outcome(page) == "Reused", page
        assert len(tls.sessions) >= 1
    # Never more than the cache keeps per server.
    assert 1 <= config.session_cache.count(key) <= 8


def test_no_ticket_server_still_resumes(pki: Pki, logs: Path) -> None:
    """s_server -no_ticket in TLS 1.3 issues stateful tickets (ids into its session cache)."""
    with s_server(pki, logs, "-no_ticket") as peer:
        assert peer.port is not None
        config = config13(pki)
        _, page, tls = get(peer.port, config)
        assert tls.sessions, "a TLS 1.3 server with -no_ticket still sends (stateful) tickets"
        info, page, _ = get(peer.port, config)
        assert info.resumed, page
        assert s_server_outcome(page) == "Reused", page


def test_explicit_session_and_suites(www: Peer, pki: Pki) -> None:
    """A saved session (PEM round trip) resumes, with each suite. (The client offers only that
    suite: OpenSSL picks its own preferred suite first and drops a PSK of another hash.)"""
    assert www.port is not None
    for suite in ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"):
        config = config13(pki, cipher_suites=suite)
        _, _, tls = get(www.port, config)
        saved = tls.sessions[-1].to_pem()
        info, page, _ = get(www.port, config13(pki, cipher_suites=suite),
                            session=ClientSession.from_pem(saved))  # fmt: skip
        assert info.resumed, page
        assert info.cipher_suite.openssl_name == suite
        assert f"Reused, TLSv1.3, Cipher is {suite}" in page, page


# -- 0-RTT ----------------------------------------------------------------------------------
def test_early_data_accepted_then_replay_refused(early: Peer, pki: Pki) -> None:
    """s_server -early_data: tickets allow 0-RTT; the first use of a ticket has its early data
    accepted (s_server prints it), a second use of the same ticket (a replay) is refused by
    OpenSSL's anti-replay (and, the ticket being single-use there, not resumed): the tessera
    client reports the refusal and the connection works."""
    assert early.port is not None
    config = config13(pki)
    with TLSSocket.connect(("127.0.0.1", early.port), config, "localhost", timeout=10) as tls:
        tls.sendall(b"full handshake\n")
        wait_for_tickets(tls, 2)
        assert len(tls.sessions) == 2, "s_server sends two tickets by default"
        session = tls.sessions[0]
    assert session.state.max_early_data == 16384, "s_server's default max_early_data"
    with TLSSocket.connect(("127.0.0.1", early.port), config, "localhost", session=session,
                           timeout=10, early_data=b"zero rtt data\n") as tls:  # fmt: skip
        assert tls.info.resumed
        assert tls.info.early_data_accepted
        assert not tls.early_data_rejected
        tls.sendall(b"one rtt data\n")
        wait_for_tickets(tls, 1, timeout=0.5)
    out = wait_for_output(early, "one rtt data")
    assert "Early data received:" in out, out
    assert "zero rtt data" in out, out
    assert "End of early data" in out, out
    # The same ticket and early data again.
    with TLSSocket.connect(("127.0.0.1", early.port), config, "localhost", session=session,
                           timeout=10, early_data=b"replayed data\n") as tls:  # fmt: skip
        assert not tls.info.early_data_accepted
        assert tls.early_data_rejected
        tls.sendall(b"after the replay\n")
        wait_for_tickets(tls, 1, timeout=0.5)
    out = wait_for_output(early, "after the replay")
    assert "Early data was rejected" in out, out
    assert "replayed data" not in out, out


def test_no_early_data_without_server_support(www: Peer, pki: Pki) -> None:
    """s_server without -early_data: its tickets carry no early_data extension, so the tessera
    client will not send 0-RTT with them (LocalProtocolError before anything is sent) and
    resumes without it."""
    assert www.port is not None
    config = config13(pki)
    _, _, tls = get(www.port, config)
    session = tls.sessions[0]
    assert session.state.max_early_data == 0
    with pytest.raises(LocalProtocolError):
        TLSSocket.connect(("127.0.0.1", www.port), config, "localhost", session=session,
                          timeout=10, early_data=b"x")  # fmt: skip
    info, page, _ = get(www.port, config, session=session)
    assert info.resumed and not info.early_data_accepted, page


# -- KeyUpdate and psk_ke --------------------------------------------------------------------
def test_key_update_to_s_server(pki: Pki, logs: Path) -> None:
    """conn.update_keys() sends KeyUpdate(update_requested): s_server answers with its own
    KeyUpdate and the page still arrives, protected with the new keys both ways."""
    with s_server(pki, logs, "-msg") as peer:
        assert peer.port is not None
        config = config13(pki)
        with TLSSocket.connect(("127.0.0.1", peer.port), config, "localhost", timeout=10) as tls:
            tls.conn.update_keys()
            tls._flush()
            tls.sendall(HTTP_GET)
            page = read_all(tls).decode(errors="replace")
        assert s_server_outcome(page) == "New", page
        out = wait_for_output(peer, ">>> TLS 1.3, Handshake [length 0005], KeyUpdate")
        assert "<<< TLS 1.3, Handshake [length 0005], KeyUpdate" in out, out


def test_key_update_both_ways_repeated(pki: Pki, logs: Path) -> None:
    """Several KeyUpdates, with and without update_requested, against an s_server that echoes
    (-rev sends each line back reversed)."""
    with s_server(pki, logs, "-rev") as peer:
        assert peer.port is not None
        with TLSSocket.connect(
            ("127.0.0.1", peer.port), config13(pki), "localhost", timeout=10
        ) as tls:
            tls.sock.settimeout(10)
            for i, request_peer in enumerate([True, False, True, True]):
                tls.conn.update_keys(request_peer=request_peer)
                tls._flush()
                line = f"line {i}\n".encode()
                tls.sendall(line)
                got = b""
                while not got.endswith(b"\n"):
                    got += tls.recv(4096)
                assert got == line[-2::-1] + b"\n", got


def test_psk_ke_offered_to_s_server(pki: Pki, logs: Path) -> None:
    """ClientConfig(psk_ke=True) offers psk_ke besides psk_dhe_ke (the client still sends a key
    share). s_server -allow_no_dhe_kex prefers psk_dhe_ke when it has a key share, so the
    resumption keeps an (EC)DHE; what matters is that the offer interoperates. (psk_ke itself is
    taken by tessera serve --psk-ke: test_tls13_psk_ke_key_update.py.)"""
    with s_server(pki, logs, "-allow_no_dhe_kex") as peer:
        assert peer.port is not None
        config = config13(pki, psk_ke=True)
        info, _, _ = get(peer.port, config)
        assert info.group is not None and not info.resumed
        info, page, _ = get(peer.port, config)
        assert info.resumed, page
        assert s_server_outcome(page) == "Reused", page


# -- the CLI --------------------------------------------------------------------------------
def tessera_connect(port: int, pki: Pki, *args: str, input: bytes = b"",
                    timeout: float = 20.0) -> tuple[int | None, str]:  # fmt: skip
    """``tessera connect 127.0.0.1:PORT --tls1_3 --ca CA --sni localhost ARGS``: (rc, output);
    rc is None when it had to be killed after ``timeout`` seconds."""
    argv = [*TESSERA, "connect", f"127.0.0.1:{port}", "--tls1_3", "--ca", str(pki.ca_file),
            "--sni", "localhost", "--timeout", "5", *args]  # fmt: skip
    try:
        r = run(argv, input=input, timeout=timeout, env={"COLUMNS": "300"})
    except subprocess.TimeoutExpired as e:
        out = (e.output or b"").decode(errors="replace")
        return None, out + f"\n[killed after {timeout} s: {' '.join(argv[2:])}]"
    return r.returncode, r.stdout.decode(errors="replace")


def test_cli_reconnect(www: Peer, pki: Pki) -> None:
    """--reconnect: one full handshake, then five resumptions with the tickets it received."""
    assert www.port is not None
    rc, out = tessera_connect(www.port, pki, "--reconnect")
    assert rc == 0, out
    lines = [m[1] for m in S_SERVER_LINE.finditer(out)]
    assert lines == ["New"] + ["Reused"] * 5, out
    assert "Cipher is TLS_AES_128_GCM_SHA256" in out, out


def test_cli_reconnect_psk_ke(pki: Pki, logs: Path) -> None:
    with s_server(pki, logs, "-allow_no_dhe_kex") as peer:
        assert peer.port is not None
        rc, out = tessera_connect(peer.port, pki, "--reconnect", "--psk-ke")
        assert rc == 0, out
        assert [m[1] for m in S_SERVER_LINE.finditer(out)] == ["New"] + ["Reused"] * 5, out


def test_cli_get_over_tls13(www: Peer, pki: Pki, tmp_path: Path) -> None:
    """tessera connect relays stdin to the server and the reply to stdout, and --sess-out saves
    a TLS 1.3 session (a ticket that arrived after the handshake)."""
    assert www.port is not None
    sess = tmp_path / "sess.pem"
    rc, out = tessera_connect(www.port, pki, "--sess-out", str(sess), input=HTTP_GET, timeout=8)
    assert "New, TLSv1.3, Cipher is" in out, out
    assert "HTTP/1.0 200 ok" in out, out
    assert rc == 0, out
    assert sess.exists(), out
    rc, out = tessera_connect(www.port, pki, "--sess-in", str(sess), input=HTTP_GET, timeout=8)
    assert rc == 0, out
    assert out.startswith("Reused, TLSv1.3"), out
    assert s_server_outcome(out.split("HTTP/1.0 200 ok", 1)[-1]) == "Reused", out


def test_cli_early_data_reported(pki: Pki, tmp_path: Path) -> None:
    """--sess-in F --early-data FILE against tessera serve --max-early-data: the GET travels as
    0-RTT data, the client prints "Early data: accepted", and the page answers it."""
    port = free_port()
    req = tmp_path / "req.txt"
    req.write_bytes(HTTP_GET)
    certs = ["--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)]
    with tessera_serve13(port, tmp_path, "--www", "--max-early-data", "4096", *certs):
        config = config13(pki)
        _, _, tls = get(port, config)
        sess = tmp_path / "sess.pem"
        sess.write_text(tls.sessions[0].to_pem())
        rc, out = tessera_connect(port, pki, "--sess-in", str(sess), "--early-data", str(req))
    assert rc == 0, out
    assert "Reused, TLSv1.3" in out, out
    assert "Early data: accepted" in out, out
    page = parse_status_page(out)
    assert page.fields["Early data"] == "accepted", out  # the word connect prints too


def test_cli_reconnect_with_early_data(early: Peer, pki: Pki, tmp_path: Path) -> None:
    """--reconnect --early-data FILE: "Send FILE as TLS 1.3 0-RTT data when resuming" (the
    option's help): the full handshake sends none, each of the five resumptions sends it."""
    assert early.port is not None
    data = tmp_path / "early.txt"
    marker = f"cli early data {time.monotonic_ns()}"
    data.write_text(marker + "\n")
    before = early.output().count("Early data received:")
    rc, out = tessera_connect(early.port, pki, "--reconnect", "--early-data", str(data))
    assert rc == 0, out
    assert [m[1] for m in S_SERVER_LINE.finditer(out)] == ["New"] + ["Reused"] * 5, out
    server = wait_for_output(early, "Early data received:", before + 5)
    assert server.count(marker) == 5, server
    assert out.count("Early data: accepted") == 5, out  # what the client reports of each


def test_cli_reconnect_early_data_not_allowed(www: Peer, pki: Pki, tmp_path: Path) -> None:
    """--reconnect --early-data against s_server without -early_data: its tickets allow no 0-RTT
    data, so none is sent; the client says why, and never that the server rejected it."""
    assert www.port is not None
    data = tmp_path / "early.txt"
    data.write_text("not sent\n")
    rc, out = tessera_connect(www.port, pki, "--reconnect", "--early-data", str(data))
    assert rc == 0, out
    assert [m[1] for m in S_SERVER_LINE.finditer(out)] == ["New"] + ["Reused"] * 5, out
    assert out.count("Early data: not sent (no TLS 1.3 session allows it)") == 6, out
    assert "rejected" not in out and "accepted" not in out, out


# -- a CPython ssl server -------------------------------------------------------------------
PY13_SERVER = r"""
import json, socket, ssl, sys
port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(cert, key)
ctx.num_tickets = int(sys.argv[4])
with socket.create_server(("127.0.0.1", port)) as ls:
    while True:
        c, _ = ls.accept()
        c.settimeout(10)
        try:
            with ctx.wrap_socket(c, server_side=True) as s:
                print(json.dumps({"reused": s.session_reused, "version": s.version(),
                                  "cipher": s.cipher()[0]}), flush=True)
                s.sendall(b"hello from CPython\n")
                s.unwrap()
        except (OSError, ssl.SSLError):
            pass  # the launcher's port probe, or a client that gave up
"""


@pytest.mark.parametrize("num_tickets", [1, 3])
def test_cpython_server(pki: Pki, logs: Path, num_tickets: int) -> None:
    port = free_port()
    argv = [sys.executable, "-c", PY13_SERVER, str(port), str(pki.ecdsa_cert),
            str(pki.ecdsa_key), str(num_tickets)]  # fmt: skip
    with Peer(argv, port=port, log_dir=logs, name="cpython-ssl-server13") as peer:
        config = config13(pki)
        results = []
        for _ in range(3):
            info, reply, tls = get(port, config, request=b"")
            assert reply == "hello from CPython\n"
            results.append((info.resumed, len(tls.sessions)))
        assert results[0] == (False, num_tickets), results
        assert [r[0] for r in results[1:]] == [True, True], results
        handshakes = server_json(peer, 3)  # the launcher's port probe prints nothing
        assert [h["reused"] for h in handshakes] == [False, True, True], handshakes
        assert all(h["version"] == "TLSv1.3" for h in handshakes), handshakes

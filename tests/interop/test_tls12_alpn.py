"""ALPN (RFC 7301) both ways over TLS 1.2: tessera serve with openssl s_client, and the tessera
client (API and CLI) with openssl s_server. No overlap is fatal: no_application_protocol (120)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from peers import (
    HTTP_GET,
    TESSERA,
    Peer,
    openssl_s_client,
    openssl_s_server,
    run,
    ssl_alert_numbers,
    tessera_serve,
    wait_for_output,
)

from conftest import Pki, free_port, require_program
from tessera import AlertDescription, AlertReceived, ClientConfig, ProtocolVersion, TLSSocket

pytestmark = pytest.mark.interop

SERVER_ALPN = "h2,http/1.1"


@pytest.fixture(scope="module")
def tessera_alpn(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    require_program("openssl")
    port = free_port()
    args = ["--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key), "--alpn", SERVER_ALPN]
    with tessera_serve(port, tmp_path_factory.mktemp("serve"), "--tls1_2", "--www", *args) as p:
        yield p


@pytest.fixture(scope="module")
def s_server_alpn(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    require_program("openssl")
    port = free_port()
    logs = tmp_path_factory.mktemp("s_server")
    with openssl_s_server(
        port, logs, pki.ecdsa_cert, pki.ecdsa_key, "-tls1_2", "-alpn", SERVER_ALPN
    ) as peer:
        yield peer


def s_client_get(peer: Peer, pki: Pki, *args: str) -> str:
    assert peer.port is not None
    return openssl_s_client(
        peer.port, "-tls1_2", "-CAfile", str(pki.ca_file), "-ign_eof", *args, input=HTTP_GET
    )


# -- openssl s_client -> tessera serve --alpn h2,http/1.1 ---------------------------------------


@pytest.mark.parametrize(
    ("offer", "chosen"),
    [
        ("http/1.1", "http/1.1"),
        ("h2", "h2"),
        ("http/1.1,h2", "h2"),
        ("spdy/1,http/1.1", "http/1.1"),
    ],
)
def test_s_client_alpn(tessera_alpn: Peer, pki: Pki, offer: str, chosen: str) -> None:
    """tessera picks its own most preferred protocol that the client offers."""
    out = s_client_get(tessera_alpn, pki, "-alpn", offer)
    assert "Protocol  : TLSv1.2" in out, out
    assert f"ALPN protocol: {chosen}" in out, out
    assert f"ALPN: {chosen}" in out, out  # tessera's page
    assert "HTTP/1.0 200 ok" in out, out


def test_s_client_without_alpn(tessera_alpn: Peer, pki: Pki) -> None:
    out = s_client_get(tessera_alpn, pki)
    assert "No ALPN negotiated" in out, out
    assert "ALPN: (none)" in out, out
    assert "HTTP/1.0 200 ok" in out, out


def test_s_client_alpn_no_overlap(tessera_alpn: Peer, pki: Pki) -> None:
    out = s_client_get(tessera_alpn, pki, "-alpn", "spdy/1,imap")
    assert ssl_alert_numbers(out) == [120], out
    assert "alert no application protocol" in out, out
    assert "HTTP/1.0 200" not in out, out


# -- tessera client -> openssl s_server -alpn h2,http/1.1 ---------------------------------------


def api_connect(peer: Peer, pki: Pki, *protocols: str) -> str | None:
    assert peer.port is not None
    config = ClientConfig(
        cafile=pki.ca_file, max_version=ProtocolVersion.TLS1_2, alpn_protocols=protocols
    )
    with TLSSocket.connect(("127.0.0.1", peer.port), config, "localhost", timeout=10) as tls:
        tls.sendall(HTTP_GET)
        page = b""
        while chunk := tls.recv(65536):
            page += chunk
        assert b"Protocol  : TLSv1.2" in page, page
        return tls.info.alpn_protocol


@pytest.mark.parametrize(
    ("offer", "chosen"), [(("http/1.1",), "http/1.1"), (("http/1.1", "h2"), "h2")]
)
def test_api_client_alpn(
    s_server_alpn: Peer, pki: Pki, offer: tuple[str, ...], chosen: str
) -> None:
    assert api_connect(s_server_alpn, pki, *offer) == chosen


def test_api_client_without_alpn(s_server_alpn: Peer, pki: Pki) -> None:
    assert api_connect(s_server_alpn, pki) is None


def test_api_client_alpn_no_overlap(s_server_alpn: Peer, pki: Pki) -> None:
    with pytest.raises(AlertReceived) as e:
        api_connect(s_server_alpn, pki, "spdy/1")
    assert e.value.alert == AlertDescription.no_application_protocol
    # s_server's error (on its unbuffered stderr) says why it refused.
    out = wait_for_output(s_server_alpn, "no application protocol")
    assert "tls_handle_alpn:no application protocol" in out, out


def cli_connect(peer: Peer, pki: Pki, alpn: str) -> tuple[int, str]:
    argv = [*TESSERA, "connect", f"127.0.0.1:{peer.port}", "--tls1_2"]
    argv += ["--ca", str(pki.ca_file), "--alpn", alpn]
    proc = run(argv, input=HTTP_GET, timeout=30)
    return proc.returncode, proc.stdout.decode(errors="replace")


def test_cli_alpn(s_server_alpn: Peer, pki: Pki) -> None:
    rc, out = cli_connect(s_server_alpn, pki, "spdy/1,http/1.1")
    assert rc == 0, out
    assert "ALPN: http/1.1" in out, out
    assert "HTTP/1.0 200 ok" in out, out


def test_cli_alpn_no_overlap(s_server_alpn: Peer, pki: Pki) -> None:
    rc, out = cli_connect(s_server_alpn, pki, "spdy/1")
    assert rc == 1, out
    assert "no_application_protocol (120)" in out, out

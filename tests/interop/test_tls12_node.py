"""Node.js ``tls.connect`` (maxVersion TLSv1.2) against ``tessera serve --tls1_2`` (echo)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from peers import Peer, node_script, tessera_serve

from conftest import Pki, free_port, require_program
from tessera.crypto.suites import DEFAULT_TLS12_SUITES

pytestmark = pytest.mark.interop

DEFAULT_NAMES = [s.openssl_name for s in DEFAULT_TLS12_SUITES]

# Connects with the options in $OPTS (JSON), sends $PAYLOAD, waits for it to come back, ends,
# and prints one JSON line describing the connection.
CLIENT_JS = r"""
const tls = require('tls');
const fs = require('fs');
const opts = JSON.parse(process.env.OPTS);
opts.ca = [fs.readFileSync(process.env.CA_FILE)];
opts.minVersion = 'TLSv1.2';
opts.maxVersion = 'TLSv1.2';
const payload = process.env.PAYLOAD;
const result = {};
const timer = setTimeout(() => { result.error = 'timeout'; finish(3); }, 10000);
function finish(code) {
  clearTimeout(timer);
  console.log(JSON.stringify(result));
  process.exit(code);
}
const s = tls.connect(opts, () => {
  result.authorized = s.authorized;
  result.protocol = s.getProtocol();
  result.cipher = s.getCipher().name;
  result.standardName = s.getCipher().standardName;
  const ek = s.getEphemeralKeyInfo();
  result.ephemeral = ek && ek.name;
  result.subject = s.getPeerCertificate().subject.CN;
  result.alpn = s.alpnProtocol;
  s.write(payload);
});
let echoed = '';
s.on('data', (d) => {
  echoed += d;
  if (echoed.length >= payload.length) {
    result.echoed = echoed;
    s.end();
  }
});
s.on('close', () => finish(result.echoed === payload ? 0 : 1));
s.on('error', (e) => { result.error = e.code || e.message; result.message = e.message; finish(2); });
"""


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    require_program("node")
    port = free_port()
    args = [
        *("--cert", str(pki.ecdsa_cert), "--key", str(pki.ecdsa_key)),
        *("--cert", str(pki.rsa_cert), "--key", str(pki.rsa_key)),
        *("--alpn", "h2,http/1.1"),
    ]
    with tessera_serve(port, tmp_path_factory.mktemp("serve"), "--tls1_2", *args) as peer:
        yield peer


def node_connect(
    server: Peer, pki: Pki, payload: str, **opts: object
) -> tuple[int, dict[str, object], str]:
    options = {"host": "127.0.0.1", "port": server.port, "servername": "localhost", **opts}
    env = {"OPTS": json.dumps(options), "CA_FILE": str(pki.ca_file), "PAYLOAD": payload}
    proc = node_script(CLIENT_JS, env=env, timeout=30)
    out = proc.stdout.decode(errors="replace")
    last = out.strip().splitlines()[-1] if out.strip() else "{}"
    try:
        result = json.loads(last)
    except json.JSONDecodeError:
        result = {}
    return proc.returncode, result, out


# (node ecdhCurve, what getEphemeralKeyInfo().name says)
GROUPS = [("X25519", "X25519"), ("P-256", "prime256v1"), ("P-384", "secp384r1")]


@pytest.mark.parametrize("group", GROUPS, ids=[g[0] for g in GROUPS])
@pytest.mark.parametrize("suite", DEFAULT_NAMES)
def test_node_client(server: Peer, pki: Pki, suite: str, group: tuple[str, str]) -> None:
    curve, ephemeral = group
    if "-ECDSA-" in suite and curve != "P-256":
        # RFC 8422 §5.3: the certificate's curve (P-256) must be offered too. tessera picks by
        # its own order (X25519, P-256, P-384), so X25519 still wins, but P-384 loses to P-256.
        curve = f"{curve}:P-256"
        if group[0] == "P-384":
            ephemeral = "prime256v1"
    payload = f"hello from node, {suite} over {group[0]}\n" * 50
    rc, result, out = node_connect(server, pki, payload, ciphers=suite, ecdhCurve=curve)
    assert rc == 0, out
    assert result["authorized"] is True, out
    assert result["protocol"] == "TLSv1.2", out
    assert result["cipher"] == suite, out
    assert result["subject"] == "localhost", out
    assert result["echoed"] == payload, out
    assert result["ephemeral"] == ephemeral, out


def test_node_client_alpn(server: Peer, pki: Pki) -> None:
    rc, result, out = node_connect(server, pki, "alpn", ALPNProtocols=["http/1.1"])
    assert rc == 0, out
    assert result["alpn"] == "http/1.1", out
    assert result["protocol"] == "TLSv1.2", out


def test_node_client_alpn_no_overlap(server: Peer, pki: Pki) -> None:
    rc, result, out = node_connect(server, pki, "alpn", ALPNProtocols=["spdy/1"])
    assert rc == 2, out
    assert "no application protocol" in str(result.get("message", "")), out
    assert result.get("error") == "ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL", out

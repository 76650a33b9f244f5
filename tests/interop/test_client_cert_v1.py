"""X.509 version 1 client certificates (issue 22, item 7), made exactly as the tutorials make
them: a CA with ``openssl req -x509 -new``, a client key and request with ``openssl req -new``,
the certificate with ``openssl x509 -req -CA ... -CAkey ...`` and no -extfile (version 1, no
extensions). ``tessera serve --verify-client required`` accepts them under the openssl profile
(the default) as OpenSSL does — ``openssl s_client`` and curl present them — and refuses them
with the alert OpenSSL would send when they are expired or from another CA, and under the
webpki profile. The chains beyond the tutorial (an intermediate, a version 1 CA) get the verdict
``openssl verify`` gives.
"""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from peers import TESSERA, Peer, openssl_s_client, ssl_alert_numbers, wait_for_output

from conftest import Pki, free_port
from tessera.crypto.x509 import VerifyProfile, trust_store, verify_client_chain
from tessera.errors import BadCertificate

pytestmark = pytest.mark.interop

GET = b"GET / HTTP/1.0\r\n\r\n"


def openssl(*args: str | Path, cwd: Path) -> str:
    r = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                       timeout=60, check=False, stdin=subprocess.DEVNULL)  # fmt: skip
    assert r.returncode == 0, f"openssl {' '.join(map(str, args))}:\n{r.stdout}{r.stderr}"
    return r.stdout + r.stderr


class Tutorial:
    """Keys and certificates in ``directory``, made with the tutorials' commands."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def ca(self, name: str) -> Path:
        """``openssl req -x509 -new``: a self-signed version 3 CA (CA:TRUE)."""
        openssl("req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout",
                f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={name}", "-days", "365",
                cwd=self.dir)  # fmt: skip
        return self.dir / f"{name}.crt"

    def request(self, name: str) -> None:
        openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=self.dir)  # fmt: skip

    def signed(self, name: str, ca: str, days: str = "365", *extra: str) -> Path:
        """``openssl x509 -req -CA -CAkey`` (version 1 unless ``extra`` adds -extfile)."""
        self.request(name)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", days, *extra,
                cwd=self.dir)  # fmt: skip
        return self.dir / f"{name}.crt"

    def self_signed_v1(self, name: str) -> Path:
        """``openssl x509 -req -signkey``: a self-signed version 1 certificate."""
        self.request(name)
        openssl("x509", "-req", "-in", f"{name}.csr", "-signkey", f"{name}.key", "-out",
                f"{name}.crt", "-days", "365", cwd=self.dir)  # fmt: skip
        return self.dir / f"{name}.crt"

    def expire(self, name: str) -> None:
        """Re-sign CA ``name``'s own certificate (``openssl x509 -signkey``, extensions kept)
        so that it ran out a day ago; what it signed before stays valid."""
        openssl("x509", "-in", f"{name}.crt", "-signkey", f"{name}.key", "-days", "-1", "-out",
                f"{name}.crt", cwd=self.dir)  # fmt: skip

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> Tutorial:
    t = Tutorial(tmp_path_factory.mktemp("tutorial"))
    t.ca("Tutorial CA")
    t.ca("Other CA")
    t.signed("alice", "Tutorial CA")
    t.signed("mallory", "Other CA")
    t.signed("expired", "Tutorial CA", "-1")  # notAfter a day ago
    t.ca("Stale CA")
    t.signed("carol", "Stale CA")
    t.expire("Stale CA")  # the client CA file's own certificate has run out; carol's has not
    return t


def test_the_tutorial_makes_version_1_certificates(tutorial: Tutorial) -> None:
    text = openssl("x509", "-in", "alice.crt", "-noout", "-text", cwd=tutorial.dir)
    assert "Version: 1 (0x0)" in text and "X509v3" not in text, text
    assert openssl("verify", "-CAfile", "Tutorial CA.crt", "alice.crt", cwd=tutorial.dir) == (
        "alice.crt: OK\n"
    )


def serve(tutorial: Tutorial, pki: Pki, log_dir: Path, *args: str,
          client_ca: str = "Tutorial CA.crt") -> Peer:  # fmt: skip
    """``tessera serve --www --verify-client required`` trusting the tutorial CA for clients."""
    port = free_port()
    argv = [*TESSERA, "serve", "--port", str(port), "--www", "--cert", str(pki.ecdsa_cert),
            "--key", str(pki.ecdsa_key), "--verify-client", "required", "--client-ca",
            str(tutorial.dir / client_ca), *args]  # fmt: skip
    peer = Peer(argv, port=port, log_dir=log_dir, name="serve")
    wait_for_output(peer, "signals: HUP")
    return peer


@pytest.fixture(scope="module")
def server(tutorial: Tutorial, pki: Pki,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:  # fmt: skip
    with serve(tutorial, pki, tmp_path_factory.mktemp("serve")) as peer:
        yield peer


def s_client(peer: Peer, pki: Pki, tutorial: Tutorial, name: str, *args: str) -> str:
    """openssl s_client presenting ``name``'s certificate, sending a GET and reading on."""
    assert peer.port is not None
    return openssl_s_client(peer.port, "-cert", str(tutorial.dir / f"{name}.crt"), "-key",
                            str(tutorial.key(name)), "-CAfile", str(pki.ca_file), "-ign_eof",
                            *args, input=GET)  # fmt: skip


def curl(peer: Peer, pki: Pki, tutorial: Tutorial, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", str(pki.ca_file),
                           "--cert", str(tutorial.dir / f"{name}.crt"), "--key",
                           str(tutorial.key(name)), f"https://localhost:{peer.port}/"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_openssl_s_client_presents_a_version_1_certificate(server: Peer, pki: Pki,
                                                           tutorial: Tutorial,
                                                           version: str) -> None:  # fmt: skip
    out = s_client(server, pki, tutorial, "alice", version)
    assert "HTTP/1.0 200 " in out and "Verify return code: 0 (ok)" in out, out
    assert ssl_alert_numbers(out) == [], out


def test_curl_presents_a_version_1_certificate(server: Peer, pki: Pki,
                                               tutorial: Tutorial) -> None:  # fmt: skip
    r = curl(server, pki, tutorial, "alice")
    assert r.returncode == 0 and "<html>" in r.stdout, r.stderr


@pytest.mark.parametrize(
    ("name", "alert", "words", "logged"),
    [
        ("expired", 45, "alert certificate expired",
         "certificate_expired (45): the client's certificate failed validation: certificate "
         "'CN=expired' is not valid now"),
        ("mallory", 48, "alert unknown ca",
         "unknown_ca (48): the client's certificate failed validation: it was issued by "
         "'CN=Other CA', which is not a CA in"),
    ],
)  # fmt: skip
def test_refused_with_the_alert_openssl_sends(server: Peer, pki: Pki, tutorial: Tutorial,
                                              name: str, alert: int, words: str,
                                              logged: str) -> None:  # fmt: skip
    theirs = subprocess.run(["openssl", "verify", "-CAfile", "Tutorial CA.crt", f"{name}.crt"],
                            cwd=tutorial.dir, capture_output=True, text=True, timeout=60,
                            check=False)  # fmt: skip
    assert theirs.returncode != 0, theirs.stdout  # OpenSSL refuses it too
    for version in ("-tls1_3", "-tls1_2"):
        out = s_client(server, pki, tutorial, name, version)
        assert ssl_alert_numbers(out) == [alert], out
        assert "HTTP/1.0 200" not in out, out
    r = curl(server, pki, tutorial, name)
    assert r.returncode != 0 and words in r.stderr, r.stderr
    wait_for_output(server, logged, count=3)


def test_an_expired_client_ca_is_named_not_the_client(pki: Pki, tutorial: Tutorial,
                                                      tmp_path: Path) -> None:  # fmt: skip
    """The CA in --client-ca has expired, the client's own certificate has not: alert 45, as
    OpenSSL sends, and the log names the CA in the CA file, not the client's certificate."""
    theirs = openssl_verify(tutorial, "Stale CA.crt", "carol.crt")
    assert "error 10 at 1 depth lookup: certificate has expired" in theirs, theirs
    with serve(tutorial, pki, tmp_path, client_ca="Stale CA.crt") as peer:
        for version in ("-tls1_3", "-tls1_2"):
            out = s_client(peer, pki, tutorial, "carol", version)
            assert ssl_alert_numbers(out) == [45], out
        log = wait_for_output(peer, "certificate_expired (45)", count=2)
    assert "the CA certificate 'CN=Stale CA' is not valid now (valid from " in log, log
    assert "), in the client CA file" in log, log
    assert "certificate 'CN=carol' is not valid" not in log, log


def openssl_verify(tutorial: Tutorial, cafile: str, leaf: str) -> str:
    r = subprocess.run(["openssl", "verify", "-CAfile", cafile, leaf], cwd=tutorial.dir,
                       capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert r.returncode != 0, r.stdout
    return r.stdout + r.stderr


def test_refused_under_the_webpki_profile(pki: Pki, tutorial: Tutorial, tmp_path: Path) -> None:
    with serve(tutorial, pki, tmp_path, "--verify-profile", "webpki") as peer:
        out = s_client(peer, pki, tutorial, "alice", "-tls1_2")
        assert ssl_alert_numbers(out) == [42], out  # bad_certificate
        r = curl(peer, pki, tutorial, "alice")
        assert r.returncode != 0 and "alert bad certificate" in r.stderr, r.stderr
        log = wait_for_output(peer, "OpenSSL would accept it", count=2)
    assert "certificate 'CN=alice' is an X.509 version 1 certificate" in log, log
    assert "OpenSSL would accept it: --verify-profile openssl" in log, log


# -- chains beyond the tutorial: the verdict openssl verify gives ----------------------------


def openssl_verifies(tutorial: Tutorial, cafile: str, leaf: str, *untrusted: str) -> bool:
    extra = [a for u in untrusted for a in ("-untrusted", u)]
    r = subprocess.run(["openssl", "verify", "-CAfile", cafile, *extra, leaf], cwd=tutorial.dir,
                       capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    return r.returncode == 0


def tessera_verifies(tutorial: Tutorial, cafile: str, leaf: str, *sent: str,
                     profile: VerifyProfile = VerifyProfile.OPENSSL) -> bool:  # fmt: skip
    chain = [x509.load_pem_x509_certificate((tutorial.dir / f).read_bytes())
             for f in (leaf, *sent)]  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    try:
        verify_client_chain(chain, trust_store(tutorial.dir / cafile), now, profile=profile)
    except BadCertificate:
        return False
    return True


@pytest.fixture(scope="module")
def chains(tutorial: Tutorial) -> Tutorial:
    ca_ext = tutorial.dir / "ca.ext"
    ca_ext.write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n")
    tutorial.signed("Intermediate CA", "Tutorial CA", "365", "-extfile", str(ca_ext))
    tutorial.signed("bob", "Intermediate CA")  # version 1, under a version 3 intermediate
    tutorial.signed("V1 Intermediate", "Tutorial CA")  # a version 1 "CA": never one
    tutorial.signed("carol", "V1 Intermediate")
    tutorial.self_signed_v1("V1 Root")  # a version 1 trust anchor: a CA, as in OpenSSL
    tutorial.signed("dave", "V1 Root")
    impostor = Tutorial(tutorial.dir / "impostor")
    impostor.dir.mkdir()
    impostor.ca("Tutorial CA")  # the name matches the trusted CA's, the key does not
    for made in (impostor.signed("eve", "Tutorial CA"), impostor.key("eve")):
        made.rename(tutorial.dir / made.name)
    return tutorial


@pytest.mark.parametrize(
    ("cafile", "chain", "accepted"),
    [
        ("Tutorial CA.crt", ["alice.crt"], True),
        ("Tutorial CA.crt", ["bob.crt", "Intermediate CA.crt"], True),
        ("Tutorial CA.crt", ["bob.crt"], False),  # the intermediate not sent
        ("Tutorial CA.crt", ["carol.crt", "V1 Intermediate.crt"], False),
        ("V1 Root.crt", ["dave.crt"], True),
        ("V1 Intermediate.crt", ["carol.crt"], False),  # an anchor, but not self-signed
        ("Tutorial CA.crt", ["eve.crt"], False),
        ("Other CA.crt", ["alice.crt"], False),
    ],
)  # fmt: skip
def test_the_verdict_is_openssl_s(chains: Tutorial, cafile: str, chain: list[str],
                                  accepted: bool) -> None:  # fmt: skip
    assert openssl_verifies(chains, cafile, *chain) is accepted
    assert tessera_verifies(chains, cafile, *chain) is accepted
    assert not tessera_verifies(chains, cafile, *chain, profile=VerifyProfile.WEBPKI)

"""Loading trust stores: the system bundle without CryptographyDeprecationWarning (roots with
serial number 0 are kept, silently), a bundle whose certificates this cryptography cannot load
is used without them, and a CA file that is not one fails at once with a clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from openssl_pki import chain_file, req_signed, req_x509
from tessera.crypto.x509 import load_pem_certificates, system_bundle_path
from tessera.errors import ConfigError

# Run in a child process so that every warning is an error and nothing is cached.
CHECK = """
import datetime, sys
from cryptography import x509
from tessera.crypto.x509 import VerifyProfile, system_trust_store, verify_server_chain
store = system_trust_store()
if len(sys.argv) > 1:
    leaf = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
    verify_server_chain([leaf], "localhost", store, datetime.datetime.now(datetime.UTC),
                        profile=VerifyProfile.OPENSSL)
print("ok")
"""


def run_check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-W", "error", "-c", CHECK, *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
        check=False,
    )  # fmt: skip


def test_system_bundle_loads_without_warnings() -> None:
    assert Path(system_bundle_path()).is_file()
    proc = run_check()
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
    assert "Warning" not in proc.stderr


def test_serial_zero_root_is_used_without_a_warning(tmp_path: Path) -> None:
    root = req_x509(tmp_path, "root0", "/CN=Serial Zero Root", addext=())
    # openssl req -x509 -set_serial 0: re-make the root with serial number 0
    from openssl_pki import openssl

    openssl("req", "-x509", "-key", "root0.key", "-out", "root0.pem", "-days", "30",
            "-subj", "/CN=Serial Zero Root", "-set_serial", "0", cwd=tmp_path)  # fmt: skip
    leaf = req_signed(tmp_path, "leaf", "/CN=localhost", root,
                      extfile="subjectAltName=DNS:localhost\n")  # fmt: skip
    other = req_x509(tmp_path, "other", "/CN=Other Root")
    bundle = chain_file(tmp_path, "bundle", other, root)
    proc = run_check(str(leaf.cert), env={"SSL_CERT_FILE": str(bundle)})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_unloadable_certificates_are_skipped_in_a_system_bundle(tmp_path: Path) -> None:
    good = req_x509(tmp_path, "good", "/CN=Good Root")
    broken = b"-----BEGIN CERTIFICATE-----\nTUlJQm9ndXM=\n-----END CERTIFICATE-----\n"
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(broken + good.pem())
    assert len(load_pem_certificates(bundle, skip_unreadable=True)) == 1
    with pytest.raises(ConfigError, match="certificate #1 does not load"):
        load_pem_certificates(bundle)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "contains no PEM certificate"),
        (b"-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n", "holds a private key"),
    ],
)
def test_not_a_certificate_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.pem"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        load_pem_certificates(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the certificate file"):
        load_pem_certificates(tmp_path / "nope.pem")

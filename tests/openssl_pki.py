"""Certificates made the way people make them: with the ``openssl req`` and ``openssl x509``
commands (OpenSSL 3.0's default configuration), in a temporary directory.

- ``openssl req -x509`` makes a self-signed certificate with basicConstraints ``CA:TRUE``
  (critical), subject and authority key identifiers, and no keyUsage: the usual "dev CA" and
  the usual self-signed "dev server certificate" alike.
- ``openssl x509 -req -CA ...`` signs a request; without ``-extfile`` the result is an X.509
  version 1 certificate with no extensions at all.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from conftest import require_program

EC = "ec -pkeyopt ec_paramgen_curve:P-256"


@dataclass(frozen=True)
class Made:
    cert: Path
    key: Path

    def pem(self) -> bytes:
        return self.cert.read_bytes()

    def der(self) -> bytes:
        return openssl_bytes("x509", "-in", str(self.cert), "-outform", "DER")


def openssl(*args: str, cwd: Path | None = None) -> str:
    require_program("openssl")
    proc = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def openssl_bytes(*args: str) -> bytes:
    proc = subprocess.run(["openssl", *args], capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{proc.stderr.decode()}")
    return proc.stdout


def _newkey(key: str) -> list[str]:
    return ["-newkey", *key.split()]


def req_x509(d: Path, name: str, subj: str, *, key: str = "rsa:2048",
             addext: tuple[str, ...] = (), days: int = 30) -> Made:  # fmt: skip
    """``openssl req -x509 -newkey KEY -nodes -keyout NAME.key -out NAME.pem -subj SUBJ``."""
    extra = [a for e in addext for a in ("-addext", e)]
    openssl("req", "-x509", *_newkey(key), "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.pem", "-days", str(days), "-subj", subj, *extra, cwd=d)  # fmt: skip
    return Made(d / f"{name}.pem", d / f"{name}.key")


def req_signed(d: Path, name: str, subj: str, ca: Made, *, key: str = EC,
               extfile: str | None = None, days: int = 30) -> Made:  # fmt: skip
    """``openssl req -new`` then ``openssl x509 -req -CA ... [-extfile NAME.ext]``."""
    openssl("req", "-new", *_newkey(key), "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", subj, cwd=d)  # fmt: skip
    ext: list[str] = []
    if extfile is not None:
        (d / f"{name}.ext").write_text(extfile)
        ext = ["-extfile", f"{name}.ext"]
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", str(ca.cert), "-CAkey", str(ca.key),
            "-CAcreateserial", "-days", str(days), "-out", f"{name}.pem", *ext, cwd=d)  # fmt: skip
    return Made(d / f"{name}.pem", d / f"{name}.key")


def chain_file(d: Path, name: str, *parts: Made) -> Path:
    """A PEM file holding the certificates of ``parts`` in order (leaf first)."""
    path = d / f"{name}.pem"
    path.write_bytes(b"".join(p.pem() for p in parts))
    return path

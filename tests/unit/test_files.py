"""Files a server is given are read with a size cap: ``--cert /dev/zero`` is refused with a
clear error instead of growing the process to GiBs (certificates, keys, CA and ticket key
files alike)."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from tessera.certs import CertifiedKey, generate_self_signed
from tessera.crypto.x509 import load_pem_certificates
from tessera.errors import ConfigError
from tessera.files import MAX_PEM_FILE, read_bounded
from tessera.session.keyring import KeyFileFormat, read_key_file


def test_read_bounded(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * 10)
    assert read_bounded(f, "certificate file", 10) == b"x" * 10
    with pytest.raises(ConfigError, match="larger than 0 KiB; is it the right file"):
        read_bounded(f, "certificate file", 9)
    with pytest.raises(ConfigError, match="cannot read the private key file"):
        read_bounded(tmp_path / "missing", "private key file")


def test_dev_zero_is_refused_quickly_and_small(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_bytes(generate_self_signed("ec").to_pem()[0])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    for load in (
        lambda: CertifiedKey.load("/dev/zero"),
        lambda: CertifiedKey.load(cert, "/dev/zero"),
        lambda: load_pem_certificates("/dev/zero"),
        lambda: read_key_file("/dev/zero", KeyFileFormat.NATIVE, 0.0),
    ):
        with pytest.raises(ConfigError, match=r"/dev/zero: the .* is larger than"):
            load()
    assert time.monotonic() - t0 < 10
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * MAX_PEM_FILE // 1024  # not GiBs

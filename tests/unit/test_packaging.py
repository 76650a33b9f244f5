"""Packaging metadata (issue 14.10): the licence is declared as an SPDX expression and shipped,
the project says what it is, and the cryptography range includes the version tested."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def project() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def test_license_is_spdx_and_shipped() -> None:
    meta = project()
    assert meta["license"] == "Apache-2.0"
    assert meta["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith(
        "Apache License\n                           Version 2.0, January 2004"
    )
    assert "END OF TERMS AND CONDITIONS" in text


def test_classifiers_and_keywords() -> None:
    meta = project()
    assert "Typing :: Typed" in meta["classifiers"]
    assert "Topic :: Security :: Cryptography" in meta["classifiers"]
    assert not any(c.startswith("License ::") for c in meta["classifiers"])  # PEP 639
    assert "tls" in meta["keywords"] and "session resumption" in meta["keywords"]


def test_cryptography_range_includes_the_tested_version() -> None:
    from packaging.requirements import Requirement

    (req,) = [Requirement(d) for d in project()["dependencies"] if d.startswith("cryptography")]
    assert req.specifier.contains(version("cryptography")), (req, version("cryptography"))
    assert any(s.operator == "<" for s in req.specifier), (
        "an upper bound: the verifier API is unstable"
    )

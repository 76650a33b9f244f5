"""tessera serve --client-cert-path: reading the request line, the prefixes, the body length."""

from __future__ import annotations

import pytest

from tessera.cli import secure_path
from tessera.cli.secure_path import _content_length, protected_prefix, request_target


def test_request_target() -> None:
    assert request_target(b"GET /secure/x HTTP/1.1\r\nHost: a\r\n") == ("GET", "/secure/x")
    assert request_target(b"\r\n") == ("", "")


@pytest.mark.parametrize(
    ("path", "prefix"),
    [("/secure", "/secure"), ("/secure/", "/secure"), ("/secure/a?b", "/secure"),
     ("/secured", None), ("/", None), ("/admin/x", "/admin/")],
)  # fmt: skip
def test_prefixes_match_whole_segments(path: str, prefix: str | None) -> None:
    assert protected_prefix(path, ("/secure", "/admin/")) == prefix


def test_content_length() -> None:
    assert _content_length(b"POST / HTTP/1.1\r\nContent-Length: 12\r\n") == 12
    assert _content_length(b"GET / HTTP/1.1\r\nHost: x\r\n") == 0
    assert _content_length(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n") is None


def test_the_buffer_is_apaches_default() -> None:
    assert secure_path.MAX_BUFFERED_BODY == 131072

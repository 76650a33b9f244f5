"""The resumption decision, seen from a real peer: OpenSSL's client offers a session that one
``tessera serve`` issued to another one, and the second one's status page says why it did a
full handshake; the same session offered back to its own server resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
from resumption_helpers import parse_status_page, s_client, s_client_page, tessera_www

from conftest import Pki, free_port

pytestmark = pytest.mark.interop


def test_status_page_names_the_fallback_reason(pki: Pki, tmp_path: Path) -> None:
    sess = tmp_path / "sess.pem"
    a, b = free_port(), free_port()
    with tessera_www(a, tmp_path, pki), tessera_www(b, tmp_path, pki):
        s_client(a, "-no_ticket", "-sess_out", str(sess))
        out, outcome = s_client_page(b, "-no_ticket", "-sess_in", str(sess))
        assert outcome == "New"
        page = parse_status_page(out)
        assert page.fields["Resumption"] == (
            "full handshake; session_id not resumed (unknown session id)"
        )
        assert page.reason("unknown session id") == 1 and page.stats["misses"] == 1
        out, outcome = s_client_page(a, "-no_ticket", "-sess_in", str(sess))
        assert outcome == "Reused"
        assert parse_status_page(out).fields["Resumption"] == "resumed by session_id"

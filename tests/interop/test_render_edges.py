"""The one renderer of a connection, seen through real processes: for a resumed TLS 1.2
connection to ``tessera serve --www``, the server's status page, its log line, ``tessera
connect``'s summary and ``tessera connect --json`` name the same values the same way."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from resumption_helpers import (
    GET,
    parse_status_page,
    server_outcomes,
    tessera_connect,
    tessera_www,
)

from conftest import Pki

pytestmark = pytest.mark.interop

LOG_LINE = re.compile(r"(New|Reused), (TLSv1\.[23]), Cipher is (\S+)(?: \((.*)\))?\s*$", re.M)
SUMMARY_LINE = re.compile(r"^([A-Z][A-Za-z -]+): (.*)$", re.M)


def summary_of(output: str) -> dict[str, str]:
    """``tessera connect``'s ``Field: value`` lines (printed before the relayed page)."""
    return dict(SUMMARY_LINE.findall(output.split("\nHTTP/1.0 ", 1)[0]))


@pytest.mark.parametrize("no_ticket", [False, True], ids=["ticket", "session_id"])
def test_page_log_summary_and_json_agree(
    pki: Pki, tmp_path: Path, port: int, no_ticket: bool
) -> None:
    by = "session_id" if no_ticket else "ticket"
    sess = tmp_path / "session.pem"
    extra = ["--no-ticket"] if no_ticket else []
    with tessera_www(port, tmp_path, pki) as server:
        rc, first = tessera_connect(port, pki, "--sess-out", str(sess), *extra)
        assert rc == 0, first
        rc, resumed = tessera_connect(port, pki, "--sess-in", str(sess), *extra, input=GET)
        assert rc == 0, resumed
        rc, as_json = tessera_connect(port, pki, "--sess-in", str(sess), "--json", *extra)
        assert rc == 0, as_json
        assert server_outcomes(server, 3) == ["New", "Reused", "Reused"], server.output()
        log = LOG_LINE.findall(server.output())
    page = parse_status_page(resumed).fields
    summary = summary_of(resumed)
    (record,) = [json.loads(line) for line in as_json.splitlines() if line.startswith("{")]
    # The resumed connection that fetched the page: the page, the summary, the log line.
    assert page["Protocol"] == summary["Protocol"] == record["protocol"] == "TLSv1.2"
    assert summary["Cipher"] == f"{page['Cipher']} ({record['cipher_iana']})", resumed
    assert record["cipher"] == page["Cipher"]
    assert page["Resumed"] == f"yes, by {by}" and summary["Resumed by"] == by, resumed
    assert record["resumed"] is True and record["resumed_by"] == by
    assert page["Session-ID"] == summary["Session-ID"], resumed
    ems = page["Extended master secret"]
    assert ems == summary["Extended master secret"] == "yes" and record["extended_master_secret"]
    assert page["Group"] == (record["group"] or "(none)")
    assert ("Group" in summary) == (record["group"] is not None), resumed
    assert page["Early data"] == "no" and record["early_data"] is None
    assert page["Resumption"] == f"resumed by {by}"
    assert log[1] == ("Reused", "TLSv1.2", page["Cipher"], f"resumed by {by}"), log
    assert log[2] == log[1], log  # the --json connection

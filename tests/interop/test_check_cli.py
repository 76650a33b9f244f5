"""``tessera check`` as a command: exit codes 0/1/2/3/130, piped output at 80 columns (plain
ASCII, every heading whole, nothing cut), many services from ``--targets FILE`` audited at once
(text, CSV and JSON), and Ctrl-C during ``--watch`` printing what was gathered.

The servers: openssl s_server (default: resumes; ``-no_ticket -no_cache``: does not), two nginx
with their own ticket keys (a cross-backend matrix with failures and remedies), and tessera
serve (its per-connection lines tell when the census has begun).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from audit_helpers import check_cli, nginx, s_server, tessera_node
from peers import TESSERA, Peer
from resumption_helpers import outcomes, wait_for

from conftest import Pki, free_port, require_program
from tessera.audit.report import schema

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_program("openssl")
    return tmp_path_factory.mktemp("check-cli")


@pytest.fixture(scope="module")
def resuming(logs: Path, pki: Pki) -> Iterator[str]:
    with s_server(logs, pki) as server:
        yield f"127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def not_resuming(logs: Path, pki: Pki) -> Iterator[str]:
    with s_server(logs, pki, "-no_ticket", "-no_cache") as server:
        yield f"127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def nginx_pair(logs: Path, pki: Pki) -> Iterator[tuple[str, str]]:
    keys = []
    for name in ("a", "b"):
        key = logs / f"{name}.key"
        key.write_bytes(os.urandom(80))
        key.chmod(0o600)
        keys.append(key)
    with (
        nginx(logs, pki, f"ssl_session_ticket_key {keys[0]};") as a,
        nginx(logs, pki, f"ssl_session_ticket_key {keys[1]};") as b,
    ):
        yield f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"


def quick(*args: str) -> tuple[str, ...]:
    return (*args, "--attempts", "1", "--mechanisms", "id,ticket,psk")


def test_exit_codes(resuming: str, not_resuming: str) -> None:
    assert check_cli(*quick(resuming))[0] == 0
    rc, out = check_cli(*quick(not_resuming))
    assert rc == 1 and f"✗ {not_resuming} resumes" in out, out
    nobody = f"127.0.0.1:{free_port()}"
    rc, out = check_cli(*quick(nobody))
    assert rc == 3 and out.count("Connection refused") == 1, out
    # A reachable target and an unreachable backend: audited, and still exit 3.
    rc, out = check_cli(*quick(resuming), "--backends", nobody)
    assert rc == 3 and f"{resuming} (target" in out and out.count("Connection refused") == 1, out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--expect", "id", "--mechanisms", "psk"), "--expect id needs --mechanisms to include id"),
        (("--expect", "none,id"), "--expect none cannot be combined"),
        (("--mechanisms", "any"), "unknown mechanism any"),
        (("--expect", "tickets"), "unknown mechanism tickets"),
        (("--json", "--csv"), "choose one"),
        (("--metrics", "127.0.0.1:0"), "add --every DURATION"),
        (("--every", "1m", "--watch", "1m"), "do not combine"),
        (("--interval", "5s"), "add --watch DURATION"),
        (("--watch", "soon"), "not a duration"),
        (("--server-type", "iis"), "'iis' is not one of"),
        ((), None),  # no target at all
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], says: str | None) -> None:
    argv = ("127.0.0.1:1", *args) if args else ()
    rc, out = check_cli(*argv)
    assert rc == 2, out
    assert (says or "at least one TARGET") in out, out


def test_bad_targets_file_exits_2(tmp_path: Path) -> None:
    f = tmp_path / "targets.txt"
    f.write_text("# services\n127.0.0.1:443 sni=a.example\n127.0.0.1:8443 weight=3\n")
    rc, out = check_cli("--targets", str(f))
    assert rc == 2 and "line 3" in out and "'weight=3'" in out, out


def ascii_tables(out: str) -> list[tuple[str, list[str]]]:
    """Each ASCII table of the output: (its title, its column headings, each whole)."""
    lines = out.splitlines()
    tables = []
    for i, line in enumerate(lines):
        after = lines[i + 1] if i + 1 < len(lines) else ""
        if not re.fullmatch(r"\+-+\+", line) or not after.startswith("| "):
            continue  # not a table's top border
        title = []
        j = i - 1
        while j >= 0 and lines[j] and not lines[j].startswith(("|", "+")) and len(title) < 3:
            title.insert(0, lines[j].strip())
            j -= 1
        header_rows = []
        k = i + 1
        while not lines[k].startswith("|-"):
            header_rows.append([cell.strip() for cell in lines[k].strip("|").split("|")])
            k += 1
        headings = [" ".join(filter(None, column)) for column in zip(*header_rows, strict=True)]
        tables.append((" ".join(title), headings))
    return tables


def test_piped_output_fits_80_columns_with_whole_headings(nginx_pair: tuple[str, str]) -> None:
    a, b = nginx_pair
    rc, out = check_cli("--backends", f"{a},{b}", "--sni", "localhost", "--attempts", "2",
                        "--mechanisms", "id,ticket,psk", env={"COLUMNS": "80"})  # fmt: skip
    assert rc == 1, out
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert "\x1b[" not in out and not re.search("[┏┃━│┡└]", out), out  # plain: no escapes, ASCII
    assert all(line == line.rstrip() for line in out.splitlines()), "trailing spaces"
    tables = ascii_tables(out)
    address = ["mechanism", "resumed", "lifetime", "ticket", "per conn.", "renews", "EMS"]
    timing = ["mechanism", "full RTT", "full ms", "resumed RTT", "resumed ms", "saved"]
    matrix = ["from \\ to", a, b]
    assert [h for _, h in tables] == [address, timing, address, timing, matrix, matrix, matrix]
    titles = [t for t, _ in tables]
    assert titles[0].startswith(f"{a} (backend, SNI localhost) — nginx/"), titles
    assert titles[4] == ("cross-backend matrix, TLS 1.2 session id: session from row, offered "
                         "to column")  # fmt: skip
    flat = " ".join(out.split())
    # Nothing cut: the reasons, the evidence and the remedy are there word for word.
    assert "ticket key unknown here" in flat
    assert ("fix: the same ssl_session_ticket_key files, in the same order, on every node; "
            "`tessera keys sync --to nginx:DIR` writes and rotates them") in flat  # fmt: skip


def test_targets_file_audits_services_at_once(tmp_path: Path, resuming: str, not_resuming: str,
                                              nginx_pair: tuple[str, str]) -> None:  # fmt: skip
    nobody = f"127.0.0.1:{free_port()}"
    a, b = nginx_pair
    f = tmp_path / "targets.txt"
    f.write_text(
        f"# one service a line\n{resuming} name=web\n{not_resuming}   # cache and tickets off\n"
        f"{nobody} name=gone\n{a} sni=localhost backends={a},{b} name=fleet server-type=nginx\n"
    )
    args = ("--targets", str(f), "--concurrency", "3", "--attempts", "1",
            "--mechanisms", "ticket,psk")  # fmt: skip
    rc, out = check_cli(*args, "--csv")
    assert rc == 3, out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["service"] for r in rows} == {"web", not_resuming, "gone", "fleet"}
    (gone,) = [r for r in rows if r["service"] == "gone"]
    assert gone["verdict"] == "unreachable" and "Connection refused" in gone["evidence"]
    psk = next(r for r in rows if r["service"] == not_resuming and r["mechanism"] == "psk")
    assert psk["reason"] == "stateful_ticket_unknown" and psk["verdict"] == "does not resume"
    cross = [r for r in rows if r["row"] == "cross" and r["from"] != r["to"]]
    assert len(cross) == 4 and all(r["check"] == "failed" for r in cross), cross
    assert all("ssl_session_ticket_key" in r["remedy"] for r in cross)
    rc, out = check_cli(*args, "--json")
    assert rc == 3
    doc = json.loads(out[out.find("{") :])
    jsonschema.validate(doc, schema())
    assert [s["service"] for s in doc["services"]] == ["web", not_resuming, "gone", "fleet"]
    assert [s["exit_code"] for s in doc["services"]] == [0, 1, 3, 1]
    rc, out = check_cli(*args)
    assert rc == 3
    summary = out[out.rindex("services") :]
    for service, result in (("web", "ok"), (not_resuming, "failed"), ("gone", "unreachable"),
                            ("fleet", "failed")):  # fmt: skip
        assert re.search(rf"\| {re.escape(service)}\s+\| {result}\s", summary), summary


def test_ctrl_c_during_watch_prints_what_was_gathered(logs: Path, pki: Pki) -> None:
    with tessera_node(logs, pki) as node:
        argv = [*TESSERA, "check", f"127.0.0.1:{node.port}", "--sni", "localhost",
                "--mechanisms", "psk", "--attempts", "1", "--watch", "10m",
                "--interval", "0.3s"]  # fmt: skip
        env = {**os.environ, "COLUMNS": "100"}
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        try:
            # First contact, a full handshake and a resumption, then census rounds (New each).
            wait_for(lambda: len(outcomes(node.output())) >= 6, timeout=60,
                     what="three census rounds")  # fmt: skip
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    text = out.decode()
    assert proc.returncode == 130, text
    assert text.startswith("interrupted: what the audit had gathered"), text
    assert re.search(r"\| TLS 1\.3 PSK \(psk_dhe_ke\)\s+\| 1/1 ", text), text
    census = re.search(r"ticket key census: (\d+) rounds over 600 s", text)
    assert census and int(census[1]) >= 2, text
    assert "Traceback" not in text


def test_every_with_csv_writes_one_header_then_rows(logs: Path, resuming: str) -> None:
    """--every --csv: a header once, then each round's rows; SIGTERM ends it with status 0."""
    argv = [*TESSERA, "check", resuming, "--every", "0.2s", "--csv", "--attempts", "1",
            "--mechanisms", "ticket"]  # fmt: skip
    with Peer(argv, log_dir=logs, name="check-every-csv") as watcher:
        wait_for(lambda: watcher.output().count(f",{resuming},address,") >= 3, timeout=60,
                 what="three rounds of rows")  # fmt: skip
        watcher.proc.terminate()
        assert watcher.proc.wait(15) == 0, watcher.output()
        out = watcher.output()
    rows = list(csv.DictReader(io.StringIO(out)))
    assert out.count("started,service,row,") == 1, out
    assert len(rows) >= 3 and {r["verdict"] for r in rows} == {"resumes"}, rows
    assert all(r["service"] == resuming and r["mechanism"] == "ticket" for r in rows), rows


def test_ctrl_c_in_continuous_mode_prints_the_last_round(logs: Path, resuming: str) -> None:
    """--every: Ctrl-C ends the watcher at once with status 130, printing the last finished
    round's report (not a traceback, not nothing)."""
    argv = [*TESSERA, "check", resuming, "--every", "0.2s", "--attempts", "1",
            "--mechanisms", "ticket"]  # fmt: skip
    env = {**os.environ, "COLUMNS": "100"}
    with Peer(argv, log_dir=logs, name="check-every-int", env=env) as watcher:
        wait_for(lambda: watcher.output().count(f"{resuming} ok:") >= 2, timeout=60,
                 what="two rounds")  # fmt: skip
        watcher.proc.send_signal(signal.SIGINT)
        assert watcher.proc.wait(15) == 130, watcher.output()
        out = watcher.output()
    assert "Traceback" not in out, out
    tail = out[out.rindex(f"{resuming} ok:") :]
    assert "TLS 1.2" in tail and "ticket" in tail, out  # the round's table
    assert "check(s) passed" in tail, out

"""``tessera keys sync`` as a process: usage errors in the user's words, ``--once`` without
Redis, a failing ``--exec`` logged and retried, SIGHUP, SIGTERM, and ``--metrics`` scraped."""

from __future__ import annotations

import re
import signal
import urllib.request
from pathlib import Path

import pytest
from peers import TESSERA, run, wait_for_output
from prometheus_client.parser import text_string_to_metric_families
from redis_server import RedisServer, free_port
from sync_fleet import agent, current_key, sync_once, wait_until

from tessera.session.keyring import KeyFileFormat, read_key_file

pytestmark = pytest.mark.interop


def sync(*args: str) -> tuple[int, str]:
    r = run([*TESSERA, "keys", "sync", *args], timeout=60, env={"COLUMNS": "200"})
    return r.returncode, r.stdout.decode(errors="replace")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "lighttpd:/tmp"], "Invalid value for --to: 'lighttpd:/tmp': expected "
                                    "FORMAT:PATH with FORMAT one of nginx, haproxy, node, apache"),
        (["--to", "nginx:/nonexistent/keys"], "no such directory /nonexistent/keys; create it"),
        (["--to", "nginx:/tmp", "--haproxy-socket", "/run/haproxy.sock"],
         "Invalid value for --haproxy-socket: goes with --to haproxy:FILE"),
        (["--to", "nginx:/tmp", "--metrics", "9100"], "--metrics takes HOST:PORT"),
    ],
)  # fmt: skip
def test_usage_errors(args: list[str], message: str, secret_file: Path) -> None:
    rc, out = sync("--redis", "redis://127.0.0.1:1", "--fleet-secret", str(secret_file), *args)
    assert rc == 2 and message in out, out
    assert "Traceback" not in out


def test_a_redis_url_without_a_scheme_is_a_usage_error(secret_file: Path, tmp_path: Path) -> None:
    rc, out = sync("--redis", "127.0.0.1:6379", "--fleet-secret", str(secret_file),
                   "--to", f"nginx:{tmp_path}", "--once")  # fmt: skip
    assert rc == 2 and "--redis" in out and "Traceback" not in out, out


def test_once_without_redis_writes_nothing(secret_file: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    port = free_port()
    rc, out = sync("--redis", f"redis://127.0.0.1:{port}", "--fleet-secret",
                   str(secret_file), "--to", f"nginx:{keys}", "--once")  # fmt: skip
    assert rc == 3, out  # Redis out of reach
    assert "cannot read the fleet's keys from Redis" in out and "nothing written" in out, out
    assert f"127.0.0.1:{port}" in out, out
    assert list(keys.iterdir()) == []


def test_once_fails_when_a_command_fails(redis_server: RedisServer, secret_file: Path,
                                          tmp_path: Path) -> None:  # fmt: skip
    rc, out = sync("--redis", redis_server.url, "--fleet-secret", str(secret_file),
                   "--key-refresh", "0.5", "--to", f"nginx:{tmp_path}", "--exec", "exit 7",
                   "--once")  # fmt: skip
    assert rc == 1 and "--exec 'exit 7' failed: exit status 7" in out, out
    assert len(list(tmp_path.glob("ticket.*.key"))) == 3  # the files were written


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, []).append((s.labels, s.value))
    return found


def test_running_agent_retries_commands_rewrites_on_sighup_and_exports_metrics(
    redis_server: RedisServer, secret_file: Path, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    flag, ran = tmp_path / "ok", tmp_path / "ran"
    command = f"test -e {flag} && echo ran >> {ran}"
    sync_once(redis_server.url, secret_file, "--to", f"nginx:{keys}")
    fleet_key = current_key(redis_server.url, secret_file)
    assert fleet_key is not None
    port = free_port()
    with agent(tmp_path, redis_server.url, secret_file, "--to", f"nginx:{keys}",
               "--exec", command, "--metrics", f"127.0.0.1:{port}") as sync_agent:  # fmt: skip
        wait_for_output(sync_agent, "(failure 2; retrying in 2 s)", timeout=20)
        limits = Path(f"/proc/{sync_agent.proc.pid}/limits").read_text()
        assert re.search(r"^Max core file size\s+0\s+0\s", limits, re.M), limits  # no core dumps
        metrics = scrape(port)
        target = f"nginx:{keys}"
        failures = dict(
            (lbl["action"], v) for lbl, v in metrics["tessera_keys_sync_failures_total"]
        )
        assert failures["exec"] >= 2 and failures["write"] == 0, metrics
        assert ({"action": "exec", "target": f"--exec {command!r}"}, 1.0) in metrics[
            "tessera_keys_sync_failing"]  # fmt: skip
        assert metrics["tessera_keys_sync_source_up"] == [({}, 1.0)]
        ((labels, age),) = metrics["tessera_keys_sync_key_age_seconds"]
        assert labels == {"target": target, "key": fleet_key.hex()[:8], "local": "0"}
        assert 0 <= age < 120
        assert ({"state": "encrypting"}, 1.0) in metrics["tessera_ticket_keys"]

        flag.touch()  # the command works now: the next retry runs it
        wait_until(ran.exists, "the command was not retried", logs=[sync_agent])
        wait_for_output(sync_agent, "works again after", timeout=20)
        wait_until(lambda: scrape(port)["tessera_keys_sync_last_success_timestamp_seconds"][0][1] > 0,
                   "no pass in step", logs=[sync_agent])  # fmt: skip

        (keys / "ticket.0.key").unlink()  # SIGHUP: every target rewritten, commands run again
        sync_agent.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: (keys / "ticket.0.key").exists() and ran.read_text().count("ran") == 2,
                   "SIGHUP did not rewrite and run again", logs=[sync_agent])  # fmt: skip
        assert read_key_file(keys / "ticket.0.key", KeyFileFormat.NGINX, 0)[0].name == fleet_key

        sync_agent.proc.send_signal(signal.SIGTERM)
        assert sync_agent.proc.wait(20) == 0
        out = sync_agent.output()
    assert out.rstrip().endswith("INFO stopped"), out
    assert "Traceback" not in out

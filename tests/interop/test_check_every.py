"""Continuous mode and the monitoring files that go with it.

``tessera check --every 1s --metrics HOST:PORT --backends A,B`` against two nginx sharing one
ticket key file, scraped and parsed with prometheus-client's own text parser: every gauge is
there with its labels; when backend B is stopped, ``tessera_check_up`` drops to 0 and B's
resumption ratios to 0; when B is started again on the same port they come back to 1. SIGTERM
ends the watcher cleanly.

``monitoring/prometheus/tessera-check-rules.yml`` is checked and unit-tested by promtool
(``promtool check rules``, ``promtool test rules``); every metric it and the Grafana dashboard
(``monitoring/grafana/tessera-check-dashboard.json``) query is one the watcher serves, and
every dashboard query parses as PromQL (promtool checks it as a recording rule).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from audit_helpers import WIDE, nginx
from peers import TESSERA, Peer
from prometheus_client.parser import text_string_to_metric_families
from resumption_helpers import wait_for

from conftest import Pki, free_port

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "prometheus" / "tessera-check-rules.yml"
RULE_TESTS = ROOT / "monitoring" / "prometheus" / "tessera-check-rules.test.yml"
DASHBOARD = ROOT / "monitoring" / "grafana" / "tessera-check-dashboard.json"
METRIC = re.compile(r"\btessera_check_[a-z_]+\b")
# Samples: (metric name, labels as a sorted tuple) -> value.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed; .ci/run must install it (from Debian's prometheus)")
    return path


def scrape(port: int) -> tuple[set[str], Samples]:
    """The metric families the watcher serves, and its samples, via prometheus-client's parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    families = list(text_string_to_metric_families(text))
    names = {f.name for f in families if f.name.startswith("tessera_check_")}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families
               for s in f.samples}  # fmt: skip
    return names, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("check-every")
    key = d / "shared.key"
    key.write_bytes(os.urandom(80))
    key.chmod(0o600)
    return d


def shared(logs: Path) -> str:
    return f"ssl_session_ticket_key {logs / 'shared.key'};"


@pytest.fixture(scope="module")
def served_names(logs: Path, pki: Pki) -> Iterator[set[str]]:
    """The names the watcher serves, filled by the continuous-mode test (which runs first)."""
    names: set[str] = set()
    yield names


def test_gauges_follow_a_backend_stopped_and_started(logs: Path, pki: Pki,
                                                     served_names: set[str]) -> None:  # fmt: skip
    with nginx(logs, pki, shared(logs)) as a:
        b = nginx(logs, pki, shared(logs))
        la, lb = f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"
        target = f"{la},{lb}"
        metrics = free_port()
        argv = [*TESSERA, "check", "--backends", target, "--sni", "localhost",
                "--attempts", "1", "--mechanisms", "ticket,psk", "--every", "1s",
                "--metrics", f"127.0.0.1:{metrics}"]  # fmt: skip
        try:
            with Peer(argv, port=metrics, log_dir=logs, name="check-every", env=WIDE) as watcher:
                latest: list[Samples] = [{}]

                def gauges(up: float, ratio_b: float) -> bool:
                    names, samples = scrape(metrics)
                    latest[0] = samples
                    served_names.update(names)
                    return (
                        value(samples, "tessera_check_up", target=target) == up
                        and value(
                            samples,
                            "tessera_check_resumption_ratio",
                            target=target,
                            backend=lb,
                            mechanism="ticket",
                        )
                        == ratio_b
                    )

                wait_for(lambda: gauges(1.0, 1.0), timeout=60, what="both backends up")
                s = latest[0]
                for m in ("ticket", "psk"):
                    assert value(s, "tessera_check_cross_backend_ratio", target=target,
                                 mechanism=m) == 1.0, s  # fmt: skip
                    for backend in (la, lb):
                        assert value(s, "tessera_check_resumption_ratio", target=target,
                                     backend=backend, mechanism=m) == 1.0, s  # fmt: skip
                assert value(s, "tessera_check_failed_checks", target=target) == 0.0
                age = value(s, "tessera_check_ticket_key_age_seconds", target=target)
                assert age is not None and 0 <= age < 120, s
                assert value(s, "tessera_check_interval_seconds") == 1.0
                first_run = value(s, "tessera_check_last_run_timestamp_seconds")
                assert first_run is not None

                b.stop()
                wait_for(lambda: gauges(0.0, 0.0), timeout=60, what="backend B down")
                s = latest[0]
                assert value(s, "tessera_check_resumption_ratio", target=target, backend=la,
                             mechanism="ticket") == 1.0, s  # fmt: skip
                assert (value(s, "tessera_check_last_run_timestamp_seconds") or 0) > first_run

                b = nginx(logs, pki, shared(logs), port=b.port)  # the same port again
                wait_for(lambda: gauges(1.0, 1.0), timeout=60, what="backend B back")
                assert value(latest[0], "tessera_check_cross_backend_ratio", target=target,
                             mechanism="ticket") == 1.0  # fmt: skip
                watcher.proc.terminate()  # SIGTERM: a clean stop
                assert watcher.proc.wait(15) == 0, watcher.output()
                out = watcher.output()
        finally:
            b.stop()
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if target in line]
    assert any(" ok: resumes by ticket, psk; across backends ticket 2/2, psk 2/2" in line
               for line in lines), out  # fmt: skip
    assert any(" unreachable: cannot connect to " + lb in line for line in lines), out


def test_rule_file_passes_promtool() -> None:
    tool = promtool()
    checked = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout, checked.stdout
    tested = subprocess.run([tool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    variables = [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return queries + variables


def test_monitoring_queries_use_served_metrics(served_names: set[str]) -> None:
    """Every metric named by an alert rule or a dashboard query is one the watcher served (in
    the scrapes of the test above, which ran first in this module)."""
    assert served_names, "the continuous-mode test did not scrape anything"
    rules = yaml.safe_load(RULES.read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {m for e in [*exprs, *dashboard_queries()] for m in METRIC.findall(e)}
    assert used, "no tessera_check_ metric in the monitoring files"
    assert used <= served_names, used - served_names
    # And the other way: every gauge the watcher serves is on the dashboard.
    dashboard = {m for q in dashboard_queries() for m in METRIC.findall(q)}
    assert served_names <= dashboard, served_names - dashboard


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    """Each dashboard query (template variables replaced) checked by promtool as a recording
    rule: a syntax error fails it."""
    tool = promtool()
    queries = [q for q in dashboard_queries() if not q.startswith("label_values(")]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": q.replace("$target", ".*").replace(
            "$mechanism", ".*")} for i, q in enumerate(queries)]}]}  # fmt: skip
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = subprocess.run([tool, "check", "rules", str(path)], capture_output=True,
                             text=True, timeout=60, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(queries)} rules found" in checked.stdout, checked.stdout
    dash = json.loads(DASHBOARD.read_text())
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "target", "mechanism"}

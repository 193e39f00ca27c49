"""The deployment files: systemd units, Prometheus rules, the Grafana dashboard.

The external tools are real: systemd-analyze (Debian package ``systemd``) and
promtool (Debian package ``prometheus``). Each such test skips, saying which
package to install, when its tool is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from vipexsync.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SYSTEMD = DEPLOY / "systemd"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "vipexsync.json"
SERVICES = ("vipexsync.service", "vipexsync-full-resync.service")
UNITS = (*SERVICES, "vipexsync-full-resync.timer")
MISSING_BINARY = re.compile(
    r"^\S+\.service: Command /opt/vipexsync/bin/vipexsync is not executable: "
    r"No such file or directory$"
)


def tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (Debian package: {package})")
    return found


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


# -- systemd -------------------------------------------------------------------


@pytest.mark.parametrize("unit", SERVICES)
def test_unit_exposure_at_most_2(unit: str) -> None:
    analyze = tool("systemd-analyze", "systemd")
    done = run([analyze, "security", "--offline=true", "--no-pager", str(SYSTEMD / unit)])
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= 2.0, done.stdout


@pytest.mark.parametrize("unit", UNITS)
def test_unit_verifies(unit: str) -> None:
    analyze = tool("systemd-analyze", "systemd")
    done = run([analyze, "verify", str(SYSTEMD / unit)], cwd=SYSTEMD)
    complaints = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and not MISSING_BINARY.match(line.strip())
    ]
    assert complaints == [], "\n".join(complaints)


def unit_settings(unit: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file (comments dropped), keys may repeat."""
    settings: dict[str, list[str]] = {}
    for raw in (SYSTEMD / unit).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key, []).append(value)
    return settings


def test_oneshot_has_the_daemons_sandbox() -> None:
    daemon, oneshot = unit_settings(SERVICES[0]), unit_settings(SERVICES[1])
    lifecycle = {
        "Description",
        "Type",
        "ExecStart",
        "WatchdogSec",
        "Restart",
        "RestartSec",
        "RestartPreventExitStatus",
        "TimeoutStartSec",
        "StartLimitIntervalSec",
        "StartLimitBurst",
        "WantedBy",  # the oneshot is started by its timer, never enabled itself
    }
    sandbox = {k: v for k, v in daemon.items() if k not in lifecycle}
    assert {k: oneshot.get(k) for k in sandbox} == sandbox
    assert oneshot["Type"] == ["oneshot"]
    assert oneshot["ExecStart"][0].endswith("--full-resync")
    assert daemon["Type"] == ["notify"]
    assert daemon["ExecStart"][0].endswith(" run")


def test_timer_starts_the_oneshot() -> None:
    timer = unit_settings("vipexsync-full-resync.timer")
    assert timer["Unit"] == ["vipexsync-full-resync.service"]
    assert timer["Persistent"] == ["true"]
    assert 'full_resync_cron = ""' in (SYSTEMD / "vipexsync-full-resync.timer").read_text()


# -- Prometheus ----------------------------------------------------------------


def test_promtool_check_rules() -> None:
    promtool = tool("promtool", "prometheus")
    done = run([promtool, "check", "rules", "vipexsync.rules.yml"], cwd=PROMETHEUS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_test_rules() -> None:
    promtool = tool("promtool", "prometheus")
    done = run([promtool, "test", "rules", "vipexsync.rules.test.yml"], cwd=PROMETHEUS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_test() -> None:
    rules = (PROMETHEUS / "vipexsync.rules.yml").read_text()
    raw = (PROMETHEUS / "vipexsync.rules.test.yml").read_text()
    tests = "\n".join(line for line in raw.splitlines() if not line.lstrip().startswith("#"))
    alerts = set(re.findall(r"^\s*- alert: (\w+)", rules, re.MULTILINE))
    assert alerts == {
        "VipexsyncStaleSuccess",
        "VipexsyncNeverSucceeded",
        "VipexsyncRunsFailing",
        "VipexsyncApiErrorRatio",
        "VipexsyncGuardTripped",
        "VipexsyncDown",
    }
    tested = re.findall(
        r"alertname: (\w+)\n\s*exp_alerts:(.*?)(?=\n\s*- eval_time|\n\s*- name|\Z)", tests, re.S
    )
    firing = {name for name, body in tested if "exp_labels" in body}
    quiet = {name for name, body in tested if body.strip() == "[]"}
    assert firing == alerts, "each alert needs a test where it fires"
    assert quiet == alerts, "each alert needs a test where it stays quiet"


# -- metric names used by the dashboard and the rules ----------------------------

PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}


def exported_names() -> set[str]:
    """Every family and sample name a fresh daemon exposes (incl. _bucket, _total...)."""
    metrics = Metrics(CollectorRegistry(), jobs=("crm",))
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a small, sufficient tokenizer)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # label lists
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in PROMQL_WORDS:
            continue
        names.add(name)
    return names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(container: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in container.get("panels", []):
        found.append(panel)
        found.extend(panels(panel))
    return found


def test_tokenizer_finds_names() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (action, le) (rate(x_bucket{a="b{c}"}[5m]))) '
        "/ on (job) group_left () y and z > 0"
    )
    assert metric_names(expr) == {"x_bucket", "y", "z"}


def test_dashboard_uses_a_datasource_variable() -> None:
    board = dashboard()
    assert "__inputs" not in board
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_queries_only_exported_metrics() -> None:
    allowed = exported_names() | {"up"}
    board = dashboard()
    used: set[str] = set()
    for panel in panels(board):
        for target in panel.get("targets", []):
            names = metric_names(target["expr"])
            assert names, f"no metric found in {panel['title']!r}: {target['expr']}"
            assert names <= allowed, f"{panel['title']!r} queries unknown {names - allowed}"
            used |= names
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            selector = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable["definition"])
            assert selector, variable["definition"]
            assert metric_names(selector.group(1)) <= allowed
    # The brief's panels: every CONTRACT family appears somewhere.
    for family in (
        "vipexsync_last_success_timestamp_seconds",
        "vipexsync_runs_total",
        "vipexsync_changes_total",
        "vipexsync_rejected_records",
        "vipexsync_entries",
        "vipexsync_drift_entries",
        "vipexsync_api_request_duration_seconds_bucket",
        "vipexsync_api_requests_total",
        "vipexsync_api_retries_total",
        "vipexsync_guard_tripped",
        "vipexsync_run_in_progress",
        "vipexsync_run_progress_ratio",
    ):
        assert family in used, family


def test_rules_query_only_exported_metrics() -> None:
    allowed = exported_names() | {"up"}
    text = (PROMETHEUS / "vipexsync.rules.yml").read_text()
    exprs = re.findall(r"expr: \|\n((?:\s{10}.*\n)+)|expr: (.+)", text)
    assert len(exprs) == 6
    for block, line in exprs:
        names = metric_names(block or line)
        assert names, block or line
        assert names <= allowed, names - allowed


def exported_labels() -> set[str]:
    """Every label name a daemon's samples carry (a rejection makes the `reason` series)."""
    metrics = Metrics(CollectorRegistry(), jobs=("crm",))
    metrics.rejected("crm", {"invalid_number": 1})
    return {
        label for family in metrics.registry.collect() for s in family.samples for label in s.labels
    }


def test_dashboard_groups_and_filters_by_labels_that_exist() -> None:
    """Per sync job means `sync_job`; `job` is the scrape job, one per daemon, never a split."""
    labels = exported_labels()
    assert "sync_job" in labels
    assert "job" not in labels  # Prometheus would rename it to exported_job
    allowed = labels | {"instance"}
    board = dashboard()
    for panel in panels(board):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for group in re.findall(r"\bby \(([^)]*)\)", expr):
                used = {g.strip() for g in group.split(",")}
                assert used <= allowed, f"{panel['title']!r} groups by unknown {used - allowed}"
            for name in re.findall(r"\{\{(\w+)\}\}", target.get("legendFormat", "")):
                assert name in allowed, f"{panel['title']!r} legend names unknown {name}"
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            label = re.fullmatch(r"label_values\(.*,\s*(\w+)\)", variable["definition"])
            assert label, variable["definition"]
            assert label.group(1) in allowed, variable["definition"]

"""The shipped alert rules in a real Prometheus server scraping a real daemon.

`prometheus` (Debian package ``prometheus``) runs on a free loopback port with
a temporary storage folder, scrapes `vipexsync run` every second and evaluates
a copy of ``deploy/prometheus/vipexsync.rules.yml`` every second. The copy is
the shipped file with time scaled down and nothing else changed: every
``for:`` becomes a few seconds and every range window ``[Nm]`` a few tens of
seconds, so an outage of half a minute shows what hours would in production.

Everything is observed through Prometheus's own HTTP API (/api/v1/targets,
/api/v1/query, /api/v1/alerts): the scrape target is up and keeps the scrape
job's ``job`` label beside the daemon's ``sync_job``; the counters move;
stopping the emulator makes the failure alerts go pending and fire; a guard
trip fires its alert; every alert resolves after recovery; a stopped daemon
fires VipexsyncDown. Waiting is polling with generous deadlines, never a
timing assertion.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from e2e.daemon_harness import Daemon, daemon_config, free_port, wait_for

from support import crm_row, serve_empty_vipex, write_crm
from vipexsync.emulator.server import RunningEmulator, serve_in_thread

pytestmark = pytest.mark.slow

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "vipexsync.rules.yml"
VIPEX_ID = "1643897"
SCRAPE_JOB = "vipexsync"
FOR_SECONDS = 3
WINDOW_SECONDS = 30
INTERVAL = 10  # the daemon's incremental interval (the configuration's minimum)
DEADLINE = 120.0  # a failure bound for each wait, not a speed target
FAILURE_ALERTS = {"VipexsyncRunsFailing", "VipexsyncStaleSuccess", "VipexsyncApiErrorRatio"}


def scaled_rules(text: str) -> str:
    """The shipped rules with ``for:`` and range windows shortened; nothing else differs."""
    text, fors = re.subn(r"^(\s+)for: \d+[smh]$", rf"\1for: {FOR_SECONDS}s", text, flags=re.M)
    text, windows = re.subn(r"\[\d+[mh]\]", f"[{WINDOW_SECONDS}s]", text)
    assert fors >= 4, "the shipped rules lost their for: clauses; update this test"
    assert windows >= 4, "the shipped rules lost their range windows; update this test"
    return text


def rows(n: int) -> list[dict[str, str]]:
    return [crm_row(i, f"+36 1 {6000000 + i}", f"Figyelt{i} Ferenc") for i in range(1, n + 1)]


@dataclass
class Prometheus:
    """A running `prometheus` and the few API calls the test needs."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        try:
            answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=5)
        except requests.RequestException:
            return None
        if answer.status_code != 200:
            return None
        body = answer.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        data = self.api("query", query=expr)
        if data is None:
            return []
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def value(self, expr: str) -> float | None:
        found = self.query(expr)
        assert len(found) <= 1, f"{expr} selects {len(found)} series: {found}"
        return found[0][1] if found else None

    def alerts(self) -> dict[str, list[dict[str, Any]]]:
        """Active (pending or firing) alerts by name."""
        data = self.api("alerts")
        found: dict[str, list[dict[str, Any]]] = {}
        for alert in data["alerts"] if data else []:
            found.setdefault(alert["labels"]["alertname"], []).append(alert)
        return found

    def firing(self) -> set[str]:
        return {n for n, each in self.alerts().items() if any(a["state"] == "firing" for a in each)}

    def was_pending(self, alertname: str) -> bool:
        """ALERTS is stored like any series: did this alert ever sit in pending?"""
        expr = f'max_over_time(ALERTS{{alertname="{alertname}",alertstate="pending"}}[10m])'
        return self.value(expr) == 1

    def text_log(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]


@pytest.fixture
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.skip("the prometheus server is not installed (Debian package: prometheus)")
    return found


def start_prometheus(binary: str, folder: Path, target_port: int) -> Prometheus:
    rules = folder / "vipexsync.rules.yml"
    rules.write_text(scaled_rules(RULES.read_text(encoding="utf-8")), encoding="utf-8")
    config = folder / "prometheus.yml"
    # JSON is YAML: no YAML library needed to write the configuration.
    config.write_text(
        json.dumps(
            {
                "global": {
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "evaluation_interval": "1s",
                },
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {
                        "job_name": SCRAPE_JOB,
                        "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    port = free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Prometheus(f"http://127.0.0.1:{port}", process, log)


def ready(server: Prometheus) -> bool:
    assert server.process.poll() is None, f"prometheus exited:\n{server.text_log()}"
    try:
        return requests.get(f"{server.url}/-/ready", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def vipex() -> Iterator[RunningEmulator]:
    with serve_empty_vipex(VIPEX_ID) as running:
        # A mapped custom field makes every run ask VIPeX for the field list, so
        # even a run with nothing to change fails while VIPeX is unreachable.
        running.state.add_custom_field(VIPEX_ID, 1, "Ügyfélkód", "text")
        yield running


def test_real_prometheus_scrapes_the_daemon_and_the_rules_fire_and_resolve(
    prometheus_binary: str, vipex: RunningEmulator, job_files: Any, tmp_path: Path
) -> None:
    metrics_port = free_port()
    config = job_files(
        vipex,
        rows(5),
        max_deletes=1,
        custom_fields='[jobs.mapping.custom_fields]\n"Ügyfélkód" = "{id}"',
    )
    config = daemon_config(config, port=metrics_port, interval=INTERVAL)
    folder = tmp_path / "prometheus"
    folder.mkdir()
    with ExitStack() as stack:
        daemon = Daemon(config, metrics_port)
        stack.callback(daemon.close)
        server = start_prometheus(prometheus_binary, folder, metrics_port)

        def stop_server() -> None:
            server.process.terminate()
            try:
                server.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=10)

        stack.callback(stop_server)
        wait_for(lambda: ready(server), "prometheus to be ready", DEADLINE)

        # 1. The target is up, under the scrape job's own `job` label.
        def target_up() -> dict[str, Any] | None:
            data = server.api("targets")
            targets = data["activeTargets"] if data else []
            return next((t for t in targets if t["health"] == "up"), None)

        target = wait_for(target_up, "the daemon's target to be up", DEADLINE)
        assert target["labels"]["job"] == SCRAPE_JOB
        assert target["scrapeUrl"] == f"http://127.0.0.1:{metrics_port}/metrics"

        # 2. The sync counters move, and the daemon's label arrives as sync_job.
        success = 'vipexsync_runs_total{sync_job="crm",mode="incremental",outcome="success"}'
        first = wait_for(lambda: server.value(success), "a successful run in Prometheus", DEADLINE)
        wait_for(lambda: (server.value(success) or 0) > first, "the success counter to move")
        created = 'vipexsync_changes_total{sync_job="crm",action="create",outcome="applied"}'
        assert server.value(created) == 5
        (labels, _), *_ = server.query(success)
        assert labels["job"] == SCRAPE_JOB
        assert "exported_job" not in labels
        assert server.query('{__name__=~".+_created"}') == []
        assert server.alerts() == {}

        # 3. VIPeX goes away: the failure alerts go pending, then fire.
        address = urlsplit(vipex.url)
        vipex.stop()
        wait_for(
            lambda: server.firing() >= FAILURE_ALERTS,
            f"{sorted(FAILURE_ALERTS)} to fire while VIPeX is down",
            DEADLINE,
        )
        assert server.was_pending("VipexsyncStaleSuccess")
        assert server.was_pending("VipexsyncApiErrorRatio")
        failing = server.alerts()["VipexsyncRunsFailing"][0]["labels"]
        assert (failing["sync_job"], failing["job"]) == ("crm", SCRAPE_JOB)
        assert "VipexsyncGuardTripped" not in server.alerts()

        # 4. VIPeX is back on the same address with the same phonebook: all quiet.
        back = stack.enter_context(
            serve_in_thread(
                vipex.state,
                host=str(address.hostname),
                port=int(address.port or 0),
                username=vipex.username,
                password=vipex.password,
                vipex_id=VIPEX_ID,
            )
        )
        assert back.url == vipex.url
        wait_for(lambda: not server.alerts(), "every alert to resolve after recovery", DEADLINE)

        # 5. The CRM export shrinks to one record: the guard withholds the 4 deletions.
        write_crm(config.parent / "crm.csv", rows(1))
        wait_for(
            lambda: "VipexsyncGuardTripped" in server.firing(),
            "VipexsyncGuardTripped to fire",
            DEADLINE,
        )
        guard = server.alerts()["VipexsyncGuardTripped"][0]
        assert guard["labels"]["sync_job"] == "crm"
        assert "--job crm --force-delete" in guard["annotations"]["description"]
        assert len(back.state.entries(VIPEX_ID)) == 5  # nothing deleted

        # 6. The export is whole again: the guard clears and everything is quiet.
        write_crm(config.parent / "crm.csv", rows(5))
        wait_for(lambda: not server.alerts(), "every alert to resolve after the guard", DEADLINE)
        assert server.value('vipexsync_guard_tripped{sync_job="crm"}') == 0

        # 7. The daemon stops: VipexsyncDown fires for its target.
        daemon.send(signal.SIGTERM)
        assert daemon.wait(60) == 0
        wait_for(lambda: "VipexsyncDown" in server.firing(), "VipexsyncDown to fire", DEADLINE)
        down = server.alerts()["VipexsyncDown"][0]["labels"]
        assert down["instance"] == f"127.0.0.1:{metrics_port}"
        assert server.process.poll() is None, server.text_log()

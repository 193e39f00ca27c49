"""The metrics endpoint over real HTTP on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from vipexsync.errors import ConfigError
from vipexsync.metrics import Metrics, MetricsServer, parse_listen, serve


class Probe:
    def __init__(self) -> None:
        self.ok = True
        self.reason = ""

    def __call__(self) -> tuple[bool, str]:
        return self.ok, self.reason


@pytest.fixture
def metrics() -> Metrics:
    m = Metrics(CollectorRegistry(), jobs=("crm",))
    m.run_finished("crm", "incremental", "success", duration=1.5, finished_at=1_700_000_000)
    m.request_finished("get_phonebook_list", "ok", 0.2)
    m.rejected("crm", {"invalid_number": 2})
    return m


@pytest.fixture
def probes() -> tuple[Probe, Probe]:
    return Probe(), Probe()


@pytest.fixture
def server(metrics: Metrics, probes: tuple[Probe, Probe]) -> Iterator[MetricsServer]:
    health, ready = probes
    running = serve(metrics, "127.0.0.1:0", health=health, ready=ready)
    try:
        yield running
    finally:
        running.stop()


def test_scrape_text_format(server: MetricsServer) -> None:
    answer = requests.get(f"{server.url}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    assert "vipexsync_runs" in families
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    key = (
        "vipexsync_runs_total",
        (("mode", "incremental"), ("outcome", "success"), ("sync_job", "crm")),
    )
    assert samples[key] == 1


def test_scrape_has_no_job_label_and_no_created_series(server: MetricsServer) -> None:
    """Prometheus owns ``job``; ``_created`` doubles the series and nothing reads it."""
    for accept in ("", "application/openmetrics-text; version=1.0.0"):
        answer = requests.get(f"{server.url}/metrics", headers={"Accept": accept}, timeout=10)
        assert answer.status_code == 200
        names = [line.split("{")[0].split(" ")[0] for line in answer.text.splitlines()]
        assert "vipexsync_runs_total" in names
        assert [n for n in names if n.endswith("_created")] == []
        assert 'sync_job="crm"' in answer.text
        assert "job=" not in answer.text.replace("sync_job=", "")


def test_scrape_openmetrics_when_asked(server: MetricsServer) -> None:
    answer = requests.get(
        f"{server.url}/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/openmetrics-text")
    assert answer.text.rstrip().endswith("# EOF")


def test_probes(server: MetricsServer, probes: tuple[Probe, Probe]) -> None:
    health, ready = probes
    assert requests.get(f"{server.url}/healthz", timeout=10).text == "ok\n"
    ready.ok, ready.reason = False, "database not migrated"
    answer = requests.get(f"{server.url}/readyz", timeout=10)
    assert answer.status_code == 503
    assert answer.text == "database not migrated\n"
    assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
    health.ok, health.reason = False, "scheduler stopped"
    answer = requests.get(f"{server.url}/healthz", timeout=10)
    assert (answer.status_code, answer.text) == (503, "scheduler stopped\n")


def test_broken_probe_answers_503(metrics: Metrics) -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    running = serve(metrics, "127.0.0.1:0", health=broken, ready=broken)
    try:
        answer = requests.get(f"{running.url}/healthz", timeout=10)
        assert answer.status_code == 503
        assert "RuntimeError" in answer.text
    finally:
        running.stop()


def test_unknown_path_is_404(server: MetricsServer) -> None:
    assert requests.get(f"{server.url}/", timeout=10).status_code == 404
    assert requests.get(f"{server.url}/metricsx", timeout=10).status_code == 404


def test_head_has_no_body(server: MetricsServer) -> None:
    answer = requests.head(f"{server.url}/metrics", timeout=10)
    assert answer.status_code == 200
    assert int(answer.headers["Content-Length"]) > 0
    assert answer.content == b""


def test_ipv6_loopback(metrics: Metrics) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        running = serve(metrics, "[::1]:0", health=Probe(), ready=Probe())
    except ConfigError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        assert running.url.startswith("http://[::1]:")
        assert requests.get(f"{running.url}/metrics", timeout=10).status_code == 200
    finally:
        running.stop()


def test_port_in_use_is_a_config_error(metrics: Metrics, server: MetricsServer) -> None:
    with pytest.raises(ConfigError, match=r"\[metrics\] listen"):
        serve(metrics, f"127.0.0.1:{server.port}", health=Probe(), ready=Probe())


@pytest.mark.parametrize("bad", ["9717", "localhost", "host:port", "1.2.3.4:70000"])
def test_bad_listen_values(bad: str) -> None:
    with pytest.raises(ConfigError, match="host:port"):
        parse_listen(bad)


def test_listen_parsing() -> None:
    assert parse_listen("127.0.0.1:9717") == ("127.0.0.1", 9717)
    assert parse_listen("[::1]:9717") == ("::1", 9717)
    assert parse_listen(":9717") == ("", 9717)


def test_stop_frees_the_port(metrics: Metrics) -> None:
    running = serve(metrics, "127.0.0.1:0", health=Probe(), ready=Probe())
    port = running.port
    running.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)


def test_promtool_accepts_the_scrape(server: MetricsServer) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package: prometheus)")
    body = requests.get(f"{server.url}/metrics", timeout=10).content
    done = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()

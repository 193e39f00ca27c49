"""`vipexsync status` read back from a real mirror (SQLite) after real runs on the emulator."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from support import crm_row, serve_empty_vipex, write_crm
from vipexsync.config import load_config
from vipexsync.emulator.server import RunningEmulator
from vipexsync.metrics import Metrics, serve
from vipexsync.runtime import Runtime
from vipexsync.status import collect_status, daemon_answers, format_status, print_status
from vipexsync.sync.model import Mode
from vipexsync.sync.runner import RunOptions

VIPEX_ID = "1643897"


@pytest.fixture
def vipex() -> Iterator[RunningEmulator]:
    with serve_empty_vipex(VIPEX_ID) as running:
        yield running


def rows(n: int) -> list[dict[str, str]]:
    return [crm_row(i, f"+36 1 {4000000 + i}", f"Státusz{i} Ede") for i in range(1, n + 1)]


def run(config_path: Path, mode: Mode) -> None:
    config = load_config(config_path)
    with Runtime(config) as runtime:
        runtime.run_job(config.jobs[0], RunOptions(mode=mode))


def test_status_after_full_and_guarded_incremental(
    vipex: RunningEmulator, job_files: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = job_files(vipex, rows(6), max_deletes=2)
    run(path, Mode.FULL)
    write_crm(path.parent / "crm.csv", rows(2))  # 4 deletions > max_deletes = 2
    run(path, Mode.INCREMENTAL)

    config = load_config(path)
    now = datetime(2030, 1, 1, 12, 0, 5, tzinfo=UTC)
    [info] = collect_status(config, daemon_running=True, now=now)
    assert info["job"] == "crm"
    assert info["last_full"]["outcome"] == "success"
    assert info["last_full"]["counts"]["applied_create"] == 6
    assert info["last_incremental"]["outcome"] == "guarded"
    assert info["mirror"] == {"entries": 6, "owned": 6, "pending": 0, "failed": 0}
    assert info["guard"]["tripped"] is True
    assert info["guard"]["withheld_deletes"] == 4
    assert info["guard"]["reasons"]
    assert info["last_full_resync_at"] is not None
    # interval 60 s in the test config: the next tick is the next full minute
    assert info["next_runs"]["incremental"] == (
        datetime(2030, 1, 1, 12, 1, tzinfo=UTC).astimezone().isoformat(timespec="seconds")
    )
    assert info["next_runs"]["full"] is None  # full_resync_cron = ""

    text = format_status([info], True)
    assert "guard: TRIPPED, 4 deletion(s) withheld" in text
    assert "last full resync: " in text
    assert "applied create 6" in text

    [idle] = collect_status(config, daemon_running=False, now=now)
    assert idle["next_runs"] is None
    assert "no daemon answering" in format_status([idle], False)

    assert print_status(config, as_json=True) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["daemon_running"] is None  # [metrics] listen = "" in the test config
    assert printed["jobs"][0]["guard"]["tripped"] is True


def test_guard_clears_after_a_clean_run(vipex: RunningEmulator, job_files: Any) -> None:
    path = job_files(vipex, rows(6), max_deletes=2)
    run(path, Mode.INCREMENTAL)
    write_crm(path.parent / "crm.csv", rows(2))
    run(path, Mode.INCREMENTAL)
    write_crm(path.parent / "crm.csv", rows(6))  # the CRM is back: nothing to delete
    run(path, Mode.INCREMENTAL)
    [info] = collect_status(load_config(path), daemon_running=None)
    assert info["guard"] == {"tripped": False, "withheld_deletes": 0, "reasons": []}
    assert info["last_full"]["outcome"] == "success"  # a job's first run lists VIPeX
    assert "last full resync: never" not in format_status([info], None)


def test_daemon_answers_probes_healthz() -> None:
    metrics = Metrics(CollectorRegistry())
    healthy = serve(metrics, "127.0.0.1:0", health=lambda: (True, "ok"), ready=lambda: (True, ""))
    try:
        assert daemon_answers(f"127.0.0.1:{healthy.port}") is True
    finally:
        healthy.stop()
    sick = serve(metrics, "127.0.0.1:0", health=lambda: (False, "x"), ready=lambda: (True, ""))
    try:
        assert daemon_answers(f"127.0.0.1:{sick.port}") is False
    finally:
        sick.stop()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    assert daemon_answers(f"127.0.0.1:{port}", timeout=1) is False  # nobody listens
    assert daemon_answers("") is None

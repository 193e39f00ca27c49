"""`vipexsync run` as a subprocess against the emulator (in a thread of this process).

Each test drives one daemon through several checks, because the shortest
interval the configuration allows is 10 s: a test waits for a tick or two.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.daemon_harness import Daemon, NotifySocket, daemon_config, free_port, wait_for
from sqlalchemy.orm import Session

from support import crm_row, serve_empty_vipex, write_crm
from vipexsync.emulator.server import RunningEmulator
from vipexsync.mirror import store
from vipexsync.mirror.database import create_engine_for

pytestmark = pytest.mark.slow

VIPEX_ID = "1643897"
SECOND_ID = "2000001"
STOP_BOUND_SECONDS = 30.0  # a stop must end well within systemd's TimeoutStopSec


def rows(n: int) -> list[dict[str, str]]:
    return [
        crm_row(i, f"+36 1 {5000000 + i}", f"Démon{i} Dezső", company="Kft.", segment="vip")
        for i in range(1, n + 1)
    ]


@pytest.fixture
def vipex() -> Iterator[RunningEmulator]:
    with serve_empty_vipex(VIPEX_ID, SECOND_ID) as running:
        yield running


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    # A short directory: AF_UNIX paths are limited to 108 bytes.
    with tempfile.TemporaryDirectory(prefix="vxs-") as folder:
        sock = NotifySocket(Path(folder) / "notify")
        try:
            yield sock
        finally:
            sock.close()


def count(vipex: RunningEmulator, vipex_id: str = VIPEX_ID) -> int:
    return len(vipex.state.entries(vipex_id))


def test_runs_on_schedule_serves_metrics_notifies_and_reloads(
    vipex: RunningEmulator, job_files: Any, notify_socket: NotifySocket
) -> None:
    port = free_port()
    config = daemon_config(job_files(vipex, rows(3)), port=port, log_format="json")
    daemon = Daemon(
        config,
        port,
        env={"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "2000000"},
    )
    try:
        wait_for(lambda: notify_socket.has("READY", "1"), "READY=1")
        # the first incremental run comes right after start
        wait_for(lambda: daemon.runs("crm", "success") >= 1, "the first run")
        assert count(vipex) == 3
        health, ready = daemon.get("/healthz"), daemon.get("/readyz")
        assert health is not None
        assert health.status_code == 200
        assert ready is not None
        assert ready.status_code == 200
        first = daemon.runs("crm", "success")

        # the next interval tick picks up a CRM change; the metrics move with it
        write_crm(config.parent / "crm.csv", rows(4))
        wait_for(lambda: count(vipex) == 4, "the next scheduled run to create entry 4")
        wait_for(lambda: daemon.runs("crm", "success") > first, "runs_total to grow")
        created = daemon.value(
            "vipexsync_changes_total", sync_job="crm", action="create", outcome="applied"
        )
        assert created == 4
        assert daemon.value("vipexsync_entries", sync_job="crm", view="desired") == 4
        assert daemon.value("vipexsync_job_interval_seconds", sync_job="crm") == 10

        # SIGHUP: a job added to the file is scheduled and runs at once
        text = config.read_text(encoding="utf-8")
        job_start = text.index("[[jobs]]")
        second = text[job_start:].replace('name = "crm"', 'name = "second"')
        second = second.replace(f'vipex_id = "{VIPEX_ID}"', f'vipex_id = "{SECOND_ID}"')
        second = second.replace("interval_seconds = 10", "interval_seconds = 20")
        config.write_text(text + "\n" + second, encoding="utf-8")
        daemon.send(signal.SIGHUP)
        wait_for(lambda: count(vipex, SECOND_ID) == 4, "the added job's first run")
        wait_for(lambda: daemon.runs("second", "success") >= 1, "the added job in the metrics")
        assert daemon.value("vipexsync_job_interval_seconds", sync_job="second") == 20
        assert daemon.process.poll() is None

        wait_for(lambda: notify_socket.has("WATCHDOG", "1"), "WATCHDOG=1")
        assert notify_socket.has("STATUS", "crm incremental: success")

        daemon.send(signal.SIGTERM)
        assert daemon.wait(STOP_BOUND_SECONDS) == 0
    finally:
        daemon.close()

    wait_for(lambda: notify_socket.has("STOPPING", "1"), "STOPPING=1", timeout=5)
    keys = [next(iter(f)) for f in notify_socket.fields()]
    assert keys.index("READY") < keys.index("STOPPING")
    assert "READY" not in keys[keys.index("STOPPING") :]

    lines = daemon.stderr().splitlines()
    assert lines
    logged = [json.loads(line) for line in lines]  # every stderr line is one JSON object
    messages = [entry["message"] for entry in logged]
    finished = [m for m in messages if m.startswith("run finished: job=crm")]
    assert any("applied: create=3" in m for m in finished)
    assert any("applied: create=1" in m for m in finished)
    assert any(m.startswith("reload: job second added") for m in messages)
    assert any(m.startswith("run finished: job=second") for m in messages)
    assert all(entry["level"] in ("debug", "info", "warning") for entry in logged), messages


def test_one_shot_beside_a_busy_daemon_exits_4_and_sigterm_mid_run_keeps_the_mirror_true(
    vipex: RunningEmulator, job_files: Any
) -> None:
    port = free_port()
    config = daemon_config(job_files(vipex, rows(2), concurrency=1), port=port)
    daemon = Daemon(config, port)
    try:
        wait_for(lambda: count(vipex) == 2, "the first run")
        # Slow VIPeX and 38 new entries: the next run lasts about 19 s.
        vipex.faults.latency_seconds = 0.5
        write_crm(config.parent / "crm.csv", rows(40))
        wait_for(
            lambda: (
                daemon.value("vipexsync_run_in_progress", sync_job="crm") == 1 and count(vipex) > 2
            ),
            "the next scheduled run to be writing",
        )

        one_shot = subprocess.run(
            [sys.executable, "-m", "vipexsync", "--config", str(config), "sync"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert one_shot.returncode == 4, one_shot.stdout + one_shot.stderr
        assert "another process" in one_shot.stdout + one_shot.stderr

        assert daemon.value("vipexsync_run_in_progress", sync_job="crm") == 1  # still mid-run
        daemon.send(signal.SIGTERM)
        assert daemon.wait(STOP_BOUND_SECONDS) == 0
    finally:
        daemon.close()
        vipex.faults.latency_seconds = 0.0

    written = vipex.state.entries(VIPEX_ID)
    assert 2 < len(written) < 40, "the stop came mid-run"
    engine = create_engine_for(f"sqlite:///{config.parent / 'mirror.sqlite3'}")
    try:
        with Session(engine) as session:
            mirror = store.load_mirror(session, "crm")
            [last, *_] = store.last_runs(session, "crm", limit=1)
    finally:
        engine.dispose()
    # Every write VIPeX took was journaled before the exit, and nothing more.
    confirmed = {n: m.written for n, m in mirror.items() if m.written is not None}
    assert set(confirmed) == {str(e["phonenumber"]) for e in written}
    for entry in written:
        mine = confirmed[str(entry["phonenumber"])]
        assert mine is not None
        assert mine.name == entry["name"]
        assert sorted(mine.tags) == sorted(entry["tags"])  # type: ignore[call-overload]
        assert mine.comment == entry["comment"]
    assert last.outcome == "failure"
    assert last.error is not None
    assert "stopped on request" in last.error

    log = daemon.stderr()
    # The job's first run lists VIPeX (there was no full resync yet).
    assert "run finished: job=crm mode=full outcome=success" in log
    assert "stop requested" in log

    # the next run converges
    again = subprocess.run(
        [sys.executable, "-m", "vipexsync", "--config", str(config), "sync"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert count(vipex) == 40

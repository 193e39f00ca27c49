"""Three `vipexsync run` replicas on one PostgreSQL database: each tick runs exactly once.

The replicas share the database, the CRM file and the emulator; each serves its
own /metrics. A thread adds a CRM record every couple of seconds, so every
tick's run has real writes to do. Then the replica holding the job's advisory
lock mid-run is SIGKILLed, and another one must take the next tick.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.daemon_harness import Daemon, daemon_config, free_port, wait_for
from sqlalchemy.orm import Session

from support import crm_row, serve_empty_vipex, write_crm
from vipexsync.daemon import interval_tick
from vipexsync.emulator.server import RunningEmulator
from vipexsync.mirror import store
from vipexsync.mirror.database import create_engine_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

VIPEX_ID = "1643897"
INTERVAL = 10


class Crm:
    """The shared CRM export; records are only ever added, atomically."""

    def __init__(self, path: Path, start: int) -> None:
        self.path = path
        self.size = start
        self._lock = threading.Lock()
        self._write()

    def _write(self) -> None:
        rows = [
            crm_row(i, f"+36 1 {6000000 + i}", f"Replika{i} Rita") for i in range(1, self.size + 1)
        ]
        tmp = self.path.with_suffix(".tmp")
        write_crm(tmp, rows)
        tmp.replace(self.path)

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.size += n
            self._write()


@pytest.fixture
def vipex() -> Iterator[RunningEmulator]:
    with serve_empty_vipex(VIPEX_ID) as running:
        yield running


def runs_in_db(url: str, job: str) -> list[store.RunRecord]:
    engine = create_engine_for(url)
    try:
        with Session(engine) as session:
            return store.last_runs(session, job, limit=1000)
    finally:
        engine.dispose()


def test_three_replicas_run_each_tick_once_and_survive_a_killed_holder(
    vipex: RunningEmulator, job_files: Any, postgres_url: str, tmp_path: Path
) -> None:
    job = f"replica-{uuid.uuid4().hex[:8]}"  # its own advisory lock key
    vipex.faults.latency_seconds = 0.2
    base = job_files(vipex, [], job=job, concurrency=1)
    crm = Crm(tmp_path / "crm.csv", start=3)
    replicas: list[Daemon] = []
    stop_adding = threading.Event()

    def keep_adding() -> None:
        while not stop_adding.wait(2.5):
            crm.add()

    adder = threading.Thread(target=keep_adding, daemon=True)
    try:
        for i in range(3):
            port = free_port()
            config = tmp_path / f"replica{i}.toml"
            config.write_text(base.read_text(encoding="utf-8"), encoding="utf-8")
            daemon_config(config, port=port, interval=INTERVAL, database=postgres_url)
            replicas.append(Daemon(config, port))
        for replica in replicas:
            wait_for(lambda r=replica: r.samples() is not None, "every replica's /metrics")  # type: ignore[misc]
        adder.start()

        def windows() -> Counter[object]:
            return Counter(
                interval_tick(r.started_at, INTERVAL) for r in runs_in_db(postgres_url, job)
            )

        # at least three ticks after every replica is up
        start_windows = len(windows())
        wait_for(lambda: len(windows()) >= start_windows + 3, "three more ticks", timeout=60)
        stop_adding.set()
        adder.join()
        wait_for(lambda: len(vipex.state.entries(VIPEX_ID)) == crm.size, "the last record synced")
        wait_for(
            lambda: all(r.value("vipexsync_run_in_progress", sync_job=job) == 0 for r in replicas),
            "the running run to finish",
        )

        recorded = runs_in_db(postgres_url, job)
        per_window = windows()
        assert set(per_window.values()) == {1}, f"a tick ran more than once: {per_window}"
        assert all(r.outcome == "success" for r in recorded), [r.error for r in recorded]
        # the first run of the job was a full one (no full resync had happened yet)
        succeeded = [r.runs(job, "success") + r.runs(job, "success", "full") for r in replicas]
        skipped = [r.runs(job, "skipped") for r in replicas]
        assert sum(succeeded) == len(recorded)
        # every replica fires every tick; the two that did not run it skipped it
        assert sum(skipped) >= 2 * (len(per_window) - start_windows)
        # and no entry was written twice: one set_phonebook_entry per number
        numbers = {str(e["phonenumber"]) for e in vipex.state.entries(VIPEX_ID)}
        assert len(numbers) == crm.size
        assert vipex.app.request_counts().get("set_phonebook_entry") == crm.size

        # Now a long run (20 new records at 0.2 s each); kill whoever holds the lock.
        crm.add(20)
        holder = wait_for(
            lambda: next(
                (r for r in replicas if r.value("vipexsync_run_in_progress", sync_job=job) == 1),
                None,
            ),
            "a replica to start the long run",
            timeout=30,
        )
        newest = wait_for(
            lambda: next(
                (r for r in runs_in_db(postgres_url, job)[:1] if r.outcome == "running"), None
            ),
            "the long run's row",
        )
        holder.process.kill()
        holder.process.wait(timeout=10)
        survivors = [r for r in replicas if r is not holder]
        before = sum(r.runs(job, "success") for r in survivors)
        wait_for(
            lambda: sum(r.runs(job, "success") for r in survivors) > before,
            "another replica to take the next tick",
            timeout=30,
        )
        wait_for(lambda: len(vipex.state.entries(VIPEX_ID)) == crm.size, "convergence")
        after = runs_in_db(postgres_url, job)
        killed_run = next(r for r in after if r.id == newest.id)
        assert killed_run.outcome == "failure"  # closed as interrupted by the next holder
        assert killed_run.error == "interrupted"
        assert after[0].outcome == "success"
        assert set(Counter(interval_tick(r.started_at, INTERVAL) for r in after).values()) == {1}
    finally:
        stop_adding.set()
        for replica in replicas:
            replica.close()

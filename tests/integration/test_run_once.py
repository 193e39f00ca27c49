"""A scheduled tick runs once even when two replicas' timers fire one after the other.

The lock alone cannot tell "the other replica is running this tick" from "the
other replica already ran it a moment ago"; ``skip_if_run_since`` (checked
under the lock against the shared runs table) can. Both database engines.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from support import crm_row
from vipexsync.config import load_config
from vipexsync.emulator.server import serve_in_thread
from vipexsync.metrics import Metrics
from vipexsync.runtime import Runtime
from vipexsync.sync.model import Mode
from vipexsync.sync.report import Outcome
from vipexsync.sync.runner import RunOptions


def test_a_tick_already_run_is_skipped(job_files: Any, db_url: str) -> None:
    with serve_in_thread() as vipex:
        path = job_files(vipex, [crm_row(1, "+36 1 7000001")], database=db_url)
        config = load_config(path)
        job = config.jobs[0]
        metrics = Metrics(CollectorRegistry(), jobs=[job.name])
        incremental = RunOptions(mode=Mode.INCREMENTAL)
        with Runtime(config, metrics=metrics) as runtime:
            # A job's first run lists VIPeX; after it, incremental runs are incremental.
            assert runtime.run_job(job, RunOptions(mode=Mode.FULL)).outcome is Outcome.SUCCESS
            tick = datetime.now(UTC)
            first = runtime.run_job(job, incremental, skip_if_run_since=tick)
            assert first.outcome is Outcome.SUCCESS
            second = runtime.run_job(job, incremental, skip_if_run_since=tick)
            assert second.outcome is Outcome.SKIPPED
            assert second.error is not None
            assert f"run {first.run_id}" in second.error
            assert second.exit_code == 4
            # a later tick runs again; a full resync is a schedule of its own
            later = datetime.now(UTC)
            assert runtime.run_job(job, incremental, skip_if_run_since=later).outcome is (
                Outcome.SUCCESS
            )
            full = RunOptions(mode=Mode.FULL)
            assert runtime.run_job(job, full, skip_if_run_since=tick).outcome is Outcome.SUCCESS
            # a dry run is not the tick's run
            newest = datetime.now(UTC)
            dry = RunOptions(mode=Mode.INCREMENTAL, dry_run=True)
            assert runtime.run_job(job, dry).outcome is Outcome.SUCCESS
            assert runtime.run_job(job, incremental, skip_if_run_since=newest).outcome is (
                Outcome.SUCCESS
            )
        skipped = metrics.registry.get_sample_value(
            "vipexsync_runs_total",
            {"sync_job": job.name, "mode": "incremental", "outcome": "skipped"},
        )
        assert skipped == 1

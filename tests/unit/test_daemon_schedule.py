"""The daemon's schedule arithmetic: pure functions every replica must agree on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from vipexsync.config import CsvSourceConfig, JobConfig, MappingConfig
from vipexsync.daemon import (
    TICK_ANCHOR,
    cron_tick,
    interval_tick,
    next_cron_fire,
    next_interval_tick,
    status_line,
    tick_for,
)
from vipexsync.metrics import Metrics
from vipexsync.sync.model import Mode
from vipexsync.sync.report import Outcome, RunReport

moments = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)
intervals = st.integers(min_value=10, max_value=7 * 24 * 3600)


@given(moments, intervals)
def test_tick_is_the_aligned_window_start(now: datetime, interval: int) -> None:
    tick = interval_tick(now, interval)
    assert tick <= now < tick + timedelta(seconds=interval)
    assert (tick - TICK_ANCHOR) % timedelta(seconds=interval) == timedelta(0)
    assert next_interval_tick(now, interval) == tick + timedelta(seconds=interval)


@given(moments, intervals, st.floats(min_value=0, max_value=1, exclude_max=True))
def test_replicas_firing_apart_agree_on_the_tick(
    now: datetime, interval: int, share: float
) -> None:
    """Two replicas firing within one window (late timers, skewed start) name one tick."""
    tick = interval_tick(now, interval)
    offset = min(int(interval * 1_000_000 * share), interval * 1_000_000 - 1)
    later = tick + timedelta(microseconds=offset)
    assert interval_tick(later, interval) == tick


def test_tick_ignores_the_time_zone_of_now() -> None:
    budapest = datetime(2024, 3, 31, 3, 0, 5, tzinfo=UTC).astimezone()
    assert interval_tick(budapest, 60) == datetime(2024, 3, 31, 3, 0, tzinfo=UTC)


def test_cron_tick_is_the_latest_fire_time_within_the_horizon() -> None:
    now = datetime(2024, 5, 10, 3, 45).astimezone()  # local time, as cron reads it
    fired = cron_tick("30 3 * * *", now, 3600)
    assert fired is not None
    assert (fired.hour, fired.minute) == (3, 30)
    assert fired.date() == now.date()
    assert cron_tick("30 3 * * *", now, 600) is None  # 03:30 is 15 min back
    every_minute = cron_tick("* * * * *", now.replace(second=59), 3600)
    assert every_minute is not None
    assert every_minute.minute == 45


def test_next_cron_fire_is_after_now() -> None:
    now = datetime(2024, 5, 10, 3, 45).astimezone()
    fire = next_cron_fire("30 3 * * *", now)
    assert fire is not None
    assert fire > now
    assert (fire.day, fire.hour, fire.minute) == (11, 3, 30)


def test_tick_for_picks_the_trigger_of_the_mode() -> None:
    job = JobConfig(
        name="crm",
        vipex_id="1",
        source=CsvSourceConfig(path=Path("crm.csv"), key="id"),
        mapping=MappingConfig(phone_fields=("phone",), name="{name}"),
        interval_seconds=300,
        full_resync_cron="0 * * * *",
    )
    now = datetime(2024, 5, 10, 12, 7, 30).astimezone()
    assert tick_for(job, Mode.INCREMENTAL, now) == interval_tick(now, 300)
    full = tick_for(job, Mode.FULL, now)
    assert (full.hour, full.minute, full.second) == (12, 0, 0)


def test_status_line_tells_outcome_and_counts() -> None:
    ok = RunReport(
        job="crm",
        mode="incremental",
        dry_run=False,
        outcome=Outcome.SUCCESS,
        applied={"create": 2, "update": 1},
    )
    assert status_line(ok) == "crm incremental: success, 3 change(s) applied"
    guarded = RunReport(
        job="crm",
        mode="full",
        dry_run=False,
        outcome=Outcome.GUARDED,
        withheld_deletes=7,
        error=None,
    )
    assert "guarded" in status_line(guarded)
    assert "7 deletion(s) withheld" in status_line(guarded)
    failed = RunReport(
        job="crm", mode="full", dry_run=False, outcome=Outcome.FAILURE, error="x" * 500
    )
    line = status_line(failed)
    assert line.startswith("crm full: failure (")
    assert len(line) < 160


def test_metrics_take_the_plan_counts_as_they_come() -> None:
    """Plan.counts() carries noop; it crashed every daemon run before it was left out."""
    metrics = Metrics(CollectorRegistry(), jobs=["crm"])
    metrics.planned("crm", {"create": 1, "update": 2, "adopt": 1, "delete": 0, "noop": 9})
    get = metrics.registry.get_sample_value
    assert get("vipexsync_planned_changes", {"sync_job": "crm", "action": "create"}) == 1
    assert get("vipexsync_planned_changes", {"sync_job": "crm", "action": "update"}) == 3

"""Retention and the change-log query on real databases (SQLite file and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from vipexsync.mirror import store
from vipexsync.mirror.database import create_engine_for, make_session_factory, upgrade
from vipexsync.mirror.models import ChangeRow, RunRow
from vipexsync.retention import prune_history, retention_cutoff

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine: Engine = create_engine_for(db_url)
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def add_run(
    sessions: sessionmaker[Session], job: str, mode: str, started: datetime, *, done: bool = True
) -> int:
    with sessions() as session, session.begin():
        run_id = store.start_run(
            session, job=job, mode=mode, dry_run=False, fingerprint="f", now=started
        )
        if done:
            store.finish_run(
                session,
                run_id,
                outcome="success",
                counts={},
                guard=None,
                error=None,
                report=None,
                now=started + timedelta(minutes=1),
            )
    return run_id


def add_change(
    sessions: sessionmaker[Session], job: str, number: str, at: datetime, run_id: int | None
) -> None:
    with sessions() as session, session.begin():
        session.execute(
            sa.insert(ChangeRow).values(
                run_id=run_id,
                job=job,
                phonenumber=number,
                action="create",
                before=None,
                after={
                    "phonenumber": number,
                    "name": f"Entry {number}",
                    "tags": [],
                    "comment": "",
                    "custom_fields": {},
                },
                outcome="applied",
                reason="new in CRM",
                api_reason=None,
                at=at,
            )
        )


def table_ids(sessions: sessionmaker[Session], column: sa.ColumnElement[int]) -> list[int]:
    with sessions() as session:
        return sorted(session.execute(sa.select(column)).scalars())


def test_cutoff_is_keep_days_before_now_and_zero_keeps_all() -> None:
    assert retention_cutoff(NOW, 90) == NOW - timedelta(days=90)
    assert retention_cutoff(NOW, 0) is None


def test_old_rows_go_in_batches_young_and_newest_runs_stay(
    sessions: sessionmaker[Session],
) -> None:
    old_full = add_run(sessions, "crm", "full", days_ago(200))  # newest full: kept
    old_incrementals = [
        add_run(sessions, "crm", "incremental", days_ago(150 - i)) for i in range(5)
    ]
    stuck = add_run(sessions, "crm", "incremental", days_ago(120), done=False)  # still running
    young = add_run(sessions, "crm", "incremental", days_ago(10))
    other_job = add_run(sessions, "other", "incremental", days_ago(300))  # its only run: kept
    for i, run_id in enumerate(old_incrementals):
        add_change(sessions, "crm", f"36130000{i:02d}", days_ago(150 - i), run_id)
    add_change(sessions, "crm", "3613000099", days_ago(5), young)
    # A change made late in a run that started before the cutoff keeps its row.
    add_change(sessions, "crm", "3613000098", days_ago(89), old_incrementals[-1])

    pruned = prune_history(sessions, keep_days=90, now=NOW, batch=2)

    assert (pruned.runs, pruned.changes) == (5, 5)
    assert table_ids(sessions, RunRow.id) == sorted([old_full, stuck, young, other_job])
    with sessions() as session:
        left = store.change_log(session, jobs=["crm"])
    assert [c.phonenumber for c in left] == ["3613000098", "3613000099"]
    # The change whose run was pruned is kept, without a run.
    assert left[0].run_id is None
    assert left[0].run_mode is None
    assert left[1].run_mode == "incremental"

    again = prune_history(sessions, keep_days=90, now=NOW, batch=2)
    assert (again.runs, again.changes) == (0, 0)


def test_keep_days_zero_prunes_nothing(sessions: sessionmaker[Session]) -> None:
    first = add_run(sessions, "crm", "incremental", days_ago(1000))
    add_run(sessions, "crm", "incremental", days_ago(999))
    add_change(sessions, "crm", "3613000001", days_ago(1000), first)
    assert prune_history(sessions, keep_days=0, now=NOW).runs == 0
    assert len(table_ids(sessions, RunRow.id)) == 2
    assert len(table_ids(sessions, ChangeRow.id)) == 1


def test_change_log_filters_by_job_number_and_time(sessions: sessionmaker[Session]) -> None:
    run_id = add_run(sessions, "crm", "full", days_ago(3))
    add_change(sessions, "crm", "3613000001", days_ago(3), run_id)
    add_change(sessions, "crm", "3613000002", days_ago(2), run_id)
    add_change(sessions, "crm", "3613000001", days_ago(1), None)
    add_change(sessions, "other", "3613000001", days_ago(1), None)
    with sessions() as session:
        one = store.change_log(session, jobs=["crm"], phonenumbers=["3613000001"])
        recent = store.change_log(session, jobs=["crm"], since=days_ago(2.5))
        both = store.change_log(session, jobs=["crm", "other"], limit=3)
    assert [(c.phonenumber, c.at) for c in one] == [
        ("3613000001", days_ago(1)),
        ("3613000001", days_ago(3)),
    ]
    assert one[1].run_mode == "full"
    assert [c.phonenumber for c in recent] == ["3613000001", "3613000002"]
    assert [c.job for c in both] == ["other", "crm", "crm"]

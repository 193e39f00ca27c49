"""vipexsync/mirror/lean.py writes what the store would write, and knows the head."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vipexsync.mirror import lean, store
from vipexsync.mirror.database import (
    create_engine_for,
    head_revision,
    make_session_factory,
    upgrade,
)
from vipexsync.sync import quiet
from vipexsync.sync.report import Outcome, RejectionGroup, RunReport


def test_head_revision_constant_is_alembics_head() -> None:
    assert head_revision() == lean.HEAD_REVISION


@pytest.mark.parametrize(
    "url",
    ["sqlite:////tmp/a b/m.sqlite3", "sqlite:///relative.sqlite3", "sqlite:////srv/m.db"],
)
def test_sqlite_path_is_the_engines_database(url: str) -> None:
    from sqlalchemy.engine import make_url

    assert str(lean.sqlite_path(url)) == make_url(url).database


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u@h/db",
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:////tmp/m.db?timeout=3",
        "sqlite:////tmp/x%20y.db",
        "sqlite:///file:m.db",
    ],
)
def test_other_urls_take_the_normal_path(url: str) -> None:
    assert lean.sqlite_path(url) is None


def test_a_quiet_run_is_recorded_as_the_store_records_a_run(tmp_path: Path) -> None:
    path = tmp_path / "mirror.sqlite3"
    engine = create_engine_for(f"sqlite:///{path}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    started = datetime(2026, 11, 30, 15, 0, 1, 123456, tzinfo=UTC)
    finished = started + timedelta(seconds=1)
    earlier = RunReport(
        job="crm",
        mode="incremental",
        dry_run=False,
        outcome=Outcome.SUCCESS,
        run_id=7,
        planned={"create": 0, "update": 0, "adopt": 0, "delete": 0, "noop": 3},
        rejections=(RejectionGroup("invalid_phone", 1, ("row 2: bad number",), True),),
        source_records=4,
        desired=3,
        mirror=3,
        key_rules={"": 4},
    )
    with sessions() as session:
        store.set_job_state(
            session, "crm", mapping_fingerprint="fp", last_full_resync_at=started, now=started
        )
        assert store.store_quiet_key(
            session, "crm", key="k", generation=0, report=quiet.summary(earlier)
        )
        session.commit()

    conn = lean.connect(path)
    try:
        assert lean.revision(conn) == head_revision()
        assert (
            lean.record_quiet_run(
                conn,
                "crm",
                key="other",
                fingerprint="fp",
                started_at=started,
                clock=lambda: finished,
                report_for=lambda run_id, stored: quiet.quiet_report(
                    stored, job="crm", run_id=run_id
                ),
            )
            is None
        )
        report = lean.record_quiet_run(
            conn,
            "crm",
            key="k",
            fingerprint="fp",
            started_at=started,
            clock=lambda: finished,
            report_for=lambda run_id, stored: quiet.quiet_report(stored, job="crm", run_id=run_id),
        )
    finally:
        conn.close()
    assert report is not None
    assert report.unchanged_since == 7
    with sessions() as session:
        (run,) = store.last_runs(session, "crm", limit=5)
        state = store.get_job_state(session, "crm")
    engine.dispose()
    assert run.id == report.run_id
    assert run.started_at == started
    assert run.finished_at == finished
    assert run.outcome == "success"
    assert run.mode == "incremental"
    assert run.dry_run is False
    assert run.mapping_fingerprint == "fp"
    assert run.counts["planned_noop"] == 3
    assert run.counts["rejected"] == 1
    assert run.guard == {"reasons": [], "withheld": 0}
    assert run.report is not None
    assert run.report["unchanged_since_run"] == 7
    assert run.report["rejections"][0]["reason"] == "invalid_phone"
    assert state.last_run_at == finished
    assert state.quiet_key == "k"

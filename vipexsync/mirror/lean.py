"""The quiet one-shot tick's database access: the sqlite3 module, no SQLAlchemy.

A one-shot ``vipexsync sync`` spent more CPU importing SQLAlchemy's ORM and
Alembic than a quiet tick needs in all (issue 13). When the mirror is a
SQLite file already at this vipexsync's schema revision, the quiet tick
(vipexsync/sync/quiet.py) reads the job state and records its run here, with
the same values the store would write (a unit test compares them). Anything
else (PostgreSQL, another revision, an odd URL) answers None, and the caller
takes the normal path, which migrates, reports and locks as always.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from vipexsync.sync.quiet import StoredQuiet, key_holds
from vipexsync.sync.report import RunReport, run_counts, run_guard

# The newest migration in vipexsync/migrations/versions; a unit test checks it
# against Alembic's own head, so the quiet path needs no Alembic import.
HEAD_REVISION = "0003"

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
)
_PREFIX = "sqlite:///"


def sqlite_path(url: str) -> Path | None:
    """The database file of a plain ``sqlite:///PATH`` URL; None for any other URL."""
    if not url.startswith(_PREFIX) or "?" in url or "%" in url:
        return None
    database = url[len(_PREFIX) :]
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def connect(path: Path) -> sqlite3.Connection:
    """An existing mirror file, opened as the engine opens it (never created here)."""
    uri = f"file:{urllib.parse.quote(str(path.absolute()))}?mode=rw"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10.0)
    for pragma in SQLITE_PRAGMAS:
        conn.execute(pragma)
    return conn


def revision(conn: sqlite3.Connection) -> str | None:
    """The schema revision stamped in the database (None: none)."""
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return None if row is None else str(row[0])


def read_state(conn: sqlite3.Connection, job: str) -> StoredQuiet | None:
    """The job's quiet-key state; None if the job has no state or a run is marked running."""
    running = conn.execute(
        "SELECT 1 FROM runs WHERE job = ? AND outcome = 'running' LIMIT 1", (job,)
    ).fetchone()
    if running is not None:
        return None  # a killed run to close: the normal path does that
    row = conn.execute(
        "SELECT mapping_fingerprint, last_full_resync_at IS NOT NULL, mirror_generation, "
        "quiet_key, quiet_generation, quiet_report FROM job_state WHERE job = ?",
        (job,),
    ).fetchone()
    if row is None:
        return None
    return StoredQuiet(
        mapping_fingerprint=row[0],
        had_full_resync=bool(row[1]),
        mirror_generation=int(row[2]),
        quiet_key=row[3],
        quiet_generation=row[4],
        quiet_report=row[5],
    )


def timestamp(value: datetime) -> str:
    """A UTC instant as SQLAlchemy stores a DateTime in SQLite (naive UTC)."""
    value = value.astimezone(UTC)
    return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def record_quiet_run(
    conn: sqlite3.Connection,
    job: str,
    *,
    key: str,
    fingerprint: str,
    started_at: datetime,
    clock: Callable[[], datetime],
    report_for: Callable[[int, str], RunReport],
) -> RunReport | None:
    """Record a quiet tick as a finished run, if the key still holds (checked
    under the write lock); returns its report, or None (nothing written).

    ``report_for(run_id, stored_report)`` makes the run's report.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        state = read_state(conn, job)
        if state is None or not key_holds(state, key, fingerprint):
            conn.execute("ROLLBACK")
            return None
        assert state.quiet_report is not None
        cursor = conn.execute(
            "INSERT INTO runs (job, mode, dry_run, started_at, finished_at, outcome, counts, "
            "guard, error, mapping_fingerprint, report) "
            "VALUES (?, 'incremental', 0, ?, NULL, 'running', '{}', NULL, NULL, ?, NULL)",
            (job, timestamp(started_at), fingerprint),
        )
        run_id = cursor.lastrowid
        assert run_id is not None
        report = report_for(run_id, state.quiet_report)
        now = clock()
        conn.execute(
            "UPDATE runs SET finished_at = ?, outcome = ?, counts = ?, guard = ?, error = NULL, "
            "report = ? WHERE id = ?",
            (
                timestamp(now),
                report.outcome.value,
                json.dumps(run_counts(report)),
                json.dumps(run_guard(report)),
                json.dumps(report.as_json(every_rejection=False)),
                run_id,
            ),
        )
        conn.execute(
            "UPDATE job_state SET last_run_at = ?, updated_at = ? WHERE job = ?",
            (timestamp(now), timestamp(now), job),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return report

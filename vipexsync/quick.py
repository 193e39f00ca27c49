"""The quiet tick of a one-shot ``vipexsync sync``, without loading the engine.

A one-shot process that imports SQLAlchemy's ORM, Alembic and the mapping
spends more CPU on imports than a quiet tick costs (issue 13). Here the tick
is decided and recorded with the sqlite3 module (vipexsync/mirror/lean.py),
the source digest and the one custom-field call; the decision is the same
as the engine's (vipexsync/sync/quiet.py). Whenever anything is not exactly
known (no stored key, PostgreSQL, another schema revision, a source without
a digest, a run left marked running, a held lock, an error) it answers None
and the CLI runs the job the normal way, which then reports what is wrong.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from vipexsync.config import Config, JobConfig, mapping_fingerprint
from vipexsync.errors import VipexSyncError
from vipexsync.locks import FileJobLock
from vipexsync.mirror import lean
from vipexsync.sources.identity import source_identity
from vipexsync.sync import quiet
from vipexsync.sync.report import RunReport

if TYPE_CHECKING:
    from vipexsync.vipex.models import CustomField

log = logging.getLogger("vipexsync.run")


def _now() -> datetime:
    return datetime.now(UTC)


def quiet_one_shot(config: Config, job: JobConfig) -> RunReport | None:
    """The report of ``job``'s quiet tick, recorded as its run; None: run it normally."""
    path = lean.sqlite_path(config.database.url)
    if path is None or not path.is_file():
        return None
    started = time.monotonic()
    started_at = _now()
    try:
        conn = lean.connect(path)
    except sqlite3.Error:
        return None
    try:
        return _tick(config, job, conn, FileJobLock(path, job.name), started, started_at)
    except (sqlite3.Error, OSError, VipexSyncError) as exc:
        log.debug("job %s: no quiet one-shot tick (%s); running it normally", job.name, exc)
        return None
    finally:
        conn.close()


def _tick(
    config: Config,
    job: JobConfig,
    conn: sqlite3.Connection,
    lock: FileJobLock,
    started: float,
    started_at: datetime,
) -> RunReport | None:
    if lean.revision(conn) != lean.HEAD_REVISION:
        return None
    state = lean.read_state(conn, job.name)
    if state is None or state.quiet_key is None:
        return None
    if state.quiet_generation != state.mirror_generation:
        return None
    if not lock.acquire():
        return None  # the normal path says who holds it (exit 4)
    try:
        identity = source_identity(job.source)
        if identity is None:
            return None
        fields, calls = _custom_fields(config, job)
        key = quiet.quiet_key(
            source=identity.content,
            config=quiet.config_digest(
                job,
                foreign_tags=quiet.foreign_tags(config, job),
                stated_semantics=config.vipex.write_semantics,
            ),
            fields=quiet.fields_digest(fields),
        )

        def report_for(run_id: int, stored: str) -> RunReport:
            report = quiet.quiet_report(stored, job=job.name, run_id=run_id)
            return replace(report, api_calls=calls, duration_seconds=time.monotonic() - started)

        report = lean.record_quiet_run(
            conn,
            job.name,
            key=key,
            fingerprint=mapping_fingerprint(job),
            started_at=started_at,
            clock=_now,
            report_for=report_for,
        )
    finally:
        lock.release()
    if report is not None:
        quiet.log_quiet_tick(report)
        log.info("run finished: %s", report.summary_line())
    return report


def _custom_fields(config: Config, job: JobConfig) -> tuple[tuple[CustomField, ...], int]:
    """The custom-field call the normal path makes (none when the mapping has none),
    with the standard library (vipex/lean.py): a failure raises, and the tick
    runs the normal way."""
    if not job.mapping.custom_fields:
        return (), 0
    from vipexsync.vipex.lean import custom_fields

    try:
        return custom_fields(config.vipex, job.vipex_id), 1
    except ValueError as exc:  # e.g. a password that Basic auth cannot carry
        raise VipexSyncError(f"the quiet tick's custom-field call: {type(exc).__name__}") from None

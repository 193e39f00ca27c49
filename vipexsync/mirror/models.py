"""The mirror database's tables, as typed SQLAlchemy 2.x declarative models.

The schema is owned by Alembic (``vipexsync/migrations/versions``); these models are the
target it is compared against, so any change here needs a new revision.
Timestamps are stored as UTC and always come back timezone-aware, whatever the
engine; JSON columns hold SQL NULL (not JSON ``null``) when a value is absent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable, predictable constraint names, so later migrations (and SQLite batch
# mode, which recreates tables) can refer to constraints by name.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

WRITE_STATES = ("applied", "pending", "failed")
RUN_MODES = ("incremental", "full")
RUN_OUTCOMES = ("running", "success", "failure", "guarded", "skipped")
CHANGE_ACTIONS = ("create", "update", "adopt", "delete", "mirror")
CHANGE_OUTCOMES = ("applied", "failed")

JOB_LENGTH = 128
PHONE_LENGTH = 32
LABEL_LENGTH = 16


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every engine.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so the value is
    stored as naive UTC and made aware again on the way out. Naive input is
    refused: a wall-clock time without a zone is a bug waiting for DST.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the mirror; use UTC")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({listed})"


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012 - SQLAlchemy reads it at class creation
        datetime: UtcDateTime(),
    }


class JobStateRow(Base):
    """Per-job memory that outlives runs: mapping fingerprint, last full resync,
    the mirror's generation and the quiet-tick key."""

    __tablename__ = "job_state"

    job: Mapped[str] = mapped_column(sa.String(JOB_LENGTH), primary_key=True)
    mapping_fingerprint: Mapped[str | None] = mapped_column(sa.String(128))
    last_full_resync_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    # Bumped by every write to this job's mirror rows (and by every probe): a
    # quiet key stored at generation g holds only while it is still g.
    mirror_generation: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    # The inputs of the last run that had nothing to do (vipexsync/sync/quiet.py).
    quiet_key: Mapped[str | None] = mapped_column(sa.String(128))
    quiet_generation: Mapped[int | None] = mapped_column(sa.Integer)
    quiet_report: Mapped[str | None] = mapped_column(sa.Text)


class MirrorEntryRow(Base):
    """The last confirmed write for one number of one job, and who owns it.

    ``content_hash`` is NULL exactly when no write was ever confirmed (then
    name, tags, comment and custom_fields are NULL too).
    """

    __tablename__ = "mirror_entries"
    __table_args__ = (
        sa.CheckConstraint(_one_of("state", WRITE_STATES), name="state"),
        sa.CheckConstraint("attempts >= 0", name="attempts"),
    )

    job: Mapped[str] = mapped_column(sa.String(JOB_LENGTH), primary_key=True)
    phonenumber: Mapped[str] = mapped_column(sa.String(PHONE_LENGTH), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.Text)
    tags: Mapped[list[str] | None] = mapped_column(_json())
    comment: Mapped[str | None] = mapped_column(sa.Text)
    custom_fields: Mapped[dict[str, str] | None] = mapped_column(_json())
    content_hash: Mapped[str | None] = mapped_column(sa.String(64))
    owned: Mapped[bool] = mapped_column(sa.Boolean)
    record_key: Mapped[str | None] = mapped_column(sa.Text)
    first_written_at: Mapped[datetime | None]
    last_written_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(sa.String(LABEL_LENGTH))
    attempts: Mapped[int] = mapped_column(sa.Integer)
    last_error: Mapped[str | None] = mapped_column(sa.Text)


class RunRow(Base):
    """One run of one job: what it was asked to do and how it ended."""

    __tablename__ = "runs"
    __table_args__ = (
        sa.CheckConstraint(_one_of("mode", RUN_MODES), name="mode"),
        sa.CheckConstraint(_one_of("outcome", RUN_OUTCOMES), name="outcome"),
        sa.Index("ix_runs_job_id", "job", "id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(sa.String(JOB_LENGTH))
    mode: Mapped[str] = mapped_column(sa.String(LABEL_LENGTH))
    dry_run: Mapped[bool] = mapped_column(sa.Boolean)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(sa.String(LABEL_LENGTH))
    counts: Mapped[dict[str, int]] = mapped_column(_json())
    guard: Mapped[dict[str, Any] | None] = mapped_column(_json())
    error: Mapped[str | None] = mapped_column(sa.Text)
    mapping_fingerprint: Mapped[str | None] = mapped_column(sa.String(128))
    report: Mapped[dict[str, Any] | None] = mapped_column(_json())


class ChangeRow(Base):
    """The audit log: one row per write attempted (or mirror row learnt)."""

    __tablename__ = "changes"
    __table_args__ = (
        sa.CheckConstraint(_one_of("action", CHANGE_ACTIONS), name="action"),
        sa.CheckConstraint(_one_of("outcome", CHANGE_OUTCOMES), name="outcome"),
        sa.Index("ix_changes_job_phonenumber", "job", "phonenumber"),
        sa.Index("ix_changes_run_id", "run_id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id", ondelete="SET NULL"))
    job: Mapped[str] = mapped_column(sa.String(JOB_LENGTH))
    phonenumber: Mapped[str] = mapped_column(sa.String(PHONE_LENGTH))
    action: Mapped[str] = mapped_column(sa.String(LABEL_LENGTH))
    before: Mapped[dict[str, Any] | None] = mapped_column(_json())
    after: Mapped[dict[str, Any] | None] = mapped_column(_json())
    outcome: Mapped[str] = mapped_column(sa.String(LABEL_LENGTH))
    reason: Mapped[str] = mapped_column(sa.Text)
    api_reason: Mapped[str | None] = mapped_column(sa.Text)
    at: Mapped[datetime]


OMISSION_RULES = ("keep", "clear", "unknown")


class WriteSemanticsRow(Base):
    """What ``vipexsync probe`` learnt of one subscription's write semantics.

    One row per VIPeX subscription (jobs on the same subscription share it);
    a new probe replaces it. ``steps`` keeps each step and VIPeX's answer.
    """

    __tablename__ = "write_semantics"
    __table_args__ = (
        sa.CheckConstraint(_one_of("omitted", OMISSION_RULES), name="omitted"),
        sa.CheckConstraint(
            "max_name_length IS NULL OR max_name_length > 0", name="max_name_length"
        ),
    )

    vipex_id: Mapped[str] = mapped_column(sa.String(JOB_LENGTH), primary_key=True)
    omitted: Mapped[str] = mapped_column(sa.String(LABEL_LENGTH))
    trims: Mapped[bool] = mapped_column(sa.Boolean)
    nfc: Mapped[bool] = mapped_column(sa.Boolean)
    max_name_length: Mapped[int | None] = mapped_column(sa.Integer)
    not_found_answer: Mapped[str] = mapped_column(sa.Text)
    phonenumber: Mapped[str] = mapped_column(sa.String(PHONE_LENGTH))
    probed_at: Mapped[datetime]
    steps: Mapped[list[str]] = mapped_column(_json())

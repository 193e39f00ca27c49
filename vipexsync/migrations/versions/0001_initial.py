"""The initial mirror schema: job_state, mirror_entries, runs, changes.

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "job_state",
        sa.Column("job", sa.String(128), nullable=False),
        sa.Column("mapping_fingerprint", sa.String(128), nullable=True),
        sa.Column("last_full_resync_at", _timestamp(), nullable=True),
        sa.Column("last_run_at", _timestamp(), nullable=True),
        sa.Column("updated_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_job_state")),
    )
    op.create_table(
        "mirror_entries",
        sa.Column("job", sa.String(128), nullable=False),
        sa.Column("phonenumber", sa.String(32), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("tags", _json(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("custom_fields", _json(), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=True),
        sa.Column("owned", sa.Boolean(), nullable=False),
        sa.Column("record_key", sa.Text(), nullable=True),
        sa.Column("first_written_at", _timestamp(), nullable=True),
        sa.Column("last_written_at", _timestamp(), nullable=True),
        sa.Column("last_seen_at", _timestamp(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('applied', 'pending', 'failed')", name=op.f("ck_mirror_entries_state")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_mirror_entries_attempts")),
        sa.PrimaryKeyConstraint("job", "phonenumber", name=op.f("pk_mirror_entries")),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(128), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("started_at", _timestamp(), nullable=False),
        sa.Column("finished_at", _timestamp(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("counts", _json(), nullable=False),
        sa.Column("guard", _json(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("mapping_fingerprint", sa.String(128), nullable=True),
        sa.Column("report", _json(), nullable=True),
        sa.CheckConstraint("mode IN ('incremental', 'full')", name=op.f("ck_runs_mode")),
        sa.CheckConstraint(
            "outcome IN ('running', 'success', 'failure', 'guarded', 'skipped')",
            name=op.f("ck_runs_outcome"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index("ix_runs_job_id", "runs", ["job", "id"], unique=False)
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("job", sa.String(128), nullable=False),
        sa.Column("phonenumber", sa.String(32), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("before", _json(), nullable=True),
        sa.Column("after", _json(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("api_reason", sa.Text(), nullable=True),
        sa.Column("at", _timestamp(), nullable=False),
        sa.CheckConstraint(
            "action IN ('create', 'update', 'adopt', 'delete', 'mirror')",
            name=op.f("ck_changes_action"),
        ),
        sa.CheckConstraint("outcome IN ('applied', 'failed')", name=op.f("ck_changes_outcome")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_changes_run_id_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
    )
    op.create_index("ix_changes_job_phonenumber", "changes", ["job", "phonenumber"], unique=False)
    op.create_index("ix_changes_run_id", "changes", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_changes_run_id", table_name="changes")
    op.drop_index("ix_changes_job_phonenumber", table_name="changes")
    op.drop_table("changes")
    op.drop_index("ix_runs_job_id", table_name="runs")
    op.drop_table("runs")
    op.drop_table("mirror_entries")
    op.drop_table("job_state")

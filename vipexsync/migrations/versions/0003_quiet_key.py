"""job_state: the mirror generation and the quiet-tick key (issue 13).

``mirror_generation`` is bumped by every write to a job's mirror rows (and by
every probe); ``quiet_key``/``quiet_generation``/``quiet_report`` remember
the last run that had nothing to do, so an identical next tick can skip
re-reading the source (see vipexsync/sync/quiet.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_state") as batch:
        batch.add_column(
            sa.Column("mirror_generation", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("quiet_key", sa.String(128), nullable=True))
        batch.add_column(sa.Column("quiet_generation", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("quiet_report", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_state") as batch:
        batch.drop_column("quiet_report")
        batch.drop_column("quiet_generation")
        batch.drop_column("quiet_key")
        batch.drop_column("mirror_generation")

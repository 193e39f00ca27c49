"""The write_semantics table: what `vipexsync probe` learnt per subscription.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "write_semantics",
        sa.Column("vipex_id", sa.String(128), nullable=False),
        sa.Column("omitted", sa.String(16), nullable=False),
        sa.Column("trims", sa.Boolean(), nullable=False),
        sa.Column("nfc", sa.Boolean(), nullable=False),
        sa.Column("max_name_length", sa.Integer(), nullable=True),
        sa.Column("not_found_answer", sa.Text(), nullable=False),
        sa.Column("phonenumber", sa.String(32), nullable=False),
        sa.Column("probed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("steps", sa.JSON(none_as_null=True), nullable=False),
        sa.CheckConstraint(
            "omitted IN ('keep', 'clear', 'unknown')", name=op.f("ck_write_semantics_omitted")
        ),
        sa.CheckConstraint(
            "max_name_length IS NULL OR max_name_length > 0",
            name=op.f("ck_write_semantics_max_name_length"),
        ),
        sa.PrimaryKeyConstraint("vipex_id", name=op.f("pk_write_semantics")),
    )


def downgrade() -> None:
    op.drop_table("write_semantics")

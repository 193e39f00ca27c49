"""Alembic migrations: they build exactly the models' schema, on both engines."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from vipexsync.mirror import database
from vipexsync.mirror.database import create_engine_for, current_revision, head_revision, upgrade
from vipexsync.mirror.models import Base

TABLES = {"alembic_version", "job_state", "mirror_entries", "runs", "changes", "write_semantics"}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine_for(db_url)
    yield engine
    engine.dispose()


def differences(engine: Engine, metadata: sa.MetaData) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def test_upgrade_builds_exactly_the_models(engine: Engine) -> None:
    upgrade(engine)
    assert set(sa.inspect(engine).get_table_names()) == TABLES
    assert differences(engine, Base.metadata) == []


def test_the_comparison_would_notice_a_drift(engine: Engine) -> None:
    """Guards the test above: a model the migration does not match is reported."""
    upgrade(engine)
    drifted = sa.MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    sa.Table("runs", drifted, sa.Column("extra", sa.Integer), extend_existing=True)
    found = differences(engine, drifted)
    assert [(d[0], d[3].name) for d in found if isinstance(d, tuple)] == [("add_column", "extra")]


def test_downgrade_to_base_and_back(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as conn:
        command.downgrade(database._alembic_config(conn), "base")
    assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert differences(engine, Base.metadata) == []


def test_constraint_names_follow_the_convention(engine: Engine) -> None:
    upgrade(engine)
    inspector = sa.inspect(engine)
    assert inspector.get_pk_constraint("mirror_entries")["constrained_columns"] == [
        "job",
        "phonenumber",
    ]
    assert {i["name"] for i in inspector.get_indexes("changes")} == {
        "ix_changes_job_phonenumber",
        "ix_changes_run_id",
    }
    assert [fk["name"] for fk in inspector.get_foreign_keys("changes")] == [
        "fk_changes_run_id_runs"
    ]
    checks = {c["name"] for c in inspector.get_check_constraints("mirror_entries")}
    assert checks == {"ck_mirror_entries_state", "ck_mirror_entries_attempts"}


def test_migrations_ship_in_the_package_and_need_no_alembic_ini(tmp_path: Path) -> None:
    """Run from a folder with no alembic.ini and no source tree on the path."""
    location = Path(database._script_location())
    assert (location / "env.py").is_file()
    assert (location / "versions" / "0001_initial.py").is_file()
    url = f"sqlite:///{tmp_path / 'db' / 'mirror.sqlite3'}"
    script = (
        "from vipexsync.mirror.database import *\n"
        f"e = create_engine_for({url!r})\n"
        "ensure_schema(e, auto_upgrade=True)\n"
        "print(current_revision(e))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == head_revision()


def test_a_database_at_head_is_checked_without_importing_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mirror.sqlite3'}"
    engine = create_engine_for(url)
    upgrade(engine)
    engine.dispose()
    script = (
        "import sys\n"
        "from vipexsync.mirror.database import create_engine_for, ensure_schema\n"
        f"ensure_schema(create_engine_for({url!r}), auto_upgrade=False)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"

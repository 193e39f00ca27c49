"""Engines and schema checks of the mirror database, on real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vipexsync.domain import Entry
from vipexsync.errors import DatabaseVersionError, MirrorError
from vipexsync.mirror import store
from vipexsync.mirror.database import (
    check_ready,
    create_engine_for,
    current_revision,
    ensure_schema,
    head_revision,
    make_session_factory,
    upgrade,
)

FUTURE = "9999_from_a_newer_vipexsync"
UNREACHABLE = "postgresql+psycopg://vipex:Sup3rSecretPw@127.0.0.1:1/mirror"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine_for(db_url)
    yield engine
    engine.dispose()


def test_sqlite_folder_created_and_pragmas_in_effect(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "there" / "mirror.sqlite3"
    engine = create_engine_for(f"sqlite:///{path}")
    try:
        assert path.parent.is_dir()
        with engine.connect() as conn:
            pragma = conn.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == 10000
            assert pragma("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert path.exists()
    finally:
        engine.dispose()


def test_sqlite_foreign_keys_are_enforced(sqlite_url: str) -> None:
    engine = create_engine_for(sqlite_url)
    try:
        upgrade(engine)
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO changes (run_id, job, phonenumber, action, outcome, reason, at) "
                "VALUES (12345, 'j', '36', 'create', 'applied', 'r', '2024-01-01 00:00:00')"
            )
    finally:
        engine.dispose()


def test_two_sqlite_writers_wait_instead_of_failing(sqlite_url: str) -> None:
    """Read-then-write transactions from two engines on one file, interleaved.

    With deferred transactions the second writer's stale snapshot fails at once
    with "database is locked"; BEGIN IMMEDIATE plus busy_timeout makes it wait.
    """
    first = create_engine_for(sqlite_url)
    upgrade(first)
    second = create_engine_for(sqlite_url)
    errors: list[BaseException] = []
    start = threading.Barrier(2)
    now = datetime(2024, 1, 1, tzinfo=UTC)

    def writer(engine: Engine, prefix: str) -> None:
        sessions = make_session_factory(engine)
        try:
            start.wait()
            for i in range(40):
                with sessions() as s:
                    size = len(store.load_mirror(s, "job"))
                    number = f"{prefix}{i:04d}"
                    store.record_applied(
                        s,
                        job="job",
                        run_id=None,
                        action="create",
                        phonenumber=number,
                        before=None,
                        written=Entry(number, f"seen {size}"),
                        record_key=None,
                        reason="r",
                        now=now,
                    )
                    s.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=writer, args=(first, "361")),
        threading.Thread(target=writer, args=(second, "362")),
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with make_session_factory(first)() as s:
            assert len(store.load_mirror(s, "job")) == 80
    finally:
        first.dispose()
        second.dispose()


def test_ensure_schema_upgrades_an_empty_database(engine: Engine) -> None:
    assert current_revision(engine) is None
    assert check_ready(engine) == f"mirror database schema empty, needs {head_revision()}"
    ensure_schema(engine, auto_upgrade=True)
    assert current_revision(engine) == head_revision()
    assert check_ready(engine) is None
    ensure_schema(engine, auto_upgrade=False)  # at head: nothing to do, no error
    ensure_schema(engine, auto_upgrade=True)
    assert current_revision(engine) == head_revision()


def test_ensure_schema_without_auto_upgrade_asks_for_db_upgrade(engine: Engine) -> None:
    with pytest.raises(MirrorError, match=r"is empty.*Run `vipexsync db upgrade`"):
        ensure_schema(engine, auto_upgrade=False)
    assert current_revision(engine) is None


def test_future_revision_is_refused_with_both_revisions_named(engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE})
    calls: list[Callable[[], object]] = [
        lambda: ensure_schema(engine, auto_upgrade=True),
        lambda: ensure_schema(engine, auto_upgrade=False),
        lambda: upgrade(engine),
    ]
    for call in calls:
        with pytest.raises(DatabaseVersionError) as caught:
            call()
        message = str(caught.value)
        assert FUTURE in message
        assert repr(head_revision()) in message
        assert "Upgrade vipexsync" in message
    assert check_ready(engine) == f"mirror database schema at {FUTURE}, needs {head_revision()}"
    with engine.connect() as conn:  # nothing was touched
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        assert version == FUTURE


def test_unreachable_postgres_is_a_mirror_error_without_the_password() -> None:
    engine = create_engine_for(UNREACHABLE)
    try:
        calls: list[Callable[[], object]] = [
            lambda: ensure_schema(engine, auto_upgrade=True),
            lambda: upgrade(engine),
            lambda: current_revision(engine),
        ]
        for call in calls:
            with pytest.raises(MirrorError) as caught:
                call()
            message = str(caught.value)
            assert "Sup3rSecretPw" not in message
            assert "vipex:***@127.0.0.1:1/mirror" in message
        problem = check_ready(engine)
        assert problem is not None
        assert "Sup3rSecretPw" not in problem
    finally:
        engine.dispose()


def test_bad_urls_are_mirror_errors() -> None:
    with pytest.raises(MirrorError, match="not a valid database URL") as caught:
        create_engine_for("::not a url:: password=hunter2")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(MirrorError, match="unsupported database 'mysql'") as caught:
        create_engine_for("mysql://root:hunter2@localhost/db")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(MirrorError, match="psycopg"):
        create_engine_for("postgresql+pg8000://u@localhost/db")


def test_plain_postgresql_url_uses_psycopg() -> None:
    engine = create_engine_for("postgresql://u:pw@localhost/db")
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_unwritable_sqlite_folder_is_a_mirror_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(MirrorError, match="cannot create the folder"):
        create_engine_for(f"sqlite:///{blocker}/sub/mirror.sqlite3")

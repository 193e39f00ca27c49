"""Fixtures shared by every tier: the emulator over real HTTP, and databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_ENV = "VIPEXSYNC_TEST_POSTGRES_URL"


@pytest.fixture
def emulator() -> Iterator[object]:
    """The bundled VIPeX emulator on a free loopback port, in a thread.

    Yields a ``vipexsync.emulator.server.RunningEmulator`` (``url``,
    ``username``, ``password``, ``state``, ``faults``, ``app``).
    """
    from vipexsync.emulator.server import serve_in_thread

    with serve_in_thread() as running:
        yield running


def postgres_base_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose schema (search_path) is fresh and dropped afterwards.

    Skips with a clear reason when ``$VIPEXSYNC_TEST_POSTGRES_URL`` is unset.
    """
    base = postgres_base_url()
    if base is None:
        pytest.skip(f"${POSTGRES_ENV} is not set; PostgreSQL tests need a server (see .ci/run)")
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mirror.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on both engines."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mirror.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))

"""Fixtures shared by every tier: the emulator over real HTTP, and databases."""

from __future__ import annotations

import os
import re
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import support

POSTGRES_ENV = "VIPEXSYNC_TEST_POSTGRES_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--emulator-omitted",
        choices=("keep", "clear"),
        default=None,
        help="what every test emulator does with a field set_phonebook_entry is not sent "
        f"(default: ${support.OMITTED_ENV}, else keep)",
    )


def pytest_configure(config: pytest.Config) -> None:
    chosen = config.getoption("--emulator-omitted")
    if chosen is not None:
        os.environ[support.OMITTED_ENV] = chosen


def pytest_report_header(config: pytest.Config) -> str:
    return f"emulator omitted fields: {support.emulator_omitted()}"


@pytest.fixture(autouse=True, scope="session")
def _emulator_world() -> Iterator[None]:
    """Every emulator a test starts plays the omission world chosen for the run."""
    from vipexsync.emulator import semantics

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(semantics, "DEFAULT", semantics.Semantics(omitted=support.emulator_omitted()))
        yield


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


_SESSION_DB = re.compile(r"_s(\d+)$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def postgres_session_url() -> Iterator[str | None]:
    """The PostgreSQL database of this pytest session: ``<database>_s<pid>``, dropped after.

    Advisory locks (one per job name) are database-wide, so two pytest
    sessions on one server (``make test`` runs its two passes side by side)
    would take each other's job locks; a database of their own keeps them
    apart. Databases left by a killed session are dropped here. A role that
    may not create databases uses the named database itself, with a warning.
    """
    base = postgres_base_url()
    if base is None:
        yield None
        return
    import sqlalchemy as sa

    url = sa.make_url(base)
    name = f"{url.database}_s{os.getpid()}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for (stale,) in conn.execute(
                sa.text("SELECT datname FROM pg_database WHERE datname LIKE :pattern"),
                {"pattern": f"{url.database}\\_s%"},
            ):
                found = _SESSION_DB.search(stale)
                if found and stale.startswith(url.database) and not _pid_alive(int(found[1])):
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.DBAPIError as exc:
        warnings.warn(
            f"cannot create the session database {name} ({exc.orig}); the PostgreSQL tests "
            f"use {url.database} itself, so two pytest sessions at once would share job locks",
            stacklevel=1,
        )
        admin.dispose()
        yield base
        return
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_session_url: str | None) -> Iterator[str]:
    """A PostgreSQL URL whose schema (search_path) is fresh and dropped afterwards.

    Skips with a clear reason when ``$VIPEXSYNC_TEST_POSTGRES_URL`` is unset.
    """
    base = postgres_session_url
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


@pytest.fixture
def job_files(tmp_path: Path) -> Callable[..., Path]:
    """Writes crm.csv, vipex-password and vipexsync.toml into tmp_path; returns the config path.

    Keyword arguments override the defaults of JOB_TOML; ``rows`` is the CRM.
    """

    def make(emulator: Any, rows: list[dict[str, str]], **overrides: object) -> Path:
        support.write_crm(tmp_path / "crm.csv", rows)
        secret = tmp_path / "vipex-password"
        secret.write_text(str(emulator.password) + "\n", encoding="utf-8")
        secret.chmod(0o600)
        values: dict[str, object] = {
            "url": emulator.url,
            "username": emulator.username,
            "timeout": 5,
            "concurrency": 4,
            "retry_deadline": 5,
            "database": f"sqlite:///{tmp_path / 'mirror.sqlite3'}",
            "job": "crm",
            "vipex_id": emulator.vipex_id,
            "ownership_tag": "crm-sync",
            "delete": "owned",
            "max_deletes": 100,
            "max_delete_ratio": 1.0,
            "min_source_records": 1,
            "custom_fields": "",
        }
        stated = str(
            overrides.pop(
                "write_semantics", support.stated_semantics_for(support.emulator_omitted())
            )
        )
        values.update(overrides)
        config = tmp_path / "vipexsync.toml"
        text = support.with_write_semantics(support.JOB_TOML.format(**values), stated)
        config.write_text(text, encoding="utf-8")
        return config

    return make


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real Radicale CardDAV server (subprocess, free loopback port, htpasswd auth).

    Yields a ``radicale_server.RunningRadicale``; one per test module, so each
    test makes its own address book with ``make_book()``. Skips, with
    Radicale's own words, where Radicale cannot start.
    """
    import contextlib

    from radicale_server import PASSWORD, USER, RadicaleUnavailable, start_radicale

    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(
                start_radicale(tmp_path_factory.mktemp("radicale"), USER, PASSWORD)
            )
        except RadicaleUnavailable as exc:
            pytest.skip(f"Radicale cannot start here: {exc}")
        yield server

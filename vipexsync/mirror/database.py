"""Engines, sessions and schema migrations for the mirror database.

SQLite is the embedded default and PostgreSQL (psycopg 3) the production/HA
choice. Migrations ship inside the package (``vipexsync.migrations``) and run
programmatically, so an installed daemon can upgrade its own database without
an alembic.ini. Every failure leaves here as a :class:`MirrorError` whose text
names the database by its URL *without* the password.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from vipexsync import __version__
from vipexsync.errors import DatabaseVersionError, MirrorError, VipexSyncError
from vipexsync.mirror.lean import HEAD_REVISION, SQLITE_PRAGMAS

if TYPE_CHECKING:
    # Alembic is imported where a migration or its scripts are needed: a run
    # against a database already at head never needs it (~10 MB of a run's
    # peak memory, see bench/RESULTS.md).
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# A transaction opened with this execution option starts with a plain (deferred)
# BEGIN on SQLite: for short read-only checks that must not queue behind writers.
READ_ONLY_OPTION = "vipexsync_read_only"
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
# Serialises concurrent `upgrade` calls (two replicas starting at once) on PostgreSQL.
_MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.blake2b(b"vipexsync-schema-migration", digest_size=8).digest(), "big", signed=True
)


def create_engine_for(url: str) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, set up the way the mirror needs."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        # Not echoed back: an unparsable URL may still hold a password.
        raise MirrorError(
            "the [database] url is not a valid database URL; use "
            "sqlite:////path/to/mirror.sqlite3 or postgresql+psycopg://user@host/db"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        return _postgres_engine(parsed)
    raise MirrorError(
        f"unsupported database {backend!r} in [database] url "
        f"({parsed.render_as_string(hide_password=True)}); use sqlite or postgresql+psycopg"
    )


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        folder = Path(database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MirrorError(
                f"cannot create the folder {folder} for the SQLite mirror database: "
                f"{exc.strerror or exc}. Create it, or fix the permissions or [database] url"
            ) from exc
    engine = sa.create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so "begin" below decides it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so busy_timeout applies; a
        # deferred transaction that later writes fails at once on contention.
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: URL) -> Engine:
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    elif url.get_driver_name() != "psycopg":
        raise MirrorError(
            f"unsupported PostgreSQL driver {url.get_driver_name()!r} in [database] url; "
            "use postgresql+psycopg://"
        )
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_SECONDS
    return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose loaded values stay usable after the caller commits."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def safe_url(engine: Engine) -> str:
    """The engine's URL for messages and logs: never with the password."""
    return engine.url.render_as_string(hide_password=True)


def _describe(exc: BaseException, engine: Engine) -> str:
    """One short line about a database error, scrubbed of the password."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    line = " ".join(text.splitlines()[0].split()) if text else type(exc).__name__
    password = engine.url.password
    if password:
        line = line.replace(str(password), "***")
    return line[:300]


def _script_location() -> str:
    location = str(importlib.resources.files("vipexsync.migrations"))
    # Config values go through ConfigParser interpolation: escape '%'.
    return location.replace("%", "%%")


def _alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", _script_location())
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


@functools.cache
def _known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _script().walk_revisions())


def head_revision() -> str:
    """The newest schema revision this vipexsync knows."""
    head = _script().get_current_head()
    if head is None:
        raise MirrorError(
            "no database migrations found in the vipexsync.migrations package; "
            "the installation is incomplete, reinstall vipexsync"
        )
    return head


def _revision_of(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _at_known_head(engine: Engine) -> bool:
    """Whether the database is stamped with exactly this vipexsync's newest
    revision, read with plain SQL (no Alembic import). Any doubt (no version
    table, another revision, an error) answers False: the caller then asks
    Alembic, which says what is wrong."""
    try:
        with engine.connect() as connection:
            connection.execution_options(**{READ_ONLY_OPTION: True})
            if not sa.inspect(connection).has_table("alembic_version"):
                return False
            stamped = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            return list(stamped.scalars()) == [HEAD_REVISION]
    except SQLAlchemyError:
        return False


def current_revision(engine: Engine) -> str | None:
    """The schema revision stamped in the database; None for an empty database."""
    try:
        with engine.connect() as connection:
            connection.execution_options(**{READ_ONLY_OPTION: True})
            return _revision_of(connection)
    except SQLAlchemyError as exc:
        raise MirrorError(
            f"cannot reach the mirror database at {safe_url(engine)}: "
            f"{_describe(exc, engine)}. Check [database] url, that the server is "
            "running and that the credentials are right"
        ) from exc


def _require_known(engine: Engine, current: str | None) -> None:
    if current is not None and current not in _known_revisions():
        raise DatabaseVersionError(
            f"the mirror database at {safe_url(engine)} is at schema revision {current!r}, "
            f"which this vipexsync {__version__} does not know (its newest is "
            f"{head_revision()!r}); a newer vipexsync migrated it. Upgrade vipexsync "
            "(or point [database] url at another database)"
        )


def upgrade(engine: Engine) -> None:
    """Migrate the database to this vipexsync's newest revision (alembic upgrade head)."""
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            _require_known(engine, _revision_of(connection))
            from alembic import command

            command.upgrade(_alembic_config(connection), "head")
    except VipexSyncError:
        raise
    except SQLAlchemyError as exc:
        raise MirrorError(
            f"migrating the mirror database at {safe_url(engine)} failed: "
            f"{_describe(exc, engine)}. Nothing was changed; check [database] url "
            "and that the user may create tables"
        ) from exc


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> None:
    """Make sure the database is at head before a run touches it."""
    if _at_known_head(engine):
        return
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    _require_known(engine, current)
    if not auto_upgrade:
        state = "empty" if current is None else f"at schema revision {current!r}"
        raise MirrorError(
            f"the mirror database at {safe_url(engine)} is {state}; this vipexsync needs "
            f"revision {head!r}. Run `vipexsync db upgrade` "
            "(or set [database] auto_upgrade = true)"
        )
    upgrade(engine)


def check_ready(engine: Engine) -> str | None:
    """None when the database answers and is at head, else why not (for /readyz)."""
    try:
        current = current_revision(engine)
        head = head_revision()
    except MirrorError:
        return "mirror database unreachable"
    if current != head:
        shown = "empty" if current is None else f"at {current}"
        return f"mirror database schema {shown}, needs {head}"
    return None

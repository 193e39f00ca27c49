"""SQL source: the rows of a configured query against any SQLAlchemy database.

Config keys (``[jobs.source]`` with ``type = "sql"``):

``url``
    A SQLAlchemy URL, e.g. ``postgresql+psycopg://crm_reader@db/crm`` or
    ``sqlite:////var/lib/crm/crm.sqlite3``. Give the password through the
    URL only if you must; it is never shown in messages.
``query``
    The SELECT to run. Column labels become the field names (use ``AS`` to
    rename); parameters are written ``:name``.
``key``
    The column label holding the CRM's stable record id; it must be in the
    result.
``params`` (default ``{}``)
    A table of scalars bound to the query's ``:name`` parameters (bound, never
    formatted into the SQL text).

The query runs read-only: inside a transaction that is always rolled back,
declared ``READ ONLY`` on PostgreSQL, and on SQLite the file is opened with
``mode=ro`` plus ``PRAGMA query_only``. NULL becomes "", numbers plain digits,
dates and times ISO 8601.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from vipexsync.config import SqlSourceConfig, redact_database_url
from vipexsync.errors import SourceError
from vipexsync.sources.base import SourceRecord, clean_value

_YIELD_PER = 1000


def _read_only_sqlite(url: URL) -> URL:
    """Open an SQLite file through a ``mode=ro`` URI, so nothing can be written.

    It also stops SQLite from creating an empty database at a wrong path.
    """
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return url
    if url.query.get("uri") in ("true", "1"):
        return url
    uri_path = urllib.parse.quote(database, safe="/:")
    return url.set(database=f"file:{uri_path}").update_query_dict({"mode": "ro", "uri": "true"})


def to_text(value: object) -> str:
    """One database value as the string the mapping sees."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))  # a number stored as REAL: no "1.0"
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")  # the column's own scale, never an exponent
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8")  # UnicodeDecodeError is reported by the caller
    return str(value)


class SqlSource:
    """Streams the rows of a read-only query as records."""

    def __init__(self, cfg: SqlSourceConfig) -> None:
        self._cfg = cfg
        self.description = f"sql database {redact_database_url(cfg.url)}"

    def _fail(self, what: str, exc: BaseException) -> SourceError:
        detail = str(exc.orig) if isinstance(exc, DBAPIError) and exc.orig else str(exc)
        detail = " ".join(detail.split())
        try:
            password = make_url(self._cfg.url).password
        except ArgumentError:
            password = None
        if password:
            detail = detail.replace(str(password), "***")
        return SourceError(
            f"{self.description}: {what} failed: {detail}. "
            "Check the source's `url`, `query` and `params`, and that the database is reachable"
        )

    def read(self) -> Iterator[SourceRecord]:
        cfg = self._cfg
        try:
            url = make_url(cfg.url)
        except ArgumentError:
            raise SourceError(
                f"{self.description}: the source's `url` is not a valid SQLAlchemy URL; "
                "write it like postgresql+psycopg://user@host/dbname"
            ) from None
        if url.get_backend_name() == "sqlite":
            url = _read_only_sqlite(url)
        try:
            statement = sa.text(cfg.query).bindparams(**dict(cfg.params))
        except ArgumentError as exc:
            raise SourceError(
                f"{self.description}: the source's `params` do not fit the query ({exc}); "
                "every key in `params` must appear in `query` as :name"
            ) from None
        try:
            engine = sa.create_engine(url, poolclass=NullPool)
        except (SQLAlchemyError, ImportError) as exc:
            raise self._fail("setting up the database driver", exc) from None
        try:
            with engine.connect() as conn:
                transaction = conn.begin()
                try:
                    yield from self._rows(conn, statement)
                finally:
                    transaction.rollback()  # read-only by construction: nothing to keep
        except SQLAlchemyError as exc:
            raise self._fail("the query", exc) from None
        finally:
            engine.dispose()

    def _rows(self, conn: Connection, statement: sa.TextClause) -> Iterator[SourceRecord]:
        dialect = conn.dialect.name
        if dialect == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        elif dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA query_only = ON")
        result = conn.execution_options(stream_results=True, yield_per=_YIELD_PER).execute(
            statement
        )
        if not result.returns_rows:
            raise SourceError(
                f"{self.description}: the query returns no rows; the source's `query` must "
                "be a SELECT"
            )
        columns = list(result.keys())
        self._check_columns(columns)
        key_index = columns.index(self._cfg.key)
        for number, row in enumerate(result, start=1):
            yield self._record(columns, key_index, row, f"row {number}")

    def _check_columns(self, columns: Sequence[str]) -> None:
        key = self._cfg.key
        if key not in columns:
            raise SourceError(
                f"{self.description}: the key column {key!r} is not in the query's result; "
                f"columns: {', '.join(map(repr, columns)) or '(none)'}. "
                "Fix the source's `key`, or label the column with AS in `query`"
            )
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        if dupes:
            raise SourceError(
                f"{self.description}: the query returns the column(s) "
                f"{', '.join(map(repr, dupes))} more than once; give each a distinct label "
                "with AS"
            )

    def _record(
        self, columns: Sequence[str], key_index: int, row: Sequence[Any], locator: str
    ) -> SourceRecord:
        fields: Mapping[str, str]
        try:
            fields = {c: clean_value(to_text(v)) for c, v in zip(columns, row, strict=True)}
        except UnicodeDecodeError:
            raise SourceError(
                f"{self.description}: {locator} has a binary value that is not UTF-8 text; "
                "cast it to text in `query`"
            ) from None
        return SourceRecord(key=fields[columns[key_index]], fields=fields, locator=locator)

"""SQL source against real SQLite files and the real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from vipexsync.config import SqlSourceConfig
from vipexsync.errors import SourceError
from vipexsync.sources import open_source
from vipexsync.sources.sql_source import SqlSource

CREATE = """
CREATE TABLE contacts (
    id INTEGER PRIMARY KEY,
    name VARCHAR(100),
    phone VARCHAR(40),
    balance NUMERIC(10, 2),
    since DATE,
    active BOOLEAN,
    segment VARCHAR(20)
)
"""

ROWS = [
    {
        "id": 1,
        "name": " Őri Ádám ",
        "phone": "+36 1 234 5678",
        "balance": "12.50",
        "since": dt.date(2020, 1, 31),
        "active": True,
        "segment": "vip",
    },
    {
        "id": 2,
        "name": "Kovács Éva",
        "phone": None,
        "balance": "7.00",
        "since": None,
        "active": False,
        "segment": "vip",
    },
    {
        "id": 3,
        "name": "Other",
        "phone": "+3630",
        "balance": None,
        "since": None,
        "active": True,
        "segment": "basic",
    },
]

QUERY = (
    "SELECT id, name AS full_name, phone, balance, since, active FROM contacts "
    "WHERE segment = :segment ORDER BY id"
)


def populate(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(CREATE))
        conn.execute(
            sa.text(
                "INSERT INTO contacts (id, name, phone, balance, since, active, segment) "
                "VALUES (:id, :name, :phone, :balance, :since, :active, :segment)"
            ),
            ROWS,
        )
    engine.dispose()


def count_rows(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM contacts")).scalar_one()
    engine.dispose()
    return int(n)


@pytest.fixture
def crm_url(db_url: str) -> str:
    populate(db_url)
    return db_url


def test_reads_rows_with_bound_parameter_and_plain_string_values(crm_url: str) -> None:
    cfg = SqlSourceConfig(url=crm_url, query=QUERY, key="id", params={"segment": "vip"})

    records = list(open_source(cfg).read())

    assert [r.key for r in records] == ["1", "2"]
    assert [r.locator for r in records] == ["row 1", "row 2"]
    postgres = crm_url.startswith("postgresql")
    assert records[0].fields == {
        "id": "1",
        "full_name": "Őri Ádám",
        "phone": "+36 1 234 5678",
        # NUMERIC(10, 2): PostgreSQL keeps the scale; SQLite stores a REAL/INTEGER.
        "balance": "12.50" if postgres else "12.5",
        "since": "2020-01-31",
        "active": "true" if postgres else "1",
    }
    assert records[1].fields == {
        "id": "2",
        "full_name": "Kovács Éva",
        "phone": "",
        "balance": "7.00" if postgres else "7",
        "since": "",
        "active": "false" if postgres else "0",
    }


def test_parameter_value_is_bound_not_formatted(crm_url: str) -> None:
    cfg = SqlSourceConfig(url=crm_url, query=QUERY, key="id", params={"segment": "vip' OR '1'='1"})

    assert list(open_source(cfg).read()) == []


def test_write_statement_fails_because_the_transaction_is_read_only(crm_url: str) -> None:
    """A SELECT that writes (through a function on PostgreSQL) is refused."""
    if crm_url.startswith("postgresql"):
        engine = sa.create_engine(crm_url)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE FUNCTION sneaky_delete(target integer) RETURNS integer AS "
                    "'DELETE FROM contacts WHERE id = target RETURNING id' LANGUAGE sql"
                )
            )
        engine.dispose()
        query, refusal = "SELECT sneaky_delete(:id) AS id", "read-only transaction"
    else:
        query, refusal = "DELETE FROM contacts WHERE id = :id RETURNING id", "readonly database"
    cfg = SqlSourceConfig(url=crm_url, query=query, key="id", params={"id": 1})

    with pytest.raises(SourceError, match=refusal):
        list(open_source(cfg).read())

    assert count_rows(crm_url) == 3


def test_missing_key_column_lists_the_columns(crm_url: str) -> None:
    cfg = SqlSourceConfig(url=crm_url, query="SELECT id, name FROM contacts", key="crm_id")

    with pytest.raises(SourceError) as info:
        list(open_source(cfg).read())

    assert "'crm_id'" in str(info.value)
    assert "'id', 'name'" in str(info.value)


def test_sql_error_is_a_source_error(crm_url: str) -> None:
    cfg = SqlSourceConfig(url=crm_url, query="SELECT id FROM no_such_table", key="id")

    with pytest.raises(SourceError, match="no_such_table"):
        list(open_source(cfg).read())


def test_null_key_gives_empty_key(crm_url: str) -> None:
    cfg = SqlSourceConfig(
        url=crm_url, query="SELECT phone AS ref, name FROM contacts ORDER BY id", key="ref"
    )

    assert [r.key for r in open_source(cfg).read()] == ["+36 1 234 5678", "", "+3630"]


def test_unknown_param_is_a_source_error(crm_url: str) -> None:
    cfg = SqlSourceConfig(url=crm_url, query=QUERY, key="id", params={"segmnet": "vip"})

    with pytest.raises(SourceError, match="`params`"):
        list(open_source(cfg).read())


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "absent.sqlite3"
    cfg = SqlSourceConfig(url=f"sqlite:///{path}", query="SELECT 1 AS id", key="id")

    with pytest.raises(SourceError, match="query failed"):
        list(open_source(cfg).read())

    assert not path.exists()


def test_sqlite_integral_real_has_no_fraction(tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id REAL, phone REAL, blob BLOB)")
        conn.execute("INSERT INTO t VALUES (5.0, 36301234567.0, ?)", ("Ű".encode(),))
    conn.close()
    cfg = SqlSourceConfig(url=f"sqlite:///{path}", query="SELECT * FROM t", key="id")

    [record] = list(open_source(cfg).read())

    assert record.fields == {"id": "5", "phone": "36301234567", "blob": "Ű"}


@pytest.mark.postgres
def test_postgres_unreachable_message_hides_password() -> None:
    url = "postgresql+psycopg://crm:s3cr3t-pw@127.0.0.1:1/crm"
    source = SqlSource(SqlSourceConfig(url=url, query="SELECT 1 AS id", key="id"))

    with pytest.raises(SourceError) as info:
        list(source.read())

    assert "s3cr3t-pw" not in str(info.value)
    assert "s3cr3t-pw" not in source.description
    assert "crm:***@127.0.0.1:1/crm" in str(info.value)


def test_invalid_url_is_a_source_error() -> None:
    cfg = SqlSourceConfig(url="not a url", query="SELECT 1", key="id")

    with pytest.raises(SourceError, match="not a valid SQLAlchemy URL"):
        list(open_source(cfg).read())


def test_streams_many_rows(tmp_path: Path) -> None:
    path = tmp_path / "many.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(2500)])
    conn.close()
    cfg = SqlSourceConfig(url=f"sqlite:///{path}", query="SELECT id FROM t ORDER BY id", key="id")

    keys = [r.key for r in open_source(cfg).read()]

    assert keys == [str(i) for i in range(2500)]

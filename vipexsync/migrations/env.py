"""Alembic environment for the mirror database.

vipexsync runs migrations programmatically (``vipexsync.mirror.database``): it
passes an open connection in ``config.attributes["connection"]`` and owns the
transaction. Developers may also run the ``alembic`` command with the root
alembic.ini; the URL then comes from ``-x url=...``, ``$VIPEXSYNC_DATABASE_URL``
or ``sqlalchemy.url``, in that order.
"""

from __future__ import annotations

import logging.config
import os

from alembic import context
from sqlalchemy.engine import Connection

from vipexsync.mirror.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _developer_url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("VIPEXSYNC_DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise SystemExit(
            "no database URL: pass -x url=..., set $VIPEXSYNC_DATABASE_URL, "
            "or run `vipexsync db upgrade` with a configuration file"
        )
    return url


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (``alembic upgrade head --sql``)."""
    context.configure(
        url=_developer_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        # Called by vipexsync: the caller owns the connection and the transaction.
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    if config.config_file_name is not None:
        logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)
    from vipexsync.mirror.database import create_engine_for

    engine = create_engine_for(_developer_url())
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

"""Job locks: a second process on the same job skips (DESIGN invariant 7).

SQLite: an exclusive, non-blocking ``flock`` on ``<db file>.<job>.lock`` beside
the database. The kernel drops it when the holder's file is closed or the
process dies, however it dies.

PostgreSQL: a session-level advisory lock taken on a dedicated connection (a
``NullPool`` engine, never the pool the store uses, so returning a pooled
connection cannot drop or leak it). It lasts until ``release()`` or until the
session ends, which is how a killed replica lets go. The connection runs in
autocommit so it never idles inside a transaction (which
``idle_in_transaction_session_timeout`` could kill, taking the lock along).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from vipexsync.errors import LockHeldError, MirrorError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

# SQLAlchemy is imported where a PostgreSQL lock needs it: a one-shot quiet tick
# on SQLite takes its file lock without paying for the import (issue 13).

log = logging.getLogger(__name__)


class JobLock(Protocol):
    """Exclusive right to run one job, across processes and hosts sharing a database."""

    @property
    def job(self) -> str: ...

    @property
    def where(self) -> str:
        """Which lock this is and, after a failed acquire, who holds it (for messages)."""
        ...

    def acquire(self) -> bool:
        """Take the lock without waiting; False if another holder has it."""
        ...

    def release(self) -> None:
        """Let go; harmless when not held."""
        ...

    def still_held(self) -> bool:
        """False once the lock may have been lost (e.g. the database connection died)."""
        ...


def job_lock(database_url: str, job: str) -> JobLock:
    """The lock that fits the mirror database: a file lock or an advisory lock."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(database_url)
    except Exception as exc:
        raise MirrorError(
            "cannot lock the job: [database] url is not a valid database URL; "
            "see the example configuration for the sqlite:/// and postgresql+psycopg:// forms"
        ) from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            return ProcessJobLock(job)
        return FileJobLock(Path(database), job)
    if backend == "postgresql":
        return PostgresJobLock(url, job)
    raise MirrorError(
        f"cannot lock job {job!r}: database backend {backend!r} is not supported; "
        "use sqlite or postgresql"
    )


@contextlib.contextmanager
def hold(lock: JobLock) -> Iterator[JobLock]:
    """Run the body holding ``lock``, or raise :class:`LockHeldError` (exit 4)."""
    if not lock.acquire():
        raise LockHeldError(lock.job, lock.where)
    try:
        yield lock
    finally:
        lock.release()


def advisory_key(job: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock(bigint)``."""
    digest = hashlib.blake2b(f"vipexsync:{job}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def lock_file_path(database: Path, job: str) -> Path:
    """``<db file>.<job>.lock``; odd characters are replaced and a hash keeps names apart."""
    safe = _SAFE.sub("_", job)
    if safe != job or not job:
        safe = f"{safe}-{hashlib.blake2b(job.encode(), digest_size=4).hexdigest()}"
    return database.with_name(f"{database.name}.{safe}.lock")


class FileJobLock:
    """An exclusive ``flock`` on a file beside the SQLite database."""

    def __init__(self, database: Path, job: str) -> None:
        self._job = job
        self.path = lock_file_path(database.absolute(), job)
        self._fd: int | None = None
        self._holder = ""

    @property
    def job(self) -> str:
        return self._job

    @property
    def where(self) -> str:
        held_by = f", held by {self._holder}" if self._holder else ""
        return f"lock file {self.path}{held_by}"

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise MirrorError(
                f"cannot open the lock file {self.path} for job {self._job!r}: "
                f"{exc.strerror or exc}; check that the database directory exists "
                "and is writable"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._holder = _read_holder(fd)
            os.close(fd)
            return False
        except OSError as exc:
            os.close(fd)
            raise MirrorError(
                f"cannot lock {self.path} for job {self._job!r}: {exc.strerror or exc}"
            ) from exc
        self._fd = fd
        self._holder = ""
        _write_holder(fd)
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            # Closing drops the flock; the file stays, as deleting it would race.
            os.close(fd)

    def still_held(self) -> bool:
        """Held while our descriptor is locked and the path still names that very file.

        If the lock file was removed or replaced (a cleanup job, a hand), another
        process can lock a new file at the same path: our flock no longer
        excludes anyone, so the lock counts as lost.
        """
        if self._fd is None:
            return False
        try:
            mine = os.fstat(self._fd)
            there = self.path.stat()
        except OSError:
            return False
        return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def _write_holder(fd: int) -> None:
    """Note who holds the lock, so the skipped process can say so."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    except OSError:
        log.debug("could not note the holder in the lock file", exc_info=True)


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""


class ProcessJobLock:
    """For an in-memory SQLite database, which no other process can share."""

    _held: ClassVar[set[str]] = set()
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, job: str) -> None:
        self._job = job
        self._mine = False

    @property
    def job(self) -> str:
        return self._job

    @property
    def where(self) -> str:
        return "an in-process lock (in-memory database)"

    def acquire(self) -> bool:
        with self._guard:
            if self._mine:
                return True
            if self._job in self._held:
                return False
            self._held.add(self._job)
            self._mine = True
            return True

    def release(self) -> None:
        with self._guard:
            if self._mine:
                self._held.discard(self._job)
                self._mine = False

    def still_held(self) -> bool:
        return self._mine


_HOLDER_SQL = """
    SELECT l.pid, a.application_name, host(a.client_addr) AS client_addr
    FROM pg_locks AS l LEFT JOIN pg_stat_activity AS a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = CAST(:classid AS oid) AND l.objid = CAST(:objid AS oid)
      AND l.objsubid = 1
    """


class PostgresJobLock:
    """A session advisory lock on a dedicated, unpooled connection."""

    def __init__(self, url: URL, job: str) -> None:
        self._job = job
        self._url = url
        self.key = advisory_key(job)
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._holder = ""

    @property
    def job(self) -> str:
        return self._job

    @property
    def safe_url(self) -> str:
        return self._url.render_as_string(hide_password=True)

    @property
    def where(self) -> str:
        held_by = f", held by {self._holder}" if self._holder else ""
        return f"PostgreSQL advisory lock {self.key} on {self.safe_url}{held_by}"

    def acquire(self) -> bool:
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        if self._conn is not None:
            return True
        engine = sa.create_engine(
            self._url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={"application_name": f"vipexsync lock {self._job}"[:63]},
        )
        try:
            conn = engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise MirrorError(
                f"cannot reach the database {self.safe_url} to lock job {self._job!r}: "
                f"{_first_line(exc)}; check [database] url and that the server is up"
            ) from exc
        try:
            got = bool(
                conn.execute(
                    sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
                ).scalar_one()
            )
            holder = "" if got else self._describe_holder(conn)
        except sa.exc.SQLAlchemyError as exc:
            conn.close()
            engine.dispose()
            raise MirrorError(
                f"cannot take the advisory lock for job {self._job!r} on {self.safe_url}: "
                f"{_first_line(exc)}"
            ) from exc
        if not got:
            self._holder = holder
            conn.close()
            engine.dispose()
            return False
        self._engine, self._conn, self._holder = engine, conn, ""
        return True

    def _describe_holder(self, conn: Connection) -> str:
        import sqlalchemy as sa

        unsigned = self.key & 0xFFFF_FFFF_FFFF_FFFF
        row = conn.execute(
            sa.text(_HOLDER_SQL), {"classid": unsigned >> 32, "objid": unsigned & 0xFFFF_FFFF}
        ).first()
        if row is None:
            return ""
        parts = [f"backend pid {row.pid}"]
        if row.application_name:
            parts.append(f"application {row.application_name!r}")
        if row.client_addr:
            parts.append(f"from {row.client_addr}")
        return " ".join(parts)

    def release(self) -> None:
        import sqlalchemy as sa

        conn, engine = self._conn, self._engine
        self._conn = self._engine = None
        if conn is None:
            return
        try:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except sa.exc.SQLAlchemyError:
            # The session is gone, and its lock with it.
            log.debug("advisory unlock of job %r failed", self._job, exc_info=True)
        finally:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                conn.close()
            if engine is not None:
                engine.dispose()

    def still_held(self) -> bool:
        """A live session still holds its lock; a dead one has lost it."""
        import sqlalchemy as sa

        if self._conn is None:
            return False
        try:
            self._conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            return False
        return True


def _first_line(exc: BaseException) -> str:
    """The driver's message, without SQLAlchemy's trailing SQL and background link."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__

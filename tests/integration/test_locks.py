"""Job locks on real SQLite files and the real PostgreSQL server, across processes."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vipexsync.errors import LockHeldError, MirrorError
from vipexsync.locks import (
    FileJobLock,
    JobLock,
    PostgresJobLock,
    ProcessJobLock,
    advisory_key,
    hold,
    job_lock,
    lock_file_path,
)

HOLDER_SCRIPT = """
import sys, time
from vipexsync.locks import job_lock
lock = job_lock(sys.argv[1], sys.argv[2])
print("held" if lock.acquire() else "busy", flush=True)
time.sleep(300)
"""


def unique_job() -> str:
    """Advisory locks are database-wide: a unique job keeps parallel test runs apart."""
    return f"test-{uuid.uuid4().hex[:10]}"


def wait_until(condition: object, what: str, limit: float = 30.0) -> None:
    """Poll until ``condition()`` holds; the limit only stops a hung test."""
    deadline = time.monotonic() + limit
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def holder_process() -> Iterator[object]:
    """Start a subprocess that takes the lock and sleeps; killed at the end regardless."""
    started: list[subprocess.Popen[str]] = []

    def start(url: str, job: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER_SCRIPT, url, job],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def kill_and_reap(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def exercise_same_job(url: str) -> None:
    """Two lock objects on one job in one process: the second must not get it."""
    job = unique_job()
    first, second = job_lock(url, job), job_lock(url, job)
    assert first.acquire()
    assert first.still_held()
    assert first.acquire(), "re-acquiring one's own lock is harmless"
    assert not second.acquire()
    assert not second.still_held()
    with pytest.raises(LockHeldError, match=job) as caught, hold(second):
        pytest.fail("hold() must not run the body")
    assert caught.value.job == job
    first.release()
    first.release()  # twice is harmless
    assert not first.still_held()
    assert second.acquire()
    second.release()


def exercise_other_jobs(url: str) -> None:
    a, b = job_lock(url, unique_job()), job_lock(url, unique_job())
    assert a.acquire()
    assert b.acquire()
    a.release()
    b.release()


def exercise_killed_holder(url: str, start: object) -> None:
    job = unique_job()
    proc = start(url, job)  # type: ignore[operator]
    lock = job_lock(url, job)
    assert not lock.acquire()
    assert not lock.acquire(), "a failed try leaves nothing behind that would block"
    kill_and_reap(proc)
    wait_until(lock.acquire, "the lock to be free after SIGKILL of its holder")
    lock.release()


# -- SQLite --------------------------------------------------------------------


def test_sqlite_same_job_blocks(sqlite_url: str) -> None:
    exercise_same_job(sqlite_url)


def test_sqlite_other_jobs_do_not_block(sqlite_url: str) -> None:
    exercise_other_jobs(sqlite_url)


def test_sqlite_subprocess_holder_then_sigkill(sqlite_url: str, holder_process: object) -> None:
    exercise_killed_holder(sqlite_url, holder_process)


def test_sqlite_lock_file_beside_database(tmp_path: Path) -> None:
    db = tmp_path / "mirror.sqlite3"
    lock = job_lock(f"sqlite:///{db}", "crm")
    assert isinstance(lock, FileJobLock)
    assert lock.acquire()
    try:
        path = tmp_path / "mirror.sqlite3.crm.lock"
        assert lock.path == path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert str(path) in lock.where
        assert f"pid {os.getpid()}" in path.read_text()
    finally:
        lock.release()


def test_sqlite_holder_named_in_message(sqlite_url: str, holder_process: object) -> None:
    job = unique_job()
    proc = holder_process(sqlite_url, job)  # type: ignore[operator]
    lock = job_lock(sqlite_url, job)
    assert not lock.acquire()
    assert f"pid {proc.pid}" in lock.where


def test_sqlite_missing_directory_is_a_mirror_error(tmp_path: Path) -> None:
    lock = job_lock(f"sqlite:///{tmp_path / 'absent' / 'mirror.sqlite3'}", "crm")
    with pytest.raises(MirrorError, match="lock file"):
        lock.acquire()


def test_lock_file_names_keep_odd_jobs_apart(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    assert lock_file_path(db, "crm-1.a_b").name == "m.db.crm-1.a_b.lock"
    odd = {lock_file_path(db, name) for name in ("a/b", "a_b", "a b", "../x", "")}
    assert len(odd) == 5
    assert all(p.parent == tmp_path for p in odd)


def test_in_memory_sqlite_locks_within_the_process() -> None:
    job = unique_job()
    first, second = job_lock("sqlite://", job), job_lock("sqlite:///:memory:", job)
    assert isinstance(first, ProcessJobLock)
    assert first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_unsupported_backend() -> None:
    with pytest.raises(MirrorError, match="not supported"):
        job_lock("mysql://u@h/db", "crm")
    with pytest.raises(MirrorError, match="not a valid database URL"):
        job_lock("::nonsense::", "crm")


def test_advisory_key_is_stable_signed_64_bit() -> None:
    key = advisory_key("crm")
    assert key == advisory_key("crm")
    assert key != advisory_key("crm2")
    assert -(2**63) <= key < 2**63
    # Pinned: changing the derivation would let an old and a new replica run together.
    assert key == int.from_bytes(
        __import__("hashlib").blake2b(b"vipexsync:crm", digest_size=8).digest(),
        "big",
        signed=True,
    )


# -- PostgreSQL ----------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_same_job_blocks(postgres_url: str) -> None:
    exercise_same_job(postgres_url)


@pytest.mark.postgres
def test_postgres_other_jobs_do_not_block(postgres_url: str) -> None:
    exercise_other_jobs(postgres_url)


@pytest.mark.postgres
def test_postgres_subprocess_holder_then_sigkill(postgres_url: str, holder_process: object) -> None:
    exercise_killed_holder(postgres_url, holder_process)


@pytest.mark.postgres
def test_postgres_holder_named_in_message(postgres_url: str) -> None:
    job = unique_job()
    first, second = job_lock(postgres_url, job), job_lock(postgres_url, job)
    assert isinstance(first, PostgresJobLock)
    assert first.acquire()
    try:
        assert not second.acquire()
        assert "backend pid" in second.where
        assert f"vipexsync lock {job}" in second.where
        assert str(advisory_key(job)) in second.where
    finally:
        first.release()


@pytest.mark.postgres
def test_postgres_lost_connection_is_noticed(postgres_url: str) -> None:
    """If the session dies, still_held() says so and another holder can take over."""
    import sqlalchemy as sa

    job = unique_job()
    lock = job_lock(postgres_url, job)
    assert lock.acquire()
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": f"vipexsync lock {job}"},
            )
        assert not lock.still_held()
        other = job_lock(postgres_url, job)
        wait_until(other.acquire, "the advisory lock to be free after its session died")
        other.release()
        lock.release()  # releasing a lock whose session died is harmless
    finally:
        admin.dispose()


def test_postgres_unreachable_is_a_mirror_error_without_password() -> None:
    lock: JobLock = job_lock("postgresql+psycopg://vipex:s3cr3t-pw@127.0.0.1:1/db", "crm")
    with pytest.raises(MirrorError) as caught:
        lock.acquire()
    message = str(caught.value)
    assert "s3cr3t-pw" not in message
    assert "127.0.0.1" in message
    assert "s3cr3t-pw" not in lock.where

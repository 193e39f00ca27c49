"""Reading and journaling the mirror: pure mapping between rows and domain values.

Every function takes a Session from the caller, who owns the transaction: the
runner commits after each confirmed write, so a crash loses at most the write
in flight. Upserts are single ``INSERT .. ON CONFLICT`` statements on both
engines, so repeating one after a crash is harmless. Database errors leave as
:class:`MirrorError` naming the call, the job and the number.
"""

from __future__ import annotations

import functools
import gc
import inspect
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from types import MappingProxyType
from typing import Any, Final, ParamSpec, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from vipexsync.domain import DesiredEntry, Entry, MirrorEntry, WriteState
from vipexsync.errors import MirrorError
from vipexsync.mirror.models import (
    CHANGE_ACTIONS,
    RUN_MODES,
    RUN_OUTCOMES,
    ChangeRow,
    JobStateRow,
    MirrorEntryRow,
    RunRow,
)

IN_CHUNK = 500  # numbers per IN list: well under every engine's parameter limit
MAX_ERROR_CHARS = 2000

_MIRROR: Final = cast(sa.Table, MirrorEntryRow.__table__)
_CHANGES: Final = cast(sa.Table, ChangeRow.__table__)

_COLUMNS: Final = (
    "job, phonenumber, name, tags, comment, custom_fields, content_hash, owned, record_key, "
    "first_written_at, last_written_at, last_seen_at, state, attempts, last_error"
)


def _mirror_text(sql: str) -> sa.TextClause:
    """A mirror statement whose binds carry the columns' own types.

    So JSON and timestamps are encoded exactly as the models encode them, on
    either engine (SQLite >= 3.24 and PostgreSQL share the ON CONFLICT syntax).
    """
    names = dict.fromkeys(re.findall(r"(?<![:\w]):(\w+)", sql))
    return sa.text(sql).bindparams(
        *(sa.bindparam(name, type_=_MIRROR.c[name].type) for name in names)
    )


# The statements of the per-write journal, built once. A dialect upsert
# (insert().on_conflict_do_update) is not cacheable: it was rebuilt and
# recompiled on every confirmed write, ~5 ms each at 100k entries, which
# made journaling, not VIPeX's latency, bound the apply phase.
_UPSERT_CONFIRMED: Final = _mirror_text(
    f"INSERT INTO mirror_entries ({_COLUMNS}) VALUES (:job, :phonenumber, :name, :tags, "
    ":comment, :custom_fields, :content_hash, :owned, :record_key, :first_written_at, "
    ":last_written_at, :last_seen_at, :state, :attempts, :last_error) "
    "ON CONFLICT (job, phonenumber) DO UPDATE SET "
    "name = excluded.name, tags = excluded.tags, comment = excluded.comment, "
    "custom_fields = excluded.custom_fields, content_hash = excluded.content_hash, "
    "owned = excluded.owned, "
    "record_key = COALESCE(excluded.record_key, mirror_entries.record_key), "
    "first_written_at = COALESCE(mirror_entries.first_written_at, excluded.first_written_at), "
    "last_written_at = COALESCE(excluded.last_written_at, mirror_entries.last_written_at), "
    "last_seen_at = COALESCE(excluded.last_seen_at, mirror_entries.last_seen_at), "
    "state = excluded.state, attempts = excluded.attempts, last_error = excluded.last_error"
)


# A failed write never changes ownership: a refused or unanswered create
# proves nothing (DESIGN invariant 2), so a new row is not owned, and an
# existing row keeps what its confirmed writes earned. Confirmed content stays,
# and so does the record the row names; a row naming none takes the record the
# write was for (an unanswered write may have put that record's entry there).
_UPSERT_FAILED: Final = _mirror_text(
    f"INSERT INTO mirror_entries ({_COLUMNS}) VALUES (:job, :phonenumber, NULL, NULL, "
    "NULL, NULL, NULL, :owned, :record_key, NULL, NULL, NULL, :state, 1, :last_error) "
    "ON CONFLICT (job, phonenumber) DO UPDATE SET "
    "state = excluded.state, attempts = mirror_entries.attempts + 1, "
    "last_error = excluded.last_error, "
    "record_key = COALESCE(mirror_entries.record_key, excluded.record_key)"
)
_DELETE_ROW: Final = sa.delete(_MIRROR).where(
    _MIRROR.c.job == sa.bindparam("job"), _MIRROR.c.phonenumber == sa.bindparam("phonenumber")
)
_INSERT_CHANGE: Final = sa.insert(_CHANGES)
# Every write to a job's mirror rows runs this in the same transaction: a
# quiet key (vipexsync/sync/quiet.py) stored at an older generation no longer
# holds. A job without a job_state row has no key to invalidate.
_BUMP_GENERATION: Final = sa.text(
    "UPDATE job_state SET mirror_generation = mirror_generation + 1 WHERE job = :job"
)


def bump_generation(session: Session, job: str) -> None:
    """Invalidate the job's quiet key: its mirror rows are being written."""
    session.connection().execute(_BUMP_GENERATION, {"job": job})


_P = ParamSpec("_P")
_R = TypeVar("_R")


class _Unset(Enum):
    UNSET = "unset"


UNSET: Final = _Unset.UNSET


@dataclass(frozen=True, slots=True)
class JobState:
    """Per-job memory; the defaults describe a job that never ran."""

    job: str
    mapping_fingerprint: str | None = None
    last_full_resync_at: datetime | None = None
    last_run_at: datetime | None = None
    mirror_generation: int = 0
    quiet_key: str | None = None
    quiet_generation: int | None = None
    quiet_report: str | None = None


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    job: str
    mode: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    counts: Mapping[str, int]
    guard: Mapping[str, object] | None
    error: str | None
    mapping_fingerprint: str | None
    report: Mapping[str, object] | None


@dataclass(frozen=True, slots=True)
class MirrorStats:
    entries: int
    owned: int
    pending: int
    failed: int


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One line of the audit log: answers "why did this entry change or vanish?"."""

    id: int
    run_id: int | None
    job: str
    phonenumber: str
    action: str
    before: Entry | None
    after: Entry | None
    outcome: str
    reason: str
    api_reason: str | None
    at: datetime
    run_mode: str | None = None  # the mode of the run that made it, while that run is kept


def _mirror_errors(call: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Map database errors to MirrorError, naming the call, job and number."""

    def decorate(function: Callable[_P, _R]) -> Callable[_P, _R]:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return function(*args, **kwargs)
            except SQLAlchemyError as exc:
                bound = signature.bind_partial(*args, **kwargs).arguments
                where = ", ".join(
                    f"{name} {bound[name]!r}"
                    for name in ("job", "phonenumber", "run_id")
                    if bound.get(name) is not None
                )
                orig = getattr(exc, "orig", None)
                detail = str(orig if orig is not None else exc).strip()
                detail = " ".join(detail.splitlines()[0].split()) if detail else type(exc).__name__
                raise MirrorError(
                    f"mirror database: {call} failed"
                    + (f" for {where}" if where else "")
                    + f": {detail[:300]}. Check that the database is reachable and "
                    "writable; the next run retries"
                ) from exc

        return wrapper

    return decorate


def _insert(session: Session) -> Callable[[Any], Any]:
    """The dialect's INSERT with ON CONFLICT support."""
    name = session.get_bind().dialect.name
    if name == "sqlite":
        return sqlite.insert
    if name == "postgresql":
        return postgresql.insert
    raise MirrorError(
        f"the mirror does not support the {name!r} database; use sqlite or postgresql"
    )


def _content(entry: Entry | None) -> dict[str, Any]:
    if entry is None:
        return {
            "name": None,
            "tags": None,
            "comment": None,
            "custom_fields": None,
            "content_hash": None,
        }
    return {
        "name": entry.name,
        "tags": sorted(entry.tags),
        "comment": entry.comment,
        "custom_fields": {str(k): v for k, v in sorted(entry.custom_fields.items())},
        "content_hash": entry.content_hash(),
    }


def _json_entry(entry: Entry | None) -> dict[str, object] | None:
    return entry.as_json() if entry is not None else None


def _entry_from_json(data: Mapping[str, object] | None) -> Entry | None:
    return Entry.from_json(data) if data is not None else None


def _check_number(phonenumber: str, entry: Entry | None, what: str) -> None:
    if entry is not None and entry.phonenumber != phonenumber:
        raise ValueError(
            f"{what} entry is for {entry.phonenumber!r}, not for the row {phonenumber!r}"
        )


def _check_action(action: str) -> None:
    if action not in CHANGE_ACTIONS:
        raise ValueError(f"unknown change action {action!r}; expected one of {CHANGE_ACTIONS}")


def _journal(
    session: Session,
    *,
    job: str,
    run_id: int | None,
    phonenumber: str,
    action: str,
    before: Entry | None,
    after: Entry | None,
    outcome: str,
    reason: str,
    api_reason: str | None,
    now: datetime,
) -> None:
    session.connection().execute(
        _INSERT_CHANGE,
        _change_row(
            job, run_id, phonenumber, action, before, after, outcome, reason, api_reason, now
        ),
    )


def _change_row(
    job: str,
    run_id: int | None,
    phonenumber: str,
    action: str,
    before: Entry | None,
    after: Entry | None,
    outcome: str,
    reason: str,
    api_reason: str | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "job": job,
        "phonenumber": phonenumber,
        "action": action,
        "before": _json_entry(before),
        "after": _json_entry(after),
        "outcome": outcome,
        "reason": reason,
        "api_reason": api_reason,
        "at": now,
    }


def _confirmed_row(
    *,
    job: str,
    phonenumber: str,
    entry: Entry,
    record_key: str | None,
    written_at: datetime | None,
    seen_at: datetime | None,
) -> dict[str, Any]:
    return {
        "job": job,
        "phonenumber": phonenumber,
        **_content(entry),
        "owned": True,
        "record_key": record_key,
        "first_written_at": written_at,
        "last_written_at": written_at,
        "last_seen_at": seen_at,
        "state": WriteState.APPLIED.value,
        "attempts": 0,
        "last_error": None,
    }


def _upsert_confirmed(session: Session, rows: list[dict[str, Any]]) -> None:
    """Set rows to confirmed, owned content; keep the first write's time.

    One cached statement for any number of rows (executemany).
    """
    session.connection().execute(_UPSERT_CONFIRMED, rows)


def _number_in(session: Session, numbers: list[str]) -> sa.ColumnElement[bool]:
    """``phonenumber IN (...)``; on PostgreSQL ``= ANY(:array)``, one parameter.

    A long IN list, once psycopg prepares it, got a generic plan that scanned
    the whole table on PostgreSQL (minutes at 100k rows instead of seconds).
    """
    column = MirrorEntryRow.phonenumber
    if session.get_bind().dialect.name == "postgresql":
        return column == sa.any_(sa.literal(numbers, type_=postgresql.ARRAY(sa.String)))
    return column.in_(numbers)


def _chunks(numbers: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(numbers), IN_CHUNK):
        yield numbers[start : start + IN_CHUNK]


_WRITE_STATES: Final = {state.value: state for state in WriteState}
_NO_FIELDS: Final[Mapping[int, str]] = MappingProxyType({})


LOAD_CHUNK = 5000  # mirror rows decoded at a time


class MirrorView(Mapping[str, MirrorEntry]):
    """A job's mirror read against the desired entries: clean rows held as numbers.

    A *clean* row records exactly the desired entry, applied and owned, for
    the same record, with no attempts and no error: what most rows of a tick
    are. It is kept as its number only, and reading it builds the
    MirrorEntry from the desired entry, equal to the one the row would give
    (at 100k entries the MirrorEntry objects and their dict were ~15 MB at
    the run's peak, the set of clean numbers is ~4 MB). Every other row is
    held as loaded. Iteration yields the other rows first, then the clean ones.
    """

    __slots__ = ("_clean", "_desired", "_rows")

    def __init__(
        self,
        rows: dict[str, MirrorEntry],
        clean: set[str],
        desired: Mapping[str, DesiredEntry],
    ) -> None:
        self._rows = rows
        self._clean = clean
        self._desired = desired

    def __getitem__(self, number: str) -> MirrorEntry:
        row = self._rows.get(number)
        if row is not None:
            return row
        if number in self._clean:
            return _clean_row(self._desired[number])
        raise KeyError(number)

    def get(self, number: str, default: Any = None) -> Any:
        row = self._rows.get(number)
        if row is not None:
            return row
        if number in self._clean:
            return _clean_row(self._desired[number])
        return default

    def __contains__(self, number: object) -> bool:
        return number in self._rows or number in self._clean

    def __iter__(self) -> Iterator[str]:
        yield from self._rows
        yield from self._clean

    def __len__(self) -> int:
        return len(self._rows) + len(self._clean)


def _clean_row(want: DesiredEntry) -> MirrorEntry:
    return MirrorEntry(
        phonenumber=want.entry.phonenumber,
        written=want.entry,
        owned=True,
        record_key=want.record_key,
    )


@_mirror_errors("loading the mirror")
def load_mirror(
    session: Session, job: str, *, desired: Mapping[str, DesiredEntry] | None = None
) -> Mapping[str, MirrorEntry]:
    """Every mirror row of a job, keyed by number; one lean column query.

    Plain Core rows (no ORM loading), read and decoded LOAD_CHUNK at a time
    (the JSON columns fetched as text, one ``json.loads`` per chunk: per-value
    decoding dominated the cost at 100k rows). Without ``desired`` the result
    is a dict. With it, a row whose confirmed content equals the desired
    entry shares that entry's objects instead of holding a copy, and a clean
    row is held as its number only (see :class:`MirrorView`). Equal values,
    so nothing a caller can observe changes.
    """
    row = MirrorEntryRow
    stmt = sa.select(
        row.phonenumber,
        row.name,
        sa.cast(row.tags, sa.Text),
        row.comment,
        sa.cast(row.custom_fields, sa.Text),
        row.content_hash,
        row.owned,
        row.record_key,
        row.state,
        row.attempts,
        row.last_error,
    ).where(row.job == job)
    # Building ~400k small objects would trigger many full garbage collections
    # that find nothing to free (it doubled the time at 100k rows); pause it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        mirror: dict[str, MirrorEntry] = {}
        clean: set[str] | None = set() if desired is not None else None
        builder = _MirrorBuilder(mirror, desired or {}, clean)
        result = session.connection().execute(stmt.execution_options(yield_per=LOAD_CHUNK))
        for rows in result.partitions():
            builder.add(rows)
        if desired is None or clean is None:
            return mirror
        return MirrorView(mirror, clean, desired)
    finally:
        if collecting:
            gc.enable()


class _MirrorBuilder:
    """Turns mirror rows into MirrorEntry values, sharing what can be shared."""

    def __init__(
        self,
        mirror: dict[str, MirrorEntry],
        desired: Mapping[str, DesiredEntry],
        clean: set[str] | None = None,
    ):
        self.mirror = mirror
        self.desired = desired
        self.clean = clean
        self.tags: dict[str | None, frozenset[str]] = {None: frozenset()}

    def _tags(self, text: str | None) -> frozenset[str]:
        found = self.tags.get(text)
        if found is None:
            assert text is not None
            found = self.tags[text] = frozenset(json.loads(text) or ())
        return found

    def add(self, rows: Sequence[sa.Row[Any]]) -> None:
        fields_of = json.loads("[" + ",".join(r[4] or "null" for r in rows) + "]")
        states = _WRITE_STATES
        desired = self.desired
        mirror = self.mirror
        clean = self.clean
        applied = WriteState.APPLIED.value
        for (number, name, tags, comment, _, digest, owned, key, state, attempts, error), (
            fields
        ) in zip(rows, fields_of, strict=True):
            want = desired.get(number)
            written = None
            if digest is not None:
                written = Entry(
                    phonenumber=number,
                    name=name or "",
                    tags=self._tags(tags),
                    comment=comment or "",
                    custom_fields={int(k): v for k, v in fields.items()} if fields else _NO_FIELDS,
                )
            if want is not None:
                number = want.entry.phonenumber
                if written is not None and written == want.entry:
                    written = want.entry
                if key == want.record_key:
                    key = want.record_key
                    if (
                        clean is not None
                        and written is want.entry
                        and owned
                        and state == applied
                        and attempts == 0
                        and error is None
                    ):
                        clean.add(number)
                        continue
            mirror[number] = MirrorEntry(
                phonenumber=number,
                written=written,
                owned=bool(owned),
                record_key=key,
                state=states[state],
                attempts=attempts,
                last_error=error,
            )


@dataclass(frozen=True, slots=True)
class ConfirmedWrite:
    """A create/update/adopt VIPeX confirmed, waiting to be journaled."""

    action: str
    phonenumber: str
    before: Entry | None
    written: Entry
    record_key: str | None
    reason: str
    at: datetime


@_mirror_errors("recording a confirmed write")
def record_applied(
    session: Session,
    *,
    job: str,
    run_id: int | None,
    action: str,
    phonenumber: str,
    before: Entry | None,
    written: Entry,
    record_key: str | None,
    reason: str,
    now: datetime,
) -> None:
    """VIPeX confirmed a create/update/adopt: the row now holds it, and we own it."""
    _record_writes(
        session,
        job,
        run_id,
        [ConfirmedWrite(action, phonenumber, before, written, record_key, reason, now)],
    )


@_mirror_errors("recording confirmed writes")
def record_applied_many(
    session: Session, *, job: str, run_id: int | None, writes: Sequence[ConfirmedWrite]
) -> None:
    """:func:`record_applied` for each write, in two statements (executemany)."""
    _record_writes(session, job, run_id, writes)


def _record_writes(
    session: Session, job: str, run_id: int | None, writes: Sequence[ConfirmedWrite]
) -> None:
    if not writes:
        return
    for write in writes:
        _check_action(write.action)
        _check_number(write.phonenumber, write.written, "the written")
    bump_generation(session, job)
    _upsert_confirmed(
        session,
        [
            _confirmed_row(
                job=job,
                phonenumber=w.phonenumber,
                entry=w.written,
                record_key=w.record_key,
                written_at=w.at,
                seen_at=None,
            )
            for w in writes
        ],
    )
    session.connection().execute(
        _INSERT_CHANGE,
        [
            _change_row(
                job,
                run_id,
                w.phonenumber,
                w.action,
                w.before,
                w.written,
                "applied",
                w.reason,
                None,
                w.at,
            )
            for w in writes
        ],
    )


@_mirror_errors("recording a confirmed delete")
def record_deleted(
    session: Session,
    *,
    job: str,
    run_id: int | None,
    phonenumber: str,
    before: Entry | None,
    reason: str,
    now: datetime,
) -> None:
    """VIPeX confirmed a delete (or the entry was already gone): forget the row."""
    bump_generation(session, job)
    session.connection().execute(_DELETE_ROW, {"job": job, "phonenumber": phonenumber})
    _journal(
        session,
        job=job,
        run_id=run_id,
        phonenumber=phonenumber,
        action="delete",
        before=before,
        after=None,
        outcome="applied",
        reason=reason,
        api_reason=None,
        now=now,
    )


@_mirror_errors("recording a failed write")
def record_failed(
    session: Session,
    *,
    job: str,
    run_id: int | None,
    action: str,
    phonenumber: str,
    before: Entry | None,
    after: Entry | None,
    reason: str,
    error: str,
    now: datetime,
    record_key: str | None = None,
) -> None:
    """A write failed: count the attempt, keep the last *confirmed* content.

    Ownership is never gained here: a failed create or adoption leaves a row
    that owns nothing (if the call did reach VIPeX, the entry carries the
    job's tag and the next full resync sees it); a row that owned its number
    through a confirmed write keeps it.
    """
    _check_action(action)
    _check_number(phonenumber, after, "the attempted")
    error = error[:MAX_ERROR_CHARS]
    bump_generation(session, job)
    session.connection().execute(
        _UPSERT_FAILED,
        {
            "job": job,
            "phonenumber": phonenumber,
            "owned": False,
            "record_key": record_key,
            "state": WriteState.FAILED.value,
            "last_error": error,
        },
    )
    _journal(
        session,
        job=job,
        run_id=run_id,
        phonenumber=phonenumber,
        action=action,
        before=before,
        after=after,
        outcome="failed",
        reason=reason,
        api_reason=error,
        now=now,
    )


@_mirror_errors("marking the planned writes pending")
def mark_pending_many(
    session: Session,
    *,
    job: str,
    changes: Iterable[tuple[str, str, str | None]],
) -> int:
    """Mark ``(phonenumber, action, record_key)`` as about to be written.

    Done before each phase's writes are sent: a row left ``pending``
    afterwards is a write whose outcome nobody saw (the process was killed in
    flight), so the next run treats its VIPeX content as unknown. The
    confirmed content and ownership are never touched: a planned create gets
    a row with no confirmed content that owns nothing until VIPeX confirms it.
    The record a row names is kept; a row naming none takes the write's.
    Returns how many rows were marked.
    """
    rows = []
    for phonenumber, action, record_key in changes:
        _check_action(action)
        rows.append(
            {
                "job": job,
                "phonenumber": phonenumber,
                **_content(None),
                "owned": False,
                "record_key": record_key,
                "first_written_at": None,
                "last_written_at": None,
                "last_seen_at": None,
                "state": WriteState.PENDING.value,
                "attempts": 0,
                "last_error": None,
            }
        )
    if not rows:
        return 0
    bump_generation(session, job)
    insert = _insert(session)
    row = MirrorEntryRow
    stmt = insert(row)
    stmt = stmt.on_conflict_do_update(
        index_elements=[row.job, row.phonenumber],
        set_={
            "state": WriteState.PENDING.value,
            # A row naming no record (an entry owned by its tag alone after a
            # lost database) takes the record this write is for: if the write
            # lands unanswered, VIPeX holds that record's entry there, and a
            # later delete must wait for that record's new numbers (item 3).
            "record_key": sa.func.coalesce(row.record_key, stmt.excluded.record_key),
        },
    )
    for start in range(0, len(rows), IN_CHUNK):
        session.execute(stmt, rows[start : start + IN_CHUNK])
    return len(rows)


@_mirror_errors("recording a mirror update from a full resync")
def record_confirmed(
    session: Session,
    *,
    job: str,
    run_id: int | None,
    phonenumber: str,
    entry: Entry | None,
    record_key: str | None,
    now: datetime,
) -> None:
    """Learn what a full resync's listing confirmed, without any VIPeX write.

    With ``entry`` the row is set to it (owned, applied, seen now); with None
    the row is forgotten. The audit log keeps what the row held before.
    """
    record_confirmed_many(
        session, job=job, run_id=run_id, updates=[(phonenumber, entry, record_key)], now=now
    )


@_mirror_errors("recording mirror updates from a full resync")
def record_confirmed_many(
    session: Session,
    *,
    job: str,
    run_id: int | None,
    updates: Iterable[tuple[str, Entry | None, str | None]],
    now: datetime,
    reasons: Mapping[str, str] | None = None,
) -> int:
    """:func:`record_confirmed` for many ``(phonenumber, entry, record_key)`` at once.

    ``reasons`` replaces the change log's default sentence for some numbers.

    A full resync after a lost database learns every row; done one by one
    that is minutes at 100k rows, in batches seconds. Returns how many rows.
    """
    wanted: dict[str, tuple[Entry | None, str | None]] = {}
    for number, entry, key in updates:
        _check_number(number, entry, "the confirmed")
        wanted[number] = (entry, key)  # the last word on a number wins
    numbers = list(wanted)
    if numbers:
        bump_generation(session, job)
    before = _confirmed_content(session, job, numbers)
    forget = [n for n in numbers if wanted[n][0] is None]
    for chunk in _chunks(forget):
        session.execute(
            sa.delete(MirrorEntryRow)
            .where(MirrorEntryRow.job == job, _number_in(session, chunk))
            .execution_options(synchronize_session=False)
        )
    learnt = [
        _confirmed_row(job=job, phonenumber=n, entry=e, record_key=k, written_at=None, seen_at=now)
        for n, (e, k) in wanted.items()
        if e is not None
    ]
    if learnt:
        _upsert_confirmed(session, learnt)
    if numbers:
        session.connection().execute(
            _INSERT_CHANGE,
            [
                {
                    "run_id": run_id,
                    "job": job,
                    "phonenumber": n,
                    "action": "mirror",
                    "before": _json_entry(before.get(n)),
                    "after": _json_entry(e),
                    "outcome": "applied",
                    "reason": (reasons or {}).get(n) or (_FORGOTTEN if e is None else _LEARNT),
                    "api_reason": None,
                    "at": now,
                }
                for n, (e, _) in wanted.items()
            ],
        )
    return len(numbers)


_FORGOTTEN = "gone from VIPeX and no longer desired; forgotten (full resync)"
_LEARNT = "VIPeX already holds the desired entry; recorded (full resync)"


def _confirmed_content(session: Session, job: str, numbers: list[str]) -> dict[str, Entry]:
    """The confirmed content of the given numbers' rows (rows without any are left out)."""
    row = MirrorEntryRow
    found: dict[str, Entry] = {}
    for chunk in _chunks(numbers):
        rows = session.execute(
            sa.select(row.phonenumber, row.name, row.tags, row.comment, row.custom_fields).where(
                row.job == job, row.content_hash.is_not(None), _number_in(session, chunk)
            )
        )
        for number, name, tags, comment, fields in rows.tuples():
            found[number] = Entry(
                phonenumber=number,
                name=name or "",
                tags=frozenset(tags or ()),
                comment=comment or "",
                custom_fields={int(k): v for k, v in (fields or {}).items()},
            )
    return found


@_mirror_errors("marking entries seen")
def mark_seen(session: Session, job: str, phonenumbers: Iterable[str], now: datetime) -> None:
    """Stamp last_seen_at on the rows a listing saw, IN_CHUNK numbers at a time."""
    bump_generation(session, job)
    row = MirrorEntryRow
    for chunk in _chunks(list(phonenumbers)):
        session.execute(
            sa.update(row)
            .where(row.job == job, _number_in(session, chunk))
            .values(last_seen_at=now)
            .execution_options(synchronize_session=False)
        )


@_mirror_errors("starting a run")
def start_run(
    session: Session, *, job: str, mode: str, dry_run: bool, fingerprint: str, now: datetime
) -> int:
    """Open a run row (outcome ``running``) and return its id."""
    if mode not in RUN_MODES:
        raise ValueError(f"unknown run mode {mode!r}; expected one of {RUN_MODES}")
    run_id = session.execute(
        sa.insert(RunRow)
        .values(
            job=job,
            mode=mode,
            dry_run=dry_run,
            started_at=now,
            finished_at=None,
            outcome="running",
            counts={},
            guard=None,
            error=None,
            mapping_fingerprint=fingerprint,
            report=None,
        )
        .returning(RunRow.id)
    ).scalar_one()
    return int(run_id)


@_mirror_errors("finishing a run")
def finish_run(
    session: Session,
    run_id: int,
    *,
    outcome: str,
    counts: Mapping[str, int],
    guard: Mapping[str, object] | None,
    error: str | None,
    report: Mapping[str, object] | None,
    now: datetime,
) -> None:
    """Close a run row with its outcome, counts, guard verdict and report."""
    if outcome not in RUN_OUTCOMES or outcome == "running":
        raise ValueError(
            f"unknown final run outcome {outcome!r}; expected one of {RUN_OUTCOMES[1:]}"
        )
    found = session.execute(
        sa.update(RunRow)
        .where(RunRow.id == run_id)
        .values(
            finished_at=now,
            outcome=outcome,
            counts=dict(counts),
            guard=dict(guard) if guard is not None else None,
            error=error[:MAX_ERROR_CHARS] if error is not None else None,
            report=dict(report) if report is not None else None,
        )
        .returning(RunRow.id)
        .execution_options(synchronize_session=False)
    ).first()
    if found is None:
        raise MirrorError(f"mirror database: no run with id {run_id} to finish")


@_mirror_errors("reading the job state")
def get_job_state(session: Session, job: str) -> JobState:
    row = JobStateRow
    found = session.execute(
        sa.select(
            row.mapping_fingerprint,
            row.last_full_resync_at,
            row.last_run_at,
            row.mirror_generation,
            row.quiet_key,
            row.quiet_generation,
            row.quiet_report,
        ).where(row.job == job)
    ).first()
    if found is None:
        return JobState(job=job)
    return JobState(
        job=job,
        mapping_fingerprint=found.mapping_fingerprint,
        last_full_resync_at=found.last_full_resync_at,
        last_run_at=found.last_run_at,
        mirror_generation=found.mirror_generation,
        quiet_key=found.quiet_key,
        quiet_generation=found.quiet_generation,
        quiet_report=found.quiet_report,
    )


@_mirror_errors("storing the quiet key")
def store_quiet_key(session: Session, job: str, *, key: str, generation: int, report: str) -> bool:
    """Remember the inputs of a run that had nothing to do, read at ``generation``.

    Stored only if no write to the mirror happened since the run read it
    (the generation is still ``generation``); returns whether it was stored.
    """
    row = JobStateRow
    done = session.execute(
        sa.update(row)
        .where(row.job == job, row.mirror_generation == generation)
        .values(quiet_key=key, quiet_generation=generation, quiet_report=report)
        .returning(row.job)
        .execution_options(synchronize_session=False)
    ).first()
    return done is not None


@_mirror_errors("clearing the quiet key")
def clear_quiet_key(session: Session, job: str) -> None:
    """Forget the quiet key: the last run did (or tried) something."""
    row = JobStateRow
    session.execute(
        sa.update(row)
        .where(row.job == job, row.quiet_key.is_not(None))
        .values(quiet_key=None, quiet_generation=None, quiet_report=None)
        .execution_options(synchronize_session=False)
    )


@_mirror_errors("writing the job state")
def set_job_state(
    session: Session,
    job: str,
    *,
    mapping_fingerprint: str | _Unset | None = UNSET,
    last_full_resync_at: datetime | _Unset | None = UNSET,
    last_run_at: datetime | _Unset | None = UNSET,
    now: datetime | None = None,
) -> None:
    """Upsert only the fields given; ``now`` stamps updated_at (default: the clock)."""
    given: dict[str, Any] = {
        name: value
        for name, value in (
            ("mapping_fingerprint", mapping_fingerprint),
            ("last_full_resync_at", last_full_resync_at),
            ("last_run_at", last_run_at),
        )
        if value is not UNSET
    }
    given["updated_at"] = now if now is not None else datetime.now(UTC)
    insert = _insert(session)
    stmt = insert(JobStateRow).values(job=job, **given)
    stmt = stmt.on_conflict_do_update(
        index_elements=[JobStateRow.job],
        set_={name: getattr(stmt.excluded, name) for name in given},
    )
    session.execute(stmt)


def _run_record(row: sa.Row[Any]) -> RunRecord:
    return RunRecord(
        id=row.id,
        job=row.job,
        mode=row.mode,
        dry_run=row.dry_run,
        started_at=row.started_at,
        finished_at=row.finished_at,
        outcome=row.outcome,
        counts=dict(row.counts or {}),
        guard=row.guard,
        error=row.error,
        mapping_fingerprint=row.mapping_fingerprint,
        report=row.report,
    )


@_mirror_errors("listing runs")
def last_runs(
    session: Session, job: str, *, limit: int = 10, mode: str | None = None
) -> list[RunRecord]:
    """The newest runs of a job first, optionally of one mode only."""
    # Plain rows, not ORM objects: an identity map could hand back stale runs.
    stmt = sa.select(RunRow.__table__).where(RunRow.job == job)
    if mode is not None:
        stmt = stmt.where(RunRow.mode == mode)
    stmt = stmt.order_by(RunRow.id.desc()).limit(limit)
    return [_run_record(row) for row in session.execute(stmt)]


@_mirror_errors("counting the mirror")
def mirror_stats(session: Session, job: str) -> MirrorStats:
    row = MirrorEntryRow
    found = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.case((row.owned, 1), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((row.state == "pending", 1), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((row.state == "failed", 1), else_=0)), 0),
        ).where(row.job == job)
    ).one()
    entries, owned, pending, failed = (int(value) for value in found)
    return MirrorStats(entries=entries, owned=owned, pending=pending, failed=failed)


@_mirror_errors("reading the change log")
def change_log(
    session: Session,
    *,
    jobs: Sequence[str],
    phonenumbers: Sequence[str] | None = None,
    since: datetime | None = None,
    limit: int = 200,
) -> list[ChangeRecord]:
    """The audit log of these jobs (optionally of some numbers, or since a time), newest first."""
    changes = ChangeRow.__table__
    stmt = (
        sa.select(changes, RunRow.mode.label("run_mode"))
        .select_from(changes.outerjoin(RunRow.__table__, ChangeRow.run_id == RunRow.id))
        .where(ChangeRow.job.in_(list(jobs)))
    )
    if phonenumbers is not None:
        stmt = stmt.where(ChangeRow.phonenumber.in_(list(phonenumbers)))
    if since is not None:
        stmt = stmt.where(ChangeRow.at >= since)
    stmt = stmt.order_by(ChangeRow.id.desc()).limit(limit)
    return [
        ChangeRecord(
            id=row.id,
            run_id=row.run_id,
            job=row.job,
            phonenumber=row.phonenumber,
            action=row.action,
            before=_entry_from_json(row.before),
            after=_entry_from_json(row.after),
            outcome=row.outcome,
            reason=row.reason,
            api_reason=row.api_reason,
            at=row.at,
            run_mode=row.run_mode,
        )
        for row in session.execute(stmt)
    ]


def changes_for(
    session: Session, job: str, phonenumber: str, *, limit: int = 50
) -> list[ChangeRecord]:
    """The audit trail of one number, newest first."""
    return change_log(session, jobs=[job], phonenumbers=[phonenumber], limit=limit)


@_mirror_errors("pruning the change log")
def prune_changes(session: Session, before: datetime, *, batch: int) -> int:
    """Delete up to ``batch`` change-log rows older than ``before``; returns how many.

    The oldest rows first, by id: ids grow with time, so the scan stops at the
    first young row and each batch is a short transaction.
    """
    oldest = (
        sa.select(ChangeRow.id).where(ChangeRow.at < before).order_by(ChangeRow.id).limit(batch)
    )
    result = session.connection().execute(
        sa.delete(ChangeRow).where(ChangeRow.id.in_(oldest.scalar_subquery()))
    )
    return int(result.rowcount or 0)


@_mirror_errors("pruning old runs")
def prune_runs(session: Session, before: datetime, *, batch: int) -> int:
    """Delete up to ``batch`` finished runs started before ``before``; returns how many.

    The newest run of each job and mode is always kept, however old, so
    ``status`` still shows it; a run still ``running`` is never touched.
    """
    newest = sa.select(sa.func.max(RunRow.id)).group_by(RunRow.job, RunRow.mode)
    oldest = (
        sa.select(RunRow.id)
        .where(
            RunRow.started_at < before,
            RunRow.outcome != "running",
            RunRow.id.not_in(newest.scalar_subquery()),
        )
        .order_by(RunRow.id)
        .limit(batch)
    )
    result = session.connection().execute(
        sa.delete(RunRow).where(RunRow.id.in_(oldest.scalar_subquery()))
    )
    return int(result.rowcount or 0)


@_mirror_errors("closing interrupted runs")
def mark_interrupted_runs(session: Session, job: str, now: datetime) -> int:
    """Runs left ``running`` by a killed process become failures; returns how many.

    Call it only while holding the job's lock, so a live run is never touched.
    """
    closed = session.execute(
        sa.update(RunRow)
        .where(RunRow.job == job, RunRow.outcome == "running")
        .values(outcome="failure", error="interrupted", finished_at=now)
        .returning(RunRow.id)
        .execution_options(synchronize_session=False)
    ).all()
    return len(closed)

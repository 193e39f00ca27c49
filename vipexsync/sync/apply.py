"""Execute a plan against VIPeX with bounded concurrency.

Workers only talk to VIPeX; every outcome comes back to the calling thread,
which journals it (mirror row + change log) before the next one is looked at.
The runner commits confirmed creates and updates in batches (and whenever
the workers have been quiet for ``IDLE_SECONDS``, through ``idle``): every
change was marked pending before it was sent, so a crash loses at most the
journal of the writes in flight or in the open batch, and the next run looks
those numbers up (incremental) or sees them listed (full resync) instead of
trusting them; a set VIPeX already holds is not sent again, and a delete of a
missing entry counts as done.

Creates and updates run first, deletes after all of them finished, so a
number change creates the new entry before the old one goes; a delete that
requires a write which VIPeX did not confirm is not sent at all.

Where VIPeX clears what a write leaves out (``WriteSemantics.reads_before_update``),
an update or adoption first reads the entry with ``get_phonebook_entry`` and
re-sends the custom fields the job does not manage with their current values.
A listing is not enough: a hand edit made after it would be wiped. So does a
create sent without a look at VIPeX (``before_known`` False): someone may have
made the entry by hand.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from vipexsync.errors import ApiError, ApiResultError, AuthError
from vipexsync.semantics import UNVERIFIED, WriteSemantics
from vipexsync.sync.model import Action, Change, Plan
from vipexsync.vipex.models import CustomFieldValue, PhonebookEntry

log = logging.getLogger("vipexsync.apply")

# After this many writes in a row failed with transport errors, 5xx or 429
# (each already retried by the client), VIPeX is treated as unreachable and
# the run stops submitting; the rest is retried by the next run.
CONSECUTIVE_FAILURE_LIMIT = 20

# The job lock is checked before each phase and every this many submitted
# writes: often enough that a run which lost its lock stops within a batch,
# rarely enough that the check (a round trip on PostgreSQL) costs nothing.
LOCK_CHECK_EVERY = 50
# With nothing finished for this long, apply calls ``idle`` (the runner commits
# its open journal batch, so a slow VIPeX never keeps the mirror's write lock).
IDLE_SECONDS = 0.25
LOCK_LOST = (
    "the job lock was lost during the run (the database connection holding it dropped, "
    "or the lock file was removed); writing stopped so that two processes never write "
    "the same job at once. The next run takes the lock again and converges"
)


class PhonebookWriter(Protocol):
    """The part of the VIPeX client that apply uses."""

    def set_phonebook_entry(
        self,
        vipex_id: str,
        phonenumber: str,
        *,
        name: str,
        tags: Sequence[str],
        comment: str,
        custom_field_options: Sequence[CustomFieldValue],
    ) -> None: ...

    def del_phonebook_entry(self, vipex_id: str, phonenumber: str) -> bool: ...

    def get_phonebook_entry(self, vipex_id: str, phonenumber: str) -> PhonebookEntry: ...


@dataclass(frozen=True, slots=True)
class WriteRules:
    """What the writer needs beyond ``after``: the semantics, and which fields are ours."""

    semantics: WriteSemantics = UNVERIFIED
    managed_field_ids: frozenset[int] = frozenset()


class Failure(StrEnum):
    REFUSED = "refused"  # VIPeX answered result 0 for this value
    AUTH = "auth"  # the credentials were rejected: nothing else will pass either
    UNAVAILABLE = "unavailable"  # transport, 5xx or 429, after the client's retries


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What happened to one change; ``error`` is None when VIPeX confirmed it."""

    change: Change
    error: str | None = None
    failure: Failure | None = None
    api_reason: str | None = None  # VIPeX's own reason on ``result: 0``
    already_gone: bool = False  # a delete found nothing to delete
    reads: int = 0  # get_phonebook_entry calls made to keep unmanaged fields

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ApplyOutcome:
    applied: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    not_attempted: int = 0
    deferred: int = 0  # deletes not sent: a write they required was not confirmed
    reads: int = 0  # entries read before an update (omitted fields are cleared)
    fatal_error: str | None = None  # why the run stopped submitting, if it did
    stopped: bool = False  # a stop was requested


def unmanaged_values(current: PhonebookEntry, managed: frozenset[int]) -> dict[int, str]:
    """The custom fields of ``current`` that no job mapping manages, with their values."""
    return {
        o.field_id: o.field_value
        for o in current.custom_field_options
        if o.field_id not in managed and o.field_value != ""
    }


def write_one(
    writer: PhonebookWriter, vipex_id: str, change: Change, rules: WriteRules = WriteRules()
) -> WriteResult:
    """Perform one change; API failures become a result, never an exception."""
    reads = 0
    try:
        if change.action is Action.DELETE:
            existed = writer.del_phonebook_entry(vipex_id, change.phonenumber)
            return WriteResult(change, already_gone=not existed)
        after = change.after
        assert after is not None, "a create/update/adopt always has an 'after'"
        values = dict(after.custom_fields)
        unproven = change.action is not Action.CREATE or not change.before_known
        if unproven and rules.semantics.reads_before_update:
            reads = 1
            try:
                current = writer.get_phonebook_entry(vipex_id, after.phonenumber)
            except ApiResultError:
                pass  # not there (any more): the write creates it, nothing to keep
            else:
                managed = rules.managed_field_ids | frozenset(after.custom_fields)
                values.update(unmanaged_values(current, managed))
        writer.set_phonebook_entry(
            vipex_id,
            after.phonenumber,
            name=after.name,
            tags=sorted(after.tags),
            comment=after.comment,
            custom_field_options=[
                CustomFieldValue(field_id=fid, field_value=value)
                for fid, value in sorted(values.items())
            ],
        )
        return WriteResult(change, reads=reads)
    except ApiResultError as exc:
        return WriteResult(
            change, error=str(exc), failure=Failure.REFUSED, api_reason=exc.reason, reads=reads
        )
    except AuthError as exc:
        return WriteResult(change, error=str(exc), failure=Failure.AUTH, reads=reads)
    except ApiError as exc:
        return WriteResult(change, error=str(exc), failure=Failure.UNAVAILABLE, reads=reads)


def apply_plan(
    plan: Plan,
    *,
    writer: PhonebookWriter,
    vipex_id: str,
    concurrency: int,
    journal: Callable[[WriteResult], None],
    stop: threading.Event,
    on_progress: Callable[[int, int], None] | None = None,
    mark: Callable[[Sequence[Change]], None] | None = None,
    still_held: Callable[[], bool] | None = None,
    lock_check_every: int = LOCK_CHECK_EVERY,
    rules: WriteRules = WriteRules(),
    idle: Callable[[], None] | None = None,
) -> ApplyOutcome:
    """Run every change of ``plan``; ``journal`` sees each result on this thread.

    ``mark`` is told each phase's changes right before they are sent (the
    runner marks them pending). A delete whose ``requires`` were not all
    confirmed in the write phase is not sent (counted in ``deferred``).
    ``still_held`` is asked before each phase and every ``lock_check_every``
    submissions: a run that lost its job lock stops writing (DESIGN
    invariant 7) and reports it as its fatal error. ``idle`` is called on this
    thread whenever no write finished for ``IDLE_SECONDS``.
    """
    outcome = ApplyOutcome()
    writes = plan.writes
    total = len(writes) + len(plan.deletes)
    done = 0
    consecutive_failures = 0
    halt = threading.Event()  # set on a fatal error: submit nothing more
    confirmed: set[str] = set()
    submitted = 0
    next_check = lock_check_every

    def lock_lost() -> bool:
        if still_held is None or still_held():
            return False
        if outcome.fatal_error is None:
            outcome.fatal_error = LOCK_LOST
        halt.set()
        return True

    with ThreadPoolExecutor(
        max_workers=max(1, concurrency), thread_name_prefix="vipex-write"
    ) as pool:
        for deleting in (False, True):
            if stop.is_set() or halt.is_set() or lock_lost():
                break
            phase: list[Change] = list(writes)
            if deleting:
                # A delete waits for the writes it requires (a number change).
                phase = [d for d in plan.deletes if confirmed.issuperset(d.requires)]
                outcome.deferred = len(plan.deletes) - len(phase)
                done += outcome.deferred
            if phase and mark is not None:
                mark(phase)
            pending: set[Future[WriteResult]] = set()
            changes: Iterator[Change] = iter(phase)
            exhausted = False
            while True:
                while not exhausted and len(pending) < 2 * max(1, concurrency):
                    if stop.is_set() or halt.is_set():
                        break
                    if submitted >= next_check:
                        next_check = submitted + lock_check_every
                        if lock_lost():
                            break
                    change = next(changes, None)
                    if change is None:
                        exhausted = True
                        break
                    pending.add(pool.submit(write_one, writer, vipex_id, change, rules))
                    submitted += 1
                if not pending:
                    break
                finished, pending = wait(
                    pending,
                    timeout=None if idle is None else IDLE_SECONDS,
                    return_when=FIRST_COMPLETED,
                )
                if not finished and idle is not None:
                    idle()
                for future in finished:
                    result = future.result()
                    journal(result)
                    done += 1
                    outcome.reads += result.reads
                    action = result.change.action.value
                    if result.ok:
                        outcome.applied[action] += 1
                        confirmed.add(result.change.phonenumber)
                        consecutive_failures = 0
                    else:
                        outcome.failed[action] += 1
                        log.warning(
                            "%s %s failed: %s", action, result.change.phonenumber, result.error
                        )
                        consecutive_failures = _after_failure(
                            result, consecutive_failures, outcome, halt
                        )
                    if on_progress is not None:
                        on_progress(done, total)
    outcome.not_attempted = total - done
    outcome.stopped = stop.is_set()
    return outcome


def _after_failure(
    result: WriteResult, consecutive: int, outcome: ApplyOutcome, halt: threading.Event
) -> int:
    """Decide whether a failed write should stop the run; returns the new streak."""
    error = result.error or ""
    if result.failure is Failure.REFUSED:
        return 0  # VIPeX refused this one value; the others may well pass
    if result.failure is Failure.AUTH:
        if outcome.fatal_error is None:
            outcome.fatal_error = error
        halt.set()
        return consecutive + 1
    consecutive += 1
    if consecutive >= CONSECUTIVE_FAILURE_LIMIT and outcome.fatal_error is None:
        outcome.fatal_error = (
            f"{consecutive} writes in a row failed after retries; VIPeX looks unreachable. "
            f"The last error: {error}"
        )
        halt.set()
    return consecutive

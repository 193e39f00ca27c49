"""One run of one job: read, map, load the mirror, (list), plan, guard, apply, report.

This is the shell around the pure planner. It owns the database sessions
(the store's functions take the session from here), the order of the steps
and the run's bookkeeping; every decision is the planner's or the guard's.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sqlalchemy.orm import Session, sessionmaker

from vipexsync.config import JobConfig, mapping_fingerprint
from vipexsync.domain import DesiredEntry, Entry, MirrorEntry, RecordProblem
from vipexsync.errors import ApiError, ApiResultError, ConfigError, VipexSyncError
from vipexsync.mapping import MappingResult, compile_mapping, map_records
from vipexsync.mirror import findings, store
from vipexsync.progress import NullProgress, ProgressSink
from vipexsync.semantics import StatedSemantics, effective_semantics
from vipexsync.sources import open_source
from vipexsync.sources.identity import source_identity
from vipexsync.sync import quiet
from vipexsync.sync.apply import ApplyOutcome, WriteResult, WriteRules, apply_plan
from vipexsync.sync.guard import guard, withhold_deletes
from vipexsync.sync.model import (
    Action,
    Change,
    GuardContext,
    GuardVerdict,
    Mode,
    Plan,
    Policy,
    RemoteView,
)
from vipexsync.sync.plan import (
    confirm_listing,
    effective_mode,
    full_resync_done,
    lookups_needed,
)
from vipexsync.sync.plan import plan as make_plan
from vipexsync.sync.report import Outcome, RunReport, group_problems, run_counts, run_guard
from vipexsync.vipex.client import VipexClient
from vipexsync.vipex.models import CustomField, PhonebookEntry

if TYPE_CHECKING:
    from vipexsync.metrics import Metrics

log = logging.getLogger("vipexsync.run")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RunOptions:
    mode: Mode = Mode.INCREMENTAL
    dry_run: bool = False
    force_delete: bool = False
    plan_out: Path | None = None
    rejects_out: Path | None = None


def remote_entry(entry: PhonebookEntry, field_ids: frozenset[int]) -> Entry:
    """The managed view of a listed entry: only the mapped custom fields."""
    values = {o.field_id: o.field_value for o in entry.custom_field_options}
    return Entry(
        phonenumber=entry.phonenumber,
        name=entry.name,
        tags=frozenset(entry.tags),
        comment=entry.comment,
        custom_fields={fid: values.get(fid, "") for fid in sorted(field_ids)},
    )


class RemoteRows:
    """Turns listed rows into the managed view, sharing what it can.

    A row equal to the desired entry becomes that very object rather than a
    copy (the mirror shares them too): at 100k entries the copies were
    ~60 MB. Tag sets are shared the same way. Use one per listing.
    """

    def __init__(self, field_ids: frozenset[int], desired: Mapping[str, DesiredEntry]) -> None:
        self.field_ids = field_ids
        self.desired = desired
        self.tag_sets: dict[tuple[str, ...], frozenset[str]] = {}

    def __call__(self, listed: PhonebookEntry) -> Entry:
        entry = remote_entry(listed, self.field_ids)
        tags = self.tag_sets.setdefault(listed.tags, entry.tags)
        want = self.desired.get(entry.phonenumber)
        if want is not None and want.entry == entry:
            return want.entry
        if tags is not entry.tags:
            return replace(entry, tags=tags)
        return entry


def write_plan_file(
    path: Path,
    plan: Plan,
    verdict: GuardVerdict,
    problems: Iterable[RecordProblem] = (),
) -> None:
    """The plan as JSON, written atomically: one object per change, then one
    per rejected record or field (``"action": "reject"``, never folded)."""
    withheld = {c.phonenumber for c in verdict.withheld}
    rows: list[dict[str, object]] = []
    for change in plan.changes:
        row = change.as_json()
        row["withheld"] = change.action is Action.DELETE and change.phonenumber in withheld
        rows.append(row)
    for problem in problems:
        rows.append(
            {
                "action": "reject",
                "phonenumber": problem.phonenumber,
                "before": None,
                "after": None,
                **problem.as_json(),
            }
        )

    def dump(out: TextIO) -> None:
        json.dump(rows, out, ensure_ascii=False, indent=2)
        out.write("\n")

    _write_atomically(path, dump)


# Confirmed writes journaled per transaction, and the longest a batch stays open.
JOURNAL_BATCH = 64
JOURNAL_BATCH_SECONDS = 1.0

REJECTS_COLUMNS = (
    "key",
    "location",
    "display name",
    "field",
    "value",
    "reason",
    "code",
    "fatal",
    "phonenumber",
)


def write_rejects_file(path: Path, problems: Iterable[RecordProblem]) -> None:
    """Every rejection and note as CSV for the CRM's owners, written atomically.

    UTF-8 with a byte-order mark so that Excel shows accents right; one row
    per finding; a repeated finding is written once.
    """

    def dump(out: TextIO) -> None:
        writer = csv.writer(out)
        writer.writerow(REJECTS_COLUMNS)
        seen: set[tuple[str, ...]] = set()
        for p in problems:
            row = (
                p.record_key,
                p.locator,
                p.display_name,
                p.field,
                p.value,
                p.reason,
                p.code,
                "yes" if p.fatal else "no",
                p.phonenumber or "",
            )
            if row not in seen:
                seen.add(row)
                writer.writerow(row)

    _write_atomically(path, dump, encoding="utf-8-sig", newline="")


def _write_atomically(
    path: Path,
    dump: Callable[[TextIO], None],
    *,
    encoding: str = "utf-8",
    newline: str | None = None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline=newline) as out:
            dump(out)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Progress:
    """Turns listing rows and writes into one 0–1 ratio for the metric and the bar."""

    def __init__(self, job: str, sink: ProgressSink, metrics: Metrics | None) -> None:
        self.job = job
        self.sink = sink
        self.metrics = metrics
        self.listing_total = 0
        self.listing_done = 0
        self.writes_total = 0
        self.writes_done = 0

    def listing(self, done: int, total: int) -> None:
        self.listing_done, self.listing_total = done, total
        self.sink.update("listing", done, total)
        self._ratio()

    def writes(self, done: int, total: int) -> None:
        self.writes_done, self.writes_total = done, total
        self.sink.update("writing", done, total)
        self._ratio()

    def _ratio(self) -> None:
        if self.metrics is None:
            return
        total = self.listing_total + self.writes_total
        done = self.listing_done + self.writes_done
        self.metrics.progress(self.job, done / total if total else 0.0)


class JobRun:
    """Carries the state of one run between its steps."""

    def __init__(
        self,
        job: JobConfig,
        *,
        client: VipexClient,
        sessions: sessionmaker[Session],
        options: RunOptions,
        stop: threading.Event,
        concurrency: int,
        metrics: Metrics | None = None,
        progress: ProgressSink | None = None,
        clock: Callable[[], datetime] = utcnow,
        still_held: Callable[[], bool] | None = None,
        foreign_tags: frozenset[str] = frozenset(),
        stated_semantics: StatedSemantics = "probe",
    ) -> None:
        self.job = job
        self.still_held = still_held
        self.foreign_tags = foreign_tags
        self.stated_semantics = stated_semantics
        self.client = client
        self.sessions = sessions
        self.options = options
        self.stop = stop
        self.concurrency = concurrency
        self.metrics = metrics
        self.clock = clock
        self.progress = _Progress(job.name, progress or NullProgress(), metrics)
        self._first_failures: list[str] = []
        # Set by a run that had nothing to do: (key, generation read, report summary).
        self._quiet_store: tuple[str, int, str] | None = None
        self._quiet_tick = False

    # -- the run -----------------------------------------------------------

    def execute(self) -> RunReport:
        job, opts = self.job, self.options
        started = time.monotonic()
        calls_before = self.client.request_count
        fingerprint = mapping_fingerprint(job)
        if self.metrics is not None:
            self.metrics.run_started(job.name)
        with self.sessions() as session:
            store.mark_interrupted_runs(session, job.name, self.clock())
            state = store.get_job_state(session, job.name)
            mode = effective_mode(opts.mode, had_full_resync=state.last_full_resync_at is not None)
            if mode is not opts.mode:
                log.info("job %s: no full resync yet; this run lists VIPeX (full)", job.name)
                opts = self.options = replace(opts, mode=mode)
            run_id = store.start_run(
                session,
                job=job.name,
                mode=opts.mode.value,
                dry_run=opts.dry_run,
                fingerprint=fingerprint,
                now=self.clock(),
            )
            session.commit()
            fingerprint_changed = (
                state.mapping_fingerprint is not None and state.mapping_fingerprint != fingerprint
            )
            report: RunReport
            try:
                report = self._steps(session, run_id, fingerprint, fingerprint_changed, state)
            except ConfigError as exc:
                report = self._failed(run_id, str(exc))
                self._finish(session, report, started, calls_before)
                raise
            except VipexSyncError as exc:
                report = self._failed(run_id, str(exc))
            except Exception as exc:
                log.exception("job %s: unexpected error", job.name)
                report = self._failed(run_id, f"internal error: {type(exc).__name__}: {exc}")
                self._finish(session, report, started, calls_before)
                raise
            return self._finish(session, report, started, calls_before)

    def _failed(self, run_id: int, error: str) -> RunReport:
        return RunReport(
            job=self.job.name,
            mode=self.options.mode.value,
            dry_run=self.options.dry_run,
            outcome=Outcome.FAILURE,
            run_id=run_id,
            error=error,
        )

    def _finish(
        self, session: Session, report: RunReport, started: float, calls_before: int
    ) -> RunReport:
        duration = time.monotonic() - started
        calls = self.client.request_count - calls_before
        report = replace(report, duration_seconds=duration, api_calls=calls)
        session.rollback()  # nothing half-done from a failed step rides along
        if not self.options.dry_run and not self._quiet_tick:
            # The key describes the last real run; any other run clears it.
            stored = False
            if self._quiet_store is not None and report.outcome is Outcome.SUCCESS:
                key, generation, summary = self._quiet_store
                stored = store.store_quiet_key(
                    session, self.job.name, key=key, generation=generation, report=summary
                )
            if not stored:
                store.clear_quiet_key(session, self.job.name)
        store.finish_run(
            session,
            report.run_id or 0,
            outcome=report.outcome.value,
            counts=run_counts(report),
            guard=run_guard(report),
            error=report.error,
            # Not every rejected record: at 100k records a run every 5 minutes
            # would store gigabytes; the groups and their examples stay.
            report=report.as_json(every_rejection=False),
            now=self.clock(),
        )
        store.set_job_state(session, self.job.name, last_run_at=self.clock())
        session.commit()
        self.progress.sink.close()
        if self.metrics is not None:
            self.metrics.run_finished(
                self.job.name,
                report.mode,
                report.outcome.value,
                duration=duration,
                finished_at=time.time(),
            )
        level = logging.INFO if report.outcome is Outcome.SUCCESS else logging.WARNING
        log.log(level, "run finished: %s", report.summary_line())
        return report

    def _steps(
        self,
        session: Session,
        run_id: int,
        fingerprint: str,
        fingerprint_changed: bool,
        state: store.JobState,
    ) -> RunReport:
        job, opts = self.job, self.options
        full = opts.mode is Mode.FULL

        fields: tuple[CustomField, ...] = ()
        if job.mapping.custom_fields:
            fields = self.client.get_phonebook_custom_field_list(job.vipex_id)
        compiled = compile_mapping(job.mapping, fields, job=job.name)
        field_ids = compiled.custom_field_ids

        may_be_quiet = (
            opts.mode is Mode.INCREMENTAL
            and not opts.dry_run
            and opts.plan_out is None
            and opts.rejects_out is None
        )
        identity = source_identity(job.source) if may_be_quiet else None
        key = self._quiet_key(identity.content, fields) if identity is not None else None
        if key is not None:
            # Read again: a writer without the job lock may have bumped it since.
            fresh = store.get_job_state(session, job.name)
            session.rollback()
            if quiet.key_holds(_stored_quiet(fresh), key, fingerprint):
                assert fresh.quiet_report is not None
                return self._quiet(run_id, fresh.quiet_report)

        source = open_source(job.source, full=full)
        # A source that fails or is cut short raises SourceError here: the run
        # fails before planning, so it deletes (and writes) nothing.
        mapped = map_records(
            source.read(), compiled, region=job.default_region, ownership_tag=job.ownership_tag
        )
        if identity is not None and source_identity(job.source) != identity:
            key = None  # a file changed while it was read: this run proves nothing
        self._log_rejections(mapped)
        if opts.rejects_out is not None:
            write_rejects_file(opts.rejects_out, (*mapped.problems, *mapped.notes))

        remote: RemoteView | None = None
        remote_count: int | None = None
        remote_problems: tuple[str, ...] = ()
        if full:
            # Each page becomes managed entries as it arrives; the raw rows are
            # never all held at once (see RemoteRows for the sharing).
            scan = self.client.scan_phonebook(
                job.vipex_id,
                RemoteRows(field_ids, mapped.desired),
                progress=self.progress.listing,
            )
            remote = RemoteView(entries=scan.rows, complete=scan.stable, problems=scan.problems)
            remote_count = len(scan.rows)
            remote_problems = scan.problems
            if not remote.complete:
                log.warning(
                    "job %s: the VIPeX listing was not stable (%s); no deletions this run",
                    job.name,
                    "; ".join(remote_problems),
                )

        # Loaded after the listing, whose transient memory (pages in flight)
        # the mirror then reuses: at 100k entries that keeps the peak lower.
        mirror = store.load_mirror(session, job.name, desired=mapped.desired)
        semantics = effective_semantics(
            self.stated_semantics, findings.load_findings(session, job.vipex_id)
        )
        session.rollback()  # end the read transaction; writes come one by one

        policy = Policy(
            delete=job.delete,
            ownership_tag=job.ownership_tag,
            managed_field_ids=field_ids,
            foreign_tags=self.foreign_tags,
            semantics=semantics,
        )
        # What VIPeX holds where nobody knows (incremental creates, unconfirmed
        # writes) or where a complete listing missed an owned entry: one
        # get_phonebook_entry per number, normally none.
        needed = lookups_needed(mapped.desired, mirror, remote)
        lookups = self._look_up(needed, field_ids)
        if remote is not None:
            remote = confirm_listing(remote, needed, lookups)
            remote_problems = remote.problems
        planned = make_plan(
            mapped.desired,
            mirror,
            remote,
            policy,
            rejected_keys=mapped.rejected_keys,
            rejected_numbers=mapped.rejected_numbers,
            lookups=lookups if remote is None else None,
        )
        verdict = guard(
            planned,
            self._guard_context(mapped, remote, fingerprint_changed),
        )
        runnable = withhold_deletes(planned, verdict)
        if verdict.tripped:
            for reason in verdict.reasons:
                log.warning(
                    "job %s: %d deletion(s) withheld: %s", job.name, len(verdict.withheld), reason
                )
        self._log_plan_notes(planned)
        self._count_plan(mapped, mirror, remote_count, planned, guard_tripped=verdict.tripped)
        if opts.plan_out is not None:
            write_plan_file(opts.plan_out, planned, verdict, (*mapped.problems, *mapped.notes))

        base = RunReport(
            job=job.name,
            mode=opts.mode.value,
            dry_run=opts.dry_run,
            outcome=Outcome.GUARDED if verdict.tripped else Outcome.SUCCESS,
            run_id=run_id,
            planned=planned.counts(),
            rejections=group_problems((*mapped.problems, *mapped.notes)),
            problems=(*mapped.problems, *mapped.notes),
            key_rules=mapped.key_rules,
            withheld_deletes=len(verdict.withheld),
            guard_reasons=verdict.reasons,
            drift=planned.drift,
            source_records=mapped.records,
            desired=len(mapped.desired),
            mirror=len(mirror),
            remote=remote_count,
            remote_problems=remote_problems,
            lookups=len(needed),
            kept=len(planned.kept),
            conflicts=len(planned.conflicts),
            unchecked=len(planned.unchecked),
            deferred_deletes=len(planned.waiting),
        )
        if opts.dry_run:
            return base

        outcome = self._apply(session, run_id, runnable, WriteRules(semantics, field_ids))
        self._confirm_mirror(session, run_id, runnable, remote)
        # Any write VIPeX did not confirm makes the run a failure (exit 1): it
        # is retried by the next run, but an operator should know. Refusals of
        # one value (result 0) are listed in the report with VIPeX's reason.
        failed_writes = sum(outcome.failed.values())
        halted = outcome.fatal_error is not None or outcome.stopped
        failed_hard = halted or failed_writes > 0 or bool(planned.unchecked)
        if full_resync_done(
            opts.mode, remote, halted=halted, source_complete=mapped.source_complete
        ):
            # Counts even if some writes failed: they are retried by incremental
            # runs, so one refused entry does not make every tick a full listing.
            store.set_job_state(
                session,
                job.name,
                last_full_resync_at=self.clock(),
                mapping_fingerprint=fingerprint,
            )
        elif remote is None and state.mapping_fingerprint is None and not halted:
            store.set_job_state(session, job.name, mapping_fingerprint=fingerprint)
        session.commit()

        error = outcome.fatal_error
        if outcome.stopped and error is None:
            error = f"stopped on request; {outcome.not_attempted} change(s) left for the next run"
        elif failed_writes and error is None:
            error = (
                f"{failed_writes} write(s) were not confirmed by VIPeX; "
                "they are retried by the next run"
            )
        elif planned.unchecked and error is None:
            error = (
                f"{len(planned.unchecked)} entries could not be looked up in VIPeX first "
                f"(e.g. {', '.join(planned.unchecked[:3])}); nothing was written for them, "
                "the next run tries again"
            )
        result = Outcome.FAILURE if failed_hard else base.outcome
        finished = replace(
            base,
            outcome=result,
            applied=_counts(outcome.applied),
            failed=_counts(outcome.failed),
            not_attempted=outcome.not_attempted,
            deferred_deletes=base.deferred_deletes + outcome.deferred,
            entry_reads=outcome.reads,
            error=error,
            first_failures=tuple(self._first_failures),
        )
        if key is not None and quiet.nothing_to_do(
            finished,
            mirror_updates=len(planned.mirror_updates),
            source_complete=mapped.source_complete,
            fingerprint_changed=fingerprint_changed,
        ):
            self._quiet_store = (key, state.mirror_generation, quiet.summary(finished))
        return finished

    # -- the quiet tick --------------------------------------------------------

    def _quiet_key(self, source: str, fields: Sequence[CustomField]) -> str:
        return quiet.quiet_key(
            source=source,
            config=quiet.config_digest(
                self.job,
                foreign_tags=self.foreign_tags,
                stated_semantics=self.stated_semantics,
            ),
            fields=quiet.fields_digest(fields),
        )

    def _quiet(self, run_id: int, stored: str) -> RunReport:
        """The report of a tick whose inputs are those of a run that had nothing to do."""
        self._quiet_tick = True
        report = quiet.quiet_report(stored, job=self.job.name, run_id=run_id)
        name = self.job.name
        quiet.log_quiet_tick(report)
        if self.metrics is not None:
            self.metrics.planned(name, report.planned)
            self.metrics.guard(name, False)
            self.metrics.entries(name, "desired", report.desired)
            self.metrics.entries(name, "mirror", report.mirror)
            self.metrics.rejected(name, report.rejected_by_code())
        return report

    # -- steps ---------------------------------------------------------------

    def _guard_context(
        self, mapped: MappingResult, remote: RemoteView | None, fingerprint_changed: bool
    ) -> GuardContext:
        job = self.job
        return GuardContext(
            # A source that fails as a whole raises before planning; one that
            # skipped an unreadable part (a file of a vCard folder) says so here.
            source_complete=mapped.source_complete,
            source_records=mapped.records,
            min_source_records=job.min_source_records,
            remote_complete=remote.complete if remote is not None else True,
            fingerprint_changed=fingerprint_changed,
            mode=self.options.mode,
            max_deletes=job.max_deletes,
            max_delete_ratio=job.max_delete_ratio,
            force_delete=self.options.force_delete,
        )

    def _apply(self, session: Session, run_id: int, plan: Plan, rules: WriteRules) -> ApplyOutcome:
        job = self.job
        # Confirmed creates and updates are committed JOURNAL_BATCH at a time (or
        # after JOURNAL_BATCH_SECONDS, or when apply is idle): one transaction per
        # write cost more CPU than the write itself. Each was marked pending before
        # it was sent, so a crash before the commit leaves its number pending: the
        # next run looks it up (or lists it) and finds it done. Failures and
        # deletes are committed at once.
        confirmed: list[store.ConfirmedWrite] = []
        batch_started = 0.0

        def commit() -> None:
            if confirmed:
                store.record_applied_many(session, job=job.name, run_id=run_id, writes=confirmed)
                session.commit()
                confirmed.clear()

        def mark(changes: Sequence[Change]) -> None:
            commit()
            store.mark_pending_many(
                session,
                job=job.name,
                changes=((c.phonenumber, c.action.value, c.record_key) for c in changes),
            )
            session.commit()

        def journal(result: WriteResult) -> None:
            nonlocal batch_started
            change = result.change
            now = self.clock()
            if result.ok and change.action is not Action.DELETE:
                assert change.after is not None
                if not confirmed:
                    batch_started = time.monotonic()
                confirmed.append(
                    store.ConfirmedWrite(
                        action=change.action.value,
                        phonenumber=change.phonenumber,
                        before=change.before,
                        written=change.after,
                        record_key=change.record_key,
                        reason=change.reason,
                        at=now,
                    )
                )
                if (
                    len(confirmed) >= JOURNAL_BATCH
                    or time.monotonic() - batch_started >= JOURNAL_BATCH_SECONDS
                ):
                    commit()
            else:
                commit()  # the change log keeps the order results arrived in
                if result.ok:
                    store.record_deleted(
                        session,
                        job=job.name,
                        run_id=run_id,
                        phonenumber=change.phonenumber,
                        before=change.before,
                        reason=change.reason
                        + (" (it was already gone)" if result.already_gone else ""),
                        now=now,
                    )
                else:
                    store.record_failed(
                        session,
                        job=job.name,
                        run_id=run_id,
                        action=change.action.value,
                        phonenumber=change.phonenumber,
                        before=change.before,
                        after=change.after,
                        reason=change.reason,
                        error=result.api_reason or result.error or "unknown error",
                        now=now,
                        record_key=change.record_key,
                    )
                    if len(self._first_failures) < 5:
                        self._first_failures.append(
                            f"{change.phonenumber} {change.action.value}: {result.error}"
                        )
                session.commit()
            if self.metrics is not None:
                self.metrics.change_applied(
                    job.name, change.action.metric_action, "applied" if result.ok else "failed"
                )

        outcome = apply_plan(
            plan,
            writer=self.client,
            vipex_id=job.vipex_id,
            concurrency=self.concurrency,
            journal=journal,
            stop=self.stop,
            on_progress=self.progress.writes,
            mark=mark,
            still_held=self.still_held,
            rules=rules,
            idle=commit,
        )
        # Raised out of apply (a database error), the open batch is left as after a
        # crash: pending rows that the next run looks up.
        commit()
        return outcome

    def _look_up(
        self, numbers: Sequence[str], field_ids: frozenset[int]
    ) -> dict[str, Entry | None]:
        """``get_phonebook_entry`` of each number: the entry, None if VIPeX has none.

        A number whose look-up failed is left out (its content stays unknown).
        """
        found: dict[str, Entry | None] = {}
        if not numbers:
            return found
        job = self.job

        def look(number: str) -> tuple[str, Entry | None, str | None]:
            try:
                listed = self.client.get_phonebook_entry(job.vipex_id, number)
            except ApiResultError:
                return number, None, None  # VIPeX has no entry for it
            except ApiError as exc:
                return number, None, str(exc)
            return number, remote_entry(listed, field_ids), None

        workers = max(1, min(self.concurrency, len(numbers)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vipex-look") as pool:
            for number, entry, error in pool.map(look, numbers):
                if error is None:
                    found[number] = entry
                else:
                    log.warning("job %s: looking up %s failed: %s", job.name, number, error)
        return found

    def _confirm_mirror(
        self, session: Session, run_id: int, plan: Plan, remote: RemoteView | None
    ) -> None:
        now = self.clock()
        store.record_confirmed_many(
            session,
            job=self.job.name,
            run_id=run_id,
            updates=((u.phonenumber, u.entry, u.record_key) for u in plan.mirror_updates),
            now=now,
            reasons={u.phonenumber: u.reason for u in plan.mirror_updates if u.reason},
        )
        if remote is not None:
            store.mark_seen(session, self.job.name, remote.entries.keys(), now)
        session.commit()

    def _count_plan(
        self,
        mapped: MappingResult,
        mirror: Mapping[str, MirrorEntry],
        remote_count: int | None,
        planned: Plan,
        *,
        guard_tripped: bool,
    ) -> None:
        if self.metrics is None:
            return
        name = self.job.name
        self.metrics.planned(name, planned.counts())
        self.metrics.guard(name, guard_tripped)
        self.metrics.entries(name, "desired", len(mapped.desired))
        self.metrics.entries(name, "mirror", len(mirror))
        if remote_count is not None:
            self.metrics.entries(name, "remote", remote_count)
            self.metrics.drift(name, planned.drift)
        by_code: dict[str, int] = {}
        for problem in (*mapped.problems, *mapped.notes):
            by_code[problem.code] = by_code.get(problem.code, 0) + 1
        self.metrics.rejected(name, by_code)

    def _log_plan_notes(self, planned: Plan) -> None:
        name = self.job.name
        notes = (
            (planned.kept, "kept: their CRM record is present but rejected this run"),
            (planned.conflicts, "left alone: they carry another job's ownership tag"),
            (planned.unchecked, "not written: the look-up in VIPeX failed"),
            (planned.waiting, "old numbers kept until their record's new number is written"),
        )
        for numbers, what in notes:
            if numbers:
                log.warning(
                    "job %s: %d entries %s (e.g. %s)",
                    name,
                    len(numbers),
                    what,
                    ", ".join(numbers[:5]),
                )

    def _log_rejections(self, mapped: MappingResult) -> None:
        """One line per rejection reason, then each finding once (never folded)."""
        name = self.job.name
        for group in group_problems((*mapped.problems, *mapped.notes)):
            level = logging.WARNING if group.fatal else logging.INFO
            kind = "record(s) or number(s) rejected" if group.fatal else "field(s) dropped or noted"
            log.log(level, "job %s: %d %s (%s)", name, group.count, kind, group.code)
        # Every rejected record by name (a repeated line once); the notes and
        # dropped fields, which lose no record, only at DEBUG: they can be many.
        seen: set[str] = set()
        for problem in (*mapped.problems, *mapped.notes):
            line = f"{problem.reason} [{problem.code}]" + (
                f" at {problem.locator}" if problem.locator else ""
            )
            if line not in seen:
                seen.add(line)
                log.log(
                    logging.WARNING if problem.fatal else logging.DEBUG, "job %s: %s", name, line
                )


def _stored_quiet(state: store.JobState) -> quiet.StoredQuiet:
    return quiet.StoredQuiet(
        mapping_fingerprint=state.mapping_fingerprint,
        had_full_resync=state.last_full_resync_at is not None,
        mirror_generation=state.mirror_generation,
        quiet_key=state.quiet_key,
        quiet_generation=state.quiet_generation,
        quiet_report=state.quiet_report,
    )


def _counts(counter: Mapping[str, int]) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(counter.items())}

"""What one run did, for humans (text), scripts (JSON) and the runs table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from vipexsync.domain import RecordProblem

EXAMPLE_KEYS = 5  # how many distinct reasons a JSON group shows as examples
TEXT_FOLD = 20  # the text report lists this many records per reason, then folds


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    GUARDED = "guarded"
    SKIPPED = "skipped"


# Exit codes from ../shared/CONTRACT.md
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_GUARDED = 3
EXIT_LOCKED = 4
# Ended by Ctrl-C (SIGINT), after the writes in flight were recorded: 128 + 2, as shells do.
EXIT_INTERRUPTED = 130

_EXIT_FOR = {
    Outcome.SUCCESS: EXIT_OK,
    Outcome.FAILURE: EXIT_FAILED,
    Outcome.GUARDED: EXIT_GUARDED,
    Outcome.SKIPPED: EXIT_LOCKED,
}


@dataclass(frozen=True, slots=True)
class RejectionGroup:
    code: str
    count: int
    examples: tuple[str, ...]  # the reasons of the first few records
    fatal: bool


def group_problems(problems: Iterable[RecordProblem]) -> tuple[RejectionGroup, ...]:
    """Rejections grouped by reason code, with the first few records of each."""
    counts: dict[tuple[str, bool], int] = defaultdict(int)
    examples: dict[tuple[str, bool], list[str]] = defaultdict(list)
    for problem in problems:
        group = (problem.code, problem.fatal)
        counts[group] += 1
        shown = examples[group]
        if len(shown) < EXAMPLE_KEYS and problem.reason not in shown:
            shown.append(problem.reason)  # it names the record and the field
    return tuple(
        RejectionGroup(
            code=code,
            count=counts[(code, fatal)],
            examples=tuple(examples[(code, fatal)]),
            fatal=fatal,
        )
        for code, fatal in sorted(counts, key=lambda g: (not g[1], g[0]))
    )


@dataclass(frozen=True, slots=True)
class RunReport:
    job: str
    mode: str
    dry_run: bool
    outcome: Outcome
    run_id: int | None = None
    planned: Mapping[str, int] = field(default_factory=dict)  # create/update/adopt/delete/noop
    applied: Mapping[str, int] = field(default_factory=dict)
    failed: Mapping[str, int] = field(default_factory=dict)
    not_attempted: int = 0  # writes skipped because the run stopped early
    entry_reads: int = 0  # entries read before an update, to keep unmanaged fields
    rejections: tuple[RejectionGroup, ...] = ()
    withheld_deletes: int = 0
    guard_reasons: tuple[str, ...] = ()
    drift: int = 0
    source_records: int = 0
    desired: int = 0
    mirror: int = 0
    remote: int | None = None
    remote_problems: tuple[str, ...] = ()
    lookups: int = 0  # get_phonebook_entry calls to learn unknown content
    kept: int = 0  # entries kept because their CRM record is present but rejected
    conflicts: int = 0  # desired numbers held under another job's ownership tag
    unchecked: int = 0  # numbers whose look-up failed: nothing written for them
    deferred_deletes: int = 0  # old numbers kept until their record's new number is written
    api_calls: int = 0
    duration_seconds: float = 0.0
    error: str | None = None
    first_failures: tuple[
        str, ...
    ] = ()  # "phonenumber action: reason" for the first few failed writes
    # Every rejection and note, never folded (the text report folds long lists).
    problems: tuple[RecordProblem, ...] = ()
    key_rules: Mapping[str, int] = field(default_factory=dict)  # rule ("" = configured) -> records
    # A quiet tick: the source, configuration, custom fields and mirror were
    # those of this earlier run, which had nothing to do (vipexsync/sync/quiet.py).
    unchanged_since: int | None = None

    @property
    def exit_code(self) -> int:
        return _EXIT_FOR[self.outcome]

    @property
    def rejected_records(self) -> int:
        return sum(g.count for g in self.rejections if g.fatal)

    def rejected_by_code(self) -> dict[str, int]:
        by_code: dict[str, int] = defaultdict(int)
        for group in self.rejections:
            by_code[group.code] += group.count
        return dict(by_code)

    def as_json(self, *, every_rejection: bool = True) -> dict[str, object]:
        """The report for scripts; ``every_rejection=False`` leaves out the
        per-record list (the runs table keeps only the groups)."""
        data: dict[str, object] = {
            "job": self.job,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "run_id": self.run_id,
            "planned": dict(self.planned),
            "applied": dict(self.applied),
            "failed": dict(self.failed),
            "not_attempted": self.not_attempted,
            "rejections": [
                {"reason": g.code, "count": g.count, "fatal": g.fatal, "examples": list(g.examples)}
                for g in self.rejections
            ],
            "withheld_deletes": self.withheld_deletes,
            "guard_reasons": list(self.guard_reasons),
            "drift": self.drift,
            "source_records": self.source_records,
            "entries": {"desired": self.desired, "mirror": self.mirror, "remote": self.remote},
            "remote_problems": list(self.remote_problems),
            "lookups": self.lookups,
            "kept": self.kept,
            "conflicts": self.conflicts,
            "unchecked": self.unchecked,
            "deferred_deletes": self.deferred_deletes,
            "api_calls": self.api_calls,
            "entry_reads": self.entry_reads,
            "duration_seconds": round(self.duration_seconds, 3),
            "error": self.error,
            "first_failures": list(self.first_failures),
            "key_rules": {(rule or "configured key"): n for rule, n in self.key_rules.items()},
            "unchanged_since_run": self.unchanged_since,
        }
        if every_rejection:
            data["rejected"] = [p.as_json() for p in self.problems]
        return data

    def summary_line(self) -> str:
        """One line per run, for the journal."""

        def fmt(counts: Mapping[str, int]) -> str:
            return " ".join(f"{k}={v}" for k, v in counts.items() if v) or "none"

        parts = [
            f"job={self.job}",
            f"mode={self.mode}{' (dry run)' if self.dry_run else ''}",
            f"outcome={self.outcome.value}",
            f"planned: {fmt(self.planned)}",
            f"applied: {fmt(self.applied)}",
        ]
        if any(self.failed.values()):
            parts.append(f"failed: {fmt(self.failed)}")
        if self.rejected_records:
            parts.append(f"rejected={self.rejected_records}")
        if self.withheld_deletes:
            parts.append(f"withheld_deletes={self.withheld_deletes}")
        if self.drift:
            parts.append(f"drift={self.drift}")
        for name in ("kept", "conflicts", "unchecked", "deferred_deletes", "lookups"):
            if getattr(self, name):
                parts.append(f"{name}={getattr(self, name)}")
        if self.unchanged_since is not None:
            parts.append(f"unchanged_since_run={self.unchanged_since}")
        parts.append(f"api_calls={self.api_calls}")
        if self.entry_reads:
            parts.append(f"entry_reads={self.entry_reads}")
        parts.append(f"duration={self.duration_seconds:.1f}s")
        if self.error:
            parts.append(f"error={self.error}")
        return " ".join(parts)

    def _listing(self, group: RejectionGroup) -> list[str]:
        """Each record of a group once (``reason -- location``), folded after TEXT_FOLD."""
        if not self.problems:
            return list(group.examples)
        seen: dict[str, None] = {}
        for p in self.problems:
            if p.code == group.code and p.fatal == group.fatal:
                seen.setdefault(f"{p.reason} -- {p.locator}" if p.locator else p.reason)
        shown = list(seen)
        if len(shown) > TEXT_FOLD:
            rest = len(shown) - TEXT_FOLD
            shown = [
                *shown[:TEXT_FOLD],
                f"... and {rest} more (every one: sync --rejects-out FILE)",
            ]
        return shown

    def as_text(self) -> str:
        """A readable report for a person at a terminal."""
        title = f"Job {self.job}: {self.mode} run" + (
            " (dry run: nothing written)" if self.dry_run else ""
        )
        lines = [title, "=" * len(title), f"Outcome: {self.outcome.value}"]
        if self.error:
            lines.append(f"Error: {self.error}")
        if self.unchanged_since is not None:
            lines.append(
                f"Source, configuration, custom fields and mirror unchanged since run "
                f"{self.unchanged_since}, which had nothing to do: not read again"
            )
        remote = "not read" if self.remote is None else str(self.remote)
        lines.append(
            f"Entries: {self.source_records} CRM records -> {self.desired} desired; "
            f"mirror {self.mirror}; VIPeX {remote}"
        )
        verb = "Would write" if self.dry_run else "Planned"
        lines.append(f"{verb}: " + ", ".join(f"{k} {v}" for k, v in self.planned.items()))
        if not self.dry_run:
            lines.append(
                "Applied: "
                + (", ".join(f"{k} {v}" for k, v in self.applied.items() if v) or "nothing")
            )
            if any(self.failed.values()):
                lines.append(
                    "Failed (retried next run): "
                    + ", ".join(f"{k} {v}" for k, v in self.failed.items() if v)
                )
                lines.extend(f"  - {f}" for f in self.first_failures)
            if self.not_attempted:
                lines.append(f"Not attempted (run stopped early): {self.not_attempted}")
        if self.drift:
            lines.append(f"Drift repaired or found (hand edits in VIPeX): {self.drift}")
        if self.withheld_deletes:
            lines.append(f"Deletions withheld: {self.withheld_deletes}")
            lines.extend(f"  - {r}" for r in self.guard_reasons)
        if self.kept:
            lines.append(f"Kept (their CRM record is present but rejected): {self.kept}")
        if self.conflicts:
            lines.append(f"Left alone (another job's ownership tag): {self.conflicts}")
        if self.unchecked:
            lines.append(f"Not written (the look-up in VIPeX failed): {self.unchecked}")
        if self.deferred_deletes:
            lines.append(
                f"Old numbers kept until the record's new number is written: "
                f"{self.deferred_deletes}"
            )
        if self.lookups:
            lines.append(f"Looked up first (get_phonebook_entry): {self.lookups}")
        if self.remote_problems:
            lines.append("Listing problems:")
            lines.extend(f"  - {p}" for p in self.remote_problems)
        if len(self.key_rules) > 1 or any(self.key_rules):
            lines.append(
                "Record keys: "
                + "; ".join(
                    f"{n} by {rule or 'the configured key'}"
                    for rule, n in sorted(self.key_rules.items())
                )
            )
        if self.rejections:
            lines.append("Rejected records and fields:")
            for group in self.rejections:
                kind = "rejected" if group.fatal else "fields dropped or noted"
                lines.append(f"  {group.code}: {group.count} {kind}")
                lines.extend(f"    {line}" for line in self._listing(group))
        reads = (
            f" (of them {self.entry_reads} entry reads before updates: VIPeX clears what a "
            "write leaves out)"
            if self.entry_reads
            else ""
        )
        lines.append(f"API calls: {self.api_calls}{reads}; duration {self.duration_seconds:.2f} s")
        return "\n".join(lines)


def run_counts(report: RunReport) -> dict[str, int]:
    """The runs table's ``counts`` of a finished run."""
    return {
        **{f"planned_{k}": v for k, v in report.planned.items()},
        **{f"applied_{k}": v for k, v in report.applied.items()},
        **{f"failed_{k}": v for k, v in report.failed.items()},
        "rejected": report.rejected_records,
        "withheld_deletes": report.withheld_deletes,
        "drift": report.drift,
    }


def run_guard(report: RunReport) -> dict[str, object]:
    """The runs table's ``guard`` of a finished run."""
    return {"reasons": list(report.guard_reasons), "withheld": report.withheld_deletes}

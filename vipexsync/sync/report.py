"""What one run did, for humans (text), scripts (JSON) and the runs table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from vipexsync.domain import RecordProblem

EXAMPLE_KEYS = 5  # how many record keys a report shows per rejection reason


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
        if len(examples[group]) < EXAMPLE_KEYS:
            examples[group].append(problem.reason)  # it names the record and the field
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
    api_calls: int = 0
    duration_seconds: float = 0.0
    error: str | None = None
    first_failures: tuple[
        str, ...
    ] = ()  # "phonenumber action: reason" for the first few failed writes

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

    def as_json(self) -> dict[str, object]:
        return {
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
            "api_calls": self.api_calls,
            "entry_reads": self.entry_reads,
            "duration_seconds": round(self.duration_seconds, 3),
            "error": self.error,
            "first_failures": list(self.first_failures),
        }

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
        parts.append(f"api_calls={self.api_calls}")
        if self.entry_reads:
            parts.append(f"entry_reads={self.entry_reads}")
        parts.append(f"duration={self.duration_seconds:.1f}s")
        if self.error:
            parts.append(f"error={self.error}")
        return " ".join(parts)

    def as_text(self) -> str:
        """A readable report for a person at a terminal."""
        title = f"Job {self.job}: {self.mode} run" + (
            " (dry run: nothing written)" if self.dry_run else ""
        )
        lines = [title, "=" * len(title), f"Outcome: {self.outcome.value}"]
        if self.error:
            lines.append(f"Error: {self.error}")
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
        if self.remote_problems:
            lines.append("Listing problems:")
            lines.extend(f"  - {p}" for p in self.remote_problems)
        if self.rejections:
            lines.append("Rejected records and fields:")
            for group in self.rejections:
                kind = "rejected" if group.fatal else "fields dropped"
                lines.append(f"  {group.code}: {group.count} {kind}")
                lines.extend(f"    {example}" for example in group.examples)
        reads = (
            f" (of them {self.entry_reads} entry reads before updates: VIPeX clears what a "
            "write leaves out)"
            if self.entry_reads
            else ""
        )
        lines.append(f"API calls: {self.api_calls}{reads}; duration {self.duration_seconds:.2f} s")
        return "\n".join(lines)

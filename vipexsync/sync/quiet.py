"""The quiet tick: an incremental run whose inputs equal those of the last run,
which had nothing to do, is that run again and does nothing.

Why the shortcut is exactly the normal path
-------------------------------------------
An incremental run (no listing) is a function of its inputs and nothing else:

- the desired entries, rejected keys, problems and notes are ``map_records``
  of the source's records, compiled against the job's mapping and the
  custom-field definitions VIPeX returned; the records of a CSV or vCard
  source are a function of the files' bytes and the source's configuration;
- the mirror rows, the job state (mapping fingerprint, whether a full resync
  happened) and the probe's findings come from the database;
- the policy (delete rule, ownership tag, other jobs' tags, write semantics),
  the region and the guard's limits come from the configuration;
- ``lookups_needed``, ``plan`` and ``guard`` are pure functions of the above
  (no clock, no randomness), and the look-ups (``get_phonebook_entry``) are
  the only VIPeX reads besides the custom-field list.

A run stores a *quiet key* only when it had nothing to do (see
:func:`nothing_to_do`): no look-up, no change planned, applied or failed, no
mirror update, nothing withheld, kept back or deferred, a complete source read,
an unchanged mapping fingerprint, success. The key is a digest of every input
above that is not in the database: the source's bytes (read before and after
the source read, equal both times), the job's whole configuration and the
other jobs' tags on its subscription, the custom-field definitions, the
code (vipexsync's version and the size and mtime of each of its modules,
phonenumbers' version, Python's). The database inputs are held
by the *mirror generation*: every write to the job's mirror rows bumps it in
the same transaction (vipexsync/mirror/store.py), and so does a probe; the key
is stored only while the generation is still the one the run read before it
loaded the mirror. Every other real run clears the key.

So when a later incremental tick computes the same key while the stored
generation is unchanged, every input of the normal path equals that of a run
which did nothing, and the normal path would do nothing again: no write, no
delete, no look-up, no mirror change. The shortcut still makes the
custom-field call (the fields are part of the key: a menu relabel in VIPeX is
noticed), records the run, sets the metrics and prints the report of that
run. Anything unknown (a source without a digest, a file that changed during
the read, a dry run, ``--plan-out``/``--rejects-out``, a full resync) takes the
normal path.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vipexsync import __version__
from vipexsync.sync.report import Outcome, RejectionGroup, RunReport

if TYPE_CHECKING:
    from vipexsync.config import Config, JobConfig
    from vipexsync.vipex.models import CustomField

log = logging.getLogger("vipexsync.run")

KEY_VERSION = "quiet-1"
CHANGE_ACTIONS = ("create", "update", "adopt", "delete")


@functools.cache
def _versions() -> str:
    """The code that turns a source into a plan: phonenumbers' version and the
    size and mtime of every vipexsync module (an upgrade or a patch, even one
    that keeps the version number, is a new key)."""
    import phonenumbers  # its metadata decides how every number is read

    package = Path(__file__).resolve().parent.parent
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(package.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(package)}|{stat.st_size}|{stat.st_mtime_ns}\0".encode())
    return (
        f"{__version__}|{digest.hexdigest()}|phonenumbers {phonenumbers.__version__}"
        f"|{sys.version_info[:2]}"
    )


def foreign_tags(config: Config, job: JobConfig) -> frozenset[str]:
    """The ownership tags of the other jobs on ``job``'s subscription."""
    return frozenset(
        other.ownership_tag
        for other in config.jobs
        if other.vipex_id == job.vipex_id and other.name != job.name and other.ownership_tag
    )


def config_digest(job: JobConfig, *, foreign_tags: Iterable[str], stated_semantics: str) -> str:
    """Every configuration value a run of ``job`` depends on.

    The dataclasses' repr holds every key (secrets show as ``********``, and a
    secret only reaches sources that have no quiet key).
    """
    text = repr((job, sorted(foreign_tags), stated_semantics))
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=32).hexdigest()


def fields_digest(fields: Sequence[CustomField]) -> str:
    """The custom-field definitions as VIPeX returned them: ids, names, types, menus."""
    text = json.dumps(
        [
            [
                f.field_id,
                f.field_name,
                str(getattr(f.field_type, "value", f.field_type)),
                [[o.option_id, o.option_label] for o in f.options],
            ]
            for f in fields
        ],
        ensure_ascii=True,
    )
    return hashlib.blake2b(text.encode("ascii"), digest_size=32).hexdigest()


def quiet_key(*, source: str, config: str, fields: str) -> str:
    """The key of one run's inputs outside the database (see the module doc)."""
    digest = hashlib.blake2b(digest_size=32)
    for part in (KEY_VERSION, _versions(), source, config, fields):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class StoredQuiet:
    """What job_state holds of the last run (only the fields the decision reads)."""

    mapping_fingerprint: str | None
    had_full_resync: bool
    mirror_generation: int
    quiet_key: str | None
    quiet_generation: int | None
    quiet_report: str | None


def key_holds(stored: StoredQuiet, key: str | None, fingerprint: str) -> bool:
    """Whether an incremental tick with ``key`` is the stored quiet run again."""
    return (
        key is not None
        and stored.quiet_key == key
        and stored.quiet_generation is not None
        and stored.quiet_generation == stored.mirror_generation
        and stored.mapping_fingerprint == fingerprint
        and stored.had_full_resync
        and stored.quiet_report is not None
    )


def nothing_to_do(
    report: RunReport,
    *,
    mirror_updates: int,
    source_complete: bool,
    fingerprint_changed: bool,
) -> bool:
    """Whether a finished run did nothing and would do nothing again on the same inputs."""
    return (
        report.mode == "incremental"
        and not report.dry_run
        and report.outcome is Outcome.SUCCESS
        and report.error is None
        and source_complete
        and not fingerprint_changed
        and mirror_updates == 0
        and all(report.planned.get(a, 0) == 0 for a in CHANGE_ACTIONS)
        and not any(report.applied.values())
        and not any(report.failed.values())
        and report.not_attempted == 0
        and report.withheld_deletes == 0
        and not report.guard_reasons
        and report.lookups == 0
        and report.unchecked == 0
        and report.deferred_deletes == 0
        and report.entry_reads == 0
    )


def summary(report: RunReport) -> str:
    """What a quiet tick reports again, as JSON for job_state."""
    data: dict[str, Any] = {
        "run_id": report.run_id,
        "planned": dict(report.planned),
        "source_records": report.source_records,
        "desired": report.desired,
        "mirror": report.mirror,
        "kept": report.kept,
        "conflicts": report.conflicts,
        "key_rules": dict(report.key_rules),
        "rejections": [[g.code, g.count, g.fatal, list(g.examples)] for g in report.rejections],
    }
    return json.dumps(data, ensure_ascii=False)


def quiet_report(stored: str, *, job: str, run_id: int | None) -> RunReport:
    """The report of a quiet tick: the stored run's, with this run's id."""
    data: Mapping[str, Any] = json.loads(stored)
    return RunReport(
        job=job,
        mode="incremental",
        dry_run=False,
        outcome=Outcome.SUCCESS,
        run_id=run_id,
        planned={str(k): int(v) for k, v in data["planned"].items()},
        rejections=tuple(
            RejectionGroup(code=code, count=count, examples=tuple(examples), fatal=fatal)
            for code, count, fatal, examples in data["rejections"]
        ),
        source_records=int(data["source_records"]),
        desired=int(data["desired"]),
        mirror=int(data["mirror"]),
        kept=int(data["kept"]),
        conflicts=int(data["conflicts"]),
        key_rules={str(k): int(v) for k, v in data["key_rules"].items()},
        unchanged_since=data["run_id"],
    )


def log_quiet_tick(report: RunReport) -> None:
    """The log lines of a quiet tick: why nothing was read, and the rejections as before."""
    name = report.job
    log.info(
        "job %s: source, configuration, custom fields and mirror unchanged since run %s, "
        "which had nothing to do; not read again",
        name,
        report.unchanged_since,
    )
    for group in report.rejections:
        level = logging.WARNING if group.fatal else logging.INFO
        kind = "record(s) or number(s) rejected" if group.fatal else "field(s) dropped or noted"
        log.log(level, "job %s: %d %s (%s)", name, group.count, kind, group.code)

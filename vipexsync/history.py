"""``vipexsync history``: what the daemon did to an entry, or to a job's entries, and why.

The first question after "who deleted this contact?". It reads the change log
(``changes``, one row per write attempted or mirror row learnt) newest first,
with each change's before and after content, its run and the reason the plan
gave. Reading only, like ``status``: no migration, no job lock.

The parts that decide (parsing ``--since``, turning what the operator typed
into VIPeX's number form, describing a change) are pure; :func:`print_history`
is the shell around them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from vipexsync.config import Config
from vipexsync.domain import Entry
from vipexsync.errors import UsageError
from vipexsync.mirror import store
from vipexsync.mirror.database import create_engine_for, ensure_schema, make_session_factory
from vipexsync.phone import PhoneError, normalize_phone
from vipexsync.sync.report import EXIT_OK

_SPAN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DEFAULT_LIMIT = 200


def parse_since(text: str, now: datetime) -> datetime:
    """``7d``, ``12h``, ``30m``, ``2w`` before ``now``, or an ISO date or date-time.

    A date-time without a zone is taken as local time, as an operator means it.
    """
    span = _SPAN.match(text)
    if span is not None:
        return now - timedelta(seconds=int(span.group(1)) * _UNIT_SECONDS[span.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r} is neither a span (7d, 12h, 30m, 2w) nor a date "
            "(2026-11-30 or 2026-11-30T08:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(UTC)


def number_forms(typed: str, regions: Sequence[str]) -> list[str]:
    """The numbers in VIPeX's form that ``typed`` can mean, one per job region.

    ``+36 1 300 0001``, ``06-1-300-0001`` and ``3613000001`` all find the entry
    ``3613000001``; text that normalises nowhere is looked up as its digits.
    """
    forms: list[str] = []
    for region in regions:
        try:
            number = normalize_phone(typed, region).number
        except PhoneError:
            continue
        if number not in forms:
            forms.append(number)
    digits = "".join(ch for ch in typed if ch.isdigit())
    if not forms and digits:
        forms.append(digits)
    if not forms:
        raise UsageError(f"{typed!r} is not a phone number; give it as VIPeX shows it")
    return forms


def _entry_text(entry: Entry) -> str:
    parts = [repr(entry.name)]
    if entry.comment:
        parts.append(f"comment {entry.comment!r}")
    if entry.tags:
        parts.append("tags " + ", ".join(sorted(entry.tags)))
    if entry.custom_fields:
        parts.append(
            "fields " + ", ".join(f"{k}={v!r}" for k, v in sorted(entry.custom_fields.items()))
        )
    return "; ".join(parts)


def _differences(before: Entry, after: Entry) -> str:
    changed = []
    if before.name != after.name:
        changed.append(f"name {before.name!r} -> {after.name!r}")
    if before.comment != after.comment:
        changed.append(f"comment {before.comment!r} -> {after.comment!r}")
    if before.tags != after.tags:
        removed, added = sorted(before.tags - after.tags), sorted(after.tags - before.tags)
        change = [f"+{t}" for t in added] + [f"-{t}" for t in removed]
        changed.append("tags " + " ".join(change))
    for field_id in sorted(set(before.custom_fields) | set(after.custom_fields)):
        old, new = before.custom_fields.get(field_id, ""), after.custom_fields.get(field_id, "")
        if old != new:
            changed.append(f"field {field_id} {old!r} -> {new!r}")
    return "; ".join(changed) or "no managed field differs"


def describe_content(change: store.ChangeRecord) -> str:
    """What the change did to the entry's content, in one line."""
    before, after = change.before, change.after
    if before is not None and after is not None:
        return _differences(before, after)
    if after is not None:
        return _entry_text(after)
    if before is not None:
        return "was " + _entry_text(before)
    return ""


def change_json(change: store.ChangeRecord) -> dict[str, Any]:
    def entry(value: Entry | None) -> dict[str, Any] | None:
        if value is None:
            return None
        return {
            "name": value.name,
            "comment": value.comment,
            "tags": sorted(value.tags),
            "custom_fields": {str(k): v for k, v in sorted(value.custom_fields.items())},
        }

    return {
        "at": change.at.isoformat(timespec="seconds"),
        "job": change.job,
        "phonenumber": change.phonenumber,
        "action": change.action,
        "outcome": change.outcome,
        "reason": change.reason,
        "api_reason": change.api_reason,
        "run_id": change.run_id,
        "run_mode": change.run_mode,
        "before": entry(change.before),
        "after": entry(change.after),
    }


def format_history(changes: Sequence[store.ChangeRecord], *, heading: str, limit: int) -> str:
    """The text form: one block per change, newest first."""
    if not changes:
        return f"{heading}: no changes recorded."
    lines = [f"{heading}, newest first:"]
    for change in changes:
        when = change.at.astimezone().isoformat(sep=" ", timespec="seconds")
        run = f"run {change.run_id}" if change.run_id is not None else "run pruned"
        if change.run_mode:
            run += f" ({change.run_mode})"
        outcome = "" if change.outcome == "applied" else f" [{change.outcome.upper()}]"
        lines.append(f"{when}  {change.phonenumber}  {change.action}{outcome}  {run}  {change.job}")
        lines.append(f"    why: {change.reason}")
        if change.api_reason:
            lines.append(f"    VIPeX said: {change.api_reason}")
        content = describe_content(change)
        if content:
            lines.append(f"    {content}")
    if len(changes) >= limit:
        lines.append(f"(the newest {limit} shown; --limit N or --since shows another span)")
    return "\n".join(lines)


def print_history(
    config: Config,
    *,
    number: str | None,
    job: str | None,
    since: str | None,
    as_json: bool,
    limit: int = DEFAULT_LIMIT,
) -> int:
    if limit < 1:
        raise UsageError("--limit must be at least 1")
    jobs = [config.job(job)] if job else list(config.jobs)
    now = datetime.now(UTC)
    start = parse_since(since, now) if since else None
    numbers = number_forms(number, [j.default_region for j in jobs]) if number else None
    engine = create_engine_for(config.database.url)
    try:
        ensure_schema(engine, auto_upgrade=False)
        with make_session_factory(engine)() as session:
            changes = store.change_log(
                session,
                jobs=[j.name for j in jobs],
                phonenumbers=numbers,
                since=start,
                limit=limit,
            )
    finally:
        engine.dispose()
    if as_json:
        print(json.dumps([change_json(c) for c in changes], ensure_ascii=False, indent=2))
        return EXIT_OK
    subject = " or ".join(numbers) if numbers else "every entry"
    scope = f"job {job}" if job else ("every job" if len(jobs) > 1 else f"job {jobs[0].name}")
    heading = f"Changes to {subject} ({scope}"
    heading += (
        f", since {start.astimezone().isoformat(sep=' ', timespec='minutes')})" if start else ")"
    )
    print(format_history(changes, heading=heading, limit=limit))
    return EXIT_OK

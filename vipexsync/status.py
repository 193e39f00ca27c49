"""``vipexsync status``: what each job did lately, read from the mirror database.

Per job: the last incremental and the last full run (when, outcome, counts,
error), the mirror's size, owned entries, pending and failed writes, the guard
state (did the newest run withhold deletions, and why), and the next runs the
daemon's schedule gives — shown as scheduled only when a daemon answers on
[metrics] listen, since nothing else tells this process that one runs.

Reading only: it never migrates the database and never takes a job lock, so it
is safe beside a running daemon. The JSON form (``--json``) is for scripts:
its keys are kept stable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import requests

from vipexsync.config import Config, JobConfig
from vipexsync.daemon import next_cron_fire, next_interval_tick
from vipexsync.metrics import parse_listen
from vipexsync.mirror import findings, store
from vipexsync.mirror.database import create_engine_for, ensure_schema, make_session_factory
from vipexsync.semantics import semantics_report
from vipexsync.sync.report import EXIT_OK

PROBE_TIMEOUT_SECONDS = 2.0


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None


def next_runs(job: JobConfig, now: datetime) -> dict[str, str | None]:
    """The daemon's next incremental tick and full resync for ``job`` after ``now``."""
    full = next_cron_fire(job.full_resync_cron, now) if job.full_resync_cron else None
    return {
        "incremental": _iso(next_interval_tick(now, job.interval_seconds).astimezone()),
        "full": _iso(full),
    }


def run_json(run: store.RunRecord | None) -> dict[str, Any] | None:
    if run is None:
        return None
    duration = (
        round((run.finished_at - run.started_at).total_seconds(), 1)
        if run.finished_at is not None
        else None
    )
    return {
        "id": run.id,
        "mode": run.mode,
        "dry_run": run.dry_run,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_seconds": duration,
        "outcome": run.outcome,
        "counts": dict(run.counts or {}),
        "error": run.error,
    }


def guard_json(newest: store.RunRecord | None) -> dict[str, Any]:
    """The guard state is that of the newest run: a later clean run clears it."""
    if newest is None or newest.outcome != "guarded":
        return {"tripped": False, "withheld_deletes": 0, "reasons": []}
    guard: Mapping[str, object] = newest.guard or {}
    reasons = guard.get("reasons")
    withheld = guard.get("withheld")
    return {
        "tripped": True,
        "withheld_deletes": withheld if isinstance(withheld, int) else 0,
        "reasons": [str(r) for r in reasons] if isinstance(reasons, list) else [],
    }


def job_status(
    job: JobConfig,
    *,
    incremental: store.RunRecord | None,
    full: store.RunRecord | None,
    newest: store.RunRecord | None,
    stats: store.MirrorStats,
    state: store.JobState,
    daemon_running: bool | None,
    now: datetime,
    write_semantics: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """One job's status as plain JSON-able data (pure: everything is passed in)."""
    return {
        "job": job.name,
        "vipex_id": job.vipex_id,
        "last_incremental": run_json(incremental),
        "last_full": run_json(full),
        "last_full_resync_at": _iso(state.last_full_resync_at),
        "mirror": {
            "entries": stats.entries,
            "owned": stats.owned,
            "pending": stats.pending,
            "failed": stats.failed,
        },
        "guard": guard_json(newest),
        "guard_tripped": guard_json(newest)["tripped"],
        "schedule": {
            "interval_seconds": job.interval_seconds,
            "full_resync_cron": job.full_resync_cron or None,
        },
        "next_runs": next_runs(job, now) if daemon_running else None,
        "write_semantics": dict(write_semantics) if write_semantics is not None else None,
    }


def daemon_answers(listen: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> bool | None:
    """True if a daemon's /healthz answers 200 on ``listen``; None when it serves nothing."""
    if not listen:
        return None
    host, port = parse_listen(listen)
    if host in ("", "0.0.0.0"):  # noqa: S104 - reaching the wildcard via loopback
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    shown = f"[{host}]" if ":" in host else host
    try:
        answer = requests.get(f"http://{shown}:{port}/healthz", timeout=timeout)
    except requests.RequestException:
        return False
    return answer.status_code == 200


def collect_status(
    config: Config, *, daemon_running: bool | None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Every job's status; ``daemon_running`` is :func:`daemon_answers`' verdict."""
    now = now or datetime.now(UTC)
    engine = create_engine_for(config.database.url)
    try:
        ensure_schema(engine, auto_upgrade=False)
        sessions = make_session_factory(engine)
        result = []
        with sessions() as session:
            for job in config.jobs:
                recent = store.last_runs(session, job.name, limit=1)
                result.append(
                    job_status(
                        job,
                        incremental=_first(
                            store.last_runs(session, job.name, limit=1, mode="incremental")
                        ),
                        full=_first(store.last_runs(session, job.name, limit=1, mode="full")),
                        newest=_first(recent),
                        stats=store.mirror_stats(session, job.name),
                        state=store.get_job_state(session, job.name),
                        daemon_running=daemon_running,
                        now=now,
                        write_semantics=semantics_report(
                            config.vipex.write_semantics,
                            findings.load_findings(session, job.vipex_id),
                        ),
                    )
                )
        return result
    finally:
        engine.dispose()


def _first(runs: list[store.RunRecord]) -> store.RunRecord | None:
    return runs[0] if runs else None


def describe_run(run: Mapping[str, Any] | None) -> str:
    if run is None:
        return "never"
    counts: Mapping[str, int] = run["counts"]
    applied = ", ".join(
        f"{k.removeprefix('applied_')} {v}"
        for k, v in sorted(counts.items())
        if k.startswith("applied_") and v
    )
    failed = sum(v for k, v in counts.items() if k.startswith("failed_"))
    text = f"{run['started_at']} {run['outcome']}"
    if run["dry_run"]:
        text += " (dry run)"
    if run["duration_seconds"] is not None:
        text += f" in {run['duration_seconds']} s"
    text += f"; applied {applied or 'nothing'}"
    if failed:
        text += f"; {failed} write(s) failed"
    if counts.get("rejected"):
        text += f"; {counts['rejected']} record(s) rejected"
    if run["error"]:
        text += f"; {run['error']}"
    return text


def format_status(jobs: list[dict[str, Any]], daemon_running: bool | None) -> str:
    lines: list[str] = []
    if daemon_running is None:
        lines.append("Daemon: unknown ([metrics] listen is off)")
    else:
        lines.append(f"Daemon: {'running' if daemon_running else 'not answering on [metrics]'}")
    for info in jobs:
        mirror, guard = info["mirror"], info["guard"]
        lines.append(f"Job {info['job']} (subscription {info['vipex_id']})")
        lines.append(f"  last incremental: {describe_run(info['last_incremental'])}")
        lines.append(f"  last full resync: {describe_run(info['last_full'])}")
        lines.append(
            f"  mirror: {mirror['entries']} entries, {mirror['owned']} owned, "
            f"{mirror['pending']} pending, {mirror['failed']} failed writes"
        )
        semantics = info.get("write_semantics")
        if semantics is not None:
            lines.append(_semantics_line(semantics))
        if guard["tripped"]:
            lines.append(f"  guard: TRIPPED, {guard['withheld_deletes']} deletion(s) withheld")
            lines.extend(f"    - {reason}" for reason in guard["reasons"])
        else:
            lines.append("  guard: ok")
        nxt = info["next_runs"]
        if nxt is not None:
            lines.append(
                f"  next runs: incremental {nxt['incremental']}, "
                f"full {nxt['full'] or 'not scheduled'}"
            )
        else:
            lines.append(
                f"  schedule: every {info['schedule']['interval_seconds']} s, full resync "
                f"{info['schedule']['full_resync_cron'] or 'never'} (no daemon answering)"
            )
    return "\n".join(lines)


def _semantics_line(semantics: Mapping[str, Any]) -> str:
    if not semantics["verified"]:
        return f"  write semantics: UNVERIFIED ({semantics['summary']}); run `vipexsync probe`"
    when = f" at {semantics['probed_at']}" if semantics["probed_at"] else ""
    return f"  write semantics: {semantics['summary']} ({semantics['origin']}{when})"


def print_status(config: Config, *, as_json: bool) -> int:
    daemon_running = daemon_answers(config.metrics.listen)
    jobs = collect_status(config, daemon_running=daemon_running)
    if as_json:
        print(
            json.dumps(
                {"daemon_running": daemon_running, "jobs": jobs}, ensure_ascii=False, indent=2
            )
        )
    else:
        print(format_status(jobs, daemon_running))
    return EXIT_OK

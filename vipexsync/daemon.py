"""``vipexsync run``: the scheduler, signals, systemd notification, job locks.

Schedule. One APScheduler 3.x ``BlockingScheduler`` with an in-memory job
store holds fixed job ids per configured job:

- ``<job>:startup`` — one incremental run right after start (and right after a
  reload that added or changed the job);
- ``<job>:incremental`` — an interval trigger *anchored at a fixed instant*
  (2000-01-01 UTC), so every replica, on every host, ticks at the same wall
  clock instants (multiples of ``interval_seconds``);
- ``<job>:full`` — a cron trigger for full resyncs in the host's local time
  zone (APScheduler's cron arithmetic is DST-safe).

All with ``max_instances=1`` and ``coalesce=True``; a tick late by up to one
interval still runs (once).

Exactly once across replicas. Every run goes through
:meth:`vipexsync.runtime.Runtime.run_job`, which takes the job's lock (a file
lock beside a SQLite database, a PostgreSQL advisory lock on a dedicated
connection) — a one-shot ``vipexsync sync`` or another replica makes it skip.
A lock alone is not enough: a replica whose timer fires a moment after the
winner finished would run the same tick again. So each scheduled run names its
tick (the interval window's start, or the cron fire time) and, holding the
lock, skips when the shared ``runs`` table already has a real run of that job
and mode started at or after it. Every skip counts as
``vipexsync_runs_total{outcome="skipped"}`` and is logged.

Within this process a full resync waits for a running incremental run of the
same job (and an incremental run skips while a full resync runs), so the
nightly resync is not lost to a busy moment. A full resync skipped because a
one-shot run held the lock waits for its next cron time.

Signals. The first SIGTERM/SIGINT stops the scheduler and lets the running
syncs finish their writes in flight (they are journaled and the run recorded
as stopped), then exits 0 — within ``STOP_GRACE_SECONDS``, after which it
gives up and exits 1. A second signal exits at once (128 + signal number).
SIGHUP reloads the configuration file: the jobs (added, removed, changed:
schedules, sources, mappings, guard limits) and [logging]; changes to
[vipex], [database] or [metrics] need a restart, and the log says so. An
invalid file is refused and the running configuration kept.

systemd. READY=1 once migrations and configuration are done and the scheduler
runs; STATUS= after each run with its outcome; WATCHDOG=1 from a heartbeat job
on its own single-thread executor — so the watchdog is fed only while the
scheduler's loop really dispatches jobs — at least every ``WatchdogSec/2``;
STOPPING=1 on shutdown. Without ``NOTIFY_SOCKET`` all of it is a no-op.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any, Final

from apscheduler.events import EVENT_SCHEDULER_START, SchedulerEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from vipexsync.config import Config, JobConfig, load_config
from vipexsync.errors import ConfigError, VipexSyncError
from vipexsync.logsetup import configure_logging
from vipexsync.metrics import Metrics, MetricsServer, serve
from vipexsync.mirror.database import check_ready
from vipexsync.retention import prune_history
from vipexsync.runtime import Runtime
from vipexsync.sdnotify import Notifier
from vipexsync.sync.model import Mode
from vipexsync.sync.report import EXIT_FAILED, EXIT_OK, Outcome, RunReport
from vipexsync.sync.runner import RunOptions

log = logging.getLogger("vipexsync.daemon")

HEARTBEAT_SECONDS = 5.0  # how often the scheduler proves it is alive (healthz, watchdog)
STOP_GRACE_SECONDS = 90.0  # how long a stop waits for runs to finish their writes in flight
FULL_MISFIRE_SECONDS = 3600  # a nightly resync delayed by a restart or a busy hour still runs
RETENTION_SECONDS = 3600  # how often old runs and change-log rows are pruned ([database] keep_days)

# Every replica counts interval ticks from this instant, so their ticks coincide.
TICK_ANCHOR: Final = datetime(2000, 1, 1, tzinfo=UTC)


# -- the schedule, as pure functions (status.py shows the same times) ---------


def interval_tick(now: datetime, interval_seconds: int) -> datetime:
    """The start of the interval window holding ``now`` (the tick it belongs to)."""
    step = interval_seconds * 1_000_000
    elapsed = (now - TICK_ANCHOR) // timedelta(microseconds=1)
    return TICK_ANCHOR + timedelta(microseconds=(elapsed // step) * step)


def next_interval_tick(now: datetime, interval_seconds: int) -> datetime:
    """The first tick strictly after ``now``."""
    return interval_tick(now, interval_seconds) + timedelta(seconds=interval_seconds)


def cron_trigger(expression: str) -> CronTrigger:
    """A crontab line in the host's local time zone (None means local in APScheduler)."""
    return CronTrigger.from_crontab(expression)


def cron_tick(expression: str, now: datetime, horizon_seconds: int) -> datetime | None:
    """The latest cron fire time at or before ``now``, looking back ``horizon_seconds``."""
    trigger = cron_trigger(expression)
    moment = now - timedelta(seconds=horizon_seconds)
    latest: datetime | None = None
    fire: datetime | None = trigger.get_next_fire_time(None, moment)
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return latest


def next_cron_fire(expression: str, now: datetime) -> datetime | None:
    fire: datetime | None = cron_trigger(expression).get_next_fire_time(None, now)
    return fire


def tick_for(job: JobConfig, mode: Mode, now: datetime) -> datetime:
    """The scheduled instant a run of ``job`` in ``mode`` at ``now`` stands for."""
    if mode is Mode.FULL and job.full_resync_cron:
        fired = cron_tick(job.full_resync_cron, now, FULL_MISFIRE_SECONDS + 60)
        if fired is not None:
            return fired
        return now
    return interval_tick(now, job.interval_seconds)


def status_line(report: RunReport) -> str:
    """The STATUS= text after a run (systemctl status shows it)."""
    text = f"{report.job} {report.mode}: {report.outcome.value}"
    if report.outcome in (Outcome.SUCCESS, Outcome.GUARDED):
        text += f", {sum(report.applied.values())} change(s) applied"
    if report.withheld_deletes:
        text += f", {report.withheld_deletes} deletion(s) withheld"
    if report.outcome is not Outcome.SUCCESS and report.error:
        text += f" ({report.error[:120]})"
    return text


def quiet_scheduler_logs(level: str) -> None:
    """APScheduler logs every job start at INFO; keep its warnings (missed runs) only."""
    logging.getLogger("apscheduler").setLevel(
        logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    )


class Daemon:
    """One scheduler over every configured job, until a stop signal."""

    def __init__(self, config: Config, *, environ: dict[str, str] | None = None) -> None:
        self.config = config
        self.environ = dict(os.environ if environ is None else environ)
        self.notifier = Notifier(self.environ)
        self.metrics = Metrics(jobs=[j.name for j in config.jobs])
        for job in config.jobs:
            self.metrics.job_interval(job.name, job.interval_seconds)
        self.stop = threading.Event()
        self.runtime = Runtime(config, metrics=self.metrics, stop=self.stop)
        self.jobs: dict[str, JobConfig] = {j.name: j for j in config.jobs}
        self.gates: dict[str, threading.Lock] = {j.name: threading.Lock() for j in config.jobs}
        self._gates_lock = threading.Lock()
        self.last_heartbeat = time.monotonic()
        self.running_runs = 0
        self._runs_lock = threading.Lock()
        self._reload_requested = threading.Event()
        self.server: MetricsServer | None = None
        watchdog = self.notifier.watchdog_interval()
        self.heartbeat_seconds = (
            min(HEARTBEAT_SECONDS, watchdog / 2) if watchdog else HEARTBEAT_SECONDS
        )
        self.scheduler = BlockingScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={
                # startup + incremental + full of each job may be due at once
                "default": ThreadPoolExecutor(max_workers=max(4, 3 * len(config.jobs))),
                "heartbeat": ThreadPoolExecutor(max_workers=1),
            },
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        self.scheduler.add_listener(self._on_scheduler_started, EVENT_SCHEDULER_START)
        quiet_scheduler_logs(config.logging.level)

    # -- scheduling ----------------------------------------------------------

    def schedule(self) -> None:
        self.scheduler.add_job(
            self.heartbeat,
            IntervalTrigger(seconds=self.heartbeat_seconds),
            id="heartbeat",
            executor="heartbeat",
            next_run_time=datetime.now(UTC),  # the first watchdog ping at once
            misfire_grace_time=max(1, int(self.heartbeat_seconds)),
            replace_existing=True,
        )
        if self.config.database.keep_days > 0:
            self.scheduler.add_job(
                self.prune,
                IntervalTrigger(seconds=RETENTION_SECONDS, timezone=UTC),
                id="retention",
                next_run_time=datetime.now(UTC),
                misfire_grace_time=RETENTION_SECONDS,
                replace_existing=True,
            )
        for job in self.jobs.values():
            self._schedule_job(job)

    def _schedule_job(self, job: JobConfig) -> None:
        self.scheduler.add_job(
            self.run_scheduled,
            DateTrigger(run_date=datetime.now(UTC), timezone=UTC),
            args=[job.name, Mode.INCREMENTAL],
            id=f"{job.name}:startup",
            misfire_grace_time=job.interval_seconds,
            replace_existing=True,
        )
        self.scheduler.add_job(
            self.run_scheduled,
            # No next_run_time: an explicit one would shift every later tick off
            # the shared anchor (APScheduler adds the interval to the last fire).
            IntervalTrigger(seconds=job.interval_seconds, start_date=TICK_ANCHOR, timezone=UTC),
            args=[job.name, Mode.INCREMENTAL],
            id=f"{job.name}:incremental",
            misfire_grace_time=job.interval_seconds,
            replace_existing=True,
        )
        if job.full_resync_cron:
            self.scheduler.add_job(
                self.run_scheduled,
                cron_trigger(job.full_resync_cron),
                args=[job.name, Mode.FULL],
                id=f"{job.name}:full",
                misfire_grace_time=FULL_MISFIRE_SECONDS,
                replace_existing=True,
            )

    def _unschedule_job(self, name: str) -> None:
        for suffix in ("startup", "incremental", "full"):
            if self.scheduler.get_job(f"{name}:{suffix}") is not None:
                self.scheduler.remove_job(f"{name}:{suffix}")

    def next_runs(self) -> dict[str, dict[str, datetime | None]]:
        """When the scheduler will fire each job next (for the log and tests)."""
        result: dict[str, dict[str, datetime | None]] = {}
        for name in self.jobs:
            times: dict[str, datetime | None] = {}
            for suffix in ("incremental", "full"):
                scheduled = self.scheduler.get_job(f"{name}:{suffix}")
                times[suffix] = scheduled.next_run_time if scheduled is not None else None
            result[name] = times
        return result

    # -- what the scheduler calls --------------------------------------------

    def heartbeat(self) -> None:
        """Proof that the scheduler loop dispatches jobs; also where reloads happen."""
        self.last_heartbeat = time.monotonic()
        self.notifier.watchdog()
        if self._reload_requested.is_set():
            self._reload_requested.clear()
            self.reload()

    def prune(self) -> None:
        """Prune runs and change-log rows past ``[database] keep_days``; never fatal."""
        try:
            prune_history(
                self.runtime.sessions,
                keep_days=self.config.database.keep_days,
                now=datetime.now(UTC),
                stop=self.stop,
            )
        except VipexSyncError as exc:
            log.warning("pruning old run history failed (tried again within the hour): %s", exc)

    def _gate(self, name: str) -> threading.Lock:
        with self._gates_lock:
            return self.gates.setdefault(name, threading.Lock())

    def run_scheduled(self, name: str, mode: Mode) -> RunReport | None:
        job = self.jobs.get(name)
        if job is None or self.stop.is_set():
            return None
        tick = tick_for(job, mode, datetime.now(UTC))
        gate = self._gate(name)
        # A full resync waits for a running incremental run; an incremental run
        # never queues behind anything (the next interval comes soon enough).
        if not gate.acquire(blocking=mode is Mode.FULL):
            log.info("job %s: %s run skipped, another run of it is in progress", name, mode.value)
            self.metrics.run_skipped(name, mode.value)
            return None
        with self._runs_lock:
            self.running_runs += 1
        try:
            if self.stop.is_set():
                return None
            report = self.runtime.run_job(job, RunOptions(mode=mode), skip_if_run_since=tick)
            self.notifier.status(status_line(report))
            return report
        except ConfigError as exc:
            log.error("job %s: configuration problem: %s", name, exc)
            self.notifier.status(f"{name} {mode.value}: configuration problem")
            return None
        except Exception:
            # The scheduler must survive anything a run does; the runner has
            # recorded the run as failed where it could.
            log.exception("job %s: %s run crashed", name, mode.value)
            self.notifier.status(f"{name} {mode.value}: failure (crashed, see the log)")
            return None
        finally:
            with self._runs_lock:
                self.running_runs -= 1
            gate.release()

    # -- health ---------------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        if not self.scheduler.running:
            return False, "scheduler is not running"
        age = time.monotonic() - self.last_heartbeat
        if age > 3 * self.heartbeat_seconds + 5:
            return False, f"scheduler loop has not ticked for {age:.0f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        problem = check_ready(self.runtime.engine)
        return (problem is None), (problem or "ok")

    # -- signals and reload ---------------------------------------------------

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            log.warning("second stop signal: exiting at once, writes in flight are abandoned")
            logging.shutdown()
            os._exit(128 + signum)
        # Only set the flag here; the stop-watch thread does the work.
        self.stop.set()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        # Reloading touches the scheduler; the heartbeat job does it, not the handler.
        self._reload_requested.set()

    def reload(self) -> None:
        path = self.config.path
        if path is None:
            log.warning("reload requested, but the configuration came from no file; ignored")
            return
        try:
            new = load_config(path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return
        for section in ("vipex", "database", "metrics"):
            if getattr(new, section) != getattr(self.config, section):
                log.warning("reload: [%s] changed; restart the daemon to apply that", section)
        if new.logging != self.config.logging:
            configure_logging(new.logging)
            quiet_scheduler_logs(new.logging.level)
        new_jobs = {j.name: j for j in new.jobs}
        for name in sorted(set(self.jobs) - set(new_jobs)):
            self._unschedule_job(name)
            log.info("reload: job %s removed", name)
        for job in new_jobs.values():
            old = self.jobs.get(job.name)
            if old == job:
                continue
            self._unschedule_job(job.name)
            self.metrics.add_job(job.name, interval_seconds=job.interval_seconds)
            self.jobs[job.name] = job  # before scheduling: its startup run may fire at once
            self._schedule_job(job)
            log.info("reload: job %s %s", job.name, "added" if old is None else "changed")
        self.jobs = new_jobs
        self.config = replace(self.config, jobs=new.jobs, logging=new.logging)
        log.info(
            "configuration reloaded: %s",
            ", ".join(_describe_job(j) for j in new_jobs.values()) or "no jobs",
        )

    def _on_scheduler_started(self, event: SchedulerEvent) -> None:
        # Only now can a stop shut the scheduler down (shutdown() refuses a
        # scheduler not yet started, which would leave start() running forever).
        threading.Thread(target=self._watch_stop, name="stop-watch", daemon=True).start()
        self.notifier.ready(f"scheduling {len(self.jobs)} job(s)")
        for name, times in self.next_runs().items():
            log.info(
                "job %s: next incremental tick %s, next full resync %s",
                name,
                _local(times["incremental"]),
                _local(times["full"]),
            )

    def _watch_stop(self) -> None:
        self.stop.wait()
        log.info("stop requested; finishing the writes in flight")
        self.notifier.stopping("stopping: finishing the writes in flight")
        try:
            self.scheduler.shutdown(wait=False)
        except Exception:  # already stopped
            log.debug("scheduler already stopped", exc_info=True)

    # -- main -----------------------------------------------------------------

    def serve(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)
        listen = self.config.metrics.listen
        if listen:
            self.server = serve(self.metrics, listen, health=self.health, ready=self.ready)
        self.schedule()
        log.info(
            "vipexsync daemon started: %s",
            ", ".join(_describe_job(j) for j in self.jobs.values()) or "no jobs",
        )
        try:
            self.scheduler.start()
        finally:
            self.stop.set()  # also when start() itself failed
            drained = self._drain()
            if self.server is not None:
                self.server.stop()
            self.notifier.close()
        if not drained:
            log.error(
                "runs still busy after %.0f s; exiting without waiting for them "
                "(their writes are idempotent; the next run converges)",
                STOP_GRACE_SECONDS,
            )
            logging.shutdown()
            # Worker threads are not daemons: a normal exit would wait for them.
            os._exit(EXIT_FAILED)
        self.runtime.close()
        log.info("vipexsync daemon stopped")
        return EXIT_OK

    def _drain(self) -> bool:
        """Wait (bounded) for running syncs to record their writes in flight."""
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline:
            with self._runs_lock:
                if self.running_runs == 0:
                    return True
            time.sleep(0.1)
        return False


def _local(moment: datetime | None) -> str:
    return moment.astimezone().isoformat(timespec="seconds") if moment is not None else "never"


def _describe_job(job: JobConfig) -> str:
    text = f"{job.name} every {job.interval_seconds}s"
    if job.full_resync_cron:
        text += f", full resync '{job.full_resync_cron}'"
    return text


def run_daemon(config: Config, **kwargs: Any) -> int:
    return Daemon(config, **kwargs).serve()

"""What every run needs, built once from the configuration and shared.

The one-shot ``vipexsync sync`` and the daemon's scheduled runs go through
:meth:`Runtime.run_job`, so both take the same job lock: a second process on
the same job (a one-shot beside the daemon, another replica) skips instead of
running it twice.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from vipexsync.config import Config, JobConfig
from vipexsync.locks import job_lock
from vipexsync.mirror import store
from vipexsync.mirror.database import create_engine_for, ensure_schema, make_session_factory
from vipexsync.progress import ProgressSink
from vipexsync.sync.model import Mode
from vipexsync.sync.quiet import foreign_tags
from vipexsync.sync.report import Outcome, RunReport
from vipexsync.sync.runner import JobRun, RunOptions
from vipexsync.vipex.client import VipexClient

if TYPE_CHECKING:
    from vipexsync.metrics import Metrics

log = logging.getLogger("vipexsync.runtime")


class Runtime:
    def __init__(
        self,
        config: Config,
        *,
        metrics: Metrics | None = None,
        stop: threading.Event | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.stop = stop if stop is not None else threading.Event()
        self.engine = engine if engine is not None else create_engine_for(config.database.url)
        ensure_schema(self.engine, auto_upgrade=config.database.auto_upgrade)
        self.sessions = make_session_factory(self.engine)
        self.client = VipexClient.from_config(config.vipex, observer=metrics)

    def run_job(
        self,
        job: JobConfig,
        options: RunOptions,
        *,
        progress: ProgressSink | None = None,
        skip_if_run_since: datetime | None = None,
    ) -> RunReport:
        """Run ``job`` once under its lock; a held lock gives a skipped report.

        ``skip_if_run_since`` (the daemon's scheduled tick) also skips when a
        real run of this job and mode started at or after that instant: checked
        under the lock, it makes each tick run exactly once across replicas.
        """
        lock = job_lock(self.config.database.url, job.name)
        if not lock.acquire():
            return self._skipped(
                job,
                options,
                f"job {job.name!r} is being run by another process ({lock.where}); skipped "
                "(it runs again at its next scheduled time)",
            )
        try:
            if skip_if_run_since is not None:
                earlier = self.run_since(job.name, options.mode, skip_if_run_since)
                if earlier is not None:
                    return self._skipped(
                        job,
                        options,
                        f"job {job.name!r}: this scheduled {options.mode.value} run was already "
                        f"done (run {earlier.id} started "
                        f"{earlier.started_at.isoformat(timespec='seconds')}); skipped",
                        level=logging.INFO,
                    )
            return JobRun(
                job,
                client=self.client,
                sessions=self.sessions,
                options=options,
                stop=self.stop,
                concurrency=self.config.vipex.concurrency,
                metrics=self.metrics,
                progress=progress,
                still_held=lock.still_held,
                foreign_tags=foreign_tags(self.config, job),
                stated_semantics=self.config.vipex.write_semantics,
            ).execute()
        finally:
            lock.release()

    def run_since(self, job: str, mode: Mode, since: datetime) -> store.RunRecord | None:
        """The newest real (not dry) run of ``job`` started at or after ``since``
        that covers a tick of ``mode``: a full resync covers an incremental tick too."""
        wanted = None if mode is Mode.INCREMENTAL else mode.value
        with self.sessions() as session:
            for run in store.last_runs(session, job, limit=20, mode=wanted):
                if run.started_at < since:
                    return None
                if not run.dry_run:
                    return run
        return None

    def _skipped(
        self, job: JobConfig, options: RunOptions, message: str, *, level: int = logging.WARNING
    ) -> RunReport:
        log.log(level, "%s", message)
        if self.metrics is not None:
            self.metrics.run_skipped(job.name, options.mode.value)
        return RunReport(
            job=job.name,
            mode=options.mode.value,
            dry_run=options.dry_run,
            outcome=Outcome.SKIPPED,
            error=message,
        )

    def close(self) -> None:
        self.client.close()
        self.engine.dispose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

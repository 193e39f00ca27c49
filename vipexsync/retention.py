"""Pruning the run history and change log older than ``[database] keep_days``.

Batches of a thousand rows, each in its own short transaction, so a daemon on
a large database never holds a long lock that a sync run would wait behind.
The oldest rows go first; the newest run of each job and mode is kept.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from vipexsync.mirror import store

log = logging.getLogger("vipexsync.retention")

BATCH_ROWS = 1000


@dataclass(frozen=True, slots=True)
class Pruned:
    runs: int = 0
    changes: int = 0


def retention_cutoff(now: datetime, keep_days: int) -> datetime | None:
    """Rows older than this are pruned; None when ``keep_days`` is 0 (keep everything)."""
    if keep_days <= 0:
        return None
    return now - timedelta(days=keep_days)


def prune_history(
    sessions: Callable[[], Session],
    *,
    keep_days: int,
    now: datetime,
    batch: int = BATCH_ROWS,
    stop: threading.Event | None = None,
) -> Pruned:
    """Delete change-log rows, then runs, older than ``keep_days``; returns the counts."""
    cutoff = retention_cutoff(now, keep_days)
    if cutoff is None:
        return Pruned()
    counts = {"changes": 0, "runs": 0}
    # Change-log rows first: they point at runs, and a run pruned before its
    # changes would only leave them without a run id.
    steps: list[tuple[str, Callable[[Session, datetime], int]]] = [
        ("changes", lambda s, c: store.prune_changes(s, c, batch=batch)),
        ("runs", lambda s, c: store.prune_runs(s, c, batch=batch)),
    ]
    for name, step in steps:
        while stop is None or not stop.is_set():
            with sessions() as session, session.begin():
                deleted = step(session, cutoff)
            counts[name] += deleted
            if deleted < batch:
                break
    pruned = Pruned(runs=counts["runs"], changes=counts["changes"])
    if pruned.runs or pruned.changes:
        log.info(
            "pruned %d run(s) and %d change-log row(s) older than %d days (before %s)",
            pruned.runs,
            pruned.changes,
            keep_days,
            cutoff.isoformat(timespec="seconds"),
        )
    return pruned

"""Progress on long work: a bar on a terminal, nothing elsewhere.

The run reports progress as (done, total) per phase; this module decides how
to show it. On a terminal a single line is redrawn at most a few times a
second; when stderr is not a terminal (journald, a pipe, CI) nothing is
printed, because the run's summary line says what matters.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO


class ProgressSink(Protocol):
    def update(self, phase: str, done: int, total: int) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    """Shows nothing."""

    def update(self, phase: str, done: int, total: int) -> None:
        return None

    def close(self) -> None:
        return None


class TerminalProgress:
    """A one-line bar redrawn in place, throttled to ``interval`` seconds."""

    def __init__(self, stream: TextIO, label: str, *, width: int = 30, interval: float = 0.1):
        self._stream = stream
        self._label = label
        self._width = width
        self._interval = interval
        self._last_draw = 0.0
        self._drawn = False
        self._phase = ""

    def update(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        finished = total > 0 and done >= total
        if phase == self._phase and not finished and now - self._last_draw < self._interval:
            return
        self._phase = phase
        self._last_draw = now
        share = min(1.0, done / total) if total > 0 else 1.0
        filled = int(share * self._width)
        bar = "#" * filled + "-" * (self._width - filled)
        line = f"\r{self._label} {phase:<8} [{bar}] {done}/{total} {share:4.0%}"
        self._stream.write(line)
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


def progress_for(label: str, stream: TextIO | None = None) -> ProgressSink:
    """A bar when ``stream`` (stderr by default) is a terminal, else nothing."""
    out = stream if stream is not None else sys.stderr
    isatty = getattr(out, "isatty", None)
    if isatty is not None and isatty():
        return TerminalProgress(out, label)
    return NullProgress()

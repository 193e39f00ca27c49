"""Logging to stderr for journald: plain text or one JSON object per line.

Under systemd, stderr is a journald stream and ``$JOURNAL_STREAM`` names it
(``DEV:INODE``). Then every line starts with its sd-daemon(3) level, ``<4>``
for a warning, which journald strips and keeps as the entry's priority (so
``journalctl -p warning`` works), and the text format leaves the time out, as
journald stamps each entry itself.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

from vipexsync.config import LoggingConfig

# Attributes every LogRecord has; anything else was passed with ``extra=`` and
# goes into the JSON object as a field of its own.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


# sd-daemon(3) levels from the logging levels at or above each threshold.
_SD_LEVELS = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
_SD_DEBUG = 7


def sd_level(levelno: int) -> int:
    """The syslog priority journald should give a record of this logging level."""
    for threshold, level in _SD_LEVELS:
        if levelno >= threshold:
            return level
    return _SD_DEBUG


def journal_stream_matches(value: str | None, device: int, inode: int) -> bool:
    """True if ``$JOURNAL_STREAM`` (``DEV:INODE``) names the stream with this device and inode.

    systemd sets the variable for the service's own stderr; a command run from
    it whose stderr went elsewhere (a terminal, a file) inherits the variable
    but must not write level prefixes there, hence the comparison.
    """
    if not value:
        return False
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    return int(dev) == device and int(ino) == inode


def writes_to_journal(stream: TextIO) -> bool:
    """True if ``stream`` is the journald stream systemd connected this process to."""
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # no file descriptor behind it
        return False
    return journal_stream_matches(os.environ.get("JOURNAL_STREAM"), status.st_dev, status.st_ino)


class JournalFormatter(logging.Formatter):
    """Another formatter's text with the record's ``<N>`` level before every line.

    journald reads the prefix line by line, so each line of a traceback carries
    it too and the whole record keeps the one priority.
    """

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{sd_level(record.levelno)}>"
        lines = self.inner.format(record).split("\n")
        return "\n".join(prefix + line for line in lines)


def formatter_for(cfg: LoggingConfig, *, journal: bool) -> logging.Formatter:
    """The formatter for ``[logging] format``, adapted to journald when ``journal``."""
    if cfg.format == "json":
        inner: logging.Formatter = JsonFormatter()
    elif journal:
        # journald stamps every entry itself.
        inner = logging.Formatter("%(levelname)-7s %(name)s: %(message)s")
    else:
        inner = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    return JournalFormatter(inner) if journal else inner


def configure_logging(cfg: LoggingConfig, stream: TextIO | None = None) -> None:
    """Install one handler on the root logger (replacing any earlier one)."""
    target = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(target)
    handler.setFormatter(formatter_for(cfg, journal=writes_to_journal(target)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(cfg.level.upper())
    # urllib3 logs every request URL at DEBUG; keep it at WARNING unless asked.
    if cfg.level.upper() != "DEBUG":
        logging.getLogger("urllib3").setLevel(logging.WARNING)
        # Alembic announces its plugins and context at INFO on every start.
        logging.getLogger("alembic").setLevel(logging.WARNING)

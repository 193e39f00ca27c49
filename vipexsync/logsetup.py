"""Logging to stderr for journald: plain text or one JSON object per line."""

from __future__ import annotations

import json
import logging
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


def configure_logging(cfg: LoggingConfig, stream: TextIO | None = None) -> None:
    """Install one handler on the root logger (replacing any earlier one)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if cfg.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        # journald adds its own timestamps; a terminal user still wants them.
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
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

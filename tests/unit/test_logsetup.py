"""Log lines for journald: sd-daemon level prefixes, and no timestamp of our own there."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vipexsync.config import LoggingConfig
from vipexsync.logsetup import (
    JournalFormatter,
    configure_logging,
    formatter_for,
    journal_stream_matches,
    sd_level,
)

TIME = re.compile(r"\d\d:\d\d:\d\d ")


def record(level: int, message: str = "hello %s", exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("vipexsync.test", level, __file__, 1, message, ("x",), exc_info)


@pytest.mark.parametrize(
    ("levelno", "expected"),
    [
        (logging.CRITICAL, 2),
        (logging.ERROR, 3),
        (logging.ERROR + 5, 3),
        (logging.WARNING, 4),
        (logging.WARNING + 5, 4),
        (logging.INFO, 6),
        (logging.INFO + 5, 6),
        (logging.DEBUG, 7),
        (1, 7),
    ],
)
def test_sd_levels(levelno: int, expected: int) -> None:
    assert sd_level(levelno) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("64769:123456", True),
        ("64769:123457", False),
        ("64770:123456", False),
        ("64769", False),
        ("64769:", False),
        (":123456", False),
        ("x:123456", False),
        ("64769:123456:7", False),
        ("", False),
        (None, False),
    ],
)
def test_journal_stream_must_name_this_stream(value: str | None, expected: bool) -> None:
    assert journal_stream_matches(value, 64769, 123456) is expected


def test_every_line_of_a_traceback_carries_the_level() -> None:
    journal = JournalFormatter(logging.Formatter("%(message)s"))
    text = journal.format(record(logging.ERROR, exc=True))
    lines = text.split("\n")
    assert len(lines) > 3  # the message and the traceback
    assert all(line.startswith("<3>") for line in lines), text
    assert lines[0] == "<3>hello x"
    assert lines[-1] == "<3>ValueError: boom"


def test_text_under_journald_has_no_time_of_its_own() -> None:
    text = formatter_for(LoggingConfig(), journal=True).format(record(logging.WARNING))
    assert text == "<4>WARNING vipexsync.test: hello x"


def test_text_elsewhere_keeps_the_time_and_no_prefix() -> None:
    text = formatter_for(LoggingConfig(), journal=False).format(record(logging.WARNING))
    assert TIME.match(text), text
    assert text.endswith("WARNING vipexsync.test: hello x")


def test_json_under_journald_is_one_prefixed_object() -> None:
    text = formatter_for(LoggingConfig(format="json"), journal=True).format(record(logging.INFO))
    assert text.startswith("<6>{")
    assert json.loads(text[3:])["message"] == "hello x"


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def log_to(path: Path, root: logging.Logger) -> str:
    with path.open("w", encoding="utf-8") as stream:
        configure_logging(LoggingConfig(), stream)
        logging.getLogger("vipexsync.test").warning("disk %s", "full")
        for handler in root.handlers:
            handler.flush()
    return path.read_text(encoding="utf-8")


def test_configure_logging_prefixes_only_the_named_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root_logger: logging.Logger
) -> None:
    out = tmp_path / "stderr"
    out.touch()
    status = out.stat()
    monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
    assert log_to(out, root_logger) == "<4>WARNING vipexsync.test: disk full\n"
    # The variable inherited, but this stream is another file: plain lines.
    other = tmp_path / "other"
    written = log_to(other, root_logger)
    assert TIME.match(written), written
    assert "<4>" not in written

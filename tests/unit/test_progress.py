"""The progress bar shows on a terminal and nowhere else."""

from __future__ import annotations

import io

from vipexsync.progress import NullProgress, TerminalProgress, progress_for


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_when_not_a_terminal() -> None:
    assert isinstance(progress_for("crm", io.StringIO()), NullProgress)


def test_bar_on_a_terminal_redraws_one_line_and_ends_it() -> None:
    assert isinstance(progress_for("crm", FakeTerminal()), TerminalProgress)
    screen = FakeTerminal()
    bar = TerminalProgress(screen, "crm", interval=3600)
    bar.update("listing", 0, 400)
    bar.update("listing", 200, 400)  # throttled: too soon after the first draw
    bar.update("listing", 400, 400)  # a finished phase is always drawn
    bar.update("writing", 1, 2)  # a new phase is always drawn
    bar.close()
    text = screen.getvalue()
    assert text.count("\r") == 3
    assert "listing  [------------------------------] 0/400" in text
    assert "400/400 100%" in text
    assert "writing" in text
    assert text.endswith("\n")


def test_closing_an_unused_bar_prints_nothing() -> None:
    screen = FakeTerminal()
    TerminalProgress(screen, "crm").close()
    assert screen.getvalue() == ""

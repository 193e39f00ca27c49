"""`vipexsync init` as an operator runs it: writes, refuses to overwrite, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import cli_environ
from vipexsync.config import SOURCE_TYPES


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vipexsync", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=cli_environ({"VIPEXSYNC_VIPEX_PASSWORD": "pw"}),
        check=False,
    )


def test_init_writes_then_refuses_to_overwrite(tmp_path: Path) -> None:
    first = cli("init", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    written = tmp_path / "vipexsync.toml"
    text = written.read_text(encoding="utf-8")
    assert 'type = "csv"' in text
    assert "`vipexsync check`" in first.stdout

    again = cli("init", "--source", "http", cwd=tmp_path)
    assert again.returncode == 2
    assert "already exists; pass --force" in again.stderr
    assert written.read_text(encoding="utf-8") == text

    forced = cli("init", "--source", "http", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert 'type = "http"' in written.read_text(encoding="utf-8")


def test_check_of_an_unfilled_starter_names_the_required_keys(tmp_path: Path) -> None:
    assert cli("init", "--source", "vcard", "mine.toml", cwd=tmp_path).returncode == 0
    check = cli("--config", "mine.toml", "check", cwd=tmp_path)
    assert check.returncode == 2
    assert "jobs[0].source.path: must not be empty" in check.stderr
    assert "vipex.url: must not be empty" in check.stderr


def test_init_honours_config_and_lists_every_source_type(tmp_path: Path) -> None:
    done = cli("--config", "etc.toml", "init", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "etc.toml").is_file()
    assert "--config etc.toml check" in done.stdout

    wrong = cli("init", "--source", "xls", cwd=tmp_path)
    assert wrong.returncode == 2
    assert all(repr(kind) in wrong.stderr for kind in SOURCE_TYPES)


def test_a_missing_configuration_points_at_init(tmp_path: Path) -> None:
    missing = cli("--config", "nowhere.toml", "check", cwd=tmp_path)
    assert missing.returncode == 2
    assert "vipexsync init" in missing.stderr

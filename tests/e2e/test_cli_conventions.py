"""Command-line conventions: where --config may stand, Ctrl-C, and the exit codes in --help."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from support import cli_environ, crm_row, serve_empty_vipex

VIPEX_ID = "1643897"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vipexsync", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_environ(),
        check=False,
    )


def test_config_after_the_command_is_the_same_as_before_it(job_files: Any) -> None:
    with serve_empty_vipex(VIPEX_ID) as vipex:
        config = job_files(vipex, [crm_row(1, "+36 1 300 0001", "Teszt Elek")])
        after = _run("sync", "--full-resync", "--config", str(config))
        assert after.returncode == 0, after.stderr
        assert "create 1" in after.stdout
        before = _run("--config", str(config), "status")
        after = _run("status", "--config", str(config))
        assert before.returncode == after.returncode == 0, before.stderr + after.stderr
        assert before.stdout == after.stdout
        upgraded = _run("db", "upgrade", "--config", str(config))
        assert upgraded.returncode == 0, upgraded.stderr


def test_config_after_the_command_wins_and_a_missing_one_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    result = _run("--config", "/etc/never-read.toml", "check", "--config", str(missing))
    assert result.returncode == 2
    assert f"configuration file {missing} does not exist" in result.stderr
    assert "never-read" not in result.stderr


def test_help_lists_every_exit_code() -> None:
    for args in (["--help"], ["sync", "--help"], ["run", "--help"]):
        result = _run(*args)
        assert result.returncode == 0, result.stderr
        assert "exit codes:" in result.stdout
        for code in ("0", "1", "2", "3", "4", "130"):
            assert any(line.split()[:1] == [code] for line in result.stdout.splitlines()), (
                args,
                code,
            )


def test_ctrl_c_records_the_writes_in_flight_and_exits_130(job_files: Any, tmp_path: Path) -> None:
    rows = [crm_row(i, f"+36 1 {3000000 + i}", f"Teszt{i} Elek") for i in range(1, 41)]
    with serve_empty_vipex(VIPEX_ID) as vipex:
        vipex.faults.latency_seconds = 0.1
        config = job_files(vipex, rows, concurrency=2)
        process = subprocess.Popen(
            [sys.executable, "-m", "vipexsync", "--config", str(config), "--full-resync"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_environ(),
        )
        deadline = time.monotonic() + 60
        while len(vipex.state.entries(VIPEX_ID)) < 4:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no write reached VIPeX in 60 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr
        assert "stopping after the writes in flight" in stderr
        held = {str(entry["phonenumber"]) for entry in vipex.state.entries(VIPEX_ID)}
        assert 4 <= len(held) < len(rows), "Ctrl-C did not stop the run early"

        engine = sa.create_engine(f"sqlite:///{tmp_path / 'mirror.sqlite3'}")
        with engine.connect() as conn:
            confirmed = {
                number
                for (number,) in conn.execute(
                    sa.text("SELECT phonenumber FROM mirror_entries WHERE content_hash IS NOT NULL")
                )
            }
        engine.dispose()
        # Every write VIPeX answered before the run stopped is in the mirror.
        assert confirmed == held

        vipex.faults.latency_seconds = 0.0
        rest = _run("--config", str(config), "sync")
        assert rest.returncode == 0, rest.stderr
        assert len(vipex.state.entries(VIPEX_ID)) == len(rows)

"""The quiet one-shot tick (vipexsync/quick.py): the CLI as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import cli_environ, crm_row, run_cli, serve_empty_vipex, write_crm
from vipexsync.emulator.server import RunningEmulator
from vipexsync.locks import job_lock

VIPEX_ID = "1643897"
CUSTOM_FIELDS = """\
[jobs.mapping.custom_fields]
"Ügyfélkód" = "CRM-{id}"
"""


def rows(n: int, company: str = "Bt.") -> list[dict[str, str]]:
    return [
        crm_row(i, f"+36 1 {3000000 + i}", f"Teszt{i} Elek", company=company)
        for i in range(1, n + 1)
    ]


@pytest.fixture
def vipex() -> Iterator[RunningEmulator]:
    with serve_empty_vipex(VIPEX_ID) as running:
        running.state.add_custom_field(VIPEX_ID, 7, "Ügyfélkód", "text")
        yield running


def settled(vipex: RunningEmulator, job_files: Any) -> Path:
    config = job_files(vipex, rows(4), custom_fields=CUSTOM_FIELDS)
    assert run_cli(config, "--full-resync").returncode == 0
    normal = run_cli(config, "sync")
    assert normal.returncode == 0, normal.stderr
    assert "unchanged since run" not in normal.stdout
    return config


def test_a_quiet_one_shot_tick_reports_records_and_calls_once(
    vipex: RunningEmulator, job_files: Any
) -> None:
    config = settled(vipex, job_files)
    vipex.app.reset_counts()
    quiet = run_cli(config, "sync")
    assert quiet.returncode == 0, quiet.stderr
    assert "unchanged since run 2" in quiet.stdout
    assert "Planned: create 0, update 0, adopt 0, delete 0, noop 4" in quiet.stdout
    assert vipex.app.request_counts() == {"get_phonebook_custom_field_list": 1}

    status = run_cli(config, "status", "--json")
    assert status.returncode == 0, status.stderr
    (job,) = json.loads(status.stdout)["jobs"]
    last = job["last_incremental"]
    assert last["id"] == 3
    assert last["outcome"] == "success"
    assert last["counts"]["planned_noop"] == 4

    # The next edit is read and written as always.
    write_crm(config.parent / "crm.csv", rows(4, company="Kft."))
    changed = run_cli(config, "sync")
    assert changed.returncode == 0, changed.stderr
    assert "unchanged since run" not in changed.stdout
    assert {e["comment"] for e in vipex.state.entries(VIPEX_ID)} == {"Kft."}


def test_a_held_job_still_exits_four(vipex: RunningEmulator, job_files: Any) -> None:
    config = settled(vipex, job_files)
    lock = job_lock(f"sqlite:///{config.parent / 'mirror.sqlite3'}", "crm")
    assert lock.acquire()
    try:
        result = run_cli(config, "sync")
    finally:
        lock.release()
    assert result.returncode == 4, result.stdout + result.stderr


QUIET_PROCESS = """
import sys
from pathlib import Path
from vipexsync.config import load_config
from vipexsync.quick import quiet_one_shot
config = load_config(Path(sys.argv[1]))
report = quiet_one_shot(config, config.jobs[0])
heavy = sorted(m for m in ("sqlalchemy", "alembic", "vipexsync.mapping", "vipexsync.runtime")
               if m in sys.modules)
print(report is not None and report.unchanged_since, heavy)
"""


def test_the_quiet_one_shot_path_imports_no_engine(vipex: RunningEmulator, job_files: Any) -> None:
    config = settled(vipex, job_files)
    done = subprocess.run(
        [sys.executable, "-c", QUIET_PROCESS, str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_environ(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2 []"


def test_a_renamed_custom_field_is_noticed_by_the_one_shot_tick(
    vipex: RunningEmulator, job_files: Any
) -> None:
    config = settled(vipex, job_files)
    vipex.state.add_custom_field(VIPEX_ID, 7, "Ügyfél kód", "text")
    result = run_cli(config, "sync")
    # The normal path ran: the mapping names a field VIPeX no longer has.
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Ügyfélkód" in result.stderr


def test_a_failed_one_call_runs_the_tick_the_normal_way(
    vipex: RunningEmulator, job_files: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vipexsync.config import load_config
    from vipexsync.errors import TransportError
    from vipexsync.quick import quiet_one_shot
    from vipexsync.vipex import lean

    config_path = settled(vipex, job_files)
    config = load_config(config_path)
    assert quiet_one_shot(config, config.jobs[0]) is not None

    def broken(*args: object) -> None:
        raise TransportError(lean.ACTION, "ConnectionResetError", sent=True)

    monkeypatch.setattr(lean, "custom_fields", broken)
    assert quiet_one_shot(config, config.jobs[0]) is None
    monkeypatch.undo()
    assert quiet_one_shot(config, config.jobs[0]) is not None  # nothing was recorded or changed

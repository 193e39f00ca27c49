"""`vipexsync history`, `vipexsync db prune` and the daemon's retention, as subprocesses."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from e2e.daemon_harness import Daemon, daemon_config, free_port, wait_for

from support import crm_row, serve_empty_vipex, write_crm
from support import run_cli as cli
from vipexsync.mirror.models import ChangeRow, RunRow

VIPEX_ID = "1643897"


def age_everything(database: Path, days: int) -> None:
    """Move every run and change-log row ``days`` into the past."""
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        shift = f"-{days} days"
        conn.execute(
            sa.text(
                "UPDATE runs SET started_at = datetime(started_at, :shift), "
                "finished_at = datetime(finished_at, :shift)"
            ),
            {"shift": shift},
        )
        conn.execute(sa.text("UPDATE changes SET at = datetime(at, :shift)"), {"shift": shift})
    engine.dispose()


def counts(database: Path) -> tuple[int, int]:
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        runs = conn.execute(sa.select(sa.func.count()).select_from(RunRow.__table__)).scalar_one()
        changes = conn.execute(
            sa.select(sa.func.count()).select_from(ChangeRow.__table__)
        ).scalar_one()
    engine.dispose()
    return int(runs), int(changes)


def test_history_answers_who_changed_this_entry(job_files: Any, tmp_path: Path) -> None:
    with serve_empty_vipex(VIPEX_ID) as vipex:
        config = job_files(
            vipex,
            [
                crm_row(1, "+36 1 300 0001", "Teszt Elek", company="Bt."),
                crm_row(2, "+36 1 300 0002", "Mókus Márta"),
            ],
        )
        assert cli(config, "--full-resync").returncode == 0
        write_crm(tmp_path / "crm.csv", [crm_row(1, "+36 1 300 0001", "Teszt Elemér")])
        assert cli(config, "sync").returncode == 0

        # Typed as the CRM writes it, national form: found in VIPeX's form.
        text = cli(config, "history", "06 1 300 0001")
        assert text.returncode == 0, text.stderr
        assert "Changes to 3613000001 (job crm)" in text.stdout
        lines = text.stdout.splitlines()
        update = next(i for i, line in enumerate(lines) if "3613000001  update" in line)
        create = next(i for i, line in enumerate(lines) if "3613000001  create" in line)
        assert update < create, "newest first"
        assert "'Teszt Elek' -> 'Teszt Elemér'" in text.stdout
        assert "(incremental)" in lines[update]
        assert "(full)" in lines[create]

        gone = json.loads(cli(config, "history", "+3613000002", "--json").stdout)
        assert [c["action"] for c in gone] == ["delete", "create"]
        assert gone[0]["before"]["name"] == "Mókus Márta"
        assert gone[0]["after"] is None
        assert gone[0]["reason"]

        everything = json.loads(cli(config, "history", "--job", "crm", "--json").stdout)
        assert len(everything) == 4
        assert json.loads(cli(config, "history", "--since", "1h", "--json").stdout) == everything
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert json.loads(cli(config, "history", "--since", future, "--json").stdout) == []

        wrong = cli(config, "history", "--since", "last tuesday")
        assert wrong.returncode == 2
        assert "--since 'last tuesday'" in wrong.stderr
        unknown = cli(config, "history", "--job", "nope")
        assert unknown.returncode == 2


def test_db_prune_once_and_keep_days_zero(job_files: Any, tmp_path: Path) -> None:
    database = tmp_path / "mirror.sqlite3"
    with serve_empty_vipex(VIPEX_ID) as vipex:
        config = job_files(vipex, [crm_row(1, "+36 1 300 0001", "Teszt Elek")])
        for _ in range(3):
            assert cli(config, "sync").returncode == 0
    age_everything(database, 100)
    assert counts(database) == (3, 1)

    kept = cli(config, "db", "prune", "--keep-days", "0")
    assert kept.returncode == 0, kept.stderr
    assert counts(database) == (3, 1)

    pruned = cli(config, "db", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "pruned 1 run(s) and 1 change-log row(s) older than 90 days" in pruned.stdout
    # The first run was a full resync; the newest of each mode stays.
    assert counts(database) == (2, 0)


@pytest.mark.slow
def test_the_daemon_prunes_old_history_on_start(job_files: Any, tmp_path: Path) -> None:
    database = tmp_path / "mirror.sqlite3"
    with serve_empty_vipex(VIPEX_ID) as vipex:
        config = job_files(vipex, [crm_row(1, "+36 1 300 0001", "Teszt Elek")])
        for _ in range(3):
            assert cli(config, "sync").returncode == 0
        age_everything(database, 200)
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace("[database]\n", "[database]\nkeep_days = 30\n"), "utf-8")
        port = free_port()
        daemon = Daemon(daemon_config(config, port=port), port)
        try:
            wait_for(lambda: "pruned" in daemon.stderr() or None, "the retention log line")
            # Run 2 at least goes (run 3 too when the daemon's own first run,
            # which races with pruning, has already become the newest).
            assert re.search(
                r"pruned [12] run\(s\) and 1 change-log row\(s\) older than 30 days",
                daemon.stderr(),
            ), daemon.stderr()
        finally:
            daemon.close()
    runs, changes = counts(database)
    assert changes == 0
    assert runs >= 2

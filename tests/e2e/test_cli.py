"""The CLI as a subprocess: exit codes, plan files, and the commands around a sync."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import cli_environ, crm_row, serve_empty_vipex, write_crm
from vipexsync.emulator.server import RunningEmulator, serve_in_thread
from vipexsync.locks import job_lock

VIPEX_ID = "1643897"


def cli(
    config: Path | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "vipexsync"]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_environ(env),
        check=False,
    )


def rows(n: int) -> list[dict[str, str]]:
    return [
        crm_row(i, f"+36 1 {3000000 + i}", f"Teszt{i} Elek", company="Bt.") for i in range(1, n + 1)
    ]


@pytest.fixture
def vipex() -> Iterator[RunningEmulator]:
    with serve_empty_vipex(VIPEX_ID) as running:
        running.state.add_custom_field(VIPEX_ID, 7, "Ügyfélkód", "text")
        yield running


def test_sync_then_quiet_run_exit_zero(vipex: RunningEmulator, job_files: Any) -> None:
    config = job_files(vipex, rows(4))
    first = cli(config, "--full-resync")
    assert first.returncode == 0, first.stderr
    assert "create 4" in first.stdout
    assert len(vipex.state.entries(VIPEX_ID)) == 4

    vipex.app.reset_counts()
    second = cli(config, "sync")
    assert second.returncode == 0, second.stderr
    assert vipex.app.request_counts() == {}


def test_plan_out_and_dry_run(vipex: RunningEmulator, job_files: Any, tmp_path: Path) -> None:
    config = job_files(vipex, rows(3))
    plan_file = tmp_path / "plan.json"
    result = cli(config, "sync", "--dry-run", "--plan-out", str(plan_file))
    assert result.returncode == 0, result.stderr
    assert "dry run" in result.stdout
    plan = json.loads(plan_file.read_text(encoding="utf-8"))
    assert [c["action"] for c in plan] == ["create"] * 3
    assert plan[0]["phonenumber"] == "3613000001"
    assert plan[0]["after"]["name"] == "Teszt1 Elek"
    assert plan[0]["reason"]
    assert vipex.state.entries(VIPEX_ID) == []


def test_guard_exit_code_three(vipex: RunningEmulator, job_files: Any) -> None:
    config = job_files(vipex, rows(5), max_deletes=1)
    assert cli(config, "sync").returncode == 0
    write_crm(config.parent / "crm.csv", rows(2))
    guarded = cli(config, "sync")
    assert guarded.returncode == 3, guarded.stdout + guarded.stderr
    assert "withheld" in guarded.stdout.lower()
    assert len(vipex.state.entries(VIPEX_ID)) == 5
    forced = cli(config, "sync", "--force-delete")
    assert forced.returncode == 0, forced.stderr
    assert len(vipex.state.entries(VIPEX_ID)) == 2


def test_failed_run_exit_code_one(job_files: Any, tmp_path: Path) -> None:
    with serve_in_thread() as vipex:
        config = job_files(vipex, rows(2), vipex_id="999")  # no such subscription
        result = cli(config, "sync")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "999" in result.stdout + result.stderr


def test_configuration_errors_exit_two(tmp_path: Path) -> None:
    missing = cli(tmp_path / "nope.toml", "sync")
    assert missing.returncode == 2
    assert "nope.toml" in missing.stderr
    assert "Traceback" not in missing.stderr

    broken = tmp_path / "broken.toml"
    broken.write_text("[vipex\nurl = 1\n", encoding="utf-8")
    bad = cli(broken, "check")
    assert bad.returncode == 2
    assert "line 1" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    ("tag", "second_job", "named"),
    [
        # Issue 9 item 4: two jobs on one subscription with one (the default) tag.
        ("crm-sync", True, "jobs[0] 'crm' and jobs[1] 'partners' share vipex_id"),
        # Issue 9 item 11: a tag VIPeX would store cleaned.
        ("crm  sync", False, "jobs[0].ownership_tag"),
    ],
    ids=["shared_subscription", "tag_not_normal"],
)
def test_unsafe_ownership_configuration_exits_two(
    vipex: RunningEmulator, job_files: Any, tag: str, second_job: bool, named: str
) -> None:
    config = job_files(vipex, rows(2), ownership_tag=tag)
    if second_job:
        text = config.read_text(encoding="utf-8")
        job = text[text.index("[[jobs]]") :].replace('name = "crm"', 'name = "partners"')
        config.write_text(text + "\n" + job, encoding="utf-8")
    result = cli(config, "sync")
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert vipex.state.entries(VIPEX_ID) == []


def test_unknown_job_is_a_usage_error(vipex: RunningEmulator, job_files: Any) -> None:
    config = job_files(vipex, rows(1))
    result = cli(config, "sync", "--job", "nincs")
    assert result.returncode == 2
    assert "crm" in result.stderr


def test_job_held_by_another_process_exits_four(vipex: RunningEmulator, job_files: Any) -> None:
    config = job_files(vipex, rows(2))
    assert cli(config, "db", "upgrade").returncode == 0
    database = f"sqlite:///{config.parent / 'mirror.sqlite3'}"
    lock = job_lock(database, "crm")
    assert lock.acquire()
    try:
        result = cli(config, "sync")
    finally:
        lock.release()
    assert result.returncode == 4, result.stdout + result.stderr
    assert vipex.state.entries(VIPEX_ID) == []


def test_check_fields_api_status(vipex: RunningEmulator, job_files: Any) -> None:
    config = job_files(vipex, rows(2))
    check = cli(config, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "2 records" in check.stdout

    fields = cli(config, "fields")
    assert fields.returncode == 0
    assert "Ügyfélkód" in fields.stdout

    api = cli(config, "api", "get_phonebook_custom_field_list", f"vipex_id={VIPEX_ID}")
    assert api.returncode == 0, api.stderr
    answer = json.loads(api.stdout)
    assert answer["onvipex_result"]["phonebook_custom_field_list"][0]["field_id"] == 7

    refused = cli(config, "api", "get_phonebook_entry", f"vipex_id={VIPEX_ID}", "phonenumber=1")
    assert refused.returncode == 1
    assert "get_phonebook_entry" in refused.stderr

    # The first run of a job lists VIPeX (a full resync); later ones are incremental.
    assert cli(config, "sync").returncode == 0
    assert cli(config, "sync").returncode == 0
    status = cli(config, "status", "--json")
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)["jobs"][0]
    assert info["job"] == "crm"
    assert info["mirror"]["owned"] == 2
    assert info["last_full"]["outcome"] == "success"
    assert info["last_full"]["counts"]["applied_create"] == 2
    assert info["last_incremental"]["outcome"] == "success"
    human = cli(config, "status")
    assert "last incremental" in human.stdout


def test_password_never_printed(job_files: Any) -> None:
    secret = "Zs1kr-Titok-Jelszo-8842"
    with serve_in_thread(password=secret) as vipex:
        config = job_files(vipex, rows(2))
        (config.parent / "vipex-password").write_text("wrong-password\n", encoding="utf-8")
        denied = cli(config, "sync")
        (config.parent / "vipex-password").write_text(secret + "\n", encoding="utf-8")
        ok = cli(config, "--full-resync")
    assert denied.returncode == 1
    assert "credentials" in denied.stdout + denied.stderr
    for result in (denied, ok):
        assert secret not in result.stdout + result.stderr

"""`vipexsync probe`, `check`, `status` and `emulator --omitted ...` as subprocesses."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from support import cli_environ, crm_row, serve_empty_vipex
from support import run_cli as cli
from vipexsync.emulator.semantics import Semantics
from vipexsync.emulator.server import RunningEmulator
from vipexsync.probe import DEFAULT_PROBE_NUMBER

VIPEX_ID = "1643897"


@pytest.fixture(params=["keep", "clear"])
def vipex(request: pytest.FixtureRequest) -> Iterator[RunningEmulator]:
    with serve_empty_vipex(VIPEX_ID) as running:
        running.state.semantics = Semantics(omitted=request.param)
        running.state.add_custom_field(VIPEX_ID, 7, "Ügyfélkód", "text")
        running.state.put_entry(VIPEX_ID, "3619996000", "Recepció", [], "", {7: "kézi"})
        yield running


def test_probe_check_and_status(vipex: RunningEmulator, job_files: Any) -> None:
    mode = vipex.state.semantics.omitted
    config = job_files(vipex, [crm_row(1, "+36 1 3000001")], write_semantics="probe")

    unverified = cli(config, "check")
    assert unverified.returncode == 0, unverified.stdout + unverified.stderr
    assert "WARN job crm: write semantics: UNVERIFIED" in unverified.stdout
    assert "Run `vipexsync probe` once" in unverified.stdout
    assert cli(config, "sync").returncode == 0
    assert "write semantics: UNVERIFIED" in cli(config, "status").stdout
    before = vipex.state.entries(VIPEX_ID)

    probed = cli(config, "probe")
    assert probed.returncode == 0, probed.stderr
    assert f"on test number {DEFAULT_PROBE_NUMBER}" in probed.stdout
    assert f"omitted fields: {mode}" in probed.stdout
    assert f"probe {DEFAULT_PROBE_NUMBER}: deleted the test entry" in probed.stderr  # logged
    assert vipex.state.entries(VIPEX_ID) == before

    checked = cli(config, "check")
    assert checked.returncode == 0
    assert "WARN" not in checked.stdout
    assert f"ok   job crm: write semantics: omitted fields: {mode}" in checked.stdout
    status = json.loads(cli(config, "status", "--json").stdout)
    semantics = status["jobs"][0]["write_semantics"]
    assert semantics["origin"] == "probed"
    assert semantics["omitted"] == mode
    assert semantics["probe_number"] == DEFAULT_PROBE_NUMBER
    assert f"write semantics: omitted fields: {mode}" in cli(config, "status").stdout


def test_probe_refusals_exit_codes(vipex: RunningEmulator, job_files: Any) -> None:
    config = job_files(vipex, [crm_row(1, "+36 1 3000001")])
    before = vipex.state.entries(VIPEX_ID)
    taken = cli(config, "probe", "--number", "3619996000")
    assert taken.returncode == 1
    assert "3619996000 already exists" in taken.stderr
    invalid = cli(config, "probe", "--number", "123")
    assert invalid.returncode == 2
    assert "not a valid international number" in invalid.stderr
    assert vipex.state.entries(VIPEX_ID) == before


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], "omitted fields: keep, no trimming, no normalisation, names not truncated"),
        (
            ["--omitted", "clear", "--max-name-length", "40", "--normalise", "nfc", "--trim"],
            "omitted fields: clear, trims, NFC, names cut at 40",
        ),
    ],
)
def test_emulator_command_line_semantics(
    flags: list[str], expected: str, job_files: Any, tmp_path: Path
) -> None:
    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "vipexsync", "emulator", "--port", str(port), *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_environ(),
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(200):
            try:
                requests.get(url, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        target = type("Target", (), {"url": url, "username": "api_user"})
        target.password, target.vipex_id = "api_password", VIPEX_ID  # type: ignore[attr-defined]
        config = job_files(target, [crm_row(1, "+36 1 3000001")])
        probed = cli(config, "probe")
        assert probed.returncode == 0, probed.stderr
        assert expected in probed.stdout
    finally:
        emulator.terminate()
        _, err = emulator.communicate(timeout=30)
    assert expected.split(",")[0].replace("omitted fields: ", "omitted fields ") in err


def test_probe_skips_a_job_held_by_another_process(vipex: RunningEmulator, job_files: Any) -> None:
    from vipexsync.config import load_config
    from vipexsync.locks import job_lock

    config = job_files(vipex, [crm_row(1, "+36 1 3000001")])
    held = job_lock(load_config(config).database.url, "crm")
    assert held.acquire()
    try:
        result = cli(config, "probe")
    finally:
        held.release()
    assert result.returncode == 4
    assert "being run by another process" in result.stderr
    assert vipex.app.request_counts() == {}  # it touched nothing

"""The shipped units under a real systemd: a Debian container booted with systemd-nspawn.

The wheel built from this checkout (or ``$VIPEXSYNC_TEST_WHEEL``, the one CI
built) is installed with deploy/constraints.txt into ``/opt/vipexsync`` inside
the container, the unit files from deploy/systemd are copied in unchanged, and
the bundled emulator runs there as a transient unit, so the daemon meets a
real PID 1, real DynamicUser/StateDirectory handling, a real seccomp filter
and a real journald. Only the watchdog test adds a drop-in (a short
WatchdogSec), as an operator would.

Opt-in, as it takes a minute or two (plus a few minutes the first time, to
bootstrap the cached Debian root): ``VIPEXSYNC_TEST_NSPAWN=1``, which
``make test-systemd`` and .ci/run set. Skipped with the reason when the
machine cannot boot a container (not root, systemd-nspawn or debootstrap
missing, no Debian archive, no boot).

The tests share one booted container and run in file order; each one that
needs the daemon running starts it (a no-op when it runs).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.daemon_harness import wait_for
from e2e.nspawn import Container, Unavailable, booted, build_wheelhouse

PROJECT = Path(__file__).resolve().parents[2]
UNITS = PROJECT / "deploy" / "systemd"
README = PROJECT / "deploy" / "README.md"
CONSTRAINTS = PROJECT / "deploy" / "constraints.txt"
DAEMON = "vipexsync.service"
ONESHOT = "vipexsync-full-resync.service"
TIMER = "vipexsync-full-resync.timer"
EMULATOR_PORT = 8765
METRICS = "127.0.0.1:9717"
OPT_IN = "VIPEXSYNC_TEST_NSPAWN"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

CONFIG = f"""\
[vipex]
url = "http://127.0.0.1:{EMULATOR_PORT}/"
username = "api_user"
allow_http = true

[database]
url = "sqlite:////var/lib/vipexsync/mirror.sqlite3"

[metrics]
listen = "{METRICS}"

[logging]
level = "INFO"

[[jobs]]
name = "crm"
vipex_id = "1643897"
interval_seconds = 10
full_resync_cron = ""
default_region = "HU"

[jobs.source]
type = "csv"
path = "crm.csv"
key = "id"

[jobs.mapping]
phone_fields = ["phone"]
name = "{{name}}"
"""

# The last row's phone is no number: every run logs a warning that it was rejected.
CRM = """\
id,name,phone
1001,Kovács Anna,+36 1 555 0101
1002,Nagy Béla,+36 30 555 0102
1003,Szabó Csilla,+36 20 555 0103
1004,Hibás Dénes,12
"""

# Our level names and the journald priorities they must arrive as (sd-daemon(3)).
SD_LEVELS = {"CRITICAL": "2", "ERROR": "3", "WARNING": "4", "INFO": "6", "DEBUG": "7"}

# GET a URL inside the container; prints the status code, then the body.
FETCH = """\
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as answer:
        print(answer.status)
        print(answer.read().decode())
except urllib.error.HTTPError as exc:
    print(exc.code)
    print(exc.read().decode())
except OSError as exc:
    print(0)
    print(exc)
"""


# -- the container ---------------------------------------------------------------


def install(box: Container) -> None:
    """The wheel into /opt/vipexsync, the units unchanged, a config, the emulator running."""
    wheel = build_wheelhouse(PROJECT, box.path("/root/wheelhouse"), CONSTRAINTS)
    # As deploy/README.md says, with the pins CI tested; from the folder, not the network.
    box.sh(
        "python3 -m venv /opt/vipexsync && /opt/vipexsync/bin/pip install --quiet --no-index "
        "--find-links /root/wheelhouse -c /root/wheelhouse/constraints.txt "
        f"/root/wheelhouse/{wheel.name}",
        timeout=900,
    )
    for unit in sorted(UNITS.iterdir()):
        shutil.copy2(unit, box.path(f"/etc/systemd/system/{unit.name}"))
    etc = box.path("/etc/vipexsync")
    etc.mkdir(mode=0o755)
    (etc / "vipexsync.toml").write_text(CONFIG, encoding="utf-8")
    (etc / "crm.csv").write_text(CRM, encoding="utf-8")
    password = etc / "vipex-password"
    password.write_text("api_password\n", encoding="utf-8")
    password.chmod(0o600)
    box.path("/root/fetch.py").write_text(FETCH, encoding="utf-8")
    box.sh("systemctl daemon-reload")
    box.sh(
        "systemd-run --unit=vipex-emulator /opt/vipexsync/bin/vipexsync emulator "
        f"--host 127.0.0.1 --port {EMULATOR_PORT}"
    )
    wait_for(
        lambda: fetch(box, f"http://127.0.0.1:{EMULATOR_PORT}/?rt=api")[0] != 0,
        "the emulator to listen",
        timeout=90,
    )


@pytest.fixture(scope="module")
def box() -> Iterator[Container]:
    if os.environ.get(OPT_IN) != "1":
        pytest.skip(f"boots a container for minutes: set {OPT_IN}=1 (make test-systemd)")
    try:
        with booted() as container:
            install(container)
            yield container
    except Unavailable as exc:
        pytest.skip(f"cannot boot a systemd container here: {exc}")


def fetch(box: Container, url: str) -> tuple[int, str]:
    out = box.sh(f"python3 /root/fetch.py '{url}'").stdout
    status, _, body = out.partition("\n")
    return int(status), body


def show(box: Container, unit: str, *props: str) -> dict[str, str]:
    out = box.sh(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def cursor(box: Container) -> str:
    out = box.sh("journalctl --show-cursor -n 0 -q").stdout
    match = re.search(r"cursor: (\S+)", out)
    assert match, out
    return match.group(1)


def journal(box: Container, *args: str, after: str | None = None) -> str:
    """``journalctl -o cat`` with ``args``; only entries after the cursor ``after``."""
    since = [f"'--after-cursor={after}'"] if after else []
    return box.sh(" ".join(["journalctl", "--no-pager", "-q", "-o", "cat", *since, *args])).stdout


def runs(box: Container, outcome: str) -> float:
    """vipexsync_runs_total summed over jobs and modes, for one outcome."""
    status, body = fetch(box, f"http://{METRICS}/metrics")
    assert status == 200, body
    total = 0.0
    for line in body.splitlines():
        if line.startswith("vipexsync_runs_total{") and f'outcome="{outcome}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def start_daemon(box: Container) -> None:
    box.sh(f"systemctl start {DAEMON}", timeout=180)
    wait_for(lambda: runs(box, "success") >= 1, "a first successful run", timeout=90)


def assert_next_runs_succeed(box: Container, after: str, what: str) -> None:
    """The daemon's next two runs succeed and none fails (it keeps its state directory)."""
    successes, failures = runs(box, "success"), runs(box, "failure")
    try:
        wait_for(
            lambda: runs(box, "success") >= successes + 2,
            f"two more successful runs {what}",
            timeout=90,
        )
    except AssertionError as exc:
        log = journal(box, "-u", DAEMON, after=after)
        raise AssertionError(f"{exc}; the daemon said:\n{log}") from exc
    log = journal(box, "-u", DAEMON, after=after)
    assert runs(box, "failure") == failures, log
    assert "Permission denied" not in log, log
    assert show(box, DAEMON, "SubState")["SubState"] == "running"


# -- the tests, in order -----------------------------------------------------------


def test_units_verify(box: Container) -> None:
    units = " ".join(f"/etc/systemd/system/{unit.name}" for unit in sorted(UNITS.iterdir()))
    done = box.sh(f"systemd-analyze verify {units}", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (done.stdout + done.stderr).strip() == ""


def test_daemon_becomes_active_through_ready(box: Container) -> None:
    start_daemon(box)
    state = show(box, DAEMON, "Type", "ActiveState", "SubState", "StatusText", "NotifyAccess")
    assert state["Type"] == "notify"
    assert (state["ActiveState"], state["SubState"]) == ("active", "running")
    # STATUS= comes over the same notify socket as READY=1.
    assert state["StatusText"], state


def test_metrics_health_and_readiness_answer(box: Container) -> None:
    start_daemon(box)
    status, body = fetch(box, f"http://{METRICS}/metrics")
    assert status == 200
    assert "vipexsync_build_info{" in body
    assert fetch(box, f"http://{METRICS}/healthz")[0] == 200
    assert wait_for(lambda: fetch(box, f"http://{METRICS}/readyz")[0] == 200, "/readyz", timeout=90)


@pytest.mark.parametrize("unit", [DAEMON, ONESHOT])
def test_security_exposure_at_most_1_5(box: Container, unit: str) -> None:
    out = box.sh(f"systemd-analyze security --no-pager {unit}", check=False).stdout
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", out)
    assert match, out
    assert float(match.group(1)) <= 1.5, out


def test_timer_loads(box: Container) -> None:
    box.sh(f"systemctl start {TIMER}")
    try:
        state = show(box, TIMER, "LoadState", "ActiveState", "SubState", "Triggers")
        assert state["LoadState"] == "loaded"
        assert (state["ActiveState"], state["SubState"]) == ("active", "waiting")
        assert state["Triggers"] == ONESHOT
        listed = box.sh(f"systemctl list-timers --all --no-legend {TIMER}").stdout
        assert TIMER in listed
    finally:
        box.sh(f"systemctl stop {TIMER}")


def start_oneshot(box: Container) -> dict[str, str]:
    """Start the one-shot and wait for it; again if it found the daemon busy (exit 4)."""
    for _ in range(5):
        box.sh(f"systemctl start {ONESHOT}", check=False, timeout=600)
        state = show(box, ONESHOT, "Result", "ExecMainStatus", "ActiveState", "SubState")
        if state["ExecMainStatus"] != "4":
            return state
        box.sh(f"systemctl stop {ONESHOT}; systemctl reset-failed {ONESHOT}", check=False)
    return state


def test_full_resync_oneshot_beside_the_running_daemon(box: Container) -> None:
    start_daemon(box)
    mark = cursor(box)
    state = start_oneshot(box)
    oneshot_log = journal(box, "-u", ONESHOT, after=mark)
    assert state["ExecMainStatus"] == "0", oneshot_log
    assert state["Result"] == "success", oneshot_log
    # The bug this guards: with a dynamic user of its own, the one-shot took the
    # state directory over and every later daemon run failed with EACCES.
    assert_next_runs_succeed(box, mark, "after the one-shot")


def readme_vsx() -> str:
    """The `vsx` shell function deploy/README.md tells operators to define."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^vsx\(\) \{\n.*?^\}\n", text, re.MULTILINE | re.DOTALL)
    assert match, "deploy/README.md no longer defines vsx()"
    return match.group(0)


def test_readme_vsx_beside_the_running_daemon(box: Container) -> None:
    start_daemon(box)
    mark = cursor(box)
    # --pty needs a terminal; --pipe hands the output over just the same.
    vsx = readme_vsx().replace(" --pty", " --pipe")
    done = box.sh(vsx + "vsx status\n", check=False, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "crm" in done.stdout, done.stdout
    assert_next_runs_succeed(box, mark, "after `vsx status`")


def test_warnings_reach_journald_as_warnings(box: Container) -> None:
    start_daemon(box)
    # Our lines name their level ("WARNING vipexsync...."); journald must hold the same.
    warnings = journal(box, "-u", DAEMON, "-p", "warning").splitlines()
    assert any(line.startswith("WARNING ") and "rejected" in line for line in warnings), warnings
    assert not [line for line in warnings if line.startswith(("INFO ", "DEBUG "))], warnings
    entries = [
        json.loads(line)
        for line in box.sh(
            f"journalctl -u {DAEMON} -o json --output-fields=MESSAGE,PRIORITY"
        ).stdout.splitlines()
        if line.strip()
    ]
    # A line that starts with its level: journald took the <N> prefix off, and
    # no time of our own stands before it (journald's is the only one).
    ours = [e for e in entries if str(e.get("MESSAGE", "")).split(" ", 1)[0] in SD_LEVELS]
    assert any(str(e["MESSAGE"]).startswith("INFO ") for e in ours), entries
    for entry in ours:
        assert entry["PRIORITY"] == SD_LEVELS[str(entry["MESSAGE"]).split(" ", 1)[0]], entry


def test_watchdog_restarts_a_frozen_daemon(box: Container) -> None:
    dropin = box.path(f"/etc/systemd/system/{DAEMON}.d")
    dropin.mkdir(exist_ok=True)
    (dropin / "test-watchdog.conf").write_text(
        "[Service]\nWatchdogSec=4s\nRestartSec=1s\n", encoding="utf-8"
    )
    try:
        box.sh(f"systemctl daemon-reload && systemctl restart {DAEMON}", timeout=180)
        before = show(box, DAEMON, "MainPID", "NRestarts", "WatchdogUSec")
        assert before["WatchdogUSec"] == "4s"
        # Alive under the short watchdog: the heartbeat pings often enough.
        time.sleep(10)
        assert show(box, DAEMON, "MainPID")["MainPID"] == before["MainPID"]
        mark = cursor(box)
        box.sh(f"systemctl kill --kill-whom=main --signal=SIGSTOP {DAEMON}")

        def restarted() -> dict[str, str] | None:
            now = show(box, DAEMON, "MainPID", "NRestarts", "SubState")
            fresh = now["MainPID"] not in ("0", before["MainPID"])
            return now if fresh and now["SubState"] == "running" else None

        after = wait_for(restarted, "systemd to restart the frozen daemon", timeout=180)
        assert int(after["NRestarts"]) > int(before["NRestarts"])
        log = journal(box, "-u", DAEMON, after=mark)
        assert "Watchdog timeout" in log, log
    finally:
        (dropin / "test-watchdog.conf").unlink()
        box.sh(f"systemctl daemon-reload && systemctl restart {DAEMON}", timeout=180)


def test_stop_is_clean(box: Container) -> None:
    start_daemon(box)
    mark = cursor(box)
    box.sh(f"systemctl stop {DAEMON}", timeout=180)
    state = show(box, DAEMON, "ActiveState", "Result", "ExecMainStatus", "ExecMainCode")
    log = journal(box, "-u", DAEMON, after=mark)
    assert state["ActiveState"] == "inactive", log
    assert state["Result"] == "success", (state, log)
    assert "SIGKILL" not in log, log
    assert "timed out" not in log, log


def test_no_seccomp_kills_or_tracebacks(box: Container) -> None:
    everything = journal(box)
    assert "status=31/SYS" not in everything, everything
    assert "SIGSYS" not in everything, everything
    ours = journal(box, "-u", DAEMON, "-u", ONESHOT)
    assert "Traceback" not in ours, ours

"""SIGKILL the CLI mid-run, again and again; the next full resync must still converge.

The emulator runs in a thread of this process behind a small auditing
middleware; only the ``vipexsync sync`` subprocess is killed. The middleware
tells, for every set/del request, whether it changed the phonebook: a write
that changed nothing is a *repeated* write (it was done before, but the
killed process never journaled it). Their number is printed; it is bounded by
the writes a run can have in flight or awaiting its journal when it dies.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from reliability.wsgi_helpers import buffer_request
from support import cli_environ, crm_row, serve, write_crm
from vipexsync.config import load_config
from vipexsync.domain import Entry, WriteState
from vipexsync.emulator.app import EmulatorApp
from vipexsync.emulator.state import EmulatorState
from vipexsync.mirror import store

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

pytestmark = pytest.mark.slow

VIPEX_ID = "1643897"
USER, PASSWORD = "api_user", "kill-test-password"
SEED = 6_2024
RECORDS = 3000
KILLS = 20
CONCURRENCY = 8
WRITES = ("set_phonebook_entry", "del_phonebook_entry")
FOREIGN = {
    "36301112233": ("Pizzéria", ["ebéd"], "péntek"),
    "36209998877": ("Kézi Kata", [], "kézzel felvéve"),
}


# -- the emulator behind an auditing middleware ----------------------------------


def _normal(entry: dict[str, object] | None) -> tuple[object, ...] | None:
    """An entry's content in a form where tag order does not matter."""
    if entry is None:
        return None
    tags = entry["tags"]
    assert isinstance(tags, list)
    return (entry["name"], tuple(sorted(tags)), entry["comment"], entry["custom_fields"])


@dataclass
class WriteAudit:
    """WSGI middleware: counts set/del requests and those that changed nothing."""

    app: EmulatorApp
    state: EmulatorState
    lock: threading.Lock = field(default_factory=threading.Lock)
    writes: int = 0
    effective: int = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        params = buffer_request(environ)
        if params.get("action") not in WRITES:
            return self.app(environ, start_response)
        number = str(params.get("phonenumber", ""))
        with self.lock:  # writes one at a time, so before/after belong to this request
            before = _normal(self.state.entry(VIPEX_ID, number))
            answer = self.app(environ, start_response)
            after = _normal(self.state.entry(VIPEX_ID, number))
            self.writes += 1
            self.effective += before != after
        return answer

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return self.writes, self.effective


# -- the CRM -------------------------------------------------------------------


@dataclass
class Crm:
    """The CRM's records (key -> name, company); each key has one phone number."""

    records: dict[int, tuple[str, str]]
    next_key: int = RECORDS + 1000

    @staticmethod
    def phone(key: int) -> str:
        return f"+36 1 {4000000 + key}"

    @staticmethod
    def number(key: int) -> str:
        return f"361{4000000 + key}"

    def rows(self) -> list[dict[str, str]]:
        return [
            crm_row(key, self.phone(key), name, company=company)
            for key, (name, company) in sorted(self.records.items())
        ]

    def desired(self) -> dict[str, Entry]:
        return {
            self.number(key): Entry(
                phonenumber=self.number(key),
                name=name,
                tags=frozenset({"crm-sync"}),
                comment=company,
            )
            for key, (name, company) in self.records.items()
        }

    def drift_a_little(self, rng: random.Random, version: int) -> None:
        """A few renames, removals and new records, as a busy CRM day brings."""
        keys = sorted(self.records)
        for key in rng.sample(keys, rng.randint(0, 6)):
            name, _ = self.records[key]
            self.records[key] = (f"{name.split(' ')[0]} Módosított{version}", f"Cég {version}")
        for key in rng.sample(keys, rng.randint(0, 3)):
            self.records.pop(key, None)
        for _ in range(rng.randint(0, 3)):
            self.records[self.next_key] = (f"Új{self.next_key} Ödön", "Friss Zrt.")
            self.next_key += 1


# -- running the CLI -----------------------------------------------------------


def cli_command(config: Path, full: bool) -> list[str]:
    mode = ["--full-resync"] if full else ["sync"]
    return [sys.executable, "-m", "vipexsync", "--config", str(config), *mode]


def write_config(tmp_path: Path, url: str) -> Path:
    secret = tmp_path / "vipex-password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    secret.chmod(0o600)
    config = tmp_path / "vipexsync.toml"
    config.write_text(
        f"""\
[vipex]
url = "{url}"
username = "{USER}"
password_file = "vipex-password"
allow_http = true
timeout_seconds = 10
concurrency = {CONCURRENCY}
retry_deadline_seconds = 10

[database]
url = "sqlite:///{tmp_path / "mirror.sqlite3"}"

[metrics]
listen = ""

[logging]
level = "WARNING"

[[jobs]]
name = "crm"
vipex_id = "{VIPEX_ID}"
full_resync_cron = ""
ownership_tag = "crm-sync"
delete = "owned"
max_deletes = 1000
max_delete_ratio = 1.0

[jobs.source]
type = "csv"
path = "crm.csv"
key = "id"

[jobs.mapping]
phone_fields = ["phone"]
name = "{{last_name}} {{first_name}}"
comment = "{{company}}"
""",
        encoding="utf-8",
    )
    return config


def kill_after(command: list[str], audit: WriteAudit, *, writes: int, seconds: float) -> int:
    """Start the CLI; SIGKILL it after ``writes`` more writes or ``seconds``; its return code."""
    start_writes = audit.counts()[0]
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=cli_environ(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        while process.poll() is None:
            done = audit.counts()[0] - start_writes
            if done >= writes or time.monotonic() - started >= seconds:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    errors = process.stderr.read().decode("utf-8", "replace")
    process.stderr.close()
    assert "Traceback" not in errors, errors
    return process.returncode


def owned_mirror(config: Path) -> dict[str, Any]:
    engine = sa.create_engine(load_config(config).database.url)
    try:
        with sa.orm.Session(engine) as session:
            return {n: m for n, m in store.load_mirror(session, "crm").items() if m.owned}
    finally:
        engine.dispose()


def remote_entries(state: EmulatorState) -> dict[str, Entry]:
    out = {}
    for raw in state.entries(VIPEX_ID):
        number = str(raw["phonenumber"])
        tags = raw["tags"]
        assert isinstance(tags, list)
        out[number] = Entry(
            phonenumber=number,
            name=str(raw["name"]),
            tags=frozenset(str(t) for t in tags),
            comment=str(raw["comment"]),
        )
    return out


def test_sigkill_twenty_times_then_full_resync_converges(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    state = EmulatorState()
    state.add_subscription(VIPEX_ID)
    for number, (name, tags, comment) in FOREIGN.items():
        state.put_entry(VIPEX_ID, number, name, tags, comment)
    foreign_before = {n: state.entry(VIPEX_ID, n) for n in FOREIGN}
    app = EmulatorApp(state, credentials={USER: PASSWORD})
    audit = WriteAudit(app, state)
    crm = Crm({key: (f"Ügyfél{key} Árpád", "Kft.") for key in range(1, RECORDS + 1)})

    with serve(audit) as url:
        config = write_config(tmp_path, url)
        write_crm(tmp_path / "crm.csv", crm.rows())
        killed = 0
        finished = 0
        for round_ in range(KILLS):
            if round_ and rng.random() < 0.5:
                crm.drift_a_little(rng, round_)
                write_crm(tmp_path / "crm.csv", crm.rows())
            full = rng.random() < 0.3
            # Mostly after a number of writes; every fourth after a delay, which
            # may land in start-up, the source read or the listing.
            if round_ % 4 == 3:
                writes, seconds = 10**9, rng.uniform(0.2, 1.5)
            else:
                writes, seconds = rng.randint(5, 150), 60.0
            code = kill_after(cli_command(config, full), audit, writes=writes, seconds=seconds)
            if code == -signal.SIGKILL:
                killed += 1
            else:
                assert code == 0, f"round {round_}: exit {code}"
                finished += 1

        final = subprocess.run(
            cli_command(config, full=True),
            env=cli_environ(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert final.returncode == 0, final.stdout + final.stderr
        writes_total, effective = audit.counts()

        desired = crm.desired()
        remote = remote_entries(state)
        owned_remote = {n: e for n, e in remote.items() if n not in FOREIGN}
        assert owned_remote == desired
        assert {n: state.entry(VIPEX_ID, n) for n in FOREIGN} == foreign_before

        mirror = owned_mirror(config)
        assert set(mirror) == set(desired)
        for number, entry in mirror.items():
            assert entry.written == desired[number], number
            assert entry.state is WriteState.APPLIED, number

        again = subprocess.run(
            cli_command(config, full=True),
            env=cli_environ(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert audit.counts()[0] == writes_total, "a converged full resync wrote again"

    repeated = writes_total - effective
    print(
        f"\nkill test: {killed} runs killed, {finished} finished; {writes_total} set/del "
        f"requests, {effective} needed (changed the phonebook), {repeated} repeated"
    )
    assert killed >= KILLS - 4, f"only {killed} of {KILLS} runs were killed mid-run"
    # A kill can only lose the journal of the writes in flight or awaiting their
    # journal: at most 2 x concurrency per run (apply keeps that many futures).
    assert repeated <= killed * 2 * CONCURRENCY

"""Fault soak: a few hundred entries synced through a thoroughly unreliable VIPeX.

The emulator answers 20 % of requests with a 5xx, every tenth with a 429
(``Retry-After: 0.05``), hangs 2 % past the client's timeout (after doing the
work, so a write lands although the client gives up on it) and serves 1 % HTML
maintenance pages, all from a fixed seed. The job syncs a CRM of a few hundred
rows beside hand-made foreign entries, then the CRM changes (edits, removals,
new rows) and it syncs again. Each phase repeats runs, full and incremental,
until one succeeds and the tagged remote equals the desired phonebook; the
bound on runs is what the test asserts, never a time. After every run: foreign
entries are byte-for-byte untouched, nothing unowned was deleted, and a mirror
row whose confirmed content changed matches VIPeX. With the faults off a full
resync then writes nothing and an incremental run calls nothing.

``pytest -s`` prints the runs each phase needed and the request counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from support import JOB_TOML, write_crm
from vipexsync.config import load_config
from vipexsync.domain import Entry, MirrorEntry
from vipexsync.emulator.server import RunningEmulator, serve_in_thread
from vipexsync.emulator.state import EmulatorState
from vipexsync.mirror import store
from vipexsync.runtime import Runtime
from vipexsync.sync.model import Mode
from vipexsync.sync.plan import same_content
from vipexsync.sync.report import Outcome, RunReport
from vipexsync.sync.runner import RunOptions

pytestmark = pytest.mark.slow

VIPEX_ID = "1643897"
JOB = "crm"
TAG = "crm-sync"
RECORDS = 300
FOREIGN = 25
MAX_RUNS = 15  # per phase
WRITES = ("set_phonebook_entry", "del_phonebook_entry")
SEED = 20_240_611


def phone(i: int) -> str:
    return f"06-1-{3000000 + i}"


def number(i: int) -> str:
    return f"361{3000000 + i}"


def row(i: int, company: str = "Kft") -> dict[str, str]:
    return {
        "id": str(1000 + i),
        "last_name": f"Ügyfél{i}",
        "first_name": "Anna",
        "company": company,
        "phone": phone(i),
        "segment": "vip" if i % 7 == 0 else "",
    }


def desired_of(rows: list[dict[str, str]]) -> dict[str, Entry]:
    """The phonebook these rows ask for (unique numbers by construction)."""
    desired: dict[str, Entry] = {}
    for r in rows:
        digits = "361" + r["phone"].removeprefix("06-1-")
        desired[digits] = Entry(
            phonenumber=digits,
            name=f"{r['last_name']} {r['first_name']}",
            tags=frozenset(t for t in (r["segment"], TAG) if t),
            comment=r["company"],
        )
    return desired


def snapshot(vipex: RunningEmulator) -> dict[str, dict[str, Any]]:
    return {str(e["phonenumber"]): e for e in vipex.state.entries(VIPEX_ID)}


def as_entry(raw: dict[str, Any]) -> Entry:
    return Entry(
        phonenumber=str(raw["phonenumber"]),
        name=str(raw["name"]),
        tags=frozenset(raw["tags"]),
        comment=str(raw["comment"]),
        custom_fields=dict(raw["custom_fields"]),
    )


def load_mirror(database: Path) -> dict[str, MirrorEntry]:
    if not database.exists():
        return {}
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with sa.orm.Session(engine) as session:
            return store.load_mirror(session, JOB)
    finally:
        engine.dispose()


@pytest.fixture
def vipex() -> Iterator[RunningEmulator]:
    state = EmulatorState()
    state.add_subscription(VIPEX_ID)
    for j in range(FOREIGN):
        state.put_entry(VIPEX_ID, str(36209000000 + j), f"Kézi {j}", ["kézi"], "ne töröld")
    with serve_in_thread(state, vipex_id=VIPEX_ID, password="soak-secret-pw") as running:
        yield running


class Soak:
    """One job against the faulty emulator, with the checks made after every run."""

    def __init__(self, vipex: RunningEmulator, folder: Path) -> None:
        self.vipex = vipex
        self.folder = folder
        self.database = folder / "mirror.sqlite3"
        self.foreign = dict(snapshot(vipex))
        self.requests: Counter[str] = Counter()
        secret = folder / "vipex-password"
        secret.write_text(vipex.password + "\n", encoding="utf-8")
        secret.chmod(0o600)
        self.config = folder / "vipexsync.toml"
        self.config.write_text(
            JOB_TOML.format(
                url=vipex.url,
                username=vipex.username,
                timeout=0.5,
                concurrency=4,
                retry_deadline=1.0,
                database=f"sqlite:///{self.database}",
                job=JOB,
                vipex_id=VIPEX_ID,
                ownership_tag=TAG,
                delete="owned",
                max_deletes=1000,
                max_delete_ratio=1.0,
                min_source_records=1,
                custom_fields="",
            ),
            encoding="utf-8",
        )

    def faults_on(self) -> None:
        faults = self.vipex.faults
        faults.seed = SEED
        faults.error_rate = 0.20
        faults.rate_limit_every = 10
        faults.retry_after_seconds = 0.05
        faults.hang_rate = 0.02
        faults.hang_seconds = 1.0
        faults.html_rate = 0.01

    def run(self, mode: Mode) -> RunReport:
        before, mirror_before = snapshot(self.vipex), load_mirror(self.database)
        self.vipex.app.reset_counts()
        config = load_config(self.config)
        with Runtime(config) as runtime:
            report = runtime.run_job(config.jobs[0], RunOptions(mode=mode))
        self.requests.update(self.vipex.app.request_counts())
        self.check(before, mirror_before)
        return report

    def check(self, before: dict[str, Any], mirror_before: dict[str, MirrorEntry]) -> None:
        after = snapshot(self.vipex)
        for num, raw in self.foreign.items():
            assert after.get(num) == raw, f"foreign entry {num} was touched"
        for num in set(before) - set(after):
            row = mirror_before.get(num)
            owned = TAG in before[num]["tags"] or (row is not None and row.owned)
            assert owned, f"{num} was deleted but the daemon did not own it"
        for num, mirrored in load_mirror(self.database).items():
            old = mirror_before.get(num)
            if mirrored.written is None or (old is not None and old.written == mirrored.written):
                continue
            assert num in after, f"the mirror claims a write of {num}; VIPeX lacks it"
            assert same_content(mirrored.written, as_entry(after[num])), (
                f"the mirror claims {mirrored.written} for {num}; VIPeX holds {after[num]}"
            )

    def converged(self, desired: dict[str, Entry]) -> bool:
        tagged = {n: as_entry(e) for n, e in snapshot(self.vipex).items() if TAG in e["tags"]}
        return tagged.keys() == desired.keys() and all(
            same_content(want, tagged[n]) for n, want in desired.items()
        )

    def until_converged(self, phase: str, desired: dict[str, Entry]) -> int:
        """Runs (full, then incremental, alternating) until one succeeds and the remote is right."""
        outcomes: list[str] = []
        for attempt in range(1, MAX_RUNS + 1):
            mode = Mode.FULL if attempt % 2 == 1 else Mode.INCREMENTAL
            report = self.run(mode)
            outcomes.append(f"{mode.value}:{report.outcome.value}")
            if report.outcome is Outcome.SUCCESS and self.converged(desired):
                print(f"{phase}: converged after {attempt} run(s): {', '.join(outcomes)}")
                return attempt
        pytest.fail(f"{phase}: not converged after {MAX_RUNS} runs: {', '.join(outcomes)}")


def test_sync_converges_through_a_faulty_vipex(vipex: RunningEmulator, tmp_path: Path) -> None:
    soak = Soak(vipex, tmp_path)
    rows = [row(i) for i in range(RECORDS)]
    write_crm(tmp_path / "crm.csv", rows)
    soak.faults_on()
    soak.until_converged("initial load", desired_of(rows))

    # The CRM moves on: 30 edits, 20 removals, 20 new rows; still under fire.
    changed = [row(i, "Új cég Zrt.") if i < 30 else row(i) for i in range(20, RECORDS + 20)]
    write_crm(tmp_path / "crm.csv", changed)
    desired = desired_of(changed)
    soak.until_converged("after CRM changes", desired)

    book = snapshot(vipex)
    assert all(number(i) not in book for i in range(20)), "removed rows are still in VIPeX"
    assert set(soak.foreign) <= set(book)
    mirror = load_mirror(soak.database)
    assert all(same_content(want, mirror[n].written or Entry(n, "")) for n, want in desired.items())

    vipex.faults.reset()
    vipex.app.reset_counts()
    quiet_full = soak.run(Mode.FULL)
    assert quiet_full.outcome is Outcome.SUCCESS
    counts = vipex.app.request_counts()
    assert sum(counts.get(a, 0) for a in WRITES) == 0, counts
    assert quiet_full.planned["noop"] == len(desired)
    quiet = soak.run(Mode.INCREMENTAL)
    assert quiet.outcome is Outcome.SUCCESS
    assert quiet.api_calls == 0
    print(f"requests over the whole soak: {dict(sorted(soak.requests.items()))}")

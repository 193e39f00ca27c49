"""A hypothesis state machine that edits the CRM and the PBX, injects faults and crashes.

Each example gets its own emulator (in a thread, over real HTTP on loopback),
a temporary folder with the CRM (a CSV file the machine rewrites), a SQLite
mirror and the job's configuration. Every sync run builds a fresh ``Runtime``
as a separate ``vipexsync sync`` process would, except the crash rule, which
really is a separate process.

**How a crash is made.** The crash rule runs ``python -m vipexsync sync`` as a
subprocess with ``concurrency = 1`` (so exactly one write is in flight when it
dies) and hangs a change listener on the
emulator's state. Listeners run under the state lock right after a write has
changed the phonebook, before the HTTP answer is sent, so when the k-th write
lands the listener blocks: VIPeX holds the write, the client has no answer,
and nothing can have journaled it. The test then SIGKILLs the process and only
afterwards lets the emulator answer (into a dead socket). That is the moment
the design worries about: between a VIPeX write and its journal entry.

The machine keeps its own model of what it did by hand (foreign entries, the
contents VIPeX ever held per number) and checks after every step:

1. foreign entries (hand-made, never tagged, numbers no CRM row has) stay
   byte-for-byte; every entry a run deleted was owned before the run (tagged
   or owned in the mirror); every entry a run changed was owned or desired
   (an adoption);
2. a run whose listing was unstable (page shift) or whose source failed
   deletes nothing;
3. after a fault-free full resync the tagged remote entries equal the desired
   ones, computed here from the CRM rows, and a second full resync writes
   nothing, and an incremental run makes no call at all;
4. the mirror never claims a write VIPeX did not confirm: a row whose
   confirmed content changed in a run matches VIPeX right after that run, and
   every confirmed content was at some time really held by VIPeX.

``VIPEXSYNC_RELIABILITY_PROFILE=long`` runs many more, longer, randomised examples
(about ten minutes here) without the per-test timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

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
POOL = 12  # CRM numbers come from a small pool, so duplicates and reuse happen
SEEDED_FOREIGN = 205  # more than one listing page (200), so page shifts bite
WRITES = ("set_phonebook_entry", "del_phonebook_entry")
# "broken_source": the next run finds the CRM export half-written in another encoding
FAULTS = ("5xx", "429", "hang", "html", "page_shift", "broken_source")

LONG = os.environ.get("VIPEXSYNC_RELIABILITY_PROFILE", "") == "long"
PROFILE = (
    settings(
        max_examples=120,
        stateful_step_count=50,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    if LONG
    else settings(
        max_examples=30,
        stateful_step_count=30,
        deadline=None,
        derandomize=True,  # a fixed seed: the CI run is the same every time
        database=None,
        suppress_health_check=list(HealthCheck),
    )
)

# What the machine got to do, printed at the end (pytest -s) so a reader can
# see the interesting states were reached.
EVENTS: Counter[str] = Counter()


def event(label: str) -> None:
    EVENTS[label] += 1


LAST_NAMES = ("Kovács", "Nagy", "Szabó", "Tóth", "Horváth", "Kiss")
FIRST_NAMES = ("Anna", "Béla", "Csilla", "Dénes", "Éva")
COMPANIES = ("", "Kft", "Bt.", "Ügyvédi Iroda")
SEGMENTS = ("", "vip", "partner")
INVALID_PHONES = ("nem tudom", "123", "06-1-12")
HAND_NAMES = ("Átírta Valaki", "Recepció", "Pizzéria", "Taxi")
CRM_OPS = ("add", "duplicate", "invalid", "edit", "remove", "renumber")
HAND_OPS = ("edit", "delete", "add_foreign", "add_crm_number")


def phone(i: int) -> str:
    """A CRM number as a person types it."""
    return f"06-1-{2000000 + i}"


def number(i: int) -> str:
    """The same number in VIPeX's form."""
    return f"361{2000000 + i}"


def foreign_number(j: int) -> str:
    """A number no CRM row ever has (a mobile range the pool never reaches)."""
    return str(36301000000 + j)


Snapshot = dict[str, dict[str, Any]]


def snapshot(state: EmulatorState) -> Snapshot:
    return {str(e["phonenumber"]): e for e in state.entries(VIPEX_ID)}


def as_entry(raw: dict[str, Any]) -> Entry:
    return Entry(
        phonenumber=str(raw["phonenumber"]),
        name=str(raw["name"]),
        tags=frozenset(raw["tags"]),
        comment=str(raw["comment"]),
        custom_fields=dict(raw["custom_fields"]),
    )


def content(raw: dict[str, Any]) -> tuple[object, ...]:
    """An entry's content with tag order ignored (VIPeX keeps no meaningful order)."""
    return (
        raw["name"],
        frozenset(raw["tags"]),
        raw["comment"],
        tuple(raw["custom_fields"].items()),
    )


def entry_content(entry: Entry) -> tuple[object, ...]:
    return (entry.name, entry.tags, entry.comment, tuple(sorted(entry.custom_fields.items())))


def expected_desired(rows: dict[int, dict[str, str]]) -> dict[str, Entry]:
    """What the CRM asks for, worked out here without the mapping code.

    The machine only writes numbers of the form ``phone(i)`` or known-invalid
    strings, so normalising is a lookup; of two rows with one number the lower
    key wins.
    """
    by_number: dict[str, tuple[int, Entry]] = {}
    valid = {phone(i): number(i) for i in range(POOL)}
    for key in sorted(rows):
        row = rows[key]
        digits = valid.get(row["phone"])
        if digits is None or digits in by_number:
            continue
        tags = frozenset(t for t in (row["segment"], TAG) if t)
        entry = Entry(
            phonenumber=digits,
            name=f"{row['last_name']} {row['first_name']}",
            tags=tags,
            comment=row["company"],
        )
        by_number[digits] = (key, entry)
    return {n: e for n, (_, e) in by_number.items()}


@dataclass
class WriteGate:
    """Emulator change listener that holds the k-th change's answer back."""

    k: int
    count: int = 0
    active: bool = True

    def __post_init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> None:
        if not self.active:
            return
        self.count += 1
        if self.count == self.k:
            self.reached.set()
            self.release.wait(60)


class SyncMachine(RuleBasedStateMachine):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        self.dir = Path(tempfile.mkdtemp(prefix="vipexsync-sm-"))
        self.stack.callback(shutil.rmtree, self.dir, True)
        state = EmulatorState()
        state.add_subscription(VIPEX_ID)
        self.vipex: RunningEmulator = self.stack.enter_context(
            serve_in_thread(state, vipex_id=VIPEX_ID, password="sm-secret-pw")
        )
        self.state = state
        self.foreign: Snapshot = {}
        for j in range(SEEDED_FOREIGN):
            self._hand_put(foreign_number(j), f"Kézi {j}", ["kézi"] if j % 3 else [], "")
            self.foreign[foreign_number(j)] = dict(
                self.state.entry(VIPEX_ID, foreign_number(j)) or {}
            )
        self.next_foreign = SEEDED_FOREIGN
        self.crm: dict[int, dict[str, str]] = {}
        # number -> every content VIPeX was seen holding for it (the mirror may claim no other)
        self.history: dict[str, set[tuple[object, ...]]] = {}
        self._write_configs()
        self._observe()

    def teardown(self) -> None:
        self.stack.close()

    # -- set-up helpers ------------------------------------------------------------

    def _write_configs(self) -> None:
        secret = self.dir / "vipex-password"
        secret.write_text(self.vipex.password + "\n", encoding="utf-8")
        secret.chmod(0o600)
        base = {
            "url": self.vipex.url,
            "username": self.vipex.username,
            "retry_deadline": 1.0,
            "database": f"sqlite:///{self.database}",
            "job": JOB,
            "vipex_id": VIPEX_ID,
            "ownership_tag": TAG,
            "delete": "owned",
            "max_deletes": 1000,
            "max_delete_ratio": 1.0,
            "min_source_records": 0,
            "custom_fields": "",
        }
        variants: dict[str, dict[str, object]] = {
            "normal": {"timeout": 5, "concurrency": 2},
            "hang": {"timeout": 0.25, "concurrency": 2},  # the emulator hangs 0.6 s
            "crash": {"timeout": 5, "concurrency": 1},  # one write in flight at a kill
        }
        for name, extra in variants.items():
            text = JOB_TOML.format(**{**base, **extra})
            (self.dir / f"{name}.toml").write_text(text, encoding="utf-8")
        self._write_crm()

    @property
    def database(self) -> Path:
        return self.dir / "mirror.sqlite3"

    def _write_crm(self) -> None:
        write_crm(self.dir / "crm.csv", [self.crm[k] for k in sorted(self.crm)])

    def _hand_put(self, num: str, name: str, tags: list[str], comment: str) -> None:
        self.state.put_entry(VIPEX_ID, num, name, tags, comment)

    def _observe(self) -> Snapshot:
        book = snapshot(self.state)
        for num, raw in book.items():
            self.history.setdefault(num, set()).add(content(raw))
        return book

    def _mirror(self) -> dict[str, MirrorEntry]:
        if not self.database.exists():
            return {}
        engine = sa.create_engine(f"sqlite:///{self.database}")
        try:
            with sa.orm.Session(engine) as session:
                return store.load_mirror(session, JOB)
        finally:
            engine.dispose()

    def _crm_row(
        self, key: int, phone_text: str, last: str, first: str, company: str, segment: str
    ) -> dict[str, str]:
        return {
            "id": str(key),
            "last_name": last,
            "first_name": first,
            "company": company,
            "phone": phone_text,
            "segment": segment,
        }

    # -- the CRM -------------------------------------------------------------------

    @initialize(
        keys=st.lists(st.integers(100, 999), min_size=1, max_size=8, unique=True),
        numbers=st.lists(st.integers(0, POOL - 1), min_size=8, max_size=8),
    )
    def start(self, keys: list[int], numbers: list[int]) -> None:
        for key, i in zip(keys, numbers, strict=False):
            self.crm[key] = self._crm_row(
                key, phone(i), LAST_NAMES[key % 6], FIRST_NAMES[i % 5], COMPANIES[key % 4], ""
            )
        self._write_crm()

    # Two rules with an operation each, rather than one rule per operation:
    # hypothesis switches whole rules off per example (swarm testing), and with
    # few rules the interesting mixes (edit by hand, then resync) come up often.

    @rule(data=st.data(), op=st.sampled_from(CRM_OPS))
    def crm_change(self, data: st.DataObject, op: str) -> None:
        """Change the CRM export; the next run reads it."""
        keys = sorted(self.crm)
        if op == "add" or not keys:
            key = self._new_key(data)
            i = data.draw(st.integers(0, POOL - 1), label="number")
            last = data.draw(st.sampled_from(LAST_NAMES), label="last name")
            first = data.draw(st.sampled_from(FIRST_NAMES), label="first name")
            company = data.draw(st.sampled_from(COMPANIES), label="company")
            segment = data.draw(st.sampled_from(SEGMENTS), label="segment")
            self.crm[key] = self._crm_row(key, phone(i), last, first, company, segment)
        elif op == "duplicate":  # another row's number; the lower key must win
            other = self.crm[data.draw(st.sampled_from(keys), label="row")]
            key = self._new_key(data)
            self.crm[key] = self._crm_row(key, other["phone"], "Másik", "Személy", "Dupla", "")
        elif op == "invalid":
            key = self._new_key(data)
            bad = data.draw(st.sampled_from(INVALID_PHONES), label="invalid phone")
            self.crm[key] = self._crm_row(key, bad, "Hibás", "Szám", "", "")
        elif op == "edit":
            key = data.draw(st.sampled_from(keys), label="row")
            self.crm[key] = {
                **self.crm[key],
                "last_name": data.draw(st.sampled_from(LAST_NAMES), label="last name"),
                "company": data.draw(st.sampled_from(COMPANIES), label="company"),
                "segment": data.draw(st.sampled_from(SEGMENTS), label="segment"),
            }
        elif op == "remove":
            del self.crm[data.draw(st.sampled_from(keys), label="row")]
        else:  # renumber: same key, another number
            key = data.draw(st.sampled_from(keys), label="row")
            i = data.draw(st.integers(0, POOL - 1), label="number")
            self.crm[key] = {**self.crm[key], "phone": phone(i)}
        self._write_crm()

    def _new_key(self, data: st.DataObject) -> int:
        key = data.draw(st.integers(100, 999), label="key")
        while key in self.crm:  # keys are unique in a CRM; take the next free one
            key = key + 1 if key < 999 else 100
        return key

    # -- VIPeX by hand -------------------------------------------------------------

    def _pick_entry(self, data: st.DataObject, book: Snapshot) -> str:
        """An entry to touch by hand: mostly one the daemon may own, sometimes a foreign one."""
        pool = sorted(n for n in book if n not in self.foreign)
        if pool and data.draw(st.integers(0, 3), label="pick a non-foreign entry") > 0:
            return data.draw(st.sampled_from(pool), label="entry")
        return data.draw(st.sampled_from(sorted(book)), label="entry")

    @rule(data=st.data(), op=st.sampled_from(HAND_OPS))
    def hand_change(self, data: st.DataObject, op: str) -> None:
        """Someone edits the phonebook in the VIPeX web UI."""
        book = snapshot(self.state)
        if op == "edit":
            num = self._pick_entry(data, book)
            foreign = num in self.foreign
            keep_tag = not foreign and data.draw(st.booleans(), label="keep the tag")
            event(f"hand edit of a {'foreign' if foreign else 'non-foreign'} entry")
            tags = [t for t in book[num]["tags"] if t != TAG or keep_tag]
            name = data.draw(st.sampled_from(HAND_NAMES), label="name")
            self._hand_put(num, name, tags, "kézzel")
            if foreign:
                self.foreign[num] = dict(self.state.entry(VIPEX_ID, num) or {})
        elif op == "delete":
            num = self._pick_entry(data, book)
            self.state.remove_entry(VIPEX_ID, num)
            self.foreign.pop(num, None)
        elif op == "add_foreign":
            num = foreign_number(self.next_foreign)
            self.next_foreign += 1
            self._hand_put(num, data.draw(st.sampled_from(HAND_NAMES), label="name"), ["kézi"], "")
            self.foreign[num] = dict(self.state.entry(VIPEX_ID, num) or {})
        else:  # add_crm_number: a number the CRM has (or may get), maybe with our tag
            i = data.draw(st.integers(0, POOL - 1), label="number")
            tagged = data.draw(st.booleans(), label="tagged")
            self._hand_put(number(i), "Kézzel Írt", [TAG] if tagged else ["kézi"], "régi")

    # -- the daemon's side ---------------------------------------------------------

    @rule()
    def delete_mirror(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.database}{suffix}").unlink(missing_ok=True)

    def _arm_faults(self, kind: str | None) -> str:
        faults = self.vipex.faults
        faults.reset()
        faults.seed = len(self.history) + 7
        if kind == "5xx":
            faults.error_rate = 0.3
        elif kind == "429":
            faults.rate_limit_every = 3
            faults.retry_after_seconds = 0.05
        elif kind == "hang":
            faults.hang_rate = 0.3
            faults.hang_seconds = 0.6
            return "hang"
        elif kind == "html":
            faults.html_rate = 0.3
        elif kind == "page_shift":
            faults.page_shift = 2
        return "normal"

    def _sync(self, config_name: str, mode: Mode) -> RunReport:
        config = load_config(self.dir / f"{config_name}.toml")
        with Runtime(config) as runtime:
            return runtime.run_job(config.jobs[0], RunOptions(mode=mode))

    def _writes(self) -> int:
        counts = self.vipex.app.request_counts()
        return sum(counts.get(a, 0) for a in WRITES)

    @rule(full=st.booleans())
    def sync(self, full: bool) -> None:
        self._run_sync(full, None)

    @rule(kind=st.sampled_from(FAULTS), full=st.booleans())
    def sync_with_fault(self, kind: str, full: bool) -> None:
        """One run with one kind of trouble on the wire (or in the source)."""
        self._run_sync(full, kind)

    @rule(data=st.data())
    def full_sync_with_page_shift(self, data: st.DataObject) -> None:
        """A shifted listing, mostly right after the CRM dropped a row (so deletions wait)."""
        if self.crm and data.draw(st.integers(0, 3), label="drop a row first") > 0:
            del self.crm[data.draw(st.sampled_from(sorted(self.crm)), label="row")]
            self._write_crm()
        self._run_sync(True, "page_shift")

    def _run_sync(self, full: bool, kind: str | None) -> None:
        mode = Mode.FULL if full else Mode.INCREMENTAL
        broken = kind == "broken_source"
        before, mirror_before = self._observe(), self._mirror()
        desired = expected_desired(self.crm)
        csv = self.dir / "crm.csv"
        if broken:
            csv.write_bytes(csv.read_bytes() + b"999,\xff\xfe rossz,,,,\n")
        config_name = self._arm_faults(kind)
        self.vipex.app.reset_counts()
        try:
            report = self._sync(config_name, mode)
        finally:
            self.vipex.faults.reset()
            if broken:
                self._write_crm()
        after = self._observe()
        event(f"{mode.value} run, fault {kind or 'none'}: {report.outcome.value}")
        self._adopt_inserted(before, after)
        self._check_run(before, after, mirror_before, desired)

        if broken:
            assert report.outcome is Outcome.FAILURE, report.summary_line()
            assert self._writes() == 0
            assert before == after
        unstable = bool(report.remote_problems)
        if kind == "page_shift" and full and len(before) > 200:
            assert unstable, "a shifted listing of two pages was taken as stable"
        if unstable:
            assert set(before) <= set(after), "a run with an unstable listing deleted entries"
        if full and kind is None:
            self._check_converged(report, desired)

    def _adopt_inserted(self, before: Snapshot, after: Snapshot) -> None:
        """Entries a page-shift fault inserted are foreign from now on."""
        for num, raw in after.items():
            if num not in before and str(raw["name"]).startswith("Beszúrt"):
                self.foreign[num] = raw

    def _check_run(
        self,
        before: Snapshot,
        after: Snapshot,
        mirror_before: dict[str, MirrorEntry],
        desired: dict[str, Entry],
    ) -> None:
        def owned_before(num: str) -> bool:
            row = mirror_before.get(num)
            return TAG in before[num]["tags"] or (row is not None and row.owned)

        for num in set(before) - set(after):
            assert owned_before(num), f"{num} was deleted but the daemon did not own it"
        for num in set(before) & set(after):
            if content(before[num]) != content(after[num]):
                assert owned_before(num) or num in desired, (
                    f"{num} was changed but it was neither owned nor wanted by the CRM"
                )
        mirror_after = self._mirror()
        for num, row in mirror_after.items():
            if row.written is None:
                continue
            old = mirror_before.get(num)
            if (
                old is None
                or old.written is None
                or entry_content(old.written) != entry_content(row.written)
            ):
                assert num in after, f"the mirror claims {num} was written, VIPeX lacks it"
                assert same_content(row.written, as_entry(after[num])), (
                    f"the mirror claims {row.written} for {num}, VIPeX holds {after[num]}"
                )
            assert entry_content(row.written) in self.history.get(num, set()), (
                f"the mirror claims content for {num} that VIPeX never held"
            )

    def _check_converged(self, report: RunReport, desired: dict[str, Entry]) -> None:
        """Invariant 3, after a fault-free full resync."""
        event(f"converged with {len(desired)} desired entries")
        if report.drift:
            event("converged after repairing drift")
        assert report.outcome is Outcome.SUCCESS, report.summary_line()
        book = snapshot(self.state)
        tagged = {n: as_entry(raw) for n, raw in book.items() if TAG in raw["tags"]}
        assert set(tagged) == set(desired)
        for num, want in desired.items():
            assert same_content(want, tagged[num]), f"{num}: want {want}, VIPeX {tagged[num]}"
        mirror = self._mirror()
        for num, want in desired.items():
            row = mirror[num]
            assert row.owned, f"{num} is not owned in the mirror after a full resync"
            assert row.written is not None, f"{num} has no confirmed write in the mirror"
            assert same_content(want, row.written), f"{num}: mirror {row.written}, want {want}"

        self.vipex.app.reset_counts()
        again = self._sync("normal", Mode.FULL)
        assert again.outcome is Outcome.SUCCESS
        assert self._writes() == 0, again.summary_line()
        assert not again.planned.get("create")
        assert not again.planned.get("update")
        self.vipex.app.reset_counts()
        quiet = self._sync("normal", Mode.INCREMENTAL)
        assert quiet.outcome is Outcome.SUCCESS
        assert self.vipex.app.request_counts() == {}, "an idle incremental run called VIPeX"
        self._observe()

    @staticmethod
    def _work_pending(
        book: Snapshot, mirror: dict[str, MirrorEntry], desired: dict[str, Entry]
    ) -> bool:
        """Whether an incremental or a full run would have anything to write."""
        for num, want in desired.items():
            if num not in book or not same_content(want, as_entry(book[num])):
                return True
            row = mirror.get(num)
            if row is None or row.written is None or not same_content(want, row.written):
                return True
        if any(TAG in raw["tags"] and num not in desired for num, raw in book.items()):
            return True
        return any(row.owned and num not in desired for num, row in mirror.items())

    @rule(k=st.integers(1, 2), full=st.booleans())
    def crash_after_writes(self, k: int, full: bool) -> None:
        """SIGKILL a `vipexsync sync` process while VIPeX holds its k-th write unanswered."""
        before, mirror_before = self._observe(), self._mirror()
        desired = expected_desired(self.crm)
        if not self._work_pending(before, mirror_before, desired):
            event("crash run: skipped, nothing to write")
            return  # a process costs a second; one with nothing to do proves nothing
        gate = WriteGate(k)
        self.state.add_change_listener(gate)
        command = [
            sys.executable,
            "-m",
            "vipexsync",
            "--config",
            str(self.dir / "crash.toml"),
            "sync",
        ]
        if full:
            command.append("--full-resync")
        with (self.dir / "crash.log").open("ab") as log:
            process = subprocess.Popen(command, cwd=self.dir, stdout=subprocess.DEVNULL, stderr=log)
            try:
                while process.poll() is None and not gate.reached.wait(0.02):
                    pass
                if gate.reached.is_set():
                    process.send_signal(signal.SIGKILL)
                process.wait(timeout=60)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                gate.active = False
                gate.release.set()
        self.state.remove_change_listener(gate)
        event(
            f"crash run: {'killed at write ' + str(k) if gate.reached.is_set() else 'ended first'}"
        )
        if gate.reached.is_set():
            assert process.returncode == -signal.SIGKILL
        else:  # fewer than k writes: a plain, fault-free run that must have succeeded
            log_text = (self.dir / "crash.log").read_text(encoding="utf-8", errors="replace")
            assert process.returncode == 0, log_text[-2000:]
        after = self._observe()
        self._check_run(before, after, mirror_before, desired)

    # -- always --------------------------------------------------------------------

    @invariant()
    def foreign_entries_untouched(self) -> None:
        event("steps")
        book = snapshot(self.state)
        for num, raw in self.foreign.items():
            assert book.get(num) == raw, f"foreign entry {num} changed: {raw} -> {book.get(num)}"


@pytest.mark.timeout(0 if LONG else 300)
def test_sync_state_machine() -> None:
    EVENTS.clear()
    try:
        run_state_machine_as_test(SyncMachine, settings=PROFILE)
    finally:
        print(f"\nstate machine ({'long' if LONG else 'ci'} profile):")
        for label, count in sorted(EVENTS.items()):
            print(f"  {count:5d}  {label}")

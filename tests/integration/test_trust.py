"""Issue 9: no deletion or overwrite without confirmed knowledge, run by run.

Each test is one of the half-failures the issue lists, reproduced against the
emulator over real HTTP with a real mirror database: a refused write, a record
rejected while still in the CRM, an export caught mid-write, a listing that
skips a row, a lost job lock. Refusals (``result: 0`` for one number) come from
a thin WSGI middleware in front of the real emulator, served on loopback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from reliability.wsgi_helpers import buffer_request
from support import crm_row, serve, write_crm
from vipexsync.config import load_config
from vipexsync.emulator.formats import render
from vipexsync.emulator.server import RunningEmulator, serve_in_thread
from vipexsync.emulator.state import EmulatorState
from vipexsync.locks import lock_file_path
from vipexsync.mirror import store
from vipexsync.runtime import Runtime
from vipexsync.sync.model import Mode
from vipexsync.sync.report import Outcome, RunReport
from vipexsync.sync.runner import RunOptions

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

VIPEX_ID = "1643897"
HAND = "36301112233"  # a hand-made entry no CRM knows


def phone(i: int) -> str:
    return f"06-1-{2000000 + i}"


def number(i: int) -> str:
    return f"361{2000000 + i}"


def rows(keys: Iterable[int], **fields: str) -> list[dict[str, str]]:
    return [crm_row(i, phone(i), f"Ügyfél{i} Anna", **fields) for i in keys]


class Refusing:
    """Answers ``result: 0`` for writes of the numbers in ``numbers``, like VIPeX."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.numbers: set[str] = set()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        params = buffer_request(environ)
        action = str(params.get("action", ""))
        if action == "set_phonebook_entry" and str(params.get("phonenumber")) in self.numbers:
            body, kind = render({"result": 0, "reason": "Érvénytelen adat (test refusal)"}, "json")
            start_response("200 OK", [("Content-Type", kind)])
            return [body]
        return self.app(environ, start_response)


class Vipex:
    """The emulator, its refusing front door, and the URL the daemon talks to."""

    def __init__(self, running: RunningEmulator, front: Refusing, url: str) -> None:
        self.running = running
        self.front = front
        self.url = url
        self.username = running.username
        self.password = running.password
        self.vipex_id = running.vipex_id
        self.state = running.state
        self.faults = running.faults

    def book(self) -> dict[str, dict[str, Any]]:
        return {str(e["phonenumber"]): e for e in self.state.entries(VIPEX_ID)}

    def calls(self, action: str) -> int:
        return int(self.running.app.request_counts().get(action, 0))


@pytest.fixture
def vipex() -> Iterator[Vipex]:
    state = EmulatorState()
    state.add_subscription(VIPEX_ID)
    state.add_custom_field(
        VIPEX_ID, 1, "Típus", "menu", [(1, " Kiemelt "), (2, "normál"), (3, "Normál")]
    )
    state.put_entry(VIPEX_ID, HAND, "Pizzéria", ["ebéd"], "")
    with serve_in_thread(state, vipex_id=VIPEX_ID) as running:
        front = Refusing(running.app)
        with serve(front) as url:
            yield Vipex(running, front, url)


Run = Callable[..., RunReport]


@pytest.fixture
def run() -> Run:
    """One run in a fresh Runtime, as a separate `vipexsync sync` process would do it."""

    def go(config_path: Path, mode: Mode = Mode.INCREMENTAL, **options: Any) -> RunReport:
        config = load_config(config_path)
        job = options.pop("job", None)
        with Runtime(config, stop=options.pop("stop", None)) as runtime:
            chosen = config.job(job) if job else config.jobs[0]
            return runtime.run_job(chosen, RunOptions(mode=mode, **options))

    return go


def mirror_of(config_path: Path, job: str = "crm") -> dict[str, Any]:
    config = load_config(config_path)
    engine = sa.create_engine(config.database.url)
    try:
        with sa.orm.Session(engine) as session:
            return dict(store.load_mirror(session, job))
    finally:
        engine.dispose()


def lose_database(config_path: Path) -> None:
    """The SQLite mirror beside ``config_path`` is gone, with its WAL files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{config_path.parent / 'mirror.sqlite3'}{suffix}").unlink(missing_ok=True)


def changes_of(config_path: Path, phonenumber: str) -> list[store.ChangeRecord]:
    config = load_config(config_path)
    engine = sa.create_engine(config.database.url)
    try:
        with sa.orm.Session(engine) as session:
            return store.changes_for(session, "crm", phonenumber)
    finally:
        engine.dispose()


# -- item 1: a refused write owns nothing -------------------------------------------


def test_refused_create_never_makes_a_hand_made_entry_ours(
    vipex: Vipex, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows([1]))
    assert run(config, Mode.FULL).outcome is Outcome.SUCCESS
    write_crm(config.parent / "crm.csv", rows([1, 2]))
    vipex.front.numbers.add(number(2))
    refused = run(config)
    assert (refused.outcome, refused.failed) == (Outcome.FAILURE, {"create": 1})
    assert not mirror_of(config)[number(2)].owned
    # Someone types the number in by hand; then the CRM drops the record.
    vipex.state.put_entry(VIPEX_ID, number(2), "Kézzel", ["recepció"], "")
    write_crm(config.parent / "crm.csv", rows([1]))
    for mode in (Mode.INCREMENTAL, Mode.FULL):
        report = run(config, mode)
        assert report.applied.get("delete", 0) == 0, report
        assert vipex.book()[number(2)]["name"] == "Kézzel"


# -- item 2: a rejected record is not "no longer in CRM" ----------------------------


@pytest.mark.parametrize(
    "edit",
    [
        {"last_name": "", "first_name": ""},  # empty name
        {"phone": "nem telefonszám"},  # no valid number after an edit
    ],
    ids=["empty_name", "invalid_number"],
)
@pytest.mark.parametrize("mode", [Mode.INCREMENTAL, Mode.FULL])
def test_rejected_record_keeps_its_entries(
    vipex: Vipex, job_files: Any, run: Run, edit: dict[str, str], mode: Mode
) -> None:
    config = job_files(vipex, rows(range(1, 4)))
    run(config, Mode.FULL)
    edited = rows(range(1, 4))
    edited[1].update(edit)
    write_crm(config.parent / "crm.csv", edited)
    report = run(config, mode)
    assert report.applied.get("delete", 0) == 0
    assert report.kept == 1
    assert number(2) in vipex.book()
    assert report.rejected_records == 1


@pytest.mark.parametrize("mode", [Mode.INCREMENTAL, Mode.FULL])
def test_rejected_records_number_is_not_taken_over_by_a_record_with_its_content(
    vipex: Vipex, job_files: Any, run: Run, mode: Mode
) -> None:
    """Found by the state machine: record 2 is rejected, record 20 arrives with record 2's
    very number and content (a noop), then record 20 goes: record 2 still keeps its entry."""
    config = job_files(vipex, rows(range(1, 4)))
    run(config, Mode.FULL)
    rejected = rows(range(1, 4))
    rejected[1].update(last_name="", first_name="")
    twin = crm_row(20, phone(2), "Ügyfél2 Anna")
    write_crm(config.parent / "crm.csv", [*rejected, twin])
    taken = run(config, mode)
    assert (taken.outcome, sum(taken.applied.values())) == (Outcome.SUCCESS, 0)
    write_crm(config.parent / "crm.csv", rejected)
    report = run(config, mode)
    assert report.applied.get("delete", 0) == 0, report
    assert report.kept == 1
    assert vipex.book()[number(2)]["name"] == "Ügyfél2 Anna"


def test_duplicate_key_and_short_row_keep_their_entries(
    vipex: Vipex, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows(range(1, 5)))
    run(config, Mode.FULL)
    lines = (config.parent / "crm.csv").read_text(encoding="utf-8").splitlines()
    lines[2] = "2,Ügyfél2"  # record 2's row lost its other fields
    lines.append(lines[3].replace(phone(3), phone(33)))  # record 3's key appears twice
    (config.parent / "crm.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = run(config, Mode.FULL)
    assert report.outcome is Outcome.SUCCESS
    assert report.kept == 2
    assert {number(2), number(3)} <= vipex.book().keys()
    assert report.rejected_by_code().get("unreadable_record") == 1


@pytest.mark.parametrize(
    "edit",
    [{"last_name": "", "first_name": ""}, {"key": "2"}],  # empty name; record 2's key twice
    ids=["empty_name", "duplicate_key"],
)
def test_rejected_record_keeps_its_entry_after_the_database_is_lost(
    vipex: Vipex, job_files: Any, run: Run, edit: dict[str, str]
) -> None:
    """With the mirror gone, the entry is owned by its tag alone and no row says whose
    it is; the rejected record that still has its number in the CRM keeps it."""
    config = job_files(vipex, rows(range(1, 4)))
    run(config, Mode.FULL)
    edited = rows(range(1, 4))
    if "key" in edit:
        edited.append(crm_row(2, phone(22), "Ügyfél22 Anna"))
    else:
        edited[1].update(edit)
    write_crm(config.parent / "crm.csv", edited)
    lose_database(config)
    # (an incremental run has no row for the number, so it plans nothing there)
    for mode, kept in ((Mode.FULL, 1), (Mode.INCREMENTAL, 0), (Mode.FULL, 1)):
        report = run(config, mode)
        assert report.outcome is Outcome.SUCCESS, report
        assert (report.applied.get("delete", 0), report.kept) == (0, kept), report
        assert vipex.book()[number(2)]["name"] == "Ügyfél2 Anna"
    # Once the record reads again, it takes its entry over like any tagged one
    # (an incremental run looks before it creates, and finds it).
    write_crm(config.parent / "crm.csv", rows(range(1, 4), company="Új Kft."))
    fixed = run(config, Mode.INCREMENTAL)
    assert (fixed.outcome, fixed.kept) == (Outcome.SUCCESS, 0), fixed
    assert vipex.book()[number(2)]["comment"] == "Új Kft."
    assert mirror_of(config)[number(2)].owned


def test_a_removed_records_entry_still_goes_after_the_database_is_lost(
    vipex: Vipex, job_files: Any, run: Run
) -> None:
    """The rule above keeps a number a rejected record has, not every tagged entry."""
    config = job_files(vipex, rows(range(1, 4)))
    run(config, Mode.FULL)
    edited = rows([1, 3])
    edited.append(crm_row(4, "nem telefonszám", ""))  # rejected, with no number to keep
    write_crm(config.parent / "crm.csv", edited)
    lose_database(config)
    report = run(config, Mode.FULL)
    assert (report.applied.get("delete", 0), report.kept) == (1, 0), report
    assert number(2) not in vipex.book()


# -- item 3: a number change waits for the new number ------------------------------


def test_number_change_keeps_the_old_entry_until_the_new_one_is_confirmed(
    vipex: Vipex, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows(range(1, 4)))
    run(config, Mode.FULL)
    moved = rows(range(1, 4))
    moved[1]["phone"] = phone(99)
    write_crm(config.parent / "crm.csv", moved)
    vipex.front.numbers.add(number(99))
    for mode in (Mode.INCREMENTAL, Mode.FULL):
        report = run(config, mode)
        assert report.outcome is Outcome.FAILURE
        assert report.failed == {"create": 1}
        assert report.deferred_deletes == 1
        assert number(2) in vipex.book()
    vipex.front.numbers.clear()
    report = run(config)
    assert report.applied == {"create": 1, "delete": 1}
    assert number(99) in vipex.book()
    assert number(2) not in vipex.book()


# -- item 4: one subscription, two jobs ---------------------------------------------


SECOND_JOB = """
[[jobs]]
name = "partners"
vipex_id = "{vipex_id}"
full_resync_cron = ""
ownership_tag = "partner-sync"
max_delete_ratio = 1.0

[jobs.source]
type = "csv"
path = "partners.csv"
key = "id"

[jobs.mapping]
phone_fields = ["phone"]
name = "{{last_name}} {{first_name}}"
"""


def test_an_entry_tagged_by_another_job_is_neither_adopted_nor_deleted(
    vipex: Vipex, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows([1, 2]))
    with config.open("a", encoding="utf-8") as out:
        out.write(SECOND_JOB.format(vipex_id=VIPEX_ID))
    write_crm(config.parent / "partners.csv", rows([2, 3]))
    assert run(config, Mode.FULL).applied == {"create": 2}
    partners = run(config, Mode.FULL, job="partners")
    assert partners.applied == {"create": 1}  # number 3 only
    assert partners.conflicts == 1  # number 2 carries the crm job's tag
    assert vipex.book()[number(2)]["tags"] == ["crm-sync"]
    # Each job deletes only what carries its own tag.
    write_crm(config.parent / "crm.csv", rows([1]))
    write_crm(config.parent / "partners.csv", rows([2]))
    assert run(config, Mode.FULL).applied == {"delete": 1}
    report = run(config, Mode.FULL, job="partners")
    assert report.applied == {"delete": 1, "create": 1}  # 3 goes; 2 is free now: its create
    assert set(vipex.book()) == {HAND, number(1), number(2)}


# -- item 5: an export caught mid-write ------------------------------------------------


def test_export_caught_mid_write_deletes_nothing(vipex: Vipex, job_files: Any, run: Run) -> None:
    config = job_files(vipex, rows(range(1, 6)))
    run(config, Mode.FULL)
    text = (config.parent / "crm.csv").read_text(encoding="utf-8")
    cut = text[: text.index(phone(3)) - 1]  # row 3 ends mid-way, no line ending
    (config.parent / "crm.csv").write_text(cut, encoding="utf-8")
    report = run(config)
    assert report.outcome is Outcome.FAILURE
    assert report.error is not None
    assert "crm.csv" in report.error
    assert "line 4" in report.error
    assert {number(i) for i in range(1, 6)} <= vipex.book().keys()


# -- item 6: only a stable full resync confirms a mapping change -----------------------


def test_unstable_full_resync_does_not_confirm_a_mapping_change(
    vipex: Vipex, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows(range(1, 231)), concurrency=8)
    run(config, Mode.FULL)
    text = config.read_text(encoding="utf-8").replace('comment = "{company}"', 'comment = ""')
    config.write_text(text, encoding="utf-8")
    write_crm(config.parent / "crm.csv", rows(range(1, 230)))
    vipex.faults.page_shift = 3
    shifted = run(config, Mode.FULL)
    vipex.faults.reset()
    assert shifted.outcome is Outcome.GUARDED
    assert shifted.remote_problems
    after = run(config)
    assert after.outcome is Outcome.GUARDED  # the change is still unconfirmed
    assert any("mapping" in r for r in after.guard_reasons)
    assert number(230) in vipex.book()
    assert run(config, Mode.FULL).applied.get("delete") == 1
    assert run(config).outcome is Outcome.SUCCESS


# -- item 7: a write whose outcome nobody saw is not trusted -----------------------------


def test_write_that_landed_unseen_is_repaired_when_the_crm_reverts(
    vipex: Vipex, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows([1]), timeout=0.3, retry_deadline=0.2)
    run(config, Mode.FULL)
    write_crm(config.parent / "crm.csv", rows([1], company="Új Kft."))
    # VIPeX applies the write after the client gave up waiting for the answer.
    vipex.faults.hang_rate = 1.0
    vipex.faults.hang_seconds = 0.6
    vipex.faults.actions = frozenset({"set_phonebook_entry"})
    lost = run(config)
    assert lost.outcome is Outcome.FAILURE
    deadline = time.monotonic() + 10
    while vipex.book()[number(1)]["comment"] != "Új Kft." and time.monotonic() < deadline:
        time.sleep(0.05)
    vipex.faults.reset()
    assert vipex.book()[number(1)]["comment"] == "Új Kft."
    # The CRM goes back to what the mirror last confirmed.
    write_crm(config.parent / "crm.csv", rows([1]))
    report = run(config)
    assert report.applied == {"update": 1}
    assert report.lookups == 1
    assert vipex.book()[number(1)]["comment"] == ""


def test_an_unanswered_create_keeps_its_record_when_the_number_moves_again(
    vipex: Vipex, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows([1]), timeout=0.3, retry_deadline=0.2)
    run(config, Mode.FULL)
    # Record 1 moves to number 2: VIPeX makes the entry but never answers in time.
    moved = rows([1])
    moved[0]["phone"] = phone(2)
    write_crm(config.parent / "crm.csv", moved)
    vipex.faults.hang_rate = 1.0
    vipex.faults.hang_seconds = 0.6
    vipex.faults.actions = frozenset({"set_phonebook_entry"})
    assert run(config).outcome is Outcome.FAILURE
    deadline = time.monotonic() + 10
    while number(2) not in vipex.book() and time.monotonic() < deadline:
        time.sleep(0.05)
    vipex.faults.reset()
    assert number(2) in vipex.book()
    # It moves again, to a number VIPeX refuses: every entry it has must wait.
    moved[0]["phone"] = phone(3)
    write_crm(config.parent / "crm.csv", moved)
    vipex.front.numbers.add(number(3))
    run(config)
    report = run(config, Mode.FULL)
    assert report.failed == {"create": 1}
    assert number(1) in vipex.book()
    assert number(2) in vipex.book(), "record 1's entry at number 2 was deleted first"


def test_an_unanswered_write_names_its_record_on_a_row_that_had_none(
    vipex: Vipex, job_files: Any, run: Run
) -> None:
    """Found by the long profile. A failed delete of an entry no row attributed (a
    lost database) leaves a row without a record; a write for record 1 that then
    lands there unanswered must name record 1 on that row, or its entry is later
    deleted as nobody's, before record 1's newest number exists."""
    config = job_files(vipex, rows([1, 2]), timeout=0.3, retry_deadline=0.2)
    run(config, Mode.FULL)
    write_crm(config.parent / "crm.csv", rows([1]))
    lose_database(config)
    vipex.faults.error_rate = 1.0
    vipex.faults.actions = frozenset({"del_phonebook_entry"})
    assert run(config, Mode.FULL).failed == {"delete": 1}
    assert mirror_of(config)[number(2)].record_key is None
    # Record 1 moves to number 2: VIPeX takes the write but never answers in time.
    moved = rows([1])
    moved[0]["phone"] = phone(2)
    write_crm(config.parent / "crm.csv", moved)
    vipex.faults.reset()
    vipex.faults.hang_rate = 1.0
    vipex.faults.hang_seconds = 0.6
    vipex.faults.actions = frozenset({"set_phonebook_entry"})
    assert run(config).outcome is Outcome.FAILURE
    deadline = time.monotonic() + 10
    while vipex.book()[number(2)]["name"] != "Ügyfél1 Anna" and time.monotonic() < deadline:
        time.sleep(0.05)
    vipex.faults.reset()
    assert mirror_of(config)[number(2)].record_key == "1"
    # It moves again, to a number VIPeX refuses: its entry at number 2 must wait.
    moved[0]["phone"] = phone(3)
    write_crm(config.parent / "crm.csv", moved)
    vipex.front.numbers.add(number(3))
    run(config)
    report = run(config, Mode.FULL)
    assert report.failed == {"create": 1}, report
    assert number(2) in vipex.book(), "record 1's entry at number 2 was deleted first"


# -- item 8: a row skipped while paging ---------------------------------------------------


class ShiftOnSecondPage:
    """Deletes one entry before, and adds one after, the page boundary as page 2 is read.

    ``full_count`` stays the same and no number repeats, so the listing looks
    stable, yet the first row of page 2 slid onto page 1 and was never seen.
    """

    def __init__(self, app: WSGIApplication, state: EmulatorState) -> None:
        self.app = app
        self.state = state
        self.armed = False

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        params = buffer_request(environ)
        page = (params.get("action"), str(params.get("offset")))
        if self.armed and page == ("get_phonebook_list", "200"):
            self.armed = False
            self.state.remove_entry(VIPEX_ID, "3600000001")
            self.state.put_entry(VIPEX_ID, "3699999999", "Új kézi", [], "")
        return self.app(environ, start_response)


def test_owned_row_skipped_by_paging_is_looked_up_not_forgotten(
    vipex: Vipex, job_files: Any, run: Run
) -> None:
    vipex.state.put_entry(VIPEX_ID, "3600000001", "Első kézi", [], "")  # sorts first
    shifter = ShiftOnSecondPage(vipex.running.app, vipex.state)
    with serve(shifter) as url:
        # No ownership tag: the mirror is the only proof of ownership.
        config = job_files(vipex, rows(range(1, 251)), url=url, ownership_tag="", concurrency=1)
        run(config, Mode.FULL)
        skipped = [str(e["phonenumber"]) for e in vipex.state.entries(VIPEX_ID)][200]
        key = next(i for i in range(1, 251) if number(i) == skipped)
        write_crm(config.parent / "crm.csv", rows(k for k in range(1, 251) if k != key))
        lookups_before = vipex.calls("get_phonebook_entry")
        shifter.armed = True
        report = run(config, Mode.FULL)
        assert vipex.calls("get_phonebook_entry") - lookups_before == 1
        assert report.lookups == 1
        assert report.outcome is Outcome.GUARDED  # the listing proved unstable
        assert skipped in mirror_of(config)  # not forgotten
        assert run(config, Mode.FULL).applied == {"delete": 1}
        assert skipped not in vipex.book()


# -- item 9: one refused write does not make every tick a full listing ----------------------


def test_first_full_resync_counts_although_a_write_was_refused(
    vipex: Vipex, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows(range(1, 4)))
    vipex.front.numbers.add(number(2))
    first = run(config)
    assert (first.mode, first.outcome, first.failed) == ("full", Outcome.FAILURE, {"create": 1})
    lists_before = vipex.calls("get_phonebook_list")
    retry = run(config)
    assert retry.mode == "incremental"
    assert (retry.outcome, retry.failed) == (Outcome.FAILURE, {"create": 1})
    assert vipex.calls("get_phonebook_list") == lists_before
    vipex.front.numbers.clear()
    done = run(config)
    assert (done.mode, done.outcome, done.applied) == (
        "incremental",
        Outcome.SUCCESS,
        {"create": 1},
    )


# -- item 10: menu labels as VIPeX spells them ---------------------------------------------


def test_menu_labels_are_sent_as_vipex_spells_them(vipex: Vipex, job_files: Any, run: Run) -> None:
    fields = '[jobs.mapping.custom_fields]\n"Típus" = "{kind}"\n'
    crm = [
        crm_row(1, phone(1), "Egy Anna", kind="Kiemelt"),
        crm_row(2, phone(2), "Kettő Béla", kind="Normál"),
        crm_row(3, phone(3), "Három Cili", kind="Nincs ilyen"),
    ]
    config = job_files(vipex, crm, custom_fields=fields)
    report = run(config, Mode.FULL)
    assert (report.outcome, report.applied) == (Outcome.SUCCESS, {"create": 3})
    book = vipex.book()
    assert book[number(1)]["custom_fields"] == {1: " Kiemelt "}
    assert book[number(2)]["custom_fields"] == {1: "Normál"}
    assert book[number(3)]["custom_fields"] == {}  # the field is dropped, the entry is written
    assert report.rejected_by_code() == {"bad_custom_field": 1}
    assert run(config, Mode.FULL).applied == {}


# -- item 12: an incremental create looks first ----------------------------------------------


def test_incremental_create_over_a_hand_made_entry_records_what_it_replaced(
    vipex: Vipex, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows([1]))
    run(config, Mode.FULL)
    vipex.state.put_entry(VIPEX_ID, number(2), "Kézzel írt", ["recepció"], "")
    write_crm(config.parent / "crm.csv", rows([1, 2]))
    report = run(config)
    assert report.applied == {"adopt": 1}
    assert report.lookups == 1
    [change] = changes_of(config, number(2))
    assert change.action == "adopt"
    assert change.before is not None
    assert change.before.name == "Kézzel írt"


# -- item 13: a run that lost its lock stops writing -------------------------------------------


def drop_the_lock(backend: str, config_path: Path) -> Callable[[], None]:
    """What takes the job lock away from a running run on this backend."""
    config = load_config(config_path)
    if backend == "sqlite":
        path = lock_file_path(Path(config.database.url.removeprefix("sqlite:///")), "crm")
        return lambda: path.unlink()
    engine = sa.create_engine(config.database.url)

    def terminate() -> None:
        with engine.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'vipexsync lock crm'"
                )
            )
        engine.dispose()

    return terminate


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_run_that_lost_its_lock_stops_writing(
    vipex: Vipex, job_files: Any, run: Run, backend: str, request: pytest.FixtureRequest
) -> None:
    extra = {}
    if backend == "postgresql":
        extra["database"] = request.getfixturevalue("postgres_url")
    config = job_files(vipex, rows(range(1, 201)), concurrency=1, **extra)
    drop = drop_the_lock(backend, config)
    writes = 0
    lost = threading.Event()

    def after_write() -> None:
        nonlocal writes
        writes += 1
        if writes == 3 and not lost.is_set():
            lost.set()
            threading.Thread(target=drop).start()  # not under the emulator's state lock

    vipex.state.add_change_listener(after_write)
    report = run(config, Mode.FULL)
    vipex.state.remove_change_listener(after_write)
    assert report.outcome is Outcome.FAILURE
    assert report.error is not None
    assert "lock was lost" in report.error
    written = len(vipex.book()) - 1
    assert written < 200  # it stopped: within one batch of the loss
    assert report.not_attempted == 200 - written

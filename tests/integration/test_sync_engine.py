"""Whole runs against the emulator over real HTTP, with SQLite and PostgreSQL mirrors."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from support import crm_row, emulator_omitted, write_crm
from vipexsync.config import load_config
from vipexsync.emulator.server import RunningEmulator, serve_in_thread
from vipexsync.emulator.state import EmulatorState
from vipexsync.errors import ConfigError
from vipexsync.metrics import Metrics
from vipexsync.mirror import store
from vipexsync.runtime import Runtime
from vipexsync.sync.model import Mode
from vipexsync.sync.report import Outcome, RunReport
from vipexsync.sync.runner import RunOptions

VIPEX_ID = "1643897"
WRITES = ("set_phonebook_entry", "del_phonebook_entry")
FOREIGN = "36301112233"  # a hand-made entry no CRM knows
CUSTOM_FIELDS = """\
[jobs.mapping.custom_fields]
"Típus" = "{kind}"
"Kód" = "CRM-{id}"
"""


def phone(i: int) -> str:
    """A Hungarian number as a CRM user would type it."""
    return f"06-1-{2000000 + i}"


def number(i: int) -> str:
    """The same number in VIPeX's form."""
    return f"361{2000000 + i}"


def rows(keys: range | list[int], **fields: str) -> list[dict[str, str]]:
    return [crm_row(i, phone(i), f"Ügyfél{i} Anna", **fields) for i in keys]


@pytest.fixture
def vipex() -> Iterator[RunningEmulator]:
    state = EmulatorState()
    state.add_subscription(VIPEX_ID)
    state.add_custom_field(VIPEX_ID, 1, "Típus", "menu", [(1, "Kiemelt"), (2, "Normál")])
    state.add_custom_field(VIPEX_ID, 2, "Kód", "text")
    state.add_custom_field(VIPEX_ID, 3, "Recepció", "text")  # nobody maps this one
    state.put_entry(VIPEX_ID, FOREIGN, "Pizzéria", ["ebéd"], "", {3: "péntek"})
    with serve_in_thread(state, vipex_id=VIPEX_ID) as running:
        yield running


Run = Callable[..., RunReport]


@pytest.fixture
def run() -> Run:
    """One run in a fresh Runtime, as a separate `vipexsync sync` process would do it."""

    def go(config_path: Path, mode: Mode = Mode.INCREMENTAL, **options: Any) -> RunReport:
        config = load_config(config_path)
        metrics = options.pop("metrics", None)
        with Runtime(config, stop=options.pop("stop", None), metrics=metrics) as runtime:
            return runtime.run_job(config.jobs[0], RunOptions(mode=mode, **options))

    return go


def writes(emulator: RunningEmulator) -> int:
    counts = emulator.app.request_counts()
    return sum(counts.get(action, 0) for action in WRITES)


def phonebook(emulator: RunningEmulator) -> dict[str, dict[str, Any]]:
    return {str(e["phonenumber"]): e for e in emulator.state.entries(VIPEX_ID)}


def mirror_of(config_path: Path) -> dict[str, Any]:
    config = load_config(config_path)
    engine = sa.create_engine(config.database.url)
    try:
        with sa.orm.Session(engine) as session:
            return dict(store.load_mirror(session, "crm"))
    finally:
        engine.dispose()


# -- the basic flow -------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_full_resync_creates_then_nothing_changes(
    backend: str, vipex: RunningEmulator, job_files: Any, run: Run, request: pytest.FixtureRequest
) -> None:
    overrides = {}
    if backend == "postgresql":
        overrides["database"] = request.getfixturevalue("postgres_url")
    config = job_files(vipex, rows(range(1, 6), company="Kft"), **overrides)

    first = run(config, Mode.FULL)
    assert first.outcome is Outcome.SUCCESS
    assert first.applied == {"create": 5}
    book = phonebook(vipex)
    assert set(book) == {FOREIGN, *(number(i) for i in range(1, 6))}
    assert book[number(1)]["name"] == "Ügyfél1 Anna"
    assert set(book[number(1)]["tags"]) == {"crm-sync"}
    assert book[FOREIGN]["name"] == "Pizzéria"

    vipex.app.reset_counts()
    quiet = run(config)
    assert quiet.outcome is Outcome.SUCCESS
    assert quiet.planned["noop"] == 5
    assert vipex.app.request_counts() == {}  # no custom fields mapped: not a single call
    assert quiet.api_calls == 0

    again = run(config, Mode.FULL)
    assert again.planned["noop"] == 5
    assert writes(vipex) == 0


def test_incremental_run_with_custom_fields_costs_one_lookup(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows(range(1, 4), kind=" kiemelt "), custom_fields=CUSTOM_FIELDS)
    assert run(config, Mode.FULL).applied == {"create": 3}
    entry = phonebook(vipex)[number(1)]
    assert entry["custom_fields"] == {1: "Kiemelt", 2: "CRM-1"}  # the label's exact spelling

    vipex.app.reset_counts()
    report = run(config)
    assert report.planned["noop"] == 3
    assert vipex.app.request_counts() == {"get_phonebook_custom_field_list": 1}


def test_edit_and_removal_flow_through(vipex: RunningEmulator, job_files: Any, run: Run) -> None:
    config = job_files(vipex, rows(range(1, 5)))
    run(config, Mode.FULL)

    changed = rows(range(1, 4))
    changed[0]["company"] = "Új cég Zrt."
    write_crm(config.parent / "crm.csv", changed)
    vipex.app.reset_counts()
    report = run(config)
    assert report.applied == {"delete": 1, "update": 1}
    expected = {"set_phonebook_entry": 1, "del_phonebook_entry": 1}
    if emulator_omitted() == "clear":  # the update reads the entry first
        expected["get_phonebook_entry"] = 1
    assert vipex.app.request_counts() == expected
    book = phonebook(vipex)
    assert book[number(1)]["comment"] == "Új cég Zrt."
    assert number(4) not in book
    assert FOREIGN in book


def test_unmanaged_custom_field_is_never_touched(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    vipex.state.put_entry(VIPEX_ID, number(1), "Kézi", [], "", {3: "ne nyúlj hozzá"})
    config = job_files(vipex, rows(range(1, 3), kind="Normál"), custom_fields=CUSTOM_FIELDS)
    report = run(config, Mode.FULL)
    assert report.applied == {"adopt": 1, "create": 1}
    adopted = phonebook(vipex)[number(1)]
    assert adopted["custom_fields"][3] == "ne nyúlj hozzá"
    assert adopted["custom_fields"][1] == "Normál"


def test_unknown_custom_field_name_is_a_configuration_error(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    config = job_files(
        vipex,
        rows(range(1, 3)),
        custom_fields='[jobs.mapping.custom_fields]\n"Nincs ilyen" = "x"\n',
    )
    with pytest.raises(ConfigError) as excinfo:
        run(config)
    assert "Nincs ilyen" in str(excinfo.value)
    assert "Típus" in str(excinfo.value)  # names the fields that exist
    assert writes(vipex) == 0


# -- decisions --------------------------------------------------------------------


def test_hand_made_entry_with_crm_number_is_adopted(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    vipex.state.put_entry(VIPEX_ID, number(2), "Kézzel írt", ["kézi"], "régi")
    config = job_files(vipex, rows(range(1, 4)))
    report = run(config, Mode.FULL)
    assert report.applied == {"adopt": 1, "create": 2}
    adopted = phonebook(vipex)[number(2)]
    assert adopted["name"] == "Ügyfél2 Anna"
    assert "crm-sync" in adopted["tags"]
    assert mirror_of(config)[number(2)].owned


def test_number_change_creates_new_then_deletes_old(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows(range(1, 4)))
    run(config, Mode.FULL)
    moved = rows(range(1, 4))
    moved[1]["phone"] = phone(99)
    write_crm(config.parent / "crm.csv", moved)
    report = run(config, Mode.INCREMENTAL, plan_out=config.parent / "plan.json")
    assert report.applied == {"create": 1, "delete": 1}
    plan = json.loads((config.parent / "plan.json").read_text(encoding="utf-8"))
    assert [(c["action"], c["phonenumber"]) for c in plan] == [
        ("create", number(99)),
        ("delete", number(2)),
    ]
    book = phonebook(vipex)
    assert number(99) in book
    assert number(2) not in book


def test_full_resync_repairs_drift(vipex: RunningEmulator, job_files: Any, run: Run) -> None:
    config = job_files(vipex, rows(range(1, 5)))
    run(config, Mode.FULL)
    vipex.state.put_entry(VIPEX_ID, number(1), "Átírta valaki", ["crm-sync"], "")
    vipex.state.remove_entry(VIPEX_ID, number(2))

    vipex.app.reset_counts()
    assert run(config).applied == {}  # an incremental run cannot see hand edits
    assert writes(vipex) == 0

    report = run(config, Mode.FULL)
    assert report.drift == 2
    assert report.applied == {"create": 1, "update": 1}
    book = phonebook(vipex)
    assert book[number(1)]["name"] == "Ügyfél1 Anna"
    assert number(2) in book


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_ownership_is_rebuilt_after_the_database_is_lost(
    backend: str,
    vipex: RunningEmulator,
    job_files: Any,
    run: Run,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    config = job_files(vipex, rows(range(1, 6)))
    run(config, Mode.FULL)
    # Lose the database: a new, empty one (a new file, or a new PostgreSQL schema).
    database = (
        request.getfixturevalue("postgres_url")
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'new-mirror.sqlite3'}"
    )
    config = job_files(vipex, rows(range(1, 5)), database=database)

    vipex.app.reset_counts()
    report = run(config, Mode.FULL)
    # Entry 5 is no longer in the CRM and carries our tag: it is ours to delete.
    assert report.applied == {"delete": 1}
    assert report.planned["noop"] == 4
    assert set(mirror_of(config)) == {number(i) for i in range(1, 5)}
    assert FOREIGN in phonebook(vipex)

    vipex.app.reset_counts()
    assert run(config).planned["noop"] == 4
    assert writes(vipex) == 0


def test_dry_run_writes_nothing(vipex: RunningEmulator, job_files: Any, run: Run) -> None:
    config = job_files(vipex, rows(range(1, 4)))
    plan_file = config.parent / "out" / "plan.json"
    report = run(config, Mode.FULL, dry_run=True, plan_out=plan_file)
    assert report.dry_run
    assert report.planned["create"] == 3
    assert report.applied == {}
    assert writes(vipex) == 0
    assert mirror_of(config) == {}
    plan = json.loads(plan_file.read_text(encoding="utf-8"))
    assert {c["phonenumber"] for c in plan} == {number(i) for i in range(1, 4)}
    first = plan[0]
    assert set(first) >= {"action", "phonenumber", "before", "after", "reason"}
    assert first["before"] is None
    assert first["after"]["name"] == "Ügyfél1 Anna"


# -- the guard -------------------------------------------------------------------


def test_max_deletes_withholds_deletions_but_applies_the_rest(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows(range(1, 7)), max_deletes=2)
    run(config, Mode.FULL)
    write_crm(config.parent / "crm.csv", rows([1, 2, 7]))
    report = run(config)
    assert report.outcome is Outcome.GUARDED
    assert report.exit_code == 3
    assert report.withheld_deletes == 4
    assert report.applied == {"create": 1}
    assert any("max_deletes" in reason for reason in report.guard_reasons)
    assert {number(i) for i in range(3, 7)} <= set(phonebook(vipex))

    forced = run(config, force_delete=True)
    assert forced.outcome is Outcome.SUCCESS
    assert forced.applied == {"delete": 4}


def test_guard_trip_sets_the_metric_and_a_clean_run_clears_it(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    """VipexsyncGuardTripped reads vipexsync_guard_tripped: the runner must set it."""
    metrics = Metrics(CollectorRegistry(), jobs=("crm",))

    def tripped() -> float | None:
        return metrics.registry.get_sample_value("vipexsync_guard_tripped", {"sync_job": "crm"})

    config = job_files(vipex, rows(range(1, 7)), max_deletes=2)
    run(config, Mode.FULL, metrics=metrics)
    assert tripped() == 0
    write_crm(config.parent / "crm.csv", rows([1, 2]))
    assert run(config, metrics=metrics).outcome is Outcome.GUARDED
    assert tripped() == 1
    write_crm(config.parent / "crm.csv", rows(range(1, 7)))
    assert run(config, metrics=metrics).outcome is Outcome.SUCCESS
    assert tripped() == 0


def test_delete_ratio_guard(vipex: RunningEmulator, job_files: Any, run: Run) -> None:
    config = job_files(vipex, rows(range(1, 11)), max_delete_ratio=0.1)
    run(config, Mode.FULL)
    write_crm(config.parent / "crm.csv", rows(range(1, 9)))
    report = run(config)
    assert report.outcome is Outcome.GUARDED
    assert report.withheld_deletes == 2
    assert len(phonebook(vipex)) == 11


@pytest.mark.parametrize("kept", [0, 2])
def test_short_source_read_deletes_nothing(
    kept: int, vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows(range(1, 6)), min_source_records=3)
    run(config, Mode.FULL)
    write_crm(config.parent / "crm.csv", rows(range(1, 1 + kept)))
    report = run(config, Mode.FULL)
    assert report.outcome is Outcome.GUARDED
    assert report.applied == {}
    assert any("min_source_records" in r for r in report.guard_reasons)
    assert len(phonebook(vipex)) == 6


def test_changed_mapping_withholds_deletions_until_a_full_resync(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows(range(1, 6)))
    run(config, Mode.FULL)
    text = config.read_text(encoding="utf-8").replace('comment = "{company}"', 'comment = ""')
    config.write_text(text, encoding="utf-8")
    write_crm(config.parent / "crm.csv", rows(range(1, 5)))

    report = run(config)
    assert report.outcome is Outcome.GUARDED
    assert any("full-resync" in r or "full resync" in r for r in report.guard_reasons)
    assert number(5) in phonebook(vipex)
    assert run(config).outcome is Outcome.GUARDED  # still, until confirmed

    full = run(config, Mode.FULL)
    assert full.outcome is Outcome.SUCCESS
    assert full.applied.get("delete") == 1
    assert run(config).outcome is Outcome.SUCCESS


def test_unstable_listing_deletes_nothing(vipex: RunningEmulator, job_files: Any, run: Run) -> None:
    config = job_files(vipex, rows(range(1, 451)), concurrency=8)
    run(config, Mode.FULL)
    write_crm(config.parent / "crm.csv", rows(range(1, 450)))
    vipex.faults.page_shift = 3  # entries appear between the pages of the listing
    report = run(config, Mode.FULL)
    vipex.faults.reset()
    assert report.outcome is Outcome.GUARDED
    assert report.remote_problems
    assert number(450) in phonebook(vipex)


# -- faults and stops --------------------------------------------------------------


def test_failed_writes_are_recorded_and_retried_next_run(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows(range(1, 4)), retry_deadline=0.3)
    vipex.faults.error_rate = 1.0
    vipex.faults.actions = frozenset({"set_phonebook_entry"})
    report = run(config)
    vipex.faults.reset()
    assert report.outcome is Outcome.FAILURE
    assert report.failed == {"create": 3}
    mirror = mirror_of(config)
    assert all(m.written is None and m.state.value == "failed" for m in mirror.values())
    assert all(m.attempts == 1 for m in mirror.values())
    assert phonebook(vipex).keys() == {FOREIGN}

    retry = run(config)
    assert retry.outcome is Outcome.SUCCESS
    assert retry.applied == {"create": 3}
    assert all(m.state.value == "applied" for m in mirror_of(config).values())


def test_stop_request_finishes_writes_in_flight(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    config = job_files(vipex, rows(range(1, 61)), concurrency=2)
    vipex.faults.latency_seconds = 0.05
    stop = threading.Event()
    result: list[RunReport] = []
    worker = threading.Thread(target=lambda: result.append(run(config, stop=stop)))
    worker.start()
    deadline = time.monotonic() + 10
    while len(phonebook(vipex)) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    worker.join(timeout=30)
    vipex.faults.reset()
    report = result[0]
    assert report.outcome is Outcome.FAILURE
    assert report.not_attempted > 0
    created = set(phonebook(vipex)) - {FOREIGN}
    mirror = mirror_of(config)
    # The mirror claims exactly what VIPeX confirmed, no more and no less.
    assert {n for n, m in mirror.items() if m.written is not None} == created
    # The writes never sent are marked pending, so `vipexsync status` shows them.
    assert all(m.state.value == "pending" for m in mirror.values() if m.written is None)
    assert len(mirror) == 60

    rest = run(config)
    assert rest.outcome is Outcome.SUCCESS
    assert rest.applied == {"create": 60 - len(created)}


def test_first_incremental_run_lists_vipex_instead_of_rewriting(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    vipex.state.put_entry(VIPEX_ID, number(1), "Ügyfél1 Anna", ["crm-sync"], "")
    config = job_files(vipex, rows(range(1, 4)))
    report = run(config, Mode.INCREMENTAL)
    assert report.mode == "full"  # promoted: the mirror knew nothing yet
    assert report.applied == {"create": 2}
    assert report.planned["noop"] == 1
    again = run(config, Mode.INCREMENTAL)
    assert again.mode == "incremental"

"""The quiet tick (vipexsync/sync/quiet.py): taken only when the normal path would do nothing.

Each "not taken" test names the defect it catches: planted by hand, the
defect made that test fail (2026-11-30). Where two guards hold the same case,
the docstring says which were removed together.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from support import crm_row, write_crm
from vipexsync.config import load_config
from vipexsync.emulator.server import RunningEmulator, serve_in_thread
from vipexsync.emulator.state import EmulatorState
from vipexsync.metrics import Metrics
from vipexsync.mirror import store
from vipexsync.mirror.database import create_engine_for, make_session_factory
from vipexsync.runtime import Runtime
from vipexsync.sync.model import Mode
from vipexsync.sync.report import Outcome, RunReport
from vipexsync.sync.runner import RunOptions

VIPEX_ID = "1643897"
WRITES = ("set_phonebook_entry", "del_phonebook_entry")
CUSTOM_FIELDS = """\
[jobs.mapping.custom_fields]
"Típus" = "{kind}"
"Kód" = "CRM-{id}"
"""


def phone(i: int) -> str:
    return f"06-1-{2000000 + i}"


def number(i: int) -> str:
    return f"361{2000000 + i}"


def rows(keys: range | list[int], **fields: str) -> list[dict[str, str]]:
    return [crm_row(i, phone(i), f"Ügyfél{i} Anna", **fields) for i in keys]


@pytest.fixture
def vipex() -> Iterator[RunningEmulator]:
    state = EmulatorState()
    state.add_subscription(VIPEX_ID)
    state.add_custom_field(VIPEX_ID, 1, "Típus", "menu", [(1, "Kiemelt"), (2, "Normál")])
    state.add_custom_field(VIPEX_ID, 2, "Kód", "text")
    with serve_in_thread(state, vipex_id=VIPEX_ID) as running:
        yield running


Run = Callable[..., RunReport]


@pytest.fixture
def run() -> Run:
    """One run in a fresh Runtime, as a separate `vipexsync sync` process would do it."""

    def go(config_path: Path, mode: Mode = Mode.INCREMENTAL, **options: Any) -> RunReport:
        config = load_config(config_path)
        metrics = options.pop("metrics", None)
        with Runtime(config, metrics=metrics) as runtime:
            return runtime.run_job(config.jobs[0], RunOptions(mode=mode, **options))

    return go


def writes(emulator: RunningEmulator) -> int:
    counts = emulator.app.request_counts()
    return sum(counts.get(action, 0) for action in WRITES)


def settled(vipex: RunningEmulator, job_files: Any, run: Run, **overrides: Any) -> Path:
    """A job in sync whose last run stored the quiet key; returns its config."""
    config = job_files(
        vipex, rows(range(1, 7), kind=" kiemelt "), custom_fields=CUSTOM_FIELDS, **overrides
    )
    assert run(config, Mode.FULL).applied == {"create": 6}
    first = run(config)
    assert first.outcome is Outcome.SUCCESS
    assert first.unchanged_since is None
    return config


def quiet_tick(run: Run, config: Path) -> RunReport:
    report = run(config)
    assert report.unchanged_since is not None, "expected the quiet tick"
    return report


def sessions(config: Path) -> Any:
    engine = create_engine_for(load_config(config).database.url)
    return engine, make_session_factory(engine)


# -- taken ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_unchanged_tick_is_the_stored_run_again(
    backend: str, vipex: RunningEmulator, job_files: Any, run: Run, request: pytest.FixtureRequest
) -> None:
    overrides = {}
    if backend == "postgresql":
        overrides["database"] = request.getfixturevalue("postgres_url")
    write_crm_rows = rows(range(1, 7), kind=" kiemelt ")
    write_crm_rows[0]["phone"] = "not a number"  # a rejected record, reported every tick
    config = job_files(vipex, write_crm_rows, custom_fields=CUSTOM_FIELDS, **overrides)
    run(config, Mode.FULL)
    normal = run(config)
    assert normal.unchanged_since is None

    vipex.app.reset_counts()
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    report = run(config, metrics=metrics)
    assert report.unchanged_since == normal.run_id
    assert report.run_id is not None
    assert report.run_id > (normal.run_id or 0)
    assert report.outcome is Outcome.SUCCESS
    # The custom-field call is still made (a relabel is noticed); nothing else.
    assert vipex.app.request_counts() == {"get_phonebook_custom_field_list": 1}
    assert report.api_calls == 1
    for name in ("planned", "source_records", "desired", "mirror", "rejections", "key_rules"):
        assert getattr(report, name) == getattr(normal, name), name
    assert report.rejected_records == 1
    assert "unchanged since run" in report.as_text()
    labels = {"sync_job": "crm"}
    assert registry.get_sample_value("vipexsync_entries", {**labels, "view": "desired"}) == 5
    assert registry.get_sample_value("vipexsync_entries", {**labels, "view": "mirror"}) == 5
    assert (
        registry.get_sample_value(
            "vipexsync_runs_total", {**labels, "mode": "incremental", "outcome": "success"}
        )
        == 1
    )

    engine, factory = sessions(config)
    try:
        with factory() as session:
            last = store.last_runs(session, "crm", limit=1)[0]
    finally:
        engine.dispose()
    assert last.id == report.run_id
    assert last.outcome == "success"
    assert last.counts["planned_noop"] == 5

    assert run(config).unchanged_since == normal.run_id  # and again


def test_a_rewritten_file_with_the_same_bytes_is_still_quiet(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    config = settled(vipex, job_files, run)
    csv = config.parent / "crm.csv"
    data = csv.read_bytes()
    csv.unlink()
    csv.write_bytes(data)  # a new inode and mtime, the same content
    quiet_tick(run, config)


# -- not taken ----------------------------------------------------------------------


def test_an_edit_with_the_same_size_and_mtime_is_read(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    """Defect caught: a key from the file's size and mtime instead of its bytes."""
    config = settled(vipex, job_files, run)
    csv = config.parent / "crm.csv"
    stat = csv.stat()
    data = csv.read_bytes()
    edited = data.replace("Ügyfél3,Anna".encode(), "Ügyfél3,Anne".encode())
    assert edited != data
    assert len(edited) == len(data)
    csv.write_bytes(edited)
    os.utime(csv, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert csv.stat().st_mtime_ns == stat.st_mtime_ns

    report = run(config)
    assert report.unchanged_since is None
    assert report.applied == {"update": 1}


def test_a_failed_write_recorded_by_a_killed_run_is_retried(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    """Defect caught: record_failed not bumping the generation (a run killed after
    journaling a failure never reaches the end that clears the key)."""
    config = settled(vipex, job_files, run)
    engine, factory = sessions(config)
    try:
        with factory() as session:
            store.record_failed(
                session,
                job="crm",
                run_id=None,
                action="update",
                phonenumber=number(2),
                before=None,
                after=None,
                reason="test",
                error="HTTP 503",
                now=datetime.now(UTC),
            )
            session.commit()
    finally:
        engine.dispose()
    vipex.app.reset_counts()
    report = run(config)
    assert report.unchanged_since is None
    assert report.lookups == 1  # its VIPeX content is unknown: looked up first
    assert vipex.app.request_counts().get("get_phonebook_entry") == 1


def test_a_pending_row_left_by_a_kill_is_looked_up(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    """Defect caught: mark_pending_many not bumping the generation."""
    config = settled(vipex, job_files, run)
    engine, factory = sessions(config)
    try:
        with factory() as session:
            store.mark_pending_many(session, job="crm", changes=[(number(4), "update", "4")])
            session.commit()
    finally:
        engine.dispose()
    report = run(config)
    assert report.unchanged_since is None
    assert report.lookups == 1


def test_another_replicas_write_invalidates_the_key(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    """Another process wrote the mirror (a replica's run, killed before its end):
    the CRM went back to the content of the stored key, but VIPeX and the mirror
    hold the replica's write, so this tick must write the entry back.

    Defect caught: the write journal not bumping the generation (the pending
    marker's and the confirmed write's bumps removed together: every write is
    marked pending first, so either one alone catches it)."""
    config = settled(vipex, job_files, run)
    csv = config.parent / "crm.csv"
    original = csv.read_bytes()
    edited = rows(range(1, 7), kind=" kiemelt ")
    edited[4]["company"] = "Másik Kft."
    write_crm(csv, edited)

    # The replica's run, stopped right after its write was journaled.
    config_obj = load_config(config)
    with Runtime(config_obj) as replica:
        from vipexsync.sync.runner import JobRun

        job = config_obj.jobs[0]
        job_run = JobRun(
            job,
            client=replica.client,
            sessions=replica.sessions,
            options=RunOptions(),
            stop=replica.stop,
            concurrency=2,
        )

        def killed(*args: object, **kwargs: object) -> RunReport:
            raise SystemExit("killed")

        job_run._finish = killed  # type: ignore[method-assign]
        with pytest.raises(SystemExit):
            job_run.execute()
    assert vipex.state.entries(VIPEX_ID)  # the replica's update reached VIPeX
    assert {e["comment"] for e in vipex.state.entries(VIPEX_ID)} >= {"Másik Kft."}

    csv.write_bytes(original)
    report = run(config)
    assert report.unchanged_since is None
    assert report.applied == {"update": 1}
    assert "Másik Kft." not in {e["comment"] for e in vipex.state.entries(VIPEX_ID)}


def test_a_mapping_change_is_read(vipex: RunningEmulator, job_files: Any, run: Run) -> None:
    """Defect caught: a key without the job's configuration, together with a
    check that ignores the stored mapping fingerprint (either one catches it)."""
    config = settled(vipex, job_files, run)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('comment = "{company}"', 'comment = "{company}!"'), "utf-8")
    report = run(config)
    assert report.unchanged_since is None
    assert report.applied == {"update": 6}


def test_a_custom_field_relabel_in_vipex_is_read(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    """Defect caught: a key without the custom-field definitions."""
    config = settled(vipex, job_files, run)
    vipex.state.add_custom_field(VIPEX_ID, 1, "Típus", "menu", [(1, "KIEMELT"), (2, "Normál")])
    report = run(config)
    assert report.unchanged_since is None
    assert report.applied == {"update": 6}
    assert {e["custom_fields"][1] for e in vipex.state.entries(VIPEX_ID)} == {"KIEMELT"}


def test_withheld_deletions_are_withheld_every_tick(
    vipex: RunningEmulator, job_files: Any, run: Run
) -> None:
    """Defect caught: a guarded run counted as having nothing to do (removed
    together: nothing_to_do's outcome, planned-changes, withheld and guard-reason
    checks and the runner's success check before storing)."""
    config = settled(vipex, job_files, run, max_deletes=2)
    write_crm(config.parent / "crm.csv", rows(range(1, 3), kind=" kiemelt "))
    first = run(config)
    assert first.outcome is Outcome.GUARDED
    assert first.withheld_deletes == 4
    again = run(config)
    assert again.unchanged_since is None
    assert again.outcome is Outcome.GUARDED
    assert again.withheld_deletes == 4


def test_a_full_resync_lists_and_repairs(vipex: RunningEmulator, job_files: Any, run: Run) -> None:
    """Defect caught: the quiet tick taken for a full resync (due by schedule)."""
    config = settled(vipex, job_files, run)
    vipex.state.put_entry(VIPEX_ID, number(5), "Kézzel írt", ["crm-sync"], "", {})
    assert run(config).unchanged_since is not None  # an incremental tick does not look
    vipex.app.reset_counts()
    report = run(config, Mode.FULL)
    assert report.unchanged_since is None
    assert report.remote == 6
    assert report.drift == 1
    assert writes(vipex) == 1


def test_a_probe_invalidates_every_key(vipex: RunningEmulator, job_files: Any, run: Run) -> None:
    """The probe's findings change how runs compare: the next tick reads again."""
    from vipexsync.mirror import findings
    from vipexsync.semantics import Omission, ProbeFindings, WriteSemantics

    config = settled(vipex, job_files, run)
    engine, factory = sessions(config)
    try:
        with factory() as session:
            findings.save_findings(
                session,
                ProbeFindings(
                    vipex_id=VIPEX_ID,
                    semantics=WriteSemantics(Omission.KEEP, True, True, None),
                    probed_at=datetime.now(UTC),
                    phonenumber="442079460999",
                    not_found_answer="",
                    steps=(),
                ),
            )
            session.commit()
    finally:
        engine.dispose()
    assert run(config).unchanged_since is None


def test_dry_runs_and_output_files_take_the_normal_path(
    vipex: RunningEmulator, job_files: Any, run: Run, tmp_path: Path
) -> None:
    config = settled(vipex, job_files, run)
    assert run(config, dry_run=True).unchanged_since is None
    quiet_tick(run, config)  # a dry run leaves the key alone
    plan = tmp_path / "plan.json"
    assert run(config, plan_out=plan).unchanged_since is None
    assert plan.exists()
    rejects = tmp_path / "rejects.csv"
    assert run(config, rejects_out=rejects).unchanged_since is None
    assert rejects.exists()
    # Those were real runs that did not compute a key: the next tick reads again.
    assert run(config).unchanged_since is None
    quiet_tick(run, config)

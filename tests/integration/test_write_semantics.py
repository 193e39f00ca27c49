"""`vipexsync probe` and the engine following its findings, in every emulator world.

Each test here runs against the emulator in BOTH omission modes (keep and
clear), whatever mode the rest of the suite runs in: this is the core set that
shows unmanaged custom fields survive every update in both worlds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.wrappers import Request, Response

from support import crm_row, serve, write_crm
from vipexsync.config import load_config
from vipexsync.emulator.app import EmulatorApp
from vipexsync.emulator.faults import Faults
from vipexsync.emulator.semantics import Semantics
from vipexsync.emulator.server import RunningEmulator, serve_in_thread
from vipexsync.emulator.state import EmulatorState
from vipexsync.errors import ProbeError
from vipexsync.mirror import findings
from vipexsync.probe import DEFAULT_PROBE_NUMBER, probe_command, run_probe
from vipexsync.runtime import Runtime
from vipexsync.semantics import Omission, WriteSemantics
from vipexsync.sync.model import Mode
from vipexsync.sync.report import Outcome, RunReport
from vipexsync.sync.runner import RunOptions
from vipexsync.vipex.client import VipexClient

VIPEX_ID = "1643897"
CUSTOM_FIELDS = '[jobs.mapping.custom_fields]\n"Kód" = "CRM-{id}"\n'
HAND = "ne nyúlj hozzá"  # the value a person set by hand in the unmapped field 3

WORLDS = {
    "keep": Semantics(omitted="keep"),
    "clear": Semantics(omitted="clear"),
    "clear+values": Semantics(omitted="clear", max_name_length=20, normalise="nfc", trim=True),
    "keep+values": Semantics(omitted="keep", max_name_length=20, normalise="nfc", trim=True),
}
EXPECTED = {
    "keep": WriteSemantics(Omission.KEEP),
    "clear": WriteSemantics(Omission.CLEAR),
    "clear+values": WriteSemantics(Omission.CLEAR, True, True, 20),
    "keep+values": WriteSemantics(Omission.KEEP, True, True, 20),
}


def number(i: int) -> str:
    return f"361{2000000 + i}"


def rows(keys: range, **fields: str) -> list[dict[str, str]]:
    return [crm_row(i, f"06-1-{2000000 + i}", f"Ügyfél{i} Anna", **fields) for i in keys]


def subscription() -> EmulatorState:
    state = EmulatorState()
    state.add_subscription(VIPEX_ID)
    state.add_custom_field(VIPEX_ID, 1, "Típus", "menu", [(1, "Kiemelt"), (2, "Normál")])
    state.add_custom_field(VIPEX_ID, 2, "Kód", "text")
    state.add_custom_field(VIPEX_ID, 3, "Recepció", "text")  # nobody maps this one
    state.put_entry(VIPEX_ID, "3619996000", "Pizzéria", ["ebéd"], "", {3: "péntek"})
    return state


@pytest.fixture(params=sorted(WORLDS))
def world(request: pytest.FixtureRequest) -> Iterator[tuple[str, RunningEmulator]]:
    name = str(request.param)
    with serve_in_thread(subscription(), vipex_id=VIPEX_ID, semantics=WORLDS[name]) as running:
        yield name, running


@pytest.fixture(params=["keep", "clear"])
def omission(request: pytest.FixtureRequest) -> Iterator[RunningEmulator]:
    semantics = Semantics(omitted=str(request.param))  # type: ignore[arg-type]
    with serve_in_thread(subscription(), vipex_id=VIPEX_ID, semantics=semantics) as running:
        yield running


def snapshot(emulator: RunningEmulator) -> list[dict[str, object]]:
    return emulator.state.entries(VIPEX_ID)


def run(config_path: Path, mode: Mode = Mode.INCREMENTAL) -> RunReport:
    config = load_config(config_path)
    with Runtime(config) as runtime:
        return runtime.run_job(config.jobs[0], RunOptions(mode=mode))


def recorded(config_path: Path) -> Any:
    engine = sa.create_engine(load_config(config_path).database.url)
    try:
        with sa.orm.Session(engine) as session:
            return findings.load_findings(session, VIPEX_ID)
    finally:
        engine.dispose()


# -- the probe ------------------------------------------------------------------------


def test_probe_reports_the_world_records_it_and_leaves_no_trace(
    world: tuple[str, RunningEmulator], job_files: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    name, emulator = world
    config = job_files(emulator, rows(range(1, 2)), write_semantics="probe")
    before = snapshot(emulator)

    found = probe_command(load_config(config), None, None)

    assert snapshot(emulator) == before  # not a trace, in any world
    assert found.semantics == EXPECTED[name]
    assert found.phonenumber == DEFAULT_PROBE_NUMBER
    assert "nem szerepel" in found.not_found_answer  # the emulator's not-found reason
    assert recorded(config) == found
    out = capsys.readouterr().out
    assert f"omitted fields: {EXPECTED[name].omitted.value}" in out
    assert f"test entry {DEFAULT_PROBE_NUMBER} was deleted" in out


def test_probe_refuses_a_number_that_exists(omission: RunningEmulator) -> None:
    before = snapshot(omission)
    with (
        VipexClient(omission.url, omission.username, omission.password) as client,
        pytest.raises(ProbeError, match="3619996000 already exists"),
    ):
        run_probe(client, VIPEX_ID, "3619996000")
    assert snapshot(omission) == before
    assert omission.app.request_counts() == {"get_phonebook_entry": 1}  # it only looked


def refusing(inner: EmulatorApp, action: str, calls: set[int] | None) -> Callable[..., Any]:
    """The emulator, except that the given calls (1-based; None: all) of ``action`` are refused.

    It reads the query string only (the test client sends GET), so the body
    stays unread for the emulator.
    """
    seen = {"n": 0}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if Request(environ).args.get("action") == action:
            seen["n"] += 1
            if calls is None or seen["n"] in calls:
                body = json.dumps({"onvipex_result": {"result": 0, "reason": "Belső hiba"}})
                return Response(body, content_type="application/json")(environ, start_response)
        return inner(environ, start_response)

    return app


@pytest.mark.parametrize("omitted", ["keep", "clear"])
def test_a_step_that_fails_mid_probe_still_deletes_the_entry(omitted: str) -> None:
    state = subscription()
    state.semantics = Semantics(omitted=omitted)  # type: ignore[arg-type]
    inner = EmulatorApp(state, Faults(), {"api_user": "api_password"})
    before = state.entries(VIPEX_ID)
    # The second write (the update that leaves fields out) is refused: the
    # entry exists by then and must still go.
    with (
        serve(refusing(inner, "set_phonebook_entry", {2})) as url,
        VipexClient(url, "api_user", "api_password", encoding="get") as client,
        pytest.raises(ProbeError, match=r"did not finish.*was deleted"),
    ):
        run_probe(client, VIPEX_ID, DEFAULT_PROBE_NUMBER)
    assert state.entries(VIPEX_ID) == before
    assert inner.request_counts()["del_phonebook_entry"] == 1


def test_a_probe_that_cannot_delete_says_so_loudly(caplog: pytest.LogCaptureFixture) -> None:
    state = subscription()
    inner = EmulatorApp(state, Faults(), {"api_user": "api_password"})
    with (
        serve(refusing(inner, "del_phonebook_entry", None)) as url,
        VipexClient(url, "api_user", "api_password", encoding="get") as client,
        caplog.at_level(logging.INFO, logger="vipexsync.probe"),
        pytest.raises(ProbeError) as caught,
    ):
        run_probe(client, VIPEX_ID, DEFAULT_PROBE_NUMBER)
    by_hand = (
        f"vipexsync api del_phonebook_entry vipex_id={VIPEX_ID} phonenumber={DEFAULT_PROBE_NUMBER}"
    )
    assert by_hand in str(caught.value)
    assert "could not delete its test entry" in str(caught.value)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("MAY STILL BE" in e and by_hand in e for e in errors)
    steps = [r.getMessage() for r in caplog.records if r.name == "vipexsync.probe"]
    assert len(steps) >= 15  # every step was logged
    assert state.entry(VIPEX_ID, DEFAULT_PROBE_NUMBER) is not None  # it really is still there


# -- the engine follows the findings -------------------------------------------------


def hand_set(emulator: RunningEmulator, i: int, value: str) -> None:
    entry = emulator.state.entry(VIPEX_ID, number(i))
    assert entry is not None
    fields: dict[int, str] = {int(k): str(v) for k, v in entry["custom_fields"].items()}
    fields[3] = value
    emulator.state.put_entry(
        VIPEX_ID,
        number(i),
        str(entry["name"]),
        list(entry["tags"]),
        str(entry["comment"]),
        fields,
    )


def unmanaged(emulator: RunningEmulator, i: int) -> str | None:
    entry = emulator.state.entry(VIPEX_ID, number(i))
    assert entry is not None
    value = entry["custom_fields"].get(3)
    return None if value is None else str(value)


@pytest.mark.parametrize("how", ["probed", "stated"])
def test_unmanaged_fields_survive_every_update(
    omission: RunningEmulator, job_files: Any, how: str
) -> None:
    clear = omission.state.semantics.omitted == "clear"
    stated = "probe" if how == "probed" else ("clear_omitted" if clear else "keep_omitted")
    # A hand-made entry with a CRM number and a hand-set unmapped field: adopted.
    omission.state.put_entry(VIPEX_ID, number(1), "Kézi", [], "", {3: HAND})
    config = job_files(
        omission, rows(range(1, 4)), custom_fields=CUSTOM_FIELDS, write_semantics=stated
    )
    if how == "probed":
        probe_command(load_config(config), None, None)

    first = run(config, Mode.FULL)
    assert first.applied == {"adopt": 1, "create": 2}
    assert unmanaged(omission, 1) == HAND
    assert first.entry_reads == (1 if clear else 0)  # the adoption read the entry first

    # Set by hand after that listing: only a read just before the write knows it.
    hand_set(omission, 2, "kézzel, később")
    write_crm(config.parent / "crm.csv", rows(range(1, 4), company="Új Kft."))
    omission.app.reset_counts()
    update = run(config)
    assert update.applied == {"update": 3}
    assert unmanaged(omission, 1) == HAND
    assert unmanaged(omission, 2) == "kézzel, később"
    reads = omission.app.request_counts().get("get_phonebook_entry", 0)
    assert update.entry_reads == reads == (3 if clear else 0)
    assert update.api_calls == sum(omission.app.request_counts().values())  # reads are counted
    assert ("entry reads before updates" in update.as_text()) is clear

    # Drift repaired on a full resync keeps the unmanaged field too.
    entry = omission.state.entry(VIPEX_ID, number(3))
    assert entry is not None
    omission.state.put_entry(VIPEX_ID, number(3), "Átírva", list(entry["tags"]), "", {3: HAND})
    repair = run(config, Mode.FULL)
    assert repair.applied == {"update": 1}
    assert repair.drift == 1
    assert unmanaged(omission, 3) == HAND
    assert omission.state.entry(VIPEX_ID, "3619996000") is not None  # foreign entry untouched


def test_an_incremental_run_over_a_hand_made_entry_keeps_its_unmanaged_field(
    omission: RunningEmulator, job_files: Any
) -> None:
    clear = omission.state.semantics.omitted == "clear"
    stated = "clear_omitted" if clear else "keep_omitted"
    config = job_files(
        omission, rows(range(1, 2)), custom_fields=CUSTOM_FIELDS, write_semantics=stated
    )
    full = run(config, Mode.FULL)
    assert full.applied == {"create": 1}
    assert full.entry_reads == 0  # its complete listing showed the number absent
    # Made by hand after that listing; then the CRM gets the same number. The
    # incremental run's look-up finds it, and the adoption keeps its field.
    omission.state.put_entry(VIPEX_ID, number(2), "Kézi", [], "", {3: HAND})
    write_crm(config.parent / "crm.csv", rows(range(1, 3)))
    report = run(config)
    assert report.applied == {"adopt": 1}
    assert unmanaged(omission, 2) == HAND
    assert report.entry_reads == (1 if clear else 0)


def test_unverified_semantics_in_a_clearing_world_wipe_unmanaged_fields(
    job_files: Any,
) -> None:
    """Why the probe exists: without it the daemon behaves as before, and loses data."""
    clearing = Semantics(omitted="clear")
    with serve_in_thread(subscription(), vipex_id=VIPEX_ID, semantics=clearing) as emulator:
        emulator.state.put_entry(VIPEX_ID, number(1), "Kézi", [], "", {3: HAND})
        config = job_files(
            emulator, rows(range(1, 2)), custom_fields=CUSTOM_FIELDS, write_semantics="probe"
        )
        report = run(config, Mode.FULL)
        assert report.applied == {"adopt": 1}
        assert report.entry_reads == 0
        assert unmanaged(emulator, 1) is None


@pytest.mark.parametrize("probed", [True, False])
def test_normalised_values_are_written_once(job_files: Any, probed: bool) -> None:
    rewriting = Semantics(omitted="keep", max_name_length=12, normalise="nfc", trim=True)
    with serve_in_thread(subscription(), vipex_id=VIPEX_ID, semantics=rewriting) as emulator:
        # NFD accents and a name longer than VIPeX keeps.
        crm = [crm_row(1, "06-1-2000001", "Jo\u0301zsa E\u0301va Katalin", company="Kft")]
        config = job_files(emulator, crm, write_semantics="probe")
        if probed:
            probe_command(load_config(config), None, None)
        assert run(config, Mode.FULL).applied == {"create": 1}
        assert emulator.state.entry(VIPEX_ID, number(1))["name"] == "Józsa Éva Ka"  # type: ignore[index]
        second = run(config, Mode.FULL)
        third = run(config)
        if probed:
            assert second.planned["noop"] == third.planned["noop"] == 1
            assert second.applied == third.applied == {}
        else:
            # Without the finding every full resync rewrites the same entry.
            assert second.applied == {"update": 1}
            assert second.outcome is Outcome.SUCCESS

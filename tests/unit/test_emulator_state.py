"""EmulatorState (by-hand edits, persistence), the answer formats and the wire helpers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

import pytest

from vipexsync.emulator.formats import php_serialize, render, to_xml
from vipexsync.emulator.state import (
    EXAMPLE_RECORDING_ID,
    CallForwardRecord,
    EmulatorState,
    example_state,
)
from vipexsync.wire import (
    BUDAPEST,
    MAX_QUERYABLE_ROWS,
    OPEN_END,
    format_local,
    parse_local,
    parse_local_or_open,
)

A = "1643897"


def test_put_entry_entries_entry_and_remove() -> None:
    state = EmulatorState()
    state.add_subscription("1")
    state.add_custom_field("1", 5, "menu", "menu", [(1, "a"), (2, "b")])
    state.put_entry("1", "36201234567", "Béla", ["x", "y"], "c", {5: "a"})
    state.put_entry("1", "3612345678", "Anna")
    assert state.entries("1") == [
        {
            "phonenumber": "3612345678",
            "name": "Anna",
            "tags": [],
            "comment": "",
            "custom_fields": {},
        },
        {
            "phonenumber": "36201234567",
            "name": "Béla",
            "tags": ["x", "y"],
            "comment": "c",
            "custom_fields": {5: "a"},
        },
    ]
    assert state.entry("1", "3612345678") == state.entries("1")[0]
    assert state.entry("1", "3699999999") is None
    assert state.remove_entry("1", "3612345678") is True
    assert state.remove_entry("1", "3612345678") is False
    assert [e["phonenumber"] for e in state.entries("1")] == ["36201234567"]


def test_snapshots_are_copies() -> None:
    state = example_state()
    snap = state.entry(A, "3619996000")
    assert snap is not None
    tags = snap["tags"]
    assert isinstance(tags, list)
    tags.append("hacked")
    assert state.entry(A, "3619996000") != snap


@pytest.mark.parametrize("number", ["+3612345678", "0612345678", "36 1 234", "abc"])
def test_put_entry_needs_international_digits(number: str) -> None:
    state = example_state()
    with pytest.raises(ValueError, match="digits"):
        state.put_entry(A, number, "X")


def test_unknown_subscription_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="42"):
        example_state().entries("42")


def test_example_state_shape() -> None:
    state = example_state()
    assert state.subscription_ids() == ["1643897", "3212601"]
    numbers = [e["phonenumber"] for e in state.entries(A)]
    assert len(numbers) == 18
    assert numbers.index("3619996000") == 11
    assert state.entries("3212601") == []


def test_save_load_round_trip(tmp_path: Path) -> None:
    state = example_state()
    state.put_entry(A, "36111111111", 'Ünnep "idéző" \', \\', ["ü"], "sor\nsor", {19: "ő"})
    state.set_forward(A, "6025", CallForwardRecord("busy", "exten", "432", None, "all"))
    path = tmp_path / "state.json"
    state.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left behind
    loaded = EmulatorState.load(path)
    assert loaded.to_json() == state.to_json()
    assert loaded.entries(A) == state.entries(A)
    with loaded.transaction() as data:
        assert data.recordings[EXAMPLE_RECORDING_ID].data[:4] == b"RIFF"
    # JSON round trip without a file, too
    assert EmulatorState.from_json(json.loads(json.dumps(state.to_json()))).to_json() == (
        state.to_json()
    )


def test_save_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("old", encoding="utf-8")
    example_state().save(path)
    assert json.loads(path.read_text(encoding="utf-8"))["format"] == 1


def test_load_rejects_other_formats(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"format": 99}), encoding="utf-8")
    with pytest.raises(ValueError, match="format"):
        EmulatorState.load(path)
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match="object"):
        EmulatorState.load(path)


def test_change_listeners_fire_on_changes() -> None:
    state = example_state()
    seen: list[int] = []
    state.add_change_listener(lambda: seen.append(1))
    state.put_entry(A, "36111111111", "X")
    state.remove_entry(A, "36111111111")
    state.remove_entry(A, "36111111111")  # nothing removed: no change
    assert len(seen) == 2


# -- formats --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "N;"),
        (True, "b:1;"),
        (0, "i:0;"),
        (-7, "i:-7;"),
        (1.5, "d:1.5;"),
        ("", 's:0:"";'),
        ("Hívható", 's:9:"Hívható";'),
        ('a"b', 's:3:"a"b";'),
        ([], "a:0:{}"),
        (["x", None], 'a:2:{i:0;s:1:"x";i:1;N;}'),
        ({"k": {"n": 1}}, 'a:1:{s:1:"k";a:1:{s:1:"n";i:1;}}'),
        ({3: "v"}, 'a:1:{i:3;s:1:"v";}'),
    ],
)
def test_php_serialize(value: object, expected: str) -> None:
    assert php_serialize(value) == expected.encode("utf-8")


def test_php_serialize_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        php_serialize(object())


def test_xml_shape() -> None:
    body = to_xml({"result": 1, "list": [{"a": "x<&>"}, {"a": None}], "empty": []}, "root")
    root = ElementTree.fromstring(body)  # noqa: S314 - our own output
    assert root.tag == "root"
    assert [i.findtext("a") for i in root.findall("list/item")] == ["x<&>", ""]
    assert root.findall("list/item")[1].find("a").get("nil") == "true"  # type: ignore[union-attr]
    assert root.find("empty") is not None
    assert list(root.find("empty")) == []  # type: ignore[arg-type]


def test_render_json_escapes_non_ascii() -> None:
    body, content_type = render({"result": 1, "label": "Szünet"}, "json")
    assert body == b'{"onvipex_result": {"result": 1, "label": "Sz\\u00fcnet"}}'
    assert content_type.startswith("application/json")


# -- wire helpers ----------------------------------------------------------------


def test_wire_constants() -> None:
    assert OPEN_END == "0000-00-00 00:00:00"
    assert MAX_QUERYABLE_ROWS == 200


def test_parse_and_format_local() -> None:
    moment = parse_local("2019-12-09 16:31:35")
    assert moment == datetime(2019, 12, 9, 16, 31, 35, tzinfo=BUDAPEST)
    assert moment.utcoffset() is not None
    assert format_local(moment) == "2019-12-09 16:31:35"
    # an aware time elsewhere is converted to Budapest local time (CEST in July)
    assert format_local(datetime(2023, 7, 21, 14, 29, 58, tzinfo=UTC)) == "2023-07-21 16:29:58"
    assert format_local(datetime(2023, 7, 21, 16, 29, 58)) == "2023-07-21 16:29:58"


@pytest.mark.parametrize(
    "text", ["2019-12-9 16:31:35", "2019-12-09T16:31:35", "2019-12-09", "", OPEN_END, "x"]
)
def test_parse_local_rejects_other_shapes(text: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        parse_local(text)


def test_parse_local_or_open() -> None:
    assert parse_local_or_open(OPEN_END) is None
    assert parse_local_or_open("2019-12-09 16:31:35") == parse_local("2019-12-09 16:31:35")


# -- fault decisions ----------------------------------------------------------------


def test_fault_latency_applies_to_every_action_other_faults_only_to_chosen_ones() -> None:
    from vipexsync.emulator.faults import FaultDecision, Faults

    faults = Faults(latency_seconds=0.5, error_rate=1.0, actions=frozenset({"a"}))
    assert faults.decide("b") == FaultDecision(latency=0.5)
    decision = faults.decide("a")
    assert decision.latency == 0.5
    assert decision.error_status in (500, 502, 503)


def test_fault_decisions_hang_and_page_shift() -> None:
    from vipexsync.emulator.faults import FaultDecision, Faults

    faults = Faults(hang_rate=1.0, hang_seconds=7.0, page_shift=3)
    assert faults.decide("x") == FaultDecision(hang=7.0, page_shift=3)
    faults.reset()
    assert faults.decide("x") == FaultDecision()

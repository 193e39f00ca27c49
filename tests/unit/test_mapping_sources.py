"""What the mapping does with what sources report: damaged values, repairs, unsynced numbers,
and where each finding points (location, display name)."""

from __future__ import annotations

import pytest

from vipexsync.config import MappingConfig
from vipexsync.mapping import compile_mapping, map_records
from vipexsync.sources.base import SourceRecord

MAPPING = compile_mapping(
    MappingConfig(phone_fields=("tel_voice",), name="{fn}", comment="{org}"), (), job="t"
)


def run(*records: SourceRecord):  # type: ignore[no-untyped-def]
    return map_records(records, MAPPING, region="HU", ownership_tag="crm-sync")


def card(key: str, **fields: str) -> SourceRecord:
    return SourceRecord(key=key, fields={"fn": "Kiss Anna", **fields}, locator=f"c.vcf {key}")


def test_damaged_field_that_is_mapped_rejects_only_that_record() -> None:
    bad = SourceRecord(
        key="a",
        fields={"fn": "Kiss \ufffd", "tel_voice": "+36 1 234 5678"},
        locator="c.vcf card 1 (line 1)",
        damaged=(("fn", "FN at line 3 is not valid utf-8"),),
    )
    good = card("b", tel_voice="+36 1 234 5679")

    result = run(bad, good)

    assert list(result.desired) == ["3612345679"]
    [problem] = result.problems
    assert (problem.code, problem.field, problem.fatal) == ("undecodable_value", "fn", True)
    assert problem.locator == "c.vcf card 1 (line 1)"
    assert "FN at line 3" in problem.reason


def test_damaged_field_that_is_not_mapped_is_a_note_and_the_record_syncs() -> None:
    record = SourceRecord(
        key="a",
        fields={"fn": "Kiss Anna", "note": "x\ufffd", "tel_voice": "+36 1 234 5678"},
        locator="c.vcf card 1 (line 1, 'Kiss Anna')",
        damaged=(("note", "NOTE at line 4 is not valid utf-8"),),
        notes=("line 5 is not a property; read as more of the value at line 4",),
    )

    result = run(record)

    assert list(result.desired) == ["3612345678"]
    assert result.problems == ()
    assert sorted(n.code for n in result.notes) == ["source_repaired", "value_replaced"]
    assert {n.display_name for n in result.notes} == {"Kiss Anna"}
    assert {n.locator for n in result.notes} == {"c.vcf card 1 (line 1, 'Kiss Anna')"}


def test_numbers_no_phone_field_holds_are_noted_not_dropped_silently() -> None:
    record = SourceRecord(
        key="a",
        fields={"fn": "Kiss Anna", "tel_voice": "+36 1 234 5678", "tel_fax": "+36 1 234 5670"},
        locator="c.vcf card 1",
        numbers=(("TEL;TYPE=WORK", "+36 1 234 5678"), ("TEL;TYPE=FAX", "+36 1 234 5670")),
    )

    result = run(record)

    [note] = result.notes
    assert (note.code, note.field, note.value) == (
        "number_not_synced",
        "TEL;TYPE=FAX",
        "+36 1 234 5670",
    )
    assert note.fatal is False


def test_every_problem_carries_the_records_location() -> None:
    result = run(
        card("a", tel_voice="+36 1 234 5678"),
        card("b", tel_voice="+36 1 234 5678"),  # duplicate number: b loses
        card("c", tel_voice="12"),  # invalid
        SourceRecord(key="", fields={"fn": "X"}, locator="c.vcf card 9"),
    )

    located = {(p.code, p.locator) for p in result.problems}
    assert located == {
        ("duplicate_number", "c.vcf b"),
        ("invalid_phone", "c.vcf c"),
        ("missing_key", "c.vcf card 9"),
    }
    assert all(p.display_name in ("Kiss Anna", "X") for p in result.problems)


@pytest.mark.parametrize("value", [";", " ::: ", ", /"])
def test_a_cell_of_separators_alone_is_rejected_not_lost(value: str) -> None:
    # Found by the mapping property test: it split into nothing, so the record
    # yielded neither an entry nor a problem.
    result = run(card("a", tel_voice=value))

    assert not result.desired
    [problem] = result.problems
    assert (problem.record_key, problem.code) == ("a", "invalid_phone")


def test_several_numbers_in_one_cell_become_entries_and_a_bad_one_is_rejected_alone() -> None:
    record = card("a", tel_voice="+36 1 234 5678 ::: +36 30 123 4567 ::: 12345 ::: 06-1/234-5679")

    result = run(record)

    assert list(result.desired) == ["3612345678", "3612345679", "36301234567"]
    [problem] = result.problems
    assert (problem.code, problem.value) == ("invalid_phone", "12345")

"""The run report lists every rejection: the text folds long lists, the JSON never does."""

from __future__ import annotations

from vipexsync.domain import RecordProblem
from vipexsync.sync.report import TEXT_FOLD, Outcome, RunReport, group_problems


def problem(i: int, code: str = "invalid_phone") -> RecordProblem:
    return RecordProblem(
        record_key=str(i),
        field="phone",
        code=code,
        reason=f"record '{i}', field 'phone': phone 'x{i}' does not look like a phone number",
        value=f"x{i}",
        locator=f"crm.csv line {i + 1}",
        display_name=f"Name {i}",
    )


def report(problems: tuple[RecordProblem, ...]) -> RunReport:
    return RunReport(
        job="crm",
        mode="incremental",
        dry_run=False,
        outcome=Outcome.SUCCESS,
        rejections=group_problems(problems),
        problems=problems,
        key_rules={"": 3, "digest of the row (no key configured)": 2},
    )


def test_text_folds_after_the_limit_and_json_lists_every_record() -> None:
    many = tuple(problem(i) for i in range(TEXT_FOLD + 7))
    built = report(many)

    text = built.as_text()
    assert f"invalid_phone: {TEXT_FOLD + 7} rejected" in text
    assert "-- crm.csv line 2" in text  # each line says where the record is
    assert "... and 7 more (every one: sync --rejects-out FILE)" in text
    assert f"crm.csv line {TEXT_FOLD + 7}" not in text.split("... and")[0]

    rejected = built.as_json()["rejected"]
    assert isinstance(rejected, list)
    assert [r["location"] for r in rejected] == [p.locator for p in many]
    assert built.as_json()["key_rules"] == {
        "configured key": 3,
        "digest of the row (no key configured)": 2,
    }


def test_a_repeated_finding_is_printed_once() -> None:
    same = (problem(1), problem(1), problem(2))
    text = report(same).as_text()

    assert text.count("crm.csv line 2") == 1
    assert "invalid_phone: 3 rejected" in text
    assert "Record keys: 3 by the configured key; 2 by digest of the row" in text


def test_the_runs_table_copy_leaves_out_the_per_record_list() -> None:
    built = report(tuple(problem(i) for i in range(3)))

    stored = built.as_json(every_rejection=False)
    assert "rejected" not in stored
    assert stored["rejections"] == built.as_json()["rejections"]

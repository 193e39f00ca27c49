"""The pure parts of `vipexsync history`: --since, number forms, describing a change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vipexsync.domain import Entry
from vipexsync.errors import UsageError
from vipexsync.history import describe_content, format_history, number_forms, parse_since
from vipexsync.mirror.store import ChangeRecord

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        (" 30m ", timedelta(minutes=30)),
        ("2w", timedelta(weeks=2)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_since_spans(text: str, ago: timedelta) -> None:
    assert parse_since(text, NOW) == NOW - ago


def test_since_dates_with_and_without_zone() -> None:
    assert parse_since("2026-11-01T08:00+01:00", NOW) == datetime(2026, 11, 1, 7, 0, tzinfo=UTC)
    local = parse_since("2026-11-01", NOW)
    assert local.tzinfo is UTC
    assert local == datetime(2026, 11, 1).astimezone().astimezone(UTC)


@pytest.mark.parametrize("text", ["", "7", "d7", "7y", "yesterday", "2026-13-01"])
def test_since_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(UsageError, match="--since"):
        parse_since(text, NOW)


def test_number_forms_follow_each_jobs_region() -> None:
    assert number_forms("06 1 300 0001", ["HU"]) == ["3613000001"]
    assert number_forms("+36 1 300 0001", ["HU", "DE"]) == ["3613000001"]
    # A national number means something else in each job's region.
    assert number_forms("030 1234567", ["DE", "HU"])[0] == "49301234567"
    # What normalises nowhere is looked up as its digits.
    assert number_forms("12", ["HU"]) == ["12"]
    with pytest.raises(UsageError, match="not a phone number"):
        number_forms("Nagy Péter", ["HU"])


def change(action: str, before: Entry | None, after: Entry | None, **kw: object) -> ChangeRecord:
    values: dict[str, object] = {
        "id": 1,
        "run_id": 7,
        "job": "crm",
        "phonenumber": "3613000001",
        "action": action,
        "before": before,
        "after": after,
        "outcome": "applied",
        "reason": "changed in CRM",
        "api_reason": None,
        "at": NOW,
        "run_mode": "incremental",
    }
    values.update(kw)
    return ChangeRecord(**values)  # type: ignore[arg-type]


OLD = Entry("3613000001", "Teszt Elek", frozenset({"crm-sync", "vip"}), "Bt.", {3: "A"})
NEW = Entry("3613000001", "Teszt Elemér", frozenset({"crm-sync", "partner"}), "Bt.", {3: "B"})


def test_an_update_shows_only_what_differs() -> None:
    text = describe_content(change("update", OLD, NEW))
    assert text == "name 'Teszt Elek' -> 'Teszt Elemér'; tags +partner -vip; field 3 'A' -> 'B'"
    assert describe_content(change("update", OLD, OLD)) == "no managed field differs"


def test_a_create_shows_the_new_content_and_a_delete_the_old() -> None:
    assert describe_content(change("create", None, NEW)).startswith("'Teszt Elemér'; comment 'Bt.'")
    assert describe_content(change("delete", OLD, None)).startswith("was 'Teszt Elek'")


def test_the_text_form_marks_failures_and_pruned_runs_and_the_limit() -> None:
    failed = change(
        "create", None, NEW, outcome="failed", api_reason="invalid name", run_id=None, run_mode=None
    )
    text = format_history([failed], heading="Changes to 3613000001 (job crm)", limit=1)
    assert "create [FAILED]  run pruned  crm" in text
    assert "VIPeX said: invalid name" in text
    assert "the newest 1 shown" in text
    assert (
        format_history([], heading="Changes to x", limit=5) == "Changes to x: no changes recorded."
    )

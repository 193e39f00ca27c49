"""Every guard trigger, alone and together, and what --force-delete lifts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vipexsync.domain import Entry
from vipexsync.sync.guard import guard, withhold_deletes
from vipexsync.sync.model import (
    Action,
    Change,
    GuardContext,
    GuardVerdict,
    MirrorUpdate,
    Mode,
    Plan,
)

SOURCE_FAILED = (
    "The CRM source read failed or was cut short, so nothing is deleted on incomplete "
    "knowledge; fix the source and the next run will catch up."
)
REMOTE_UNSTABLE = (
    "The VIPeX phonebook listing was unstable or cut short, so nothing is deleted on "
    "incomplete knowledge; run `vipexsync sync --full-resync` again when the phonebook "
    "is not being edited."
)


def too_few(records: int, minimum: int) -> str:
    return (
        f"The CRM source returned {records} records, fewer than min_source_records = "
        f"{minimum}, so nothing is deleted in case the source is empty or broken; check the "
        "source, or lower min_source_records if so few records are expected."
    )


def fingerprint(deletes: int) -> str:
    return (
        f"The mapping or source filter changed since the last run, so the {deletes} deletions "
        "may come from the change rather than the CRM; review them with `vipexsync sync "
        "--full-resync --dry-run`, then run `vipexsync sync --full-resync` to confirm."
    )


def too_many(deletes: int, maximum: int) -> str:
    return (
        f"The plan deletes {deletes} entries, more than max_deletes = {maximum}; if that is "
        "intended, run again with --force-delete or raise max_deletes."
    )


def too_large_share(deletes: int, owned: int, ratio: str, allowed: str) -> str:
    return (
        f"The plan deletes {deletes} of {owned} owned entries, more than max_delete_ratio = "
        f"{ratio} allows ({allowed}); if that is intended, run again with --force-delete or "
        "raise max_delete_ratio."
    )


def make_plan(deletes: int, owned: int, *, creates: int = 1) -> Plan:
    changes = [
        Change(Action.CREATE, f"361{i:07d}", None, Entry(f"361{i:07d}", "New"), "new in CRM")
        for i in range(creates)
    ]
    changes += [
        Change(Action.DELETE, f"362{i:07d}", Entry(f"362{i:07d}", "Old"), None, "gone")
        for i in range(deletes)
    ]
    return Plan(
        mode=Mode.INCREMENTAL,
        changes=tuple(changes),
        owned=owned,
        mirror_updates=(MirrorUpdate("3630000000", None),),
    )


def ctx(**overrides: object) -> GuardContext:
    base = GuardContext(
        source_complete=True,
        source_records=1000,
        min_source_records=1,
        remote_complete=True,
        fingerprint_changed=False,
        mode=Mode.INCREMENTAL,
        max_deletes=100,
        max_delete_ratio=0.10,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def assert_withheld(verdict: GuardVerdict, plan: Plan, reasons: list[str]) -> None:
    assert not verdict.deletes_allowed
    assert verdict.tripped
    assert list(verdict.reasons) == reasons
    assert verdict.withheld == plan.deletes


def test_deletes_within_limits_are_allowed() -> None:
    verdict = guard(make_plan(deletes=10, owned=100), ctx())
    assert verdict == GuardVerdict(deletes_allowed=True)
    assert not verdict.tripped


def test_plan_without_deletes_is_always_allowed_and_reports_nothing() -> None:
    bad = ctx(
        source_complete=False,
        source_records=0,
        remote_complete=False,
        fingerprint_changed=True,
        max_deletes=0,
        max_delete_ratio=0.0,
    )
    verdict = guard(make_plan(deletes=0, owned=0), bad)
    assert verdict == GuardVerdict(deletes_allowed=True, reasons=(), withheld=())
    assert not verdict.tripped


def test_failed_source_read_withholds() -> None:
    p = make_plan(deletes=1, owned=100)
    assert_withheld(guard(p, ctx(source_complete=False)), p, [SOURCE_FAILED])


@pytest.mark.parametrize(("records", "minimum"), [(0, 1), (4, 5)])
def test_short_source_read_withholds(records: int, minimum: int) -> None:
    p = make_plan(deletes=1, owned=100)
    verdict = guard(p, ctx(source_records=records, min_source_records=minimum))
    assert_withheld(verdict, p, [too_few(records, minimum)])


def test_source_read_at_the_minimum_is_enough() -> None:
    verdict = guard(make_plan(deletes=1, owned=100), ctx(source_records=5, min_source_records=5))
    assert verdict.deletes_allowed


def test_unstable_remote_listing_withholds() -> None:
    p = make_plan(deletes=1, owned=100)
    assert_withheld(guard(p, ctx(remote_complete=False)), p, [REMOTE_UNSTABLE])


def test_changed_fingerprint_withholds_outside_a_full_resync() -> None:
    p = make_plan(deletes=3, owned=100)
    assert_withheld(guard(p, ctx(fingerprint_changed=True)), p, [fingerprint(3)])


def test_changed_fingerprint_is_confirmed_by_a_full_resync() -> None:
    verdict = guard(make_plan(deletes=3, owned=100), ctx(fingerprint_changed=True, mode=Mode.FULL))
    assert verdict.deletes_allowed


def test_absolute_limit_withholds_one_over() -> None:
    p = make_plan(deletes=6, owned=1000)
    assert guard(make_plan(deletes=5, owned=1000), ctx(max_deletes=5)).deletes_allowed
    assert_withheld(guard(p, ctx(max_deletes=5)), p, [too_many(6, 5)])


def test_ratio_limit_withholds_one_over() -> None:
    assert guard(make_plan(deletes=3, owned=30), ctx(max_delete_ratio=0.1)).deletes_allowed
    p = make_plan(deletes=4, owned=30)
    assert_withheld(guard(p, ctx(max_delete_ratio=0.1)), p, [too_large_share(4, 30, "0.1", "3")])


def test_ratio_limit_is_not_tripped_by_float_rounding() -> None:
    # 0.57 * 100 == 56.99999999999999 in binary floating point.
    assert guard(make_plan(deletes=57, owned=100), ctx(max_delete_ratio=0.57)).deletes_allowed


def test_any_delete_exceeds_the_ratio_when_nothing_is_owned() -> None:
    p = make_plan(deletes=1, owned=0)
    assert_withheld(guard(p, ctx()), p, [too_large_share(1, 0, "0.1", "0")])


def test_force_delete_lifts_count_and_ratio() -> None:
    p = make_plan(deletes=50, owned=60)
    assert_withheld(
        guard(p, ctx(max_deletes=10)),
        p,
        [too_many(50, 10), too_large_share(50, 60, "0.1", "6")],
    )
    assert guard(p, ctx(max_deletes=10, force_delete=True)) == GuardVerdict(True)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"source_complete": False}, SOURCE_FAILED),
        ({"source_records": 0}, too_few(0, 1)),
        ({"remote_complete": False}, REMOTE_UNSTABLE),
        ({"fingerprint_changed": True}, fingerprint(50)),
    ],
)
def test_force_delete_does_not_lift_safety_triggers(
    overrides: dict[str, object], reason: str
) -> None:
    p = make_plan(deletes=50, owned=60)
    assert_withheld(guard(p, ctx(force_delete=True, **overrides)), p, [reason])


def test_every_applicable_reason_is_listed_in_order() -> None:
    p = make_plan(deletes=20, owned=40)
    verdict = guard(
        p,
        ctx(
            source_complete=False,
            source_records=0,
            remote_complete=False,
            fingerprint_changed=True,
            max_deletes=10,
            max_delete_ratio=0.25,
        ),
    )
    assert_withheld(
        verdict,
        p,
        [
            SOURCE_FAILED,
            too_few(0, 1),
            REMOTE_UNSTABLE,
            fingerprint(20),
            too_many(20, 10),
            too_large_share(20, 40, "0.25", "10"),
        ],
    )


def test_withhold_deletes_drops_only_deletes_when_refused() -> None:
    p = make_plan(deletes=3, owned=3, creates=2)
    verdict = guard(p, ctx(remote_complete=False))
    kept = withhold_deletes(p, verdict)
    assert kept.deletes == ()
    assert kept.changes == p.writes
    assert len(kept.changes) == 2
    assert kept.mirror_updates == p.mirror_updates
    assert (kept.mode, kept.owned, kept.noop, kept.drift) == (p.mode, p.owned, p.noop, p.drift)


def test_withhold_deletes_keeps_plan_when_allowed() -> None:
    p = make_plan(deletes=1, owned=100)
    verdict = guard(p, ctx())
    assert withhold_deletes(p, verdict) is p

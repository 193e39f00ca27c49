"""The quiet tick's pure parts (vipexsync/sync/quiet.py) and the config fast path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from vipexsync.config import _normalise_database_url, _plain_sqlite_url
from vipexsync.sync import quiet
from vipexsync.sync.report import Outcome, RejectionGroup, RunReport

HELD = quiet.StoredQuiet(
    mapping_fingerprint="fp",
    had_full_resync=True,
    mirror_generation=5,
    quiet_key="k",
    quiet_generation=5,
    quiet_report="{}",
)

QUIET_RUN = RunReport(
    job="crm",
    mode="incremental",
    dry_run=False,
    outcome=Outcome.SUCCESS,
    run_id=9,
    planned={"create": 0, "update": 0, "adopt": 0, "delete": 0, "noop": 4},
    rejections=(RejectionGroup("invalid_phone", 2, ("a", "b"), True),),
    source_records=6,
    desired=4,
    mirror=4,
    kept=1,
    key_rules={"": 5, "row digest": 1},
)


def test_the_key_holds_only_for_the_same_key_generation_and_fingerprint() -> None:
    assert quiet.key_holds(HELD, "k", "fp")
    assert not quiet.key_holds(HELD, None, "fp")
    assert not quiet.key_holds(HELD, "other", "fp")
    assert not quiet.key_holds(HELD, "k", "changed mapping")
    assert not quiet.key_holds(replace(HELD, mirror_generation=6), "k", "fp")
    assert not quiet.key_holds(replace(HELD, quiet_generation=None), "k", "fp")
    assert not quiet.key_holds(replace(HELD, had_full_resync=False), "k", "fp")
    assert not quiet.key_holds(replace(HELD, quiet_report=None), "k", "fp")


def quiet_run(**changes: object) -> bool:
    return quiet.nothing_to_do(
        replace(QUIET_RUN, **changes),  # type: ignore[arg-type]
        mirror_updates=0,
        source_complete=True,
        fingerprint_changed=False,
    )


def test_only_a_run_that_did_nothing_stores_a_key() -> None:
    assert quiet_run()
    assert not quiet_run(mode="full")
    assert not quiet_run(dry_run=True)
    assert not quiet_run(outcome=Outcome.GUARDED)
    assert not quiet_run(outcome=Outcome.FAILURE)
    assert not quiet_run(error="x")
    for action in ("create", "update", "adopt", "delete"):
        assert not quiet_run(planned={**QUIET_RUN.planned, action: 1}), action
    assert not quiet_run(applied={"update": 1})
    assert not quiet_run(failed={"create": 1})
    assert not quiet_run(not_attempted=1)
    assert not quiet_run(withheld_deletes=1)
    assert not quiet_run(guard_reasons=("max_deletes",))
    assert not quiet_run(lookups=1)
    assert not quiet_run(unchecked=1)
    assert not quiet_run(deferred_deletes=1)
    assert not quiet_run(entry_reads=1)
    for flag in ({"mirror_updates": 1}, {"source_complete": False}, {"fingerprint_changed": True}):
        facts = {"mirror_updates": 0, "source_complete": True, "fingerprint_changed": False}
        assert not quiet.nothing_to_do(QUIET_RUN, **{**facts, **flag}), flag  # type: ignore[arg-type]


def test_a_quiet_tick_reports_what_the_stored_run_reported() -> None:
    report = quiet.quiet_report(quiet.summary(QUIET_RUN), job="crm", run_id=12)
    assert report.run_id == 12
    assert report.unchanged_since == 9
    for name in (
        "planned",
        "rejections",
        "source_records",
        "desired",
        "mirror",
        "kept",
        "key_rules",
        "outcome",
        "mode",
    ):
        assert getattr(report, name) == getattr(QUIET_RUN, name), name
    assert list(report.planned) == list(QUIET_RUN.planned)  # the same order in the text


def test_every_part_of_the_key_counts() -> None:
    base = {"source": "s", "config": "c", "fields": "f"}
    key = quiet.quiet_key(**base)
    assert key == quiet.quiet_key(**base)
    for part in base:
        assert quiet.quiet_key(**{**base, part: "x"}) != key, part


PLAIN = (
    "sqlite:///mirror.sqlite3",
    "sqlite:///sub/dir/m.db",
    "sqlite:////var/lib/vipexsync/mirror.sqlite3",
)


@pytest.mark.parametrize(
    "url",
    [
        *PLAIN,
        "sqlite:////tmp/a b/m.db",
        "sqlite:///~/m.db",
        "sqlite:///:memory:",
        "sqlite://",
        "sqlite:////tmp/m.db?timeout=3",
        "postgresql://u@h/db",
    ],
)
def test_the_plain_sqlite_fast_path_equals_the_sqlalchemy_path(url: str, tmp_path: Path) -> None:
    plain = _plain_sqlite_url(url, tmp_path)
    assert (plain is not None) == (url in PLAIN)
    if plain is None:
        return  # the SQLAlchemy path decides
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    resolved = Path(parsed.database or "")
    resolved = resolved if resolved.is_absolute() else tmp_path / resolved
    assert plain == parsed.set(database=str(resolved)).render_as_string(hide_password=False)
    assert _normalise_database_url(url, tmp_path) == (plain, None)

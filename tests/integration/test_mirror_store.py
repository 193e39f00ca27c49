"""The mirror store against real databases: SQLite files and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from vipexsync.domain import Entry, MirrorEntry, WriteState
from vipexsync.errors import MirrorError
from vipexsync.mirror import store
from vipexsync.mirror.database import create_engine_for, make_session_factory, upgrade
from vipexsync.mirror.models import MirrorEntryRow as M

JOB = "crm"
T0 = datetime(2024, 5, 1, 8, 30, 15, 123456, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine_for(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def entry(number: str = "3619996000", name: str = "Kiss Péter", **kw: object) -> Entry:
    return Entry(phonenumber=number, name=name, **kw)  # type: ignore[arg-type]


def applied(
    s: Session, e: Entry, *, now: datetime = T0, action: str = "create", key: str | None = "K1"
) -> None:
    store.record_applied(
        s,
        job=JOB,
        run_id=None,
        action=action,
        phonenumber=e.phonenumber,
        before=None,
        written=e,
        record_key=key,
        reason="new in CRM",
        now=now,
    )


def failed(
    s: Session,
    number: str,
    *,
    action: str,
    after: Entry | None = None,
    error: str = "VIPeX refused: bad name",
    now: datetime = T0,
) -> None:
    store.record_failed(
        s,
        job=JOB,
        run_id=None,
        action=action,
        phonenumber=number,
        before=None,
        after=after,
        reason="retry",
        error=error,
        now=now,
    )


def mirror_row(s: Session, number: str) -> sa.Row[Any]:
    return s.execute(
        sa.select(M.first_written_at, M.last_written_at, M.last_seen_at, M.content_hash).where(
            M.job == JOB, M.phonenumber == number
        )
    ).one()


def test_empty_mirror_loads_empty(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        assert store.load_mirror(s, JOB) == {}
        assert store.mirror_stats(s, JOB) == store.MirrorStats(0, 0, 0, 0)


@pytest.mark.parametrize(
    "written",
    [
        Entry("3619996000", "Ádám Őz 日本語 ☎", frozenset({"crm-sync", "VIP ügyfél"}), "a, b, c"),
        Entry("3619996001", "", frozenset(), "", {}),
        Entry("3619996002", "Név", frozenset({"x"}), 'quote " and \\ back', {3: "", 17: "é,ő"}),
        Entry("447700900123", "N", custom_fields={1: "one", 10: "ten", 2: "two"}),
    ],
)
def test_load_mirror_round_trips_entries_exactly(
    sessions: sessionmaker[Session], written: Entry
) -> None:
    with sessions() as s:
        applied(s, written, key="rec,1")
        s.commit()
    with sessions() as s:
        mirror = store.load_mirror(s, JOB)
    assert mirror == {
        written.phonenumber: MirrorEntry(
            phonenumber=written.phonenumber,
            written=written,
            owned=True,
            record_key="rec,1",
            state=WriteState.APPLIED,
            attempts=0,
            last_error=None,
        )
    }
    loaded = mirror[written.phonenumber].written
    assert loaded is not None
    assert loaded.content_hash() == written.content_hash()
    assert all(isinstance(k, int) for k in loaded.custom_fields)


def test_update_keeps_first_written_and_record_key(sessions: sessionmaker[Session]) -> None:
    first = entry(name="Old")
    second = entry(name="New", tags=frozenset({"t"}))
    with sessions() as s:
        applied(s, first, now=at(0), key="K1")
        s.commit()
        applied(s, second, now=at(5), action="update", key=None)
        s.commit()
    with sessions() as s:
        row = store.load_mirror(s, JOB)["3619996000"]
        times = mirror_row(s, "3619996000")
    assert row.written == second
    assert row.record_key == "K1"
    assert times.first_written_at == at(0)
    assert times.last_written_at == at(5)
    assert times.content_hash == second.content_hash()


def test_jobs_are_separate(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        applied(s, entry(name="A"))
        store.record_applied(
            s,
            job="other",
            run_id=None,
            action="create",
            phonenumber="3619996000",
            before=None,
            written=entry(name="B"),
            record_key=None,
            reason="r",
            now=T0,
        )
        s.commit()
        assert store.load_mirror(s, JOB)["3619996000"].written == entry(name="A")
        assert store.load_mirror(s, "other")["3619996000"].written == entry(name="B")


def test_failed_create_owns_nothing(
    sessions: sessionmaker[Session],
) -> None:
    """Issue 9 item 1: a refused or unanswered create proves no ownership."""
    wanted = entry()
    with sessions() as s:
        failed(s, wanted.phonenumber, action="create", after=wanted, error="timeout")
        s.commit()
        failed(s, wanted.phonenumber, action="create", after=wanted, error="HTTP 503")
        s.commit()
    with sessions() as s:
        row = store.load_mirror(s, JOB)[wanted.phonenumber]
    assert row == MirrorEntry(
        phonenumber=wanted.phonenumber,
        written=None,
        owned=False,
        record_key=None,
        state=WriteState.FAILED,
        attempts=2,
        last_error="HTTP 503",
    )


def test_failed_update_keeps_the_confirmed_content(sessions: sessionmaker[Session]) -> None:
    confirmed = entry(name="Confirmed", comment="c")
    with sessions() as s:
        applied(s, confirmed, now=at(0), key="K9")
        s.commit()
        failed(s, confirmed.phonenumber, action="update", after=entry(name="Wanted"), now=at(1))
        s.commit()
    with sessions() as s:
        row = store.load_mirror(s, JOB)[confirmed.phonenumber]
        times = mirror_row(s, confirmed.phonenumber)
        trail = store.changes_for(s, JOB, confirmed.phonenumber)
    assert row.written == confirmed
    assert (row.owned, row.record_key, row.state, row.attempts) == (
        True,
        "K9",
        WriteState.FAILED,
        1,
    )
    assert row.last_error == "VIPeX refused: bad name"
    assert times.last_written_at == at(0)
    assert trail[0].outcome == "failed"
    assert trail[0].api_reason == "VIPeX refused: bad name"
    assert trail[0].after == entry(name="Wanted")

    # The next confirmed write clears the failure.
    with sessions() as s:
        applied(s, entry(name="Wanted"), now=at(2), action="update")
        s.commit()
        row = store.load_mirror(s, JOB)[confirmed.phonenumber]
    assert (row.written, row.state, row.attempts, row.last_error) == (
        entry(name="Wanted"),
        WriteState.APPLIED,
        0,
        None,
    )


def test_no_failed_write_gains_ownership(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as s:
        failed(s, "3619996000", action="adopt", after=entry())
        s.commit()
        assert store.load_mirror(s, JOB)["3619996000"].owned is False
        failed(s, "3619996000", action="update", after=entry())
        s.commit()
        assert store.load_mirror(s, JOB)["3619996000"].owned is False
        failed(s, "3619996000", action="create", after=entry())
        s.commit()
        row = store.load_mirror(s, JOB)["3619996000"]
    assert (row.owned, row.attempts, row.written) == (False, 3, None)


def test_failed_delete_keeps_row_and_ownership(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        applied(s, entry())
        failed(s, "3619996000", action="delete", after=None, error="HTTP 500")
        s.commit()
        row = store.load_mirror(s, JOB)["3619996000"]
    assert (row.written, row.owned, row.state, row.last_error) == (
        entry(),
        True,
        WriteState.FAILED,
        "HTTP 500",
    )


def test_delete_forgets_the_row_and_the_trail_explains_it(
    sessions: sessionmaker[Session],
) -> None:
    first, second = entry(name="A"), entry(name="B")
    with sessions() as s:
        run_id = store.start_run(
            s, job=JOB, mode="incremental", dry_run=False, fingerprint="fp", now=at(0)
        )
        applied(s, first, now=at(0))
        store.record_applied(
            s,
            job=JOB,
            run_id=run_id,
            action="update",
            phonenumber=first.phonenumber,
            before=first,
            written=second,
            record_key="K1",
            reason="name changed in CRM",
            now=at(1),
        )
        store.record_deleted(
            s,
            job=JOB,
            run_id=run_id,
            phonenumber=first.phonenumber,
            before=second,
            reason="gone from CRM",
            now=at(2),
        )
        s.commit()
    with sessions() as s:
        assert store.load_mirror(s, JOB) == {}
        trail = store.changes_for(s, JOB, first.phonenumber)
        assert len(store.changes_for(s, JOB, first.phonenumber, limit=1)) == 1
    assert [(c.action, c.outcome, c.reason) for c in trail] == [
        ("delete", "applied", "gone from CRM"),
        ("update", "applied", "name changed in CRM"),
        ("create", "applied", "new in CRM"),
    ]
    assert (trail[0].before, trail[0].after, trail[0].run_id) == (second, None, run_id)
    assert (trail[1].before, trail[1].after) == (first, second)
    assert trail[0].at == at(2)
    assert trail[2].run_id is None


def test_record_confirmed_learns_and_forgets(sessions: sessionmaker[Session]) -> None:
    seen = entry(name="In VIPeX", tags=frozenset({"crm-sync"}))
    with sessions() as s:
        failed(s, seen.phonenumber, action="create", after=seen, now=at(0))
        store.record_confirmed(
            s,
            job=JOB,
            run_id=None,
            phonenumber=seen.phonenumber,
            entry=seen,
            record_key="K7",
            now=at(3),
        )
        s.commit()
    with sessions() as s:
        row = store.load_mirror(s, JOB)[seen.phonenumber]
        times = mirror_row(s, seen.phonenumber)
    assert row == MirrorEntry(seen.phonenumber, seen, True, "K7", WriteState.APPLIED, 0, None)
    assert times.last_seen_at == at(3)
    assert times.last_written_at is None  # nothing was written

    with sessions() as s:
        store.record_confirmed(
            s,
            job=JOB,
            run_id=None,
            phonenumber=seen.phonenumber,
            entry=None,
            record_key=None,
            now=at(4),
        )
        s.commit()
        assert store.load_mirror(s, JOB) == {}
        trail = store.changes_for(s, JOB, seen.phonenumber)
    assert [(c.action, c.before, c.after) for c in trail[:2]] == [
        ("mirror", seen, None),
        ("mirror", None, seen),
    ]


def row(number: str) -> dict[str, object]:
    """A minimal mirror row, for tests that need many of them quickly."""
    return {"job": JOB, "phonenumber": number, "owned": True, "state": "applied", "attempts": 0}


def test_mark_seen_in_chunks(sessions: sessionmaker[Session]) -> None:
    numbers = [f"36199{i:05d}" for i in range(1203)]
    with sessions() as s:
        s.execute(sa.insert(M), [row(number) for number in [*numbers, "3611111111"]])
        s.commit()
        store.mark_seen(s, JOB, iter(numbers), at(9))
        store.mark_seen(s, JOB, [], at(10))
        s.commit()
    with sessions() as s:
        query = sa.select(M.phonenumber, M.last_seen_at).where(M.job == JOB)
        stamped = dict(s.execute(query).tuples().all())
    assert stamped.pop("3611111111") is None
    assert set(stamped.values()) == {at(9)}
    assert len(stamped) == 1203


def test_runs_start_finish_and_list(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        first = store.start_run(
            s, job=JOB, mode="full", dry_run=False, fingerprint="fp1", now=at(0)
        )
        second = store.start_run(
            s, job=JOB, mode="incremental", dry_run=True, fingerprint="fp2", now=at(1)
        )
        store.start_run(s, job="other", mode="full", dry_run=False, fingerprint="x", now=at(2))
        s.commit()
        counts = {"create": 2, "update": 1, "adopt": 0, "delete": 0, "noop": 7, "failed": 1}
        store.finish_run(
            s,
            first,
            outcome="guarded",
            counts=counts,
            guard={"reasons": ["would delete 150 > 100"], "withheld": 150},
            error=None,
            report={"job": JOB, "changes": [{"action": "create", "phonenumber": "36"}]},
            now=at(5),
        )
        s.commit()
        runs = store.last_runs(s, JOB)
        assert [r.id for r in store.last_runs(s, JOB, limit=1)] == [second]
        assert [r.id for r in store.last_runs(s, JOB, mode="full")] == [first]
    assert [r.id for r in runs] == [second, first]
    done = runs[1]
    assert done == store.RunRecord(
        id=first,
        job=JOB,
        mode="full",
        dry_run=False,
        started_at=at(0),
        finished_at=at(5),
        outcome="guarded",
        counts=counts,
        guard={"reasons": ["would delete 150 > 100"], "withheld": 150},
        error=None,
        mapping_fingerprint="fp1",
        report={"job": JOB, "changes": [{"action": "create", "phonenumber": "36"}]},
    )
    assert done.started_at.tzinfo is not None
    assert (runs[0].outcome, runs[0].dry_run, runs[0].finished_at) == ("running", True, None)


def test_finish_unknown_run_and_bad_outcome(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        with pytest.raises(MirrorError, match="no run with id 999"):
            store.finish_run(
                s, 999, outcome="success", counts={}, guard=None, error=None, report=None, now=T0
            )
        with pytest.raises(ValueError, match="running"):
            store.finish_run(
                s, 1, outcome="running", counts={}, guard=None, error=None, report=None, now=T0
            )
        with pytest.raises(ValueError, match="mode"):
            store.start_run(s, job=JOB, mode="weekly", dry_run=False, fingerprint="", now=T0)


def test_mark_interrupted_runs(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        killed = [
            store.start_run(s, job=JOB, mode="full", dry_run=False, fingerprint="f", now=at(i))
            for i in range(2)
        ]
        finished = store.start_run(
            s, job=JOB, mode="incremental", dry_run=False, fingerprint="f", now=at(3)
        )
        store.finish_run(
            s,
            finished,
            outcome="success",
            counts={},
            guard=None,
            error=None,
            report=None,
            now=at(4),
        )
        other = store.start_run(s, job="other", mode="full", dry_run=False, fingerprint="f", now=T0)
        s.commit()
        assert store.mark_interrupted_runs(s, JOB, at(10)) == 2
        s.commit()
        assert store.mark_interrupted_runs(s, JOB, at(11)) == 0
        by_id = {r.id: r for r in store.last_runs(s, JOB)}
        assert store.last_runs(s, "other")[0].id == other
        assert store.last_runs(s, "other")[0].outcome == "running"
    for run_id in killed:
        assert (by_id[run_id].outcome, by_id[run_id].error, by_id[run_id].finished_at) == (
            "failure",
            "interrupted",
            at(10),
        )
    assert (by_id[finished].outcome, by_id[finished].error) == ("success", None)


def test_job_state_defaults_and_partial_upserts(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        assert store.get_job_state(s, JOB) == store.JobState(job=JOB)
        store.set_job_state(s, JOB, mapping_fingerprint="fp1", now=at(0))
        store.set_job_state(s, JOB, last_full_resync_at=at(1), now=at(1))
        s.commit()
        store.set_job_state(s, JOB, last_run_at=at(2))
        s.commit()
        assert store.get_job_state(s, JOB) == store.JobState(
            job=JOB, mapping_fingerprint="fp1", last_full_resync_at=at(1), last_run_at=at(2)
        )
        store.set_job_state(s, JOB, mapping_fingerprint=None, now=at(3))
        s.commit()
        state = store.get_job_state(s, JOB)
    assert state == store.JobState(JOB, None, at(1), at(2))
    with sessions() as s:
        assert store.get_job_state(s, "other") == store.JobState("other")


def test_mirror_stats(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        applied(s, entry("1"))
        applied(s, entry("2"))
        failed(s, "2", action="update", after=entry("2", name="x"))
        failed(s, "3", action="adopt", after=entry("3"))
        failed(s, "4", action="create", after=entry("4"))
        s.execute(sa.update(M).where(M.phonenumber == "1").values(state="pending"))
        applied(s, entry("5"))
        s.commit()
        assert store.mirror_stats(s, JOB) == store.MirrorStats(
            entries=5,
            owned=3,
            pending=1,
            failed=3,  # a failed create owns nothing
        )


def test_each_committed_change_survives_a_later_rollback(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as s:
        applied(s, entry("1"))
        s.commit()
        applied(s, entry("2"))
        store.record_deleted(
            s, job=JOB, run_id=None, phonenumber="1", before=None, reason="r", now=T0
        )
        s.rollback()
        applied(s, entry("3"))
        s.commit()
    with sessions() as s:
        assert set(store.load_mirror(s, JOB)) == {"1", "3"}
        assert [c.action for c in store.changes_for(s, JOB, "1")] == ["create"]
        assert store.changes_for(s, JOB, "2") == []


def test_timestamps_are_stored_as_utc_and_naive_ones_refused(
    sessions: sessionmaker[Session],
) -> None:
    budapest = timezone(timedelta(hours=2))
    local = datetime(2024, 5, 1, 10, 0, tzinfo=budapest)
    with sessions() as s:
        store.set_job_state(s, JOB, last_run_at=local, now=local)
        s.commit()
        back = store.get_job_state(s, JOB).last_run_at
        assert back == local
        assert back is not None
        assert back.utcoffset() == timedelta(0)
        assert back.hour == 8
        with pytest.raises(MirrorError, match="naive"):
            store.set_job_state(s, JOB, last_run_at=datetime(2024, 5, 1), now=T0)


def test_mismatched_entry_number_and_unknown_action_are_refused(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as s:
        with pytest.raises(ValueError, match="not for the row"):
            store.record_applied(
                s,
                job=JOB,
                run_id=None,
                action="create",
                phonenumber="1",
                before=None,
                written=entry("2"),
                record_key=None,
                reason="r",
                now=T0,
            )
        with pytest.raises(ValueError, match="unknown change action"):
            failed(s, "1", action="mirror2", after=None)


def test_database_errors_become_mirror_errors_naming_the_record(db_url: str) -> None:
    engine = create_engine_for(db_url)  # never migrated: no tables
    try:
        with make_session_factory(engine)() as s:
            with pytest.raises(MirrorError) as caught:
                applied(s, entry("3619996000"))
            message = str(caught.value)
            assert "recording a confirmed write" in message
            assert "'crm'" in message
            assert "'3619996000'" in message
            s.rollback()
            with pytest.raises(MirrorError, match="loading the mirror failed for job 'crm'"):
                store.load_mirror(s, JOB)
    finally:
        engine.dispose()


def test_record_confirmed_many_in_batches(sessions: sessionmaker[Session]) -> None:
    kept = [f"36198{i:05d}" for i in range(700)]
    gone = [f"36197{i:05d}" for i in range(600)]
    with sessions() as s:
        s.execute(sa.insert(M), [row(number) for number in gone])
        applied(s, entry(gone[0], name="Confirmed before"), now=at(0))
        applied(s, entry(kept[0], name="Old"), now=at(0), key="K0")
        s.commit()
        updates: list[tuple[str, Entry | None, str | None]] = [
            (number, entry(number, name=f"N{number}"), None) for number in kept
        ]
        updates += [(number, None, None) for number in gone]
        updates.append((kept[1], entry(kept[1], name="last word"), "K1"))
        assert store.record_confirmed_many(s, job=JOB, run_id=None, updates=updates, now=at(7)) == (
            1300
        )
        s.commit()
    with sessions() as s:
        mirror = store.load_mirror(s, JOB)
        first_trail = store.changes_for(s, JOB, kept[0])
        gone_trail = store.changes_for(s, JOB, gone[0])
        times = mirror_row(s, kept[0])
    assert set(mirror) == set(kept)
    assert mirror[kept[1]].written == entry(kept[1], name="last word")
    assert mirror[kept[1]].record_key == "K1"
    assert mirror[kept[0]].record_key == "K0"  # kept when the update names none
    assert mirror[kept[5]].written == entry(kept[5], name=f"N{kept[5]}")
    assert (first_trail[0].action, first_trail[0].before, first_trail[0].after) == (
        "mirror",
        entry(kept[0], name="Old"),
        entry(kept[0], name=f"N{kept[0]}"),
    )
    assert (gone_trail[0].before, gone_trail[0].after) == (entry(gone[0], "Confirmed before"), None)
    assert (times.first_written_at, times.last_written_at, times.last_seen_at) == (
        at(0),
        at(0),
        at(7),
    )
    with sessions() as s:
        assert store.record_confirmed_many(s, job=JOB, run_id=None, updates=[], now=at(8)) == 0


def test_mark_pending_keeps_confirmed_content_and_a_write_clears_it(
    sessions: sessionmaker[Session],
) -> None:
    confirmed = entry("3611111111", "Régi Név")
    with sessions() as s:
        applied(s, confirmed)
        marked = store.mark_pending_many(
            s,
            job=JOB,
            changes=[
                ("3611111111", "update", "K1"),
                ("3622222222", "create", "K2"),
                ("3633333333", "adopt", "K3"),
            ],
        )
        s.commit()
    assert marked == 3
    with sessions() as s:
        mirror = store.load_mirror(s, JOB)
        assert mirror["3611111111"].state is WriteState.PENDING
        assert mirror["3611111111"].written == confirmed  # nothing claimed before VIPeX confirms
        assert mirror["3622222222"].written is None
        # Nothing is owned before VIPeX confirms it (issue 9 item 1).
        assert not mirror["3622222222"].owned
        assert not mirror["3633333333"].owned
        assert store.mirror_stats(s, JOB).pending == 3

        applied(s, entry("3622222222", "Új"), key="K2")
        s.commit()
        assert store.load_mirror(s, JOB)["3622222222"].state is WriteState.APPLIED
        assert store.mark_pending_many(s, job=JOB, changes=[]) == 0


def test_record_applied_many_leaves_what_one_by_one_leaves(
    sessions: sessionmaker[Session],
) -> None:
    """The runner's batched journal: same rows, same change log, same first-write time.

    Both paths share the statements, so the content is checked outright too.
    """
    old = entry("3619996001", name="Old")
    writes = [
        store.ConfirmedWrite(
            "update", old.phonenumber, old, entry(old.phonenumber), "K1", "r1", at(5)
        ),
        store.ConfirmedWrite("create", "3619996002", None, entry("3619996002"), "K2", "r2", at(6)),
        store.ConfirmedWrite("adopt", "3619996003", None, entry("3619996003"), None, "r3", at(7)),
    ]
    seen = []
    for batched in (False, True):
        with sessions() as s:
            s.execute(sa.delete(M))
            s.execute(sa.text("DELETE FROM changes"))
            applied(s, old, now=at(0))
            if batched:
                store.record_applied_many(s, job=JOB, run_id=None, writes=writes)
            else:
                for w in writes:
                    store.record_applied(
                        s,
                        job=JOB,
                        run_id=None,
                        action=w.action,
                        phonenumber=w.phonenumber,
                        before=w.before,
                        written=w.written,
                        record_key=w.record_key,
                        reason=w.reason,
                        now=w.at,
                    )
            s.commit()
            mirror = store.load_mirror(s, JOB)
            first = s.execute(
                sa.select(M.phonenumber, M.first_written_at, M.last_written_at).order_by(
                    M.phonenumber
                )
            ).all()
            trail = [
                (c.phonenumber, c.action, c.before, c.after, c.outcome, c.reason, c.at)
                for c in store.change_log(s, jobs=[JOB], limit=10)
            ]
            seen.append((mirror, first, trail))
    assert seen[0] == seen[1]
    mirror, first, trail = seen[1]
    assert mirror[old.phonenumber].written == entry(old.phonenumber)
    number, first_at, last_at = first[0]
    assert number == old.phonenumber
    assert first_at.replace(tzinfo=None) == at(0).replace(tzinfo=None)
    assert last_at.replace(tzinfo=None) == at(5).replace(tzinfo=None)
    assert mirror["3619996003"].record_key is None
    assert [t[0] for t in trail] == [
        "3619996003",
        "3619996002",
        "3619996001",
        "3619996001",
    ]
    assert trail[1][2:] == (None, entry("3619996002"), "applied", "r2", at(6))
    assert trail[2][1:] == ("update", old, entry(old.phonenumber), "applied", "r1", at(5))

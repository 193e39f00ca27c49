"""The memory savings of a run share objects but never change a value.

load_mirror(desired=...) and RemoteRows reuse the desired entries' objects
where the content is equal; these tests pin that the views stay equal to the
unshared ones (on SQLite and PostgreSQL) and that the sharing really happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from vipexsync.domain import DesiredEntry, Entry, WriteState
from vipexsync.mirror import store
from vipexsync.mirror.database import create_engine_for, make_session_factory, upgrade
from vipexsync.sync.runner import RemoteRows, remote_entry
from vipexsync.vipex.models import CustomFieldValue, PhonebookEntry

JOB = "crm"
T0 = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine: Engine = create_engine_for(db_url)
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def _entry(number: str, comment: str = "Cég", fields: dict[int, str] | None = None) -> Entry:
    return Entry(
        phonenumber=number,
        name=f"Név {number[-2:]}",
        tags=frozenset({"crm-sync", "ugyfel"}),
        comment=comment,
        custom_fields={7: number[-4:]} if fields is None else fields,
    )


def test_load_mirror_shares_equal_desired_entries(sessions: sessionmaker[Session]) -> None:
    same, changed, failed, no_fields = "3620000001", "3620000002", "3620000003", "3620000004"
    with sessions() as s:
        store.record_applied(
            s, job=JOB, run_id=None, action="create", phonenumber=same, before=None,
            written=_entry(same), record_key="1", reason="new", now=T0,
        )  # fmt: skip
        store.record_applied(
            s, job=JOB, run_id=None, action="create", phonenumber=changed, before=None,
            written=_entry(changed), record_key="2", reason="new", now=T0,
        )  # fmt: skip
        store.record_applied(
            s, job=JOB, run_id=None, action="create", phonenumber=no_fields, before=None,
            written=_entry(no_fields, fields={}), record_key="4", reason="new", now=T0,
        )  # fmt: skip
        store.record_failed(
            s, job=JOB, run_id=None, action="create", phonenumber=failed, before=None,
            after=_entry(failed), reason="new", error="boom", now=T0,
        )  # fmt: skip
        s.commit()
        desired = {
            same: DesiredEntry(_entry(same), "1"),
            changed: DesiredEntry(_entry(changed, comment="Új cég"), "2"),
            failed: DesiredEntry(_entry(failed), "3"),
        }
        plain = store.load_mirror(s, JOB)
        shared = store.load_mirror(s, JOB, desired=desired)

    assert shared == plain  # the same values, whatever is shared
    assert shared[same].written is desired[same].entry
    assert shared[same].record_key is desired[same].record_key
    assert shared[changed].written == _entry(changed)
    assert shared[changed].written is not desired[changed].entry
    assert shared[failed].written is None
    assert shared[failed].state is WriteState.FAILED
    assert shared[no_fields].written == _entry(no_fields, fields={})
    assert dict(shared[no_fields].written.custom_fields) == {}  # type: ignore[union-attr]
    # rows not shared with desired still share one frozenset per distinct tag set
    assert shared[changed].written.tags is shared[no_fields].written.tags  # type: ignore[union-attr]


def _listed(number: str, comment: str = "Cég") -> PhonebookEntry:
    return PhonebookEntry(
        phonenumber=number,
        name=f"Név {number[-2:]}",
        tags=("crm-sync", "ugyfel"),
        comment=comment,
        custom_field_options=(
            CustomFieldValue(7, number[-4:]),
            CustomFieldValue(9, "not mapped"),
        ),
    )


def test_remote_entries_equal_the_plain_view_and_share_desired() -> None:
    listed = [_listed("3620000001"), _listed("3620000002", "Kézzel"), _listed("3620000003")]
    desired = {
        "3620000001": DesiredEntry(_entry("3620000001"), "1"),
        "3620000002": DesiredEntry(_entry("3620000002"), "2"),
    }
    ids = frozenset({7})
    convert = RemoteRows(ids, desired)  # the converter a full resync's scan uses
    view = {e.phonenumber: convert(e) for e in listed}
    assert view == {e.phonenumber: remote_entry(e, ids) for e in listed}
    assert view["3620000001"] is desired["3620000001"].entry
    assert view["3620000002"] is not desired["3620000002"].entry
    assert view["3620000002"].tags is view["3620000003"].tags


def test_the_mirror_view_reads_every_row_as_the_plain_load(
    sessions: sessionmaker[Session],
) -> None:
    numbers = [f"362000010{i}" for i in range(7)]
    clean, pending, other_key, failed_before, not_desired, also_clean, extra = numbers
    with sessions() as s:
        for i, number in enumerate(numbers[:6]):
            store.record_applied(
                s, job=JOB, run_id=None, action="create", phonenumber=number, before=None,
                written=_entry(number), record_key=str(i), reason="new", now=T0,
            )  # fmt: skip
        store.mark_pending_many(s, job=JOB, changes=[(pending, "update", "1")])
        store.record_failed(
            s, job=JOB, run_id=None, action="update", phonenumber=failed_before, before=None,
            after=_entry(failed_before), reason="x", error="refused", now=T0, record_key="3",
        )  # fmt: skip
        s.commit()
        desired = {
            clean: DesiredEntry(_entry(clean), "0"),
            pending: DesiredEntry(_entry(pending), "1"),
            other_key: DesiredEntry(_entry(other_key), "another record"),
            failed_before: DesiredEntry(_entry(failed_before), "3"),
            also_clean: DesiredEntry(_entry(also_clean), "5"),
            extra: DesiredEntry(_entry(extra), "6"),  # no row at all
        }
        plain = store.load_mirror(s, JOB)
        view = store.load_mirror(s, JOB, desired=desired)

    assert isinstance(plain, dict)
    assert view == plain
    assert dict(view.items()) == plain
    assert len(view) == len(plain) == 6
    assert sorted(view) == sorted(plain)
    for number in numbers:
        assert (number in view) == (number in plain)
        assert view.get(number) == plain.get(number)
    assert view.get(extra, "none") == "none"
    with pytest.raises(KeyError):
        view[extra]
    assert view[clean].written is desired[clean].entry
    assert view[pending].state is WriteState.PENDING
    assert view[other_key].record_key == str(numbers.index(other_key))
    assert view[failed_before].attempts == 1
    assert view[not_desired] == plain[not_desired]

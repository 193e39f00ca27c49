"""One test per planning decision: incremental and full resync."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest

from vipexsync.config import DeletePolicy
from vipexsync.domain import DesiredEntry, Entry, MirrorEntry, WriteState
from vipexsync.sync.model import Action, Change, MirrorUpdate, Mode, Plan, Policy, RemoteView
from vipexsync.sync.plan import (
    REASON_ADOPT,
    REASON_FORGET_UNCONFIRMED,
    changed_fields,
    confirm_listing,
    effective_mode,
    full_resync_done,
    lookups_needed,
    plan,
    same_content,
)

TAG = "crm-sync"


def entry(
    number: str,
    name: str = "Kiss Anna",
    tags: Iterable[str] = (TAG,),
    comment: str = "",
    fields: Mapping[int, str] | None = None,
) -> Entry:
    return Entry(number, name, frozenset(tags), comment, dict(fields or {}))


def want(e: Entry, key: str | None = None) -> DesiredEntry:
    return DesiredEntry(e, key or f"k{e.phonenumber}")


def row(
    number: str,
    written: Entry | None,
    *,
    owned: bool = True,
    key: str | None = None,
    state: WriteState = WriteState.APPLIED,
) -> MirrorEntry:
    return MirrorEntry(number, written, owned, key or f"k{number}", state)


def desired_of(*items: DesiredEntry) -> dict[str, DesiredEntry]:
    return {d.entry.phonenumber: d for d in items}


def mirror_of(*rows: MirrorEntry) -> dict[str, MirrorEntry]:
    return {r.phonenumber: r for r in rows}


def remote_of(*entries: Entry, complete: bool = True) -> RemoteView:
    return RemoteView({e.phonenumber: e for e in entries}, complete)


def policy(delete: DeletePolicy = "owned", tag: str = TAG) -> Policy:
    return Policy(delete=delete, ownership_tag=tag, managed_field_ids=frozenset({1, 2}))


def only(p: Plan) -> Change:
    assert len(p.changes) == 1, p.changes
    return p.changes[0]


A, B, C = "3611111111", "3622222222", "3633333333"


# --- same_content ----------------------------------------------------------


def test_same_content_compares_name_comment_tags_and_desired_fields() -> None:
    base = entry(A, fields={1: "x"})
    assert same_content(base, entry(A, fields={1: "x"}))
    assert not same_content(base, entry(A, name="Other", fields={1: "x"}))
    assert not same_content(base, entry(A, comment="c", fields={1: "x"}))
    assert not same_content(base, entry(A, tags=(TAG, "vip"), fields={1: "x"}))
    assert not same_content(base, entry(A, fields={1: "y"}))


def test_same_content_tags_are_sets() -> None:
    assert same_content(entry(A, tags=["b", "a", "a"]), entry(A, tags=["a", "b"]))


def test_same_content_ignores_fields_desired_does_not_carry() -> None:
    assert same_content(entry(A, fields={1: "x"}), entry(A, fields={1: "x", 99: "junk"}))


def test_same_content_missing_field_counts_as_empty() -> None:
    assert same_content(entry(A, fields={1: ""}), entry(A))
    assert not same_content(entry(A, fields={1: "x"}), entry(A))


def test_same_content_ignores_phone_number() -> None:
    assert same_content(entry(A), entry(B))


def test_changed_fields_names_each_field() -> None:
    got = changed_fields(
        entry(A, name="N", comment="c", tags=["t"], fields={1: "x", 2: "y"}),
        entry(A, fields={2: "y"}),
    )
    assert got == ["name", "comment", "tags", "custom field 1"]


# --- incremental -------------------------------------------------------------


def test_incremental_new_in_crm_is_created_once_looked_up() -> None:
    d = want(entry(A))
    assert lookups_needed(desired_of(d), {}, None) == (A,)
    p = plan(desired_of(d), {}, None, policy(), lookups={A: None})
    assert p.mode is Mode.INCREMENTAL
    assert only(p) == Change(Action.CREATE, A, None, d.entry, "new in CRM", d.record_key)


def test_incremental_create_without_a_look_records_before_as_unknown() -> None:
    # Issue 9 item 12: a create sent blind says so; it never claims VIPeX held nothing.
    d = want(entry(A))
    change = only(plan(desired_of(d), {}, None, policy()))
    assert change.action is Action.CREATE
    assert change.before is None
    assert not change.before_known
    assert "not looked at" in change.reason


def test_incremental_create_over_a_hand_made_entry_is_an_adoption() -> None:
    # Issue 9 item 12: the look-up shows what the create would overwrite.
    d = want(entry(A))
    hand = entry(A, name="Pizzéria", tags=["ebéd"])
    change = only(plan(desired_of(d), {}, None, policy(), lookups={A: hand}))
    assert change == Change(Action.ADOPT, A, hand, d.entry, REASON_ADOPT, d.record_key)


def test_incremental_failed_look_up_writes_nothing() -> None:
    d = want(entry(A))
    p = plan(desired_of(d), {}, None, policy(), lookups={})
    assert p.changes == ()
    assert p.unchecked == (A,)


def test_incremental_unconfirmed_create_is_retried() -> None:
    d = want(entry(A))
    mirror = mirror_of(row(A, None, owned=False, state=WriteState.FAILED))
    p = plan(desired_of(d), mirror, None, policy(), lookups={A: None})
    assert only(p) == Change(
        Action.CREATE, A, None, d.entry, "retrying a create that was not confirmed", d.record_key
    )


def test_incremental_crm_change_is_an_update_naming_the_fields() -> None:
    old = entry(A, name="Old", tags=[TAG])
    d = want(entry(A, name="New", tags=[TAG, "vip"]))
    p = plan(desired_of(d), mirror_of(row(A, old)), None, policy())
    assert only(p) == Change(
        Action.UPDATE, A, old, d.entry, "name, tags changed in CRM", d.record_key
    )


def test_incremental_failed_update_is_retried_against_what_vipex_holds() -> None:
    old = entry(A, name="Old")
    d = want(entry(A, name="New"))
    m = row(A, old, state=WriteState.FAILED)
    assert lookups_needed(desired_of(d), mirror_of(m), None) == (A,)
    change = only(plan(desired_of(d), mirror_of(m), None, policy(), lookups={A: old}))
    assert change.action is Action.UPDATE
    assert change.before == old
    assert change.reason == "name changed in CRM"


def test_incremental_equal_is_noop_without_mirror_update() -> None:
    d = want(entry(A, fields={1: "x"}))
    p = plan(desired_of(d), mirror_of(row(A, d.entry)), None, policy())
    assert p.changes == ()
    assert p.noop == 1
    assert p.mirror_updates == ()
    assert p.counts() == {"create": 0, "update": 0, "adopt": 0, "delete": 0, "noop": 1}


@pytest.mark.parametrize("state", [WriteState.FAILED, WriteState.PENDING])
def test_incremental_equal_but_not_applied_is_confirmed_by_a_look_up(state: WriteState) -> None:
    d = want(entry(A))
    p = plan(
        desired_of(d), mirror_of(row(A, d.entry, state=state)), None, policy(), lookups={A: d.entry}
    )
    assert p.changes == ()
    assert p.noop == 1
    assert p.mirror_updates == (MirrorUpdate(A, d.entry, d.record_key),)


@pytest.mark.parametrize("state", [WriteState.FAILED, WriteState.PENDING])
def test_incremental_pending_row_is_never_a_noop(state: WriteState) -> None:
    """Issue 9 item 7: a write lost to a kill is not trusted later.

    The mirror confirmed A, the killed run sent B (which VIPeX now holds), and
    the CRM went back to A: the CRM matches the old content, but VIPeX's is
    unknown, so the entry is re-sent (blind) or decided on what a look-up shows.
    """
    d = want(entry(A))
    m = mirror_of(row(A, d.entry, state=state))
    blind = only(plan(desired_of(d), m, None, policy()))
    assert (blind.action, blind.after, blind.before_known) == (Action.UPDATE, d.entry, False)
    landed = entry(A, name="Sent by the killed run")
    looked = only(plan(desired_of(d), m, None, policy(), lookups={A: landed}))
    assert (looked.action, looked.before, looked.after) == (Action.UPDATE, landed, d.entry)


def test_incremental_equal_with_new_record_key_updates_mirror_only() -> None:
    d = want(entry(A), key="new-key")
    p = plan(desired_of(d), mirror_of(row(A, d.entry, key="old-key")), None, policy())
    assert p.changes == ()
    assert p.mirror_updates == (MirrorUpdate(A, d.entry, "new-key"),)


@pytest.mark.parametrize("delete", ["owned", "all"])
def test_incremental_owned_row_not_desired_is_deleted(delete: DeletePolicy) -> None:
    old = entry(A)
    p = plan({}, mirror_of(row(A, old)), None, policy(delete))
    assert only(p) == Change(Action.DELETE, A, old, None, "no longer in CRM", "k" + A)


@pytest.mark.parametrize("state", [WriteState.FAILED, WriteState.PENDING])
@pytest.mark.parametrize("full", [False, True])
def test_unconfirmed_create_never_justifies_a_delete(state: WriteState, full: bool) -> None:
    """Issue 9 item 1: a refused or never-sent create owns nothing.

    Even a row marked owned (as older versions left it) proves nothing without
    a confirmed write; a hand-made entry at that number stays.
    """
    hand = entry(A, name="Hand-made", tags=["ebéd"])
    mirror = mirror_of(row(A, None, owned=True, state=state))
    p = plan({}, mirror, remote_of(hand) if full else None, policy())
    assert p.deletes == ()
    if full:
        # The complete listing shows an entry without this job's tag: not ours.
        assert p.mirror_updates == (MirrorUpdate(A, None, "k" + A, REASON_FORGET_UNCONFIRMED),)
    else:
        # Without a listing nobody knows whether the write landed: the row stays.
        assert p.mirror_updates == ()
    assert p.owned == 0


@pytest.mark.parametrize("state", [WriteState.FAILED, WriteState.PENDING])
def test_unconfirmed_row_keeps_its_record_until_a_complete_listing_settles_it(
    state: WriteState,
) -> None:
    """A create that landed unanswered left a tagged entry only its row attributes.

    Record kA moved from A to B (B's create unanswered), then to C. The
    incremental run keeps B's row; the full resync then deletes the tagged
    entry at B only once C's create is confirmed, like the entry at A.
    """
    old = entry(A)
    mirror = mirror_of(row(A, old), row(B, None, state=state, key="k" + A))
    desired = desired_of(want(entry(C), "k" + A))
    incremental = plan(desired, mirror, None, policy())
    assert B not in {u.phonenumber for u in incremental.mirror_updates}
    assert [c.phonenumber for c in incremental.deletes] == [A]
    landed = entry(B, name=old.name, tags=list(old.tags))
    full = plan(desired, mirror, remote_of(old, landed), policy())
    deletes = {c.phonenumber: c for c in full.deletes}
    assert set(deletes) == {A, B}
    assert all(c.requires == (C,) for c in deletes.values())
    # A complete listing without B: the row is forgotten, nothing is deleted there.
    settled = plan(desired, mirror, remote_of(old), policy())
    assert MirrorUpdate(B, None, "k" + A, "") in settled.mirror_updates
    assert [c.phonenumber for c in settled.deletes] == [A]


def test_incremental_policy_never_deletes_nothing() -> None:
    p = plan({}, mirror_of(row(A, entry(A)), row(B, None)), None, policy("never"))
    assert p.deletes == ()
    assert p.owned == 1


@pytest.mark.parametrize("delete", ["owned", "all", "never"])
def test_incremental_never_deletes_a_row_it_does_not_own(delete: DeletePolicy) -> None:
    p = plan({}, mirror_of(row(A, entry(A), owned=False)), None, policy(delete))
    assert p.changes == ()
    assert p.owned == 0


def test_incremental_owned_counts_owned_mirror_rows() -> None:
    mirror = mirror_of(row(A, entry(A)), row(B, None), row(C, entry(C), owned=False))
    assert plan({}, mirror, None, policy("never")).owned == 1


def test_number_change_creates_new_before_deleting_old() -> None:
    # CRM record "r1" had number B; now it has number A (sorted before B) and C.
    old = entry(B)
    new = want(entry(A), key="r1")
    p = plan(desired_of(new), mirror_of(row(B, old, key="r1")), None, policy())
    assert [(c.action, c.phonenumber, c.record_key) for c in p.changes] == [
        (Action.CREATE, A, "r1"),
        (Action.DELETE, B, "r1"),
    ]
    # Also when the new number sorts after the old one.
    p = plan(desired_of(want(entry(C), key="r1")), mirror_of(row(B, old, key="r1")), None, policy())
    assert [(c.action, c.phonenumber) for c in p.changes] == [
        (Action.CREATE, C),
        (Action.DELETE, B),
    ]


def test_order_is_creates_then_updates_and_adopts_then_deletes_by_number() -> None:
    numbers = [f"36{i:08d}" for i in range(9)]
    desired = desired_of(
        want(entry(numbers[8])),  # create
        want(entry(numbers[0])),  # create
        want(entry(numbers[5], name="New")),  # update
        want(entry(numbers[3], name="New")),  # adopt (remote, not owned)
        want(entry(numbers[4], name="New")),  # update
    )
    mirror = mirror_of(
        row(numbers[5], entry(numbers[5])),
        row(numbers[4], entry(numbers[4])),
        row(numbers[7], entry(numbers[7])),
        row(numbers[1], entry(numbers[1])),
    )
    remote = remote_of(
        entry(numbers[5]),
        entry(numbers[4]),
        entry(numbers[3], tags=()),
        entry(numbers[7]),
        entry(numbers[1]),
    )
    p = plan(desired, mirror, remote, policy())
    assert [(c.action.value, c.phonenumber[-1]) for c in p.changes] == [
        ("create", "0"),
        ("create", "8"),
        ("adopt", "3"),
        ("update", "4"),
        ("update", "5"),
        ("delete", "1"),
        ("delete", "7"),
    ]
    assert plan(dict(reversed(desired.items())), mirror, remote, policy()) == p


# --- full resync -------------------------------------------------------------


def test_full_missing_remote_new_in_crm_is_created() -> None:
    d = want(entry(A))
    p = plan(desired_of(d), {}, remote_of(), policy())
    assert p.mode is Mode.FULL
    assert only(p) == Change(Action.CREATE, A, None, d.entry, "new in CRM", d.record_key)
    assert p.drift == 0


def test_full_missing_remote_with_confirmed_write_is_drift() -> None:
    d = want(entry(A))
    p = plan(desired_of(d), mirror_of(row(A, d.entry)), remote_of(), policy())
    assert only(p) == Change(
        Action.CREATE, A, None, d.entry, "deleted by hand in VIPeX; recreating", d.record_key
    )
    assert p.drift == 1


def test_full_missing_remote_without_confirmed_write_retries_create() -> None:
    d = want(entry(A))
    p = plan(desired_of(d), mirror_of(row(A, None)), remote_of(), policy())
    assert only(p).reason == "retrying a create that was not confirmed"
    assert p.drift == 0


def test_full_owned_and_equal_is_noop() -> None:
    d = want(entry(A, fields={1: "x"}))
    p = plan(desired_of(d), mirror_of(row(A, d.entry)), remote_of(d.entry), policy())
    assert p.changes == ()
    assert p.noop == 1
    assert p.mirror_updates == ()
    assert p.drift == 0


@pytest.mark.parametrize(
    "mirror_row",
    [
        None,
        row(A, entry(A), owned=False),
        row(A, entry(A, name="Stale")),
        row(A, None, state=WriteState.FAILED),
        row(A, entry(A), state=WriteState.PENDING),
    ],
    ids=["missing", "not-owned", "stale", "unconfirmed", "pending"],
)
def test_full_equal_remote_teaches_the_mirror(mirror_row: MirrorEntry | None) -> None:
    d = want(entry(A))
    mirror = mirror_of(mirror_row) if mirror_row else {}
    p = plan(desired_of(d), mirror, remote_of(entry(A)), policy())
    assert p.changes == ()
    assert p.noop == 1
    assert p.mirror_updates == (MirrorUpdate(A, d.entry, d.record_key),)


def test_full_hand_edit_of_our_write_is_drift_and_repaired() -> None:
    d = want(entry(A, name="Kiss Anna"))
    edited = entry(A, name="Anna (mobile)")
    p = plan(desired_of(d), mirror_of(row(A, d.entry)), remote_of(edited), policy())
    assert only(p) == Change(
        Action.UPDATE,
        A,
        edited,
        d.entry,
        "name edited by hand in VIPeX; restoring the CRM's values",
        d.record_key,
    )
    assert p.drift == 1


def test_full_crm_change_is_an_update_without_drift() -> None:
    old = entry(A, comment="Acme")
    d = want(entry(A, comment="Acme Ltd"))
    p = plan(desired_of(d), mirror_of(row(A, old)), remote_of(old), policy())
    change = only(p)
    assert (change.action, change.before, change.reason) == (
        Action.UPDATE,
        old,
        "comment changed in CRM",
    )
    assert p.drift == 0


def test_full_owned_by_tag_only_differs_from_vipex() -> None:
    d = want(entry(A, name="New", fields={1: "x"}))
    held = entry(A, name="Old")
    change = only(plan(desired_of(d), {}, remote_of(held), policy()))
    assert (change.action, change.before, change.reason) == (
        Action.UPDATE,
        held,
        "name, custom field 1 differ from VIPeX",
    )


def test_full_hand_made_entry_with_crm_number_is_adopted() -> None:
    d = want(entry(A))
    held = entry(A, tags=["vip"])
    p = plan(desired_of(d), {}, remote_of(held), policy())
    assert only(p) == Change(
        Action.ADOPT,
        A,
        held,
        d.entry,
        "hand-made entry with a CRM number; taking it over",
        d.record_key,
    )
    assert p.drift == 0


def test_full_adopt_without_ownership_tag_when_content_differs() -> None:
    d = want(entry(A, name="CRM name", tags=()))
    held = entry(A, name="Hand name", tags=())
    change = only(plan(desired_of(d), {}, remote_of(held), policy(tag="")))
    assert change.action is Action.ADOPT


def test_full_equal_hand_made_entry_without_tag_is_noop_and_learned() -> None:
    d = want(entry(A, tags=["vip"]))
    p = plan(desired_of(d), {}, remote_of(entry(A, tags=["vip"])), policy(tag=""))
    assert p.changes == ()
    assert p.noop == 1
    assert p.mirror_updates == (MirrorUpdate(A, d.entry, d.record_key),)


def test_full_unmanaged_custom_fields_never_cause_a_write() -> None:
    d = want(entry(A, fields={1: "x"}))
    held = entry(A, fields={1: "x", 42: "set by hand"})
    p = plan(desired_of(d), mirror_of(row(A, d.entry)), remote_of(held), policy())
    assert p.changes == ()


def test_full_ownership_rebuilt_from_tags_with_empty_mirror() -> None:
    tagged, hand_made = entry(A), entry(B, tags=["other"])
    p = plan({}, {}, remote_of(tagged, hand_made), policy())
    assert only(p) == Change(Action.DELETE, A, tagged, None, "no longer in CRM", None)
    assert p.owned == 1


def test_full_owned_is_union_of_mirror_and_tags() -> None:
    remote = remote_of(entry(A), entry(B, tags=()), entry(C, tags=()))
    mirror = mirror_of(row(A, entry(A)), row(B, entry(B)), row("3644444444", entry("3644444444")))
    p = plan({}, mirror, remote, policy("never"))
    # A (both), B (mirror), 3644444444 (mirror, vanished); C is hand-made.
    assert p.owned == 3


def test_full_policy_owned_deletes_only_owned() -> None:
    remote = remote_of(entry(A), entry(B, tags=()), entry(C, tags=()))
    mirror = mirror_of(row(B, entry(B, tags=())), row(C, entry(C, tags=()), owned=False))
    p = plan({}, mirror, remote, policy("owned"))
    assert [(c.action, c.phonenumber, c.record_key) for c in p.changes] == [
        (Action.DELETE, A, None),
        (Action.DELETE, B, "k" + B),
    ]


def test_full_policy_all_deletes_every_undesired_remote_entry() -> None:
    hand = entry(B, tags=())
    p = plan(desired_of(want(entry(C))), {}, remote_of(entry(A), hand, entry(C)), policy("all"))
    assert [(c.action, c.phonenumber, c.reason) for c in p.changes] == [
        (Action.DELETE, A, "no longer in CRM"),
        (Action.DELETE, B, "not in CRM and delete = all manages the whole phonebook"),
    ]
    assert p.changes[1].before == hand
    assert p.owned == 3


def test_full_policy_never_deletes_nothing() -> None:
    p = plan({}, mirror_of(row(A, entry(A))), remote_of(entry(A), entry(B)), policy("never"))
    assert p.changes == ()


def test_full_vanished_owned_row_is_forgotten_as_drift() -> None:
    p = plan({}, mirror_of(row(A, entry(A))), remote_of(), policy())
    assert p.changes == ()
    assert p.mirror_updates == (MirrorUpdate(A, None, "k" + A),)
    assert p.drift == 1


@pytest.mark.parametrize(
    "mirror_row",
    [row(A, None, state=WriteState.FAILED), row(A, entry(A), owned=False)],
    ids=["unconfirmed", "not-owned"],
)
def test_full_vanished_row_without_owned_write_is_forgotten_without_drift(
    mirror_row: MirrorEntry,
) -> None:
    p = plan({}, mirror_of(mirror_row), remote_of(), policy())
    assert p.mirror_updates == (MirrorUpdate(A, None, "k" + A),)
    assert p.drift == 0


def test_full_incomplete_listing_forgets_nothing_and_counts_no_drift() -> None:
    d = want(entry(B))
    mirror = mirror_of(row(A, entry(A)), row(B, d.entry))
    p = plan(desired_of(d), mirror, remote_of(complete=False), policy())
    assert p.mirror_updates == ()
    assert p.drift == 0
    # B: the mirror says VIPeX holds it; absence from a partial listing proves nothing.
    assert p.noop == 1
    # A: still planned for deletion (the guard withholds it on an incomplete listing).
    assert [(c.action, c.phonenumber) for c in p.changes] == [(Action.DELETE, A)]


def test_full_incomplete_listing_still_creates_and_updates() -> None:
    d_new, d_changed = want(entry(A)), want(entry(B, name="New"))
    mirror = mirror_of(row(B, entry(B, name="Old")))
    p = plan(desired_of(d_new, d_changed), mirror, remote_of(complete=False), policy())
    assert [(c.action, c.phonenumber) for c in p.changes] == [
        (Action.CREATE, A),
        (Action.UPDATE, B),
    ]


def test_plan_is_deterministic_for_equal_inputs() -> None:
    desired = desired_of(want(entry(B)), want(entry(A, name="N")))
    mirror = mirror_of(row(C, entry(C)), row(A, entry(A)))
    remote = remote_of(entry(C), entry(A, name="hand"))
    first = plan(desired, mirror, remote, policy())
    second = plan(
        dict(reversed(desired.items())),
        dict(reversed(mirror.items())),
        RemoteView(dict(reversed(list(remote.entries.items()))), True),
        policy(),
    )
    assert first == second


def test_effective_mode_lists_vipex_until_a_full_resync_happened() -> None:
    assert effective_mode(Mode.INCREMENTAL, had_full_resync=False) is Mode.FULL
    assert effective_mode(Mode.INCREMENTAL, had_full_resync=True) is Mode.INCREMENTAL
    assert effective_mode(Mode.FULL, had_full_resync=False) is Mode.FULL
    assert effective_mode(Mode.FULL, had_full_resync=True) is Mode.FULL


# --- issue 9: trust under partial failure ---------------------------------------


@pytest.mark.parametrize("full", [False, True])
def test_number_change_delete_requires_the_new_numbers_write(full: bool) -> None:
    """Issue 9 item 3: the old number goes only once the new one is confirmed."""
    old = entry(B)
    new = want(entry(A), key="r1")
    mirror = mirror_of(row(B, old, key="r1"))
    remote = remote_of(old) if full else None
    p = plan(desired_of(new), mirror, remote, policy(), lookups={A: None})
    delete = p.deletes[0]
    assert (delete.phonenumber, delete.requires) == (B, (A,))
    # Once the new number is confirmed in the mirror, the delete requires nothing.
    confirmed = mirror_of(row(B, old, key="r1"), row(A, new.entry, key="r1"))
    remote = remote_of(old, new.entry) if full else None
    p = plan(desired_of(new), confirmed, remote, policy())
    assert [(c.action, c.phonenumber, c.requires) for c in p.changes] == [(Action.DELETE, B, ())]


def test_a_delete_requires_the_new_numbers_in_one_order_whatever_the_input_order() -> None:
    # Found by the determinism property test: `requires` followed dict order.
    old = entry(C)
    news = [want(entry(A), key="r1"), want(entry(B), key="r1")]
    mirror = mirror_of(row(C, old, key="r1"))
    forward = plan(desired_of(*news), mirror, None, policy(), lookups={A: None, B: None})
    backward = plan(desired_of(*news[::-1]), mirror, None, policy(), lookups={B: None, A: None})
    assert forward.deletes[0].requires == backward.deletes[0].requires == (A, B)


def test_number_change_waits_when_the_new_number_cannot_be_written() -> None:
    """Issue 9 item 3: a failed look-up of the new number keeps the old entry."""
    old = entry(B)
    new = want(entry(A), key="r1")
    p = plan(desired_of(new), mirror_of(row(B, old, key="r1")), None, policy(), lookups={})
    assert p.changes == ()
    assert (p.unchecked, p.waiting) == ((A,), (B,))


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("delete", ["owned", "all"])
def test_present_but_rejected_record_keeps_its_entries(full: bool, delete: DeletePolicy) -> None:
    """Issue 9 item 2: a rejected record is not "no longer in CRM"."""
    kept, gone = entry(A), entry(B)
    mirror = mirror_of(row(A, kept, key="r1"), row(B, gone, key="r2"))
    remote = remote_of(kept, gone) if full else None
    p = plan({}, mirror, remote, policy(delete), rejected_keys=frozenset({"r1"}))
    assert [(c.action, c.phonenumber) for c in p.changes] == [(Action.DELETE, B)]
    assert p.kept == (A,)


@pytest.mark.parametrize("delete", ["owned", "all"])
def test_a_rejected_records_number_keeps_an_entry_no_mirror_row_attributes(
    delete: DeletePolicy,
) -> None:
    """After a lost database, a tagged entry has no row saying whose it is: a record
    present but rejected that has its number in the CRM keeps it. An entry the
    mirror attributes to another record is decided by that record."""
    tagged, gone = entry(A), entry(B)
    numbers = frozenset({A, B})
    p = plan({}, {}, remote_of(tagged, gone), policy(delete), rejected_numbers=frozenset({A}))
    assert [(c.action, c.phonenumber) for c in p.changes] == [(Action.DELETE, B)]
    assert p.kept == (A,)
    unattributed = MirrorEntry(B, gone, True, None, WriteState.APPLIED)
    attributed = mirror_of(row(A, tagged, key="r9"), unattributed)
    for remote in (remote_of(tagged, gone), None):
        p = plan({}, attributed, remote, policy(delete), rejected_numbers=numbers)
        assert [c.phonenumber for c in p.changes] == [A], p.changes
        assert p.kept == (B,)


@pytest.mark.parametrize("full", [False, True])
def test_a_rejected_records_number_does_not_change_hands_without_a_write(full: bool) -> None:
    """Invariant 5: another record wanting the same content at a rejected record's number
    takes nothing over, so the number stays kept when that other record leaves the CRM.

    (The state machine found it: r1 rejected, r2 added with r1's very content and
    number, a noop re-attributed the number to r2, r2 removed, the entry deleted.)
    """
    held = entry(A)
    mirror = mirror_of(row(A, held, key="r1"))
    remote = remote_of(held) if full else None
    rejected = frozenset({"r1"})
    p = plan(desired_of(want(held, key="r2")), mirror, remote, policy(), rejected_keys=rejected)
    assert p.changes == ()
    assert all(u.record_key == "r1" for u in p.mirror_updates), p.mirror_updates
    # r2 leaves the CRM while r1 is still present but rejected: A is kept
    p = plan({}, mirror, remote, policy(), rejected_keys=rejected)
    assert (p.changes, p.kept) == ((), (A,))
    # once r1 is valid or gone, a noop for another record does re-attribute the number
    p = plan(desired_of(want(held, key="r2")), mirror, remote, policy())
    assert [u.record_key for u in p.mirror_updates] == ["r2"]


OTHER_TAG = "crm-sync-b"


def two_jobs() -> Policy:
    return Policy("owned", TAG, frozenset({1, 2}), foreign_tags=frozenset({OTHER_TAG}))


def test_entry_tagged_by_another_job_is_never_deleted() -> None:
    """Issue 9 item 4: a tagged entry is owned only by the job whose tag it carries."""
    theirs = entry(A, tags=[OTHER_TAG])
    # Even a mirror row that once owned the number does not outweigh the other job's tag.
    p = plan({}, mirror_of(row(A, entry(A))), remote_of(theirs), two_jobs())
    assert p.changes == ()
    assert p.owned == 0


@pytest.mark.parametrize("full", [False, True])
def test_entry_tagged_by_another_job_is_never_adopted(full: bool) -> None:
    theirs = entry(A, name="Other job's", tags=[OTHER_TAG])
    d = want(entry(A))
    p = plan(
        desired_of(d),
        {},
        remote_of(theirs) if full else None,
        two_jobs(),
        lookups=None if full else {A: theirs},
    )
    assert p.changes == ()
    assert p.conflicts == (A,)


def test_full_owned_row_missing_from_a_complete_listing_is_looked_up() -> None:
    """Issue 9 item 8: forget or recreate a mirror row only after a look-up.

    An unconfirmed row too: an unanswered create's row is the only record of
    which CRM record its tagged entry belongs to.
    """
    mirror = mirror_of(row(A, entry(A)), row(B, entry(B)), row(C, None, owned=False))
    listing = remote_of(entry(B))
    assert lookups_needed({}, mirror, listing) == (A, C)
    assert lookups_needed({}, mirror, remote_of(entry(B), complete=False)) == ()
    # Confirmed gone: the listing stays complete and the row is forgotten.
    assert confirm_listing(listing, (A,), {A: None}) is listing


@pytest.mark.parametrize("looked", ["found", "failed"])
def test_full_look_up_that_finds_a_skipped_row_makes_the_listing_incomplete(looked: str) -> None:
    old = entry(A)
    mirror = mirror_of(row(A, old))
    listing = remote_of(entry(B, tags=[TAG]))
    lookups = {A: old} if looked == "found" else {}
    confirmed = confirm_listing(listing, (A,), lookups)
    assert not confirmed.complete
    assert confirmed.problems
    p = plan({}, mirror, confirmed, policy())
    # Nothing is forgotten; the deletion of B waits for the guard (listing incomplete).
    assert p.mirror_updates == ()
    assert p.drift == 0


def test_full_resync_done_needs_a_stable_complete_listing() -> None:
    """Issue 9 items 6 and 9: what makes a full resync count (and confirm the mapping)."""
    complete, shifted = remote_of(entry(A)), remote_of(entry(A), complete=False)
    assert full_resync_done(Mode.FULL, complete, halted=False)
    assert not full_resync_done(Mode.FULL, shifted, halted=False)
    assert not full_resync_done(Mode.FULL, complete, halted=True)
    assert not full_resync_done(Mode.FULL, complete, halted=False, source_complete=False)
    assert not full_resync_done(Mode.INCREMENTAL, None, halted=False)

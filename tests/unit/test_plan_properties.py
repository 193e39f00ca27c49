"""Property tests of the planner over small, collision-rich worlds.

A tiny pure simulator stands in for apply: it writes the plan into a remote
phonebook (keeping fields nobody mapped) and into the mirror the way apply
journals confirmed writes, so convergence can be checked without I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from vipexsync.config import DeletePolicy
from vipexsync.domain import DesiredEntry, Entry, MirrorEntry, WriteState
from vipexsync.sync.model import Action, Plan, Policy, RemoteView
from vipexsync.sync.plan import plan, same_content

TAG = "crm-sync"
NUMBERS = ("3610000001", "3610000002", "3610000003", "3610000004", "3610000005")
MANAGED = (1, 2)
UNMANAGED = (9,)
POLICIES: tuple[DeletePolicy, ...] = ("owned", "all", "never")

K = TypeVar("K")
V = TypeVar("V")
SETTINGS = settings(max_examples=120, deadline=None)

names = st.sampled_from(["Kiss Anna", "Nagy Béla"])
comments = st.sampled_from(["", "Acme"])
values = st.sampled_from(["", "v", "w"])
other_tags = st.frozensets(st.sampled_from(["vip", "partner"]), max_size=2)


@dataclass(frozen=True)
class World:
    policy: Policy
    desired: dict[str, DesiredEntry]
    mirror: dict[str, MirrorEntry]
    remote: dict[str, Entry]  # what VIPeX really holds, unmanaged fields included


@st.composite
def contents(draw: st.DrawFn, number: str, *, ids: tuple[int, ...], owned_tag: str) -> Entry:
    tags = draw(other_tags)
    if owned_tag:
        tags = tags | {owned_tag}
    fields = draw(st.dictionaries(st.sampled_from(ids), values, max_size=len(ids)))
    return Entry(number, draw(names), tags, draw(comments), fields)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    tag = draw(st.sampled_from([TAG, ""]))
    policy = Policy(draw(st.sampled_from(POLICIES)), tag, frozenset(MANAGED))
    keys = st.sampled_from(["r1", "r2", "r3"])
    desired: dict[str, DesiredEntry] = {}
    mirror: dict[str, MirrorEntry] = {}
    remote: dict[str, Entry] = {}
    for number in draw(st.lists(st.sampled_from(NUMBERS), unique=True)):
        entry = draw(contents(number, ids=MANAGED, owned_tag=tag))
        desired[number] = DesiredEntry(entry, draw(keys))
    for number in draw(st.lists(st.sampled_from(NUMBERS), unique=True)):
        maybe_tag = draw(st.sampled_from([tag, ""]))
        # Often the very content desired, so equal states are common.
        if number in desired and draw(st.booleans()):
            written: Entry | None = desired[number].entry
        else:
            written = draw(st.none() | contents(number, ids=MANAGED, owned_tag=maybe_tag))
        mirror[number] = MirrorEntry(
            number,
            written,
            draw(st.booleans()),
            draw(st.none() | keys),
            draw(st.sampled_from(list(WriteState))),
        )
    for number in draw(st.lists(st.sampled_from(NUMBERS), unique=True)):
        maybe_tag = draw(st.sampled_from([tag, ""]))
        held = draw(contents(number, ids=MANAGED + UNMANAGED, owned_tag=maybe_tag))
        if number in desired and draw(st.booleans()):
            want = desired[number].entry
            extra = draw(st.dictionaries(st.sampled_from(UNMANAGED), values))
            fields = {**want.custom_fields, **extra}
            held = Entry(number, want.name, want.tags, want.comment, fields)
        remote[number] = held
    return World(policy, desired, mirror, remote)


def view(remote: Mapping[str, Entry], *, complete: bool = True) -> RemoteView:
    """The listing as the caller hands it over: custom fields restricted to the managed ids."""
    return RemoteView({n: e.restricted_to(MANAGED) for n, e in remote.items()}, complete)


def apply(p: Plan, remote: dict[str, Entry], mirror: dict[str, MirrorEntry]) -> None:
    """Write ``p`` as apply would when every call succeeds."""
    for change in p.changes:
        number = change.phonenumber
        if change.action is Action.DELETE:
            remote.pop(number, None)
            mirror.pop(number, None)
            continue
        after = change.after
        assert after is not None
        old = remote.get(number)
        fields = {**(old.custom_fields if old else {}), **after.custom_fields}
        remote[number] = Entry(number, after.name, after.tags, after.comment, fields)
        mirror[number] = MirrorEntry(number, after, True, change.record_key)
    for update in p.mirror_updates:
        if update.entry is None:
            mirror.pop(update.phonenumber, None)
        else:
            mirror[update.phonenumber] = MirrorEntry(
                update.phonenumber, update.entry, True, update.record_key
            )


def reversed_dict(d: Mapping[K, V]) -> dict[K, V]:
    return dict(reversed(list(d.items())))


def is_owned(world: World, number: str, *, full: bool) -> bool:
    row = world.mirror.get(number)
    if row is not None and row.owned and row.written is not None:
        return True  # only a confirmed write proves ownership (issue 9 item 1)
    tag = world.policy.ownership_tag
    held = world.remote.get(number)
    return full and bool(tag) and held is not None and tag in held.tags


@SETTINGS
@given(worlds(), st.booleans())
def test_policy_owned_deletes_only_owned_and_writes_only_desired(world: World, full: bool) -> None:
    remote = view(world.remote) if full else None
    p = plan(world.desired, world.mirror, remote, world.policy)
    for change in p.changes:
        if change.action is Action.DELETE:
            assert change.phonenumber not in world.desired
            if world.policy.delete == "owned":
                assert is_owned(world, change.phonenumber, full=full)
        else:
            # Writes touch desired numbers only: never a foreign, undesired entry.
            assert change.phonenumber in world.desired
            assert change.after == world.desired[change.phonenumber].entry
    assert p.noop + len(p.writes) == len(world.desired)


@SETTINGS
@given(worlds())
def test_full_resync_never_writes_an_unchanged_entry(world: World) -> None:
    listing = view(world.remote)
    p = plan(world.desired, world.mirror, listing, world.policy)
    for change in p.writes:
        held = listing.entries.get(change.phonenumber)
        assert change.after is not None
        assert held is None or not same_content(change.after, held)


@SETTINGS
@given(worlds(), st.booleans())
def test_policy_never_deletes_nothing(world: World, full: bool) -> None:
    never = Policy("never", world.policy.ownership_tag, world.policy.managed_field_ids)
    remote = view(world.remote) if full else None
    assert plan(world.desired, world.mirror, remote, never).deletes == ()


@SETTINGS
@given(worlds())
def test_full_resync_converges_in_one_run(world: World) -> None:
    remote, mirror = dict(world.remote), dict(world.mirror)
    apply(plan(world.desired, mirror, view(remote), world.policy), remote, mirror)
    again = plan(world.desired, mirror, view(remote), world.policy)
    assert again.changes == ()
    assert again.drift == 0
    assert again.mirror_updates == ()
    assert again.noop == len(world.desired)


@SETTINGS
@given(worlds(), st.data())
def test_incomplete_listing_then_full_resync_converges(world: World, data: st.DataObject) -> None:
    remote, mirror = dict(world.remote), dict(world.mirror)
    seen = data.draw(st.frozensets(st.sampled_from(NUMBERS)))
    partial = view({n: e for n, e in remote.items() if n in seen}, complete=False)
    first = plan(world.desired, mirror, partial, world.policy)
    # Forgets nothing it ever confirmed (a row without confirmed content owns nothing).
    assert all(
        u.entry is not None or mirror[u.phonenumber].written is None for u in first.mirror_updates
    )
    apply(first, remote, mirror)
    apply(plan(world.desired, mirror, view(remote), world.policy), remote, mirror)
    again = plan(world.desired, mirror, view(remote), world.policy)
    assert (again.changes, again.drift, again.mirror_updates) == ((), 0, ())


@SETTINGS
@given(worlds())
def test_incremental_run_converges_against_the_mirror(world: World) -> None:
    remote, mirror = dict(world.remote), dict(world.mirror)
    apply(plan(world.desired, mirror, None, world.policy), remote, mirror)
    again = plan(world.desired, mirror, None, world.policy)
    assert (again.changes, again.mirror_updates) == ((), ())


@SETTINGS
@given(worlds(), st.booleans())
def test_plan_is_deterministic(world: World, full: bool) -> None:
    listing = view(world.remote) if full else None
    first = plan(world.desired, world.mirror, listing, world.policy)
    assert plan(world.desired, world.mirror, listing, world.policy) == first
    shuffled = RemoteView(reversed_dict(listing.entries), True) if listing else None
    assert (
        plan(reversed_dict(world.desired), reversed_dict(world.mirror), shuffled, world.policy)
        == first
    )

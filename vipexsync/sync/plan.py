"""The pure planner: which writes one run makes, and why.

Three views meet here (see DESIGN.md): the *desired* entries from the CRM, the
*mirror* of what the daemon last confirmed writing, and, on a full resync, the
*remote* listing of what VIPeX holds now. ``plan`` turns them into an ordered
:class:`~vipexsync.sync.model.Plan` without I/O, clock or globals, so every
decision the daemon makes can be tested on plain values.

It is one pass over each mapping (no quadratic work), so 100k entries plan in
a fraction of a second.

A full resync whose listing is incomplete proves nothing about absence: for a
number missing from such a listing the plan falls back to what the mirror says,
as an incremental run would, and it forgets no mirror row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from vipexsync.domain import DesiredEntry, Entry, MirrorEntry, WriteState
from vipexsync.semantics import normal_desired
from vipexsync.sync.model import Action, Change, MirrorUpdate, Mode, Plan, Policy, RemoteView

REASON_NEW = "new in CRM"
REASON_RETRY_CREATE = "retrying a create that was not confirmed"
REASON_RECREATE = "deleted by hand in VIPeX; recreating"
REASON_ADOPT = "hand-made entry with a CRM number; taking it over"
REASON_GONE = "no longer in CRM"
REASON_GONE_ALL = "not in CRM and delete = all manages the whole phonebook"
REASON_RESEND = "re-sending: the outcome of the last write is unknown"
REASON_RESEND_GONE = "re-creating: the last write was not confirmed and VIPeX holds nothing"
REASON_UNCHECKED = "what VIPeX holds was not looked at"
REASON_UNLISTED = "what VIPeX holds is unknown (the listing was incomplete)"
REASON_FORGET_UNCONFIRMED = "no write was ever confirmed and the CRM no longer wants it; forgotten"

_ORDER = {Action.CREATE: 0, Action.UPDATE: 1, Action.ADOPT: 1, Action.DELETE: 2}


def same_content(desired: Entry, current: Entry) -> bool:
    """Whether ``current`` already holds everything ``desired`` manages.

    Only the custom fields the desired entry carries are compared (a missing
    one in ``current`` counts as ``""``), so fields nobody mapped never cause a
    write; tags are sets, and the phone number is the key, not content.
    """
    if (
        desired.name != current.name
        or desired.comment != current.comment
        or desired.tags != current.tags
    ):
        return False
    wanted, held = desired.custom_fields, current.custom_fields
    if wanted == held:  # the common case, at C speed
        return True
    return all(held.get(fid, "") == value for fid, value in wanted.items())


def changed_fields(desired: Entry, current: Entry) -> list[str]:
    """The managed fields in which ``current`` differs from ``desired``, for reasons."""
    fields: list[str] = []
    if desired.name != current.name:
        fields.append("name")
    if desired.comment != current.comment:
        fields.append("comment")
    if desired.tags != current.tags:
        fields.append("tags")
    held = current.custom_fields
    fields.extend(
        f"custom field {fid}"
        for fid, value in sorted(desired.custom_fields.items())
        if held.get(fid, "") != value
    )
    return fields


def _fields_text(desired: Entry, current: Entry) -> str:
    return ", ".join(changed_fields(desired, current)) or "nothing"


def _differ(desired: Entry, current: Entry) -> str:
    """``"name differs"`` or ``"name, tags differ"``: the subject and its verb."""
    fields = changed_fields(desired, current)
    verb = "differs" if len(fields) == 1 else "differ"
    return f"{', '.join(fields)} {verb}"


def _mirror_is_current(
    row: MirrorEntry, want: DesiredEntry, key: str | None, *, owned: bool = False
) -> bool:
    """Whether the mirror row already records ``want`` as applied (and owned, if asked).

    ``key`` is the record the number should be attributed to (see
    :meth:`_Builder.record_key`). Only VIPeX's own word (a listing or a
    look-up) may confirm ownership; a confirmed mirror row just gets a stale
    record key cleared.
    """
    return (
        (row.owned or not owned)
        and row.state is WriteState.APPLIED
        and row.written == want.entry
        and row.record_key == key
    )


def content_known(row: MirrorEntry | None) -> bool:
    """Whether the mirror knows what VIPeX holds for this number.

    Only a row whose last write VIPeX confirmed does: a pending row is a write
    whose outcome nobody saw (a kill in flight), a failed one may have landed
    all the same (a timeout), and a row without confirmed content never held
    anything we know of. Unknown content is looked at or re-sent, never trusted.
    """
    return row is not None and row.written is not None and row.state is WriteState.APPLIED


def owns_row(row: MirrorEntry | None) -> bool:
    """Whether the mirror alone proves ownership: a write VIPeX confirmed.

    A planned, pending, refused or never-sent create leaves a row without
    confirmed content, which proves nothing (DESIGN invariant 2).
    """
    return row is not None and row.owned and row.written is not None


def foreign(held: Entry | None, policy: Policy) -> bool:
    """Whether the VIPeX entry carries another job's ownership tag."""
    return held is not None and not policy.foreign_tags.isdisjoint(held.tags)


def owns(row: MirrorEntry | None, held: Entry | None, policy: Policy) -> bool:
    """Ownership from knowledge only: a confirmed write, or this job's tag seen.

    An entry carrying another job's tag is that job's, whatever the mirror says.
    """
    if foreign(held, policy):
        return False
    if owns_row(row):
        return True
    tag = policy.ownership_tag
    return bool(tag) and held is not None and tag in held.tags


class _Builder:
    """Collects the changes, counters and mirror updates of one plan."""

    def __init__(
        self,
        desired: Mapping[str, DesiredEntry],
        policy: Policy,
        rejected_keys: frozenset[str],
        rejected_numbers: frozenset[str],
    ) -> None:
        self.desired = desired
        self.policy = policy
        self.rejected_keys = rejected_keys
        self.rejected_numbers = rejected_numbers
        self.changes: list[Change] = []
        self.deletes: list[Change] = []  # resolved against the writes in build()
        self.mirror_updates: list[MirrorUpdate] = []
        self.kept: list[str] = []
        self.conflicts: list[str] = []
        self.unchecked: list[str] = []
        self.noop = 0
        self.drift = 0

    def change(
        self,
        action: Action,
        number: str,
        before: Entry | None,
        after: Entry | None,
        reason: str,
        record_key: str | None,
        *,
        before_known: bool = True,
    ) -> None:
        self.changes.append(
            Change(action, number, before, after, reason, record_key, before_known=before_known)
        )

    def delete(
        self, number: str, before: Entry | None, reason: str, record_key: str | None
    ) -> None:
        """Delete ``number`` unless its record is present but rejected this run.

        The record is the one the mirror says the entry was written for; where
        the mirror does not know (a lost database: the entry is owned by its
        tag alone), a record rejected this run that still has the number in
        the CRM counts as its record.
        """
        if (
            record_key in self.rejected_keys
            if record_key is not None
            else number in self.rejected_numbers
        ):
            # Still in the CRM, only unreadable or invalid this run: keep its entries.
            self.kept.append(number)
            return
        self.deletes.append(Change(Action.DELETE, number, before, None, reason, record_key))

    def record_key(self, row: MirrorEntry | None, want: DesiredEntry) -> str | None:
        """The record a number is attributed to when it needs no write.

        A number last written for a record that is present but rejected this
        run stays that record's (DESIGN invariant 5) even when another record
        now wants the same content there: without a write nothing changed
        hands, and the rejected record must not lose its entry when the other
        one later leaves the CRM. A confirmed write for ``want`` does move it.
        """
        if row is not None and row.record_key is not None and row.record_key in self.rejected_keys:
            return row.record_key
        return want.record_key

    def learn(self, number: str, want: DesiredEntry, row: MirrorEntry | None) -> None:
        key = self.record_key(row, want)
        self.mirror_updates.append(MirrorUpdate(number, want.entry, key))

    def forget(self, number: str, row: MirrorEntry, reason: str = "") -> None:
        self.mirror_updates.append(MirrorUpdate(number, None, row.record_key, reason))

    def _resolve_deletes(self) -> tuple[list[Change], list[str]]:
        """Tie each old number's delete to the writes of its record's new numbers.

        A record that is still desired under other numbers changed its number:
        its old entry goes only once VIPeX confirmed the new ones. A new number
        written this run becomes a requirement of the delete (apply skips the
        delete if that write fails); one that cannot be written this run (its
        look-up failed, or another job holds it) keeps the old entry until a
        later run.
        """
        written = {c.phonenumber for c in self.changes}
        blocked = set(self.unchecked) | set(self.conflicts)
        numbers_of: dict[str, list[str]] = {}
        wanted_keys = {d.record_key for d in self.deletes if d.record_key is not None}
        if wanted_keys:
            for number, want in self.desired.items():
                if want.record_key in wanted_keys:
                    numbers_of.setdefault(want.record_key, []).append(number)
        deletes: list[Change] = []
        waiting: list[str] = []
        for change in self.deletes:
            new = numbers_of.get(change.record_key or "", []) if change.record_key else []
            if any(n in blocked for n in new):
                waiting.append(change.phonenumber)
                continue
            requires = tuple(sorted(n for n in new if n in written))
            deletes.append(replace(change, requires=requires) if requires else change)
        return deletes, waiting

    def build(self, mode: Mode, owned: int) -> Plan:
        deletes, waiting = self._resolve_deletes()
        changes = sorted([*self.changes, *deletes], key=lambda c: (_ORDER[c.action], c.phonenumber))
        updates = sorted(self.mirror_updates, key=lambda u: u.phonenumber)
        return Plan(
            mode=mode,
            changes=tuple(changes),
            noop=self.noop,
            drift=self.drift,
            owned=owned,
            mirror_updates=tuple(updates),
            kept=tuple(sorted(self.kept)),
            conflicts=tuple(sorted(self.conflicts)),
            unchecked=tuple(sorted(self.unchecked)),
            waiting=tuple(sorted(waiting)),
        )


# What a look-up of a number found: the entry, or None when VIPeX has none.
Lookups = Mapping[str, Entry | None]


def _from_mirror(
    b: _Builder,
    number: str,
    want: DesiredEntry,
    row: MirrorEntry | None,
    lookups: Lookups | None,
    unknown_reason: str = REASON_UNCHECKED,
) -> None:
    """Decide one desired entry without a listing (incremental rules).

    A row whose content is known is compared with the CRM. Unknown content
    (no confirmed write, or a pending/failed last attempt) is decided against
    what a look-up found; without a look-up it is re-sent, its ``before``
    recorded as unknown; a look-up that failed writes nothing this run.
    """
    target = want.entry
    if row is not None and content_known(row):
        assert row.written is not None
        if same_content(target, row.written):
            b.noop += 1
            if not _mirror_is_current(row, want, b.record_key(row, want)):
                b.learn(number, want, row)
        else:
            reason = f"{_fields_text(target, row.written)} changed in CRM"
            b.change(Action.UPDATE, number, row.written, target, reason, want.record_key)
        return
    if lookups is None:
        if row is None or row.written is None:
            reason = REASON_NEW if row is None else REASON_RETRY_CREATE
            b.change(
                Action.CREATE,
                number,
                None,
                target,
                f"{reason}; {unknown_reason}",
                want.record_key,
                before_known=False,
            )
        else:
            b.change(
                Action.UPDATE,
                number,
                None,
                target,
                f"{REASON_RESEND}; {unknown_reason}",
                want.record_key,
                before_known=False,
            )
        return
    if number not in lookups:
        b.unchecked.append(number)
        return
    held = lookups[number]
    if held is None:
        if row is None:
            reason = REASON_NEW
        else:
            reason = REASON_RETRY_CREATE if row.written is None else REASON_RESEND_GONE
        b.change(Action.CREATE, number, None, target, reason, want.record_key)
        return
    _from_remote(b, number, want, held, row)


def _from_remote(
    b: _Builder,
    number: str,
    want: DesiredEntry,
    held: Entry,
    row: MirrorEntry | None,
) -> None:
    """Decide one desired entry against what VIPeX holds (listed or looked up)."""
    policy = b.policy
    if foreign(held, policy):
        b.conflicts.append(number)  # another job's entry: never adopted or changed
        return
    target = want.entry
    if same_content(target, held):
        # VIPeX holds the desired content: nothing to write.
        b.noop += 1
        if row is None or not _mirror_is_current(row, want, b.record_key(row, want), owned=True):
            b.learn(number, want, row)
        return
    if not owns(row, held, policy):
        b.change(Action.ADOPT, number, held, target, REASON_ADOPT, want.record_key)
        return
    written = row.written if row is not None else None
    if written is not None and same_content(target, written):
        b.drift += 1
        reason = f"{_fields_text(target, held)} edited by hand in VIPeX; restoring the CRM's values"
    elif written is not None and same_content(written, held):
        reason = f"{_fields_text(target, written)} changed in CRM"
    else:
        reason = f"{_differ(target, held)} from VIPeX"
    b.change(Action.UPDATE, number, held, target, reason, want.record_key)


def _unwanted_row(b: _Builder, number: str, row: MirrorEntry) -> None:
    """A mirror row the CRM no longer wants, decided without a complete listing.

    An owned row is deleted (unless policy is never). A row without confirmed
    content owns nothing, yet it is kept: its write may have landed unanswered
    (a timeout), and the entry it left would carry this job's tag. Only its
    row remembers which record that entry was written for, so that a full
    resync deleting it still waits for the record's new numbers and spares a
    record present but rejected (DESIGN invariant 1). A complete listing
    settles it: listed, it is decided like any listed entry; not listed, it
    is forgotten.
    """
    if owns_row(row) and b.policy.delete != "never":
        b.delete(number, row.written, REASON_GONE, row.record_key)


def _plan_incremental(
    b: _Builder, mirror: Mapping[str, MirrorEntry], lookups: Lookups | None
) -> Plan:
    for number, want in b.desired.items():
        _from_mirror(b, number, want, mirror.get(number), lookups)
    owned = 0
    for number, row in mirror.items():
        if owns_row(row):
            owned += 1
        if number not in b.desired:
            _unwanted_row(b, number, row)
    return b.build(Mode.INCREMENTAL, owned)


def _plan_full(b: _Builder, mirror: Mapping[str, MirrorEntry], remote: RemoteView) -> Plan:
    policy = b.policy
    desired = b.desired
    listed = remote.entries
    complete = remote.complete

    for number, want in desired.items():
        row = mirror.get(number)
        held = listed.get(number)
        if held is not None:
            _from_remote(b, number, want, held, row)
        elif not complete:
            # Absence from an incomplete listing proves nothing; the content is unknown.
            _from_mirror(b, number, want, row, None, REASON_UNLISTED)
        elif owns_row(row):
            # Absent from a complete listing (and, before planning, confirmed
            # gone by a look-up; see lookups_needed): deleted by hand.
            b.drift += 1
            b.change(Action.CREATE, number, None, want.entry, REASON_RECREATE, want.record_key)
        else:
            reason = REASON_NEW if row is None else REASON_RETRY_CREATE
            b.change(Action.CREATE, number, None, want.entry, reason, want.record_key)

    owned_count = 0
    for number, held in listed.items():
        row = mirror.get(number)
        owned = owns(row, held, policy)
        if owned:
            owned_count += 1
        if number in desired:
            continue
        if foreign(held, policy):
            continue  # another job's entry: never ours to delete
        record_key = row.record_key if row is not None else None
        if policy.delete == "all":
            b.delete(number, held, REASON_GONE if owned else REASON_GONE_ALL, record_key)
        elif policy.delete == "owned" and owned:
            b.delete(number, held, REASON_GONE, record_key)
        elif row is not None and row.written is None:
            b.forget(number, row, REASON_FORGET_UNCONFIRMED)

    for number, row in mirror.items():
        if number in listed:
            continue
        if owns_row(row):
            owned_count += 1
        if number in desired:
            continue
        if complete:
            # Vanished from VIPeX (by hand, or an earlier delete): forget it.
            if owns_row(row):
                b.drift += 1
            b.forget(number, row)
        else:
            _unwanted_row(b, number, row)

    base = len(listed) if policy.delete == "all" else owned_count
    return b.build(Mode.FULL, base)


def lookups_needed(
    desired: Mapping[str, DesiredEntry],
    mirror: Mapping[str, MirrorEntry],
    remote: RemoteView | None,
) -> tuple[str, ...]:
    """The numbers to read with ``get_phonebook_entry`` before planning.

    Incremental: every desired number whose VIPeX content is unknown (a create,
    or a row whose last write was not confirmed), so nothing is written over
    content nobody has seen. Full resync with a complete listing: every mirror
    row the listing did not show, before it is forgotten or recreated (a row
    can slip through paging when one entry is deleted and another added while
    the scan runs). Not only owned rows: an unanswered create's row is the
    only record of which CRM record its tagged entry belongs to. Normally
    none: a row is looked up once, when its entry was deleted by hand.
    """
    if remote is None:
        return tuple(n for n in desired if not content_known(mirror.get(n)))
    if not remote.complete:
        return ()
    listed = remote.entries
    return tuple(sorted(n for n in mirror if n not in listed))


def confirm_listing(remote: RemoteView, needed: tuple[str, ...], lookups: Lookups) -> RemoteView:
    """The listing after the look-ups of the mirror rows it did not show.

    An entry found that the listing missed proves rows shifted while paging,
    and a look-up that failed leaves a gap: either way the listing is not
    complete, and the entries found join it.
    """
    found = {n: e for n in needed if (e := lookups.get(n)) is not None}
    failed = [n for n in needed if n not in lookups]
    if not found and not failed:
        return remote
    problems = list(remote.problems)
    if found:
        shown = ", ".join(sorted(found)[:5])
        problems.append(
            f"{len(found)} entries of mirror rows missing from the listing were found by "
            f"get_phonebook_entry ({shown}): rows shifted while paging"
        )
    if failed:
        shown = ", ".join(sorted(failed)[:5])
        problems.append(
            f"{len(failed)} entries of mirror rows missing from the listing could not be checked "
            f"with get_phonebook_entry ({shown})"
        )
    return RemoteView(entries={**remote.entries, **found}, complete=False, problems=tuple(problems))


def plan(
    desired: Mapping[str, DesiredEntry],
    mirror: Mapping[str, MirrorEntry],
    remote: RemoteView | None,
    policy: Policy,
    *,
    rejected_keys: frozenset[str] = frozenset(),
    rejected_numbers: frozenset[str] = frozenset(),
    lookups: Lookups | None = None,
) -> Plan:
    """Every write one run should make, in order: creates, updates/adopts, deletes.

    ``remote`` is ``None`` on an incremental run (desired vs mirror only) and
    the listing on a full resync. ``rejected_keys`` are the CRM records present
    in this read but rejected: the numbers last written for them are kept.
    ``rejected_numbers`` are the valid numbers such records carry: an entry
    there whose record the mirror does not know is kept too.
    ``lookups`` holds what ``get_phonebook_entry`` found for the numbers of
    :func:`lookups_needed` on an incremental run (a number missing from it is
    not written this run); ``None`` sends unknown content without a look.
    The result depends only on the arguments.
    The CRM's values are first put in the form VIPeX stores them
    (``policy.semantics``), so a trimmed, truncated or normalised value VIPeX
    holds counts as equal and is not rewritten on every run.
    """
    b = _Builder(normal_desired(desired, policy.semantics), policy, rejected_keys, rejected_numbers)
    if remote is None:
        return _plan_incremental(b, mirror, lookups)
    return _plan_full(b, mirror, remote)


def full_resync_done(
    mode: Mode, remote: RemoteView | None, *, halted: bool, source_complete: bool = True
) -> bool:
    """Whether this run counts as the job's full resync (and confirms its mapping).

    Only a full resync whose listing was stable and complete (after the
    look-ups), whose source was read whole, and that was not cut short (a
    stop, VIPeX unreachable, a lost lock) counts; writes that VIPeX refused do
    not matter here: they are retried by incremental runs and reported where
    they fail.
    """
    return (
        mode is Mode.FULL
        and remote is not None
        and remote.complete
        and source_complete
        and not halted
    )


def effective_mode(requested: Mode, *, had_full_resync: bool) -> Mode:
    """The mode a run really needs.

    An incremental run compares the CRM with the mirror only; without a full
    resync behind it (a job's first run, or after the database was lost) the
    mirror knows nothing of VIPeX, and an incremental run would rewrite every
    entry blind. Listing VIPeX once instead adopts hand-made entries and
    rebuilds ownership from the ownership tag.
    """
    if requested is Mode.INCREMENTAL and not had_full_resync:
        return Mode.FULL
    return requested

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

from vipexsync.domain import DesiredEntry, Entry, MirrorEntry, WriteState
from vipexsync.semantics import normal_desired
from vipexsync.sync.model import Action, Change, MirrorUpdate, Mode, Plan, Policy, RemoteView

REASON_NEW = "new in CRM"
REASON_RETRY_CREATE = "retrying a create that was not confirmed"
REASON_RECREATE = "deleted by hand in VIPeX; recreating"
REASON_ADOPT = "hand-made entry with a CRM number; taking it over"
REASON_GONE = "no longer in CRM"
REASON_GONE_ALL = "not in CRM and delete = all manages the whole phonebook"

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


def _mirror_is_current(row: MirrorEntry, want: DesiredEntry, *, owned: bool = False) -> bool:
    """Whether the mirror row already records ``want`` as applied (and owned, if asked).

    Only a full resync's listing may confirm ownership; an incremental run just
    clears a stale failed/pending state or record key.
    """
    return (
        (row.owned or not owned)
        and row.state is WriteState.APPLIED
        and row.written == want.entry
        and row.record_key == want.record_key
    )


class _Builder:
    """Collects the changes, counters and mirror updates of one plan."""

    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.mirror_updates: list[MirrorUpdate] = []
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
    ) -> None:
        self.changes.append(Change(action, number, before, after, reason, record_key))

    def learn(self, number: str, want: DesiredEntry) -> None:
        self.mirror_updates.append(MirrorUpdate(number, want.entry, want.record_key))

    def forget(self, number: str, row: MirrorEntry) -> None:
        self.mirror_updates.append(MirrorUpdate(number, None, row.record_key))

    def build(self, mode: Mode, owned: int) -> Plan:
        changes = sorted(self.changes, key=lambda c: (_ORDER[c.action], c.phonenumber))
        updates = sorted(self.mirror_updates, key=lambda u: u.phonenumber)
        return Plan(
            mode=mode,
            changes=tuple(changes),
            noop=self.noop,
            drift=self.drift,
            owned=owned,
            mirror_updates=tuple(updates),
        )


def _from_mirror(b: _Builder, number: str, want: DesiredEntry, row: MirrorEntry | None) -> None:
    """Decide one desired entry against the mirror alone (incremental rules)."""
    target = want.entry
    if row is None or row.written is None:
        reason = REASON_NEW if row is None else REASON_RETRY_CREATE
        b.change(Action.CREATE, number, None, target, reason, want.record_key)
    elif not same_content(target, row.written):
        if row.state is WriteState.APPLIED:
            reason = f"{_fields_text(target, row.written)} changed in CRM"
        else:
            differ = _differ(target, row.written)
            reason = f"retrying a failed update ({differ} from the last confirmed write)"
        b.change(Action.UPDATE, number, row.written, target, reason, want.record_key)
    else:
        b.noop += 1
        if not _mirror_is_current(row, want):
            b.learn(number, want)


def _delete_unwanted_row(b: _Builder, number: str, row: MirrorEntry, policy: Policy) -> None:
    """An owned mirror row the CRM no longer wants is deleted unless policy is never."""
    if row.owned and policy.delete != "never":
        b.change(Action.DELETE, number, row.written, None, REASON_GONE, row.record_key)


def _plan_incremental(
    desired: Mapping[str, DesiredEntry], mirror: Mapping[str, MirrorEntry], policy: Policy
) -> Plan:
    b = _Builder()
    for number, want in desired.items():
        _from_mirror(b, number, want, mirror.get(number))
    owned = 0
    for number, row in mirror.items():
        if row.owned:
            owned += 1
        if number not in desired:
            _delete_unwanted_row(b, number, row, policy)
    return b.build(Mode.INCREMENTAL, owned)


def _from_remote(
    b: _Builder,
    number: str,
    want: DesiredEntry,
    held: Entry,
    row: MirrorEntry | None,
    owned: bool,
) -> None:
    """Decide one desired entry that the remote listing holds."""
    target = want.entry
    if same_content(target, held):
        # The listing confirms VIPeX holds the desired content: nothing to write.
        b.noop += 1
        if row is None or not _mirror_is_current(row, want, owned=True):
            b.learn(number, want)
        return
    if not owned:
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


def _plan_full(
    desired: Mapping[str, DesiredEntry],
    mirror: Mapping[str, MirrorEntry],
    remote: RemoteView,
    policy: Policy,
) -> Plan:
    b = _Builder()
    tag = policy.ownership_tag
    listed = remote.entries
    complete = remote.complete

    def is_owned(number: str, held: Entry | None) -> bool:
        row = mirror.get(number)
        if row is not None and row.owned:
            return True
        return bool(tag) and held is not None and tag in held.tags

    for number, want in desired.items():
        row = mirror.get(number)
        held = listed.get(number)
        if held is not None:
            _from_remote(b, number, want, held, row, is_owned(number, held))
        elif not complete:
            _from_mirror(b, number, want, row)
        elif row is not None and row.written is not None:
            b.drift += 1
            b.change(Action.CREATE, number, None, want.entry, REASON_RECREATE, want.record_key)
        else:
            reason = REASON_NEW if row is None else REASON_RETRY_CREATE
            b.change(Action.CREATE, number, None, want.entry, reason, want.record_key)

    owned_count = 0
    for number, held in listed.items():
        owned = is_owned(number, held)
        if owned:
            owned_count += 1
        if number in desired:
            continue
        row = mirror.get(number)
        record_key = row.record_key if row is not None else None
        if policy.delete == "all":
            reason = REASON_GONE if owned else REASON_GONE_ALL
            b.change(Action.DELETE, number, held, None, reason, record_key)
        elif policy.delete == "owned" and owned:
            b.change(Action.DELETE, number, held, None, REASON_GONE, record_key)

    for number, row in mirror.items():
        if number in listed:
            continue
        if row.owned:
            owned_count += 1
        if number in desired:
            continue
        if complete:
            # Vanished from VIPeX (by hand, or an earlier delete): forget it.
            if row.owned and row.written is not None:
                b.drift += 1
            b.forget(number, row)
        else:
            _delete_unwanted_row(b, number, row, policy)

    base = len(listed) if policy.delete == "all" else owned_count
    return b.build(Mode.FULL, base)


def plan(
    desired: Mapping[str, DesiredEntry],
    mirror: Mapping[str, MirrorEntry],
    remote: RemoteView | None,
    policy: Policy,
) -> Plan:
    """Every write one run should make, in order: creates, updates/adopts, deletes.

    ``remote`` is ``None`` on an incremental run (desired vs mirror only) and
    the listing on a full resync. The result depends only on the arguments.
    The CRM's values are first put in the form VIPeX stores them
    (``policy.semantics``), so a trimmed, truncated or normalised value VIPeX
    holds counts as equal and is not rewritten on every run.
    """
    desired = normal_desired(desired, policy.semantics)
    if remote is None:
        return _plan_incremental(desired, mirror, policy)
    return _plan_full(desired, mirror, remote, policy)


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

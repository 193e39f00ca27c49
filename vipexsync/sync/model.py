"""The values the planner and the guard take and give. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from vipexsync.config import DeletePolicy
from vipexsync.domain import Entry
from vipexsync.semantics import UNVERIFIED, WriteSemantics


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    ADOPT = "adopt"  # a hand-made remote entry with a CRM number: updated, tagged, owned
    DELETE = "delete"

    @property
    def metric_action(self) -> str:
        """The ``action`` label of the metrics: an adoption is an update there."""
        return "update" if self is Action.ADOPT else self.value


class Mode(StrEnum):
    INCREMENTAL = "incremental"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class Change:
    """One write the plan asks for.

    ``before`` is what we believe VIPeX holds (the listed or looked-up
    entry, else the mirror's last confirmed write; ``None`` when VIPeX holds
    nothing there); ``before_known`` is False when nobody knows (a write sent
    without a look at VIPeX first), and then ``before`` is ``None``.
    ``after`` is what will be written (``None`` for a delete). ``requires``
    names the numbers whose writes in this run VIPeX must confirm before this
    change may run: the new numbers of a record whose number changed, for the
    delete of its old number (DESIGN: number changed).
    """

    action: Action
    phonenumber: str
    before: Entry | None
    after: Entry | None
    reason: str
    record_key: str | None = None
    requires: tuple[str, ...] = ()
    before_known: bool = True

    def as_json(self) -> dict[str, object]:
        return {
            "action": self.action.value,
            "phonenumber": self.phonenumber,
            "before": self.before.as_json() if self.before else None,
            "after": self.after.as_json() if self.after else None,
            "before_known": self.before_known,
            "reason": self.reason,
            "record_key": self.record_key,
            "requires": list(self.requires),
        }


@dataclass(frozen=True, slots=True)
class RemoteView:
    """The remote phonebook as read by a full resync.

    ``entries`` hold the managed view of each remote entry (custom fields
    restricted to the mapped ones) keyed by phone number; ``complete`` is
    False when the listing was unstable or cut short.
    """

    entries: Mapping[str, Entry]
    complete: bool
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Policy:
    """The job's rules. ``foreign_tags`` are the ownership tags of the other
    jobs on the same subscription: an entry carrying one is that job's, never
    this one's (DESIGN invariant 2)."""

    delete: DeletePolicy
    ownership_tag: str  # "" = none
    managed_field_ids: frozenset[int] = frozenset()
    foreign_tags: frozenset[str] = frozenset()
    # What VIPeX does with a write (probed or stated): the planner compares the
    # CRM's values in the form VIPeX stores them.
    semantics: WriteSemantics = UNVERIFIED


@dataclass(frozen=True, slots=True)
class MirrorUpdate:
    """A mirror row to set or drop without any VIPeX write.

    A full resync's listing *confirms* what VIPeX holds, so the mirror can
    learn it: an owned entry already equal to the desired one but missing or
    stale in the mirror (after a lost database) is recorded with ``entry``; an
    owned entry that vanished by hand and is no longer desired is forgotten
    (``entry`` is ``None``).
    """

    phonenumber: str
    entry: Entry | None
    record_key: str | None = None
    reason: str = ""  # for the change log; "" = the store's default sentence


@dataclass(frozen=True, slots=True)
class Plan:
    """Every write one run should make, ordered creates → updates/adopts → deletes."""

    mode: Mode
    changes: tuple[Change, ...]
    noop: int = 0
    drift: int = 0  # owned entries found edited or deleted by hand (full resync)
    owned: int = 0  # entries the daemon owns before this run
    mirror_updates: tuple[MirrorUpdate, ...] = ()
    # Numbers kept untouched because their CRM record is present but rejected.
    kept: tuple[str, ...] = ()
    # Numbers held under another job's ownership tag: neither written nor deleted.
    conflicts: tuple[str, ...] = ()
    # Numbers whose VIPeX content had to be looked up first and could not be:
    # nothing is written for them this run.
    unchecked: tuple[str, ...] = ()
    # Old numbers of a changed record whose delete waits for a later run (the
    # new number could not be written this run).
    waiting: tuple[str, ...] = ()

    def of(self, action: Action) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action is action)

    @property
    def writes(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action is not Action.DELETE)

    @property
    def deletes(self) -> tuple[Change, ...]:
        return self.of(Action.DELETE)

    def counts(self) -> dict[str, int]:
        counts = {a.value: 0 for a in Action}
        for change in self.changes:
            counts[change.action.value] += 1
        counts["noop"] = self.noop
        return counts


@dataclass(frozen=True, slots=True)
class GuardContext:
    """What the guard needs to know beyond the plan."""

    source_complete: bool
    source_records: int
    min_source_records: int
    remote_complete: bool  # True on incremental runs (no listing was read)
    fingerprint_changed: bool
    mode: Mode
    max_deletes: int
    max_delete_ratio: float
    force_delete: bool = False


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """Whether the plan's deletions may run; ``reasons`` explain a refusal."""

    deletes_allowed: bool
    reasons: tuple[str, ...] = ()
    withheld: tuple[Change, ...] = field(default=())

    @property
    def tripped(self) -> bool:
        return not self.deletes_allowed and bool(self.withheld)

"""The plain values the sync is about, shared by mapping, mirror and plan.

A phonebook entry is keyed by its phone number in VIPeX's form: international
digits, no ``+``, no leading zeros (``3619996000``). Only the *managed* fields
are held here: name, tags, comment, and the custom fields the job maps. The
rest of a remote entry (custom fields nobody mapped) is never compared and
never written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Entry:
    """The managed content of one phonebook entry.

    ``tags`` is a set because VIPeX keeps no meaningful order; ``custom_fields``
    maps a custom field id to its string value and holds only mapped fields.
    """

    phonenumber: str
    name: str
    tags: frozenset[str] = frozenset()
    comment: str = ""
    custom_fields: Mapping[int, str] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash(
            (
                self.phonenumber,
                self.name,
                self.tags,
                self.comment,
                tuple(sorted(self.custom_fields.items())),
            )
        )

    def content_hash(self) -> str:
        """A stable digest of the managed fields (not the phone number)."""
        return content_hash(self)

    def restricted_to(self, field_ids: Iterable[int]) -> Entry:
        """This entry with only the given custom fields (missing ones as ``""``)."""
        ids = frozenset(field_ids)
        return Entry(
            phonenumber=self.phonenumber,
            name=self.name,
            tags=self.tags,
            comment=self.comment,
            custom_fields={fid: self.custom_fields.get(fid, "") for fid in sorted(ids)},
        )

    def as_json(self) -> dict[str, object]:
        """A JSON-ready view, used by plan files, the change log and reports."""
        return {
            "phonenumber": self.phonenumber,
            "name": self.name,
            "tags": sorted(self.tags),
            "comment": self.comment,
            "custom_fields": {str(k): v for k, v in sorted(self.custom_fields.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Entry:
        tags = data.get("tags", [])
        fields = data.get("custom_fields", {})
        assert isinstance(tags, list | tuple)
        assert isinstance(fields, Mapping)
        return cls(
            phonenumber=str(data["phonenumber"]),
            name=str(data.get("name", "")),
            tags=frozenset(str(t) for t in tags),
            comment=str(data.get("comment", "")),
            custom_fields={int(k): str(v) for k, v in fields.items()},
        )


def content_hash(entry: Entry) -> str:
    """SHA-256 over the managed fields in a canonical JSON form."""
    canonical = json.dumps(
        [
            entry.name,
            sorted(entry.tags),
            entry.comment,
            sorted((int(k), v) for k, v in entry.custom_fields.items()),
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class DesiredEntry:
    """One entry the CRM wants, with the CRM record it came from."""

    entry: Entry
    record_key: str


class WriteState(StrEnum):
    """The state of the last write the daemon attempted for a mirror entry."""

    APPLIED = "applied"
    PENDING = "pending"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class MirrorEntry:
    """What the daemon last *confirmed* writing for one phone number.

    ``written`` is the content VIPeX confirmed; it is ``None`` when no write
    for this number was ever confirmed (a create that failed), so the mirror
    never claims a write VIPeX did not confirm. A failed or interrupted write
    leaves ``state`` at ``failed``/``pending`` and is retried by the next run
    simply because the desired content still differs from ``written``.
    """

    phonenumber: str
    written: Entry | None
    owned: bool
    record_key: str | None
    state: WriteState = WriteState.APPLIED
    attempts: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class RecordProblem:
    """Why one CRM record (or one of its fields) was rejected or trimmed.

    ``code`` is a short, stable label used as the ``reason`` label of
    ``vipexsync_rejected_records`` (for example ``invalid_phone``,
    ``duplicate_number``, ``empty_name``, ``bad_custom_field``,
    ``comma_in_tag``, ``missing_key``); ``reason`` is the human sentence.
    ``fatal`` problems drop the entry; the others drop only the field.
    """

    record_key: str
    field: str
    code: str
    reason: str
    value: str = ""
    fatal: bool = True
    phonenumber: str | None = None
    #: Where the record is in the source (CSV file and line, vCard file, card
    #: number and FN, SQL/HTTP key), and its display name when it has one.
    locator: str = ""
    display_name: str = ""

    def as_json(self) -> dict[str, object]:
        """A JSON-ready view for reports, plan files and the rejects file."""
        return {
            "key": self.record_key,
            "location": self.locator,
            "display_name": self.display_name,
            "field": self.field,
            "value": self.value,
            "reason": self.reason,
            "code": self.code,
            "fatal": self.fatal,
            "phonenumber": self.phonenumber,
        }

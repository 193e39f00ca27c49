"""Frozen values returned by the VIPeX client, one per documented answer.

Parsing from the wire lives in the client; these are plain data. Phone numbers
are always ``str`` here even though VIPeX sends some as JSON numbers, and
local date-times are timezone-aware in Europe/Budapest (``None`` for the
``0000-00-00 00:00:00`` "still open" marker and for ``null``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, TypeVar

FieldType = Literal["menu", "number_sequence", "text"]
RowT = TypeVar("RowT")
ForwardType = Literal["immediate", "busy", "unavailable", "noanswer"]
DestinationType = Literal["voicemail", "exten", "phonenumber"]
CallType = Literal["internal", "external", "all"]


@dataclass(frozen=True, slots=True)
class CustomFieldValue:
    field_id: int
    field_value: str


@dataclass(frozen=True, slots=True)
class PhonebookEntry:
    """A phonebook entry as VIPeX holds it (all fields, all custom fields)."""

    phonenumber: str
    name: str
    tags: tuple[str, ...]
    comment: str
    custom_field_options: tuple[CustomFieldValue, ...] = ()


@dataclass(frozen=True, slots=True)
class ListMetadata:
    max_queryable_rows: int
    full_count: int
    list_count: int
    list_from: int
    list_to: int


@dataclass(frozen=True, slots=True)
class PhonebookPage:
    entries: tuple[PhonebookEntry, ...]
    metadata: ListMetadata


@dataclass(frozen=True, slots=True)
class PhonebookListing:
    """A whole phonebook read page by page.

    ``stable`` is True only if ``full_count`` stayed the same on every page, no
    phone number appeared twice, and the rows add up to ``full_count``;
    ``problems`` says what was seen otherwise. An unstable listing is never a
    basis for deletions.
    """

    entries: tuple[PhonebookEntry, ...]
    full_count: int
    pages: int
    stable: bool
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PhonebookScan(Generic[RowT]):
    """A whole phonebook read page by page, each row converted as its page arrived.

    Like :class:`PhonebookListing` (the same verdict and problems), but the
    raw rows are not kept: ``rows`` maps each number (the first row seen for
    it, in listing order) to what the caller's converter made of it.
    """

    rows: dict[str, RowT]
    full_count: int
    pages: int
    stable: bool
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CustomFieldOption:
    option_id: int
    option_label: str


@dataclass(frozen=True, slots=True)
class CustomField:
    field_id: int
    field_name: str
    field_type: FieldType
    options: tuple[CustomFieldOption, ...] = ()


@dataclass(frozen=True, slots=True)
class CurrentCall:
    id: int
    call_id: int
    other_party_type: str
    direction: str
    start_time: datetime | None
    answer_time: datetime | None
    other_party_number: str


@dataclass(frozen=True, slots=True)
class ExtenCurrentCalls:
    exten: str
    calls: tuple[CurrentCall, ...]


@dataclass(frozen=True, slots=True)
class UserExten:
    exten: str
    cost_location: str | None
    default: bool
    operator: bool


@dataclass(frozen=True, slots=True)
class VipexUser:
    id: int
    name: str
    email: str
    operator: bool
    status: int | None
    extens: tuple[UserExten, ...]


@dataclass(frozen=True, slots=True)
class OperatorStatus:
    status_id: int
    status: int
    label: str
    logout: bool
    deleted: bool

    @property
    def callable(self) -> bool:
        """Only status code 0 means the operator can take calls."""
        return self.status == 0


@dataclass(frozen=True, slots=True)
class StatusPeriod:
    status_id: int
    date_from: datetime | None
    date_to: datetime | None  # None: still in this status


@dataclass(frozen=True, slots=True)
class OperatorStatusHistory:
    id: int
    periods: tuple[StatusPeriod, ...]


@dataclass(frozen=True, slots=True)
class CallForward:
    forward_type: ForwardType
    destination_type: DestinationType
    destination_number: str
    noanswer_timeout: int | None = None
    call_type: CallType | None = None


@dataclass(frozen=True, slots=True)
class CallForwardList:
    number: str
    forwards: tuple[CallForward, ...]


@dataclass(frozen=True, slots=True)
class Recording:
    """Where ``get_record`` put the audio, and the server's file name for it."""

    filename: str | None
    content_type: str | None
    size: int

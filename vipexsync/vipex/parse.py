"""From VIPeX's wire answers to the frozen values of :mod:`vipexsync.vipex.models`.

Pure functions only: an HTTP status, headers and body go in, a value or one of
the :mod:`vipexsync.errors` types comes out. Every quirk of the wire format is
absorbed here (phone numbers as JSON numbers, ``full_count`` as a string, 0/1
flags, the all-zero open end, comma-joined tags), and a malformed answer is
reported as a :class:`TransportError` naming the action and the field, never
as a ``KeyError`` or ``TypeError`` escaping from deep inside.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast, get_args
from urllib.parse import urlsplit, urlunsplit

from vipexsync.errors import (
    ApiError,
    ApiResultError,
    AuthError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from vipexsync.vipex.models import (
    CallForward,
    CallForwardList,
    CallType,
    CurrentCall,
    CustomField,
    CustomFieldOption,
    CustomFieldValue,
    DestinationType,
    ExtenCurrentCalls,
    FieldType,
    ForwardType,
    ListMetadata,
    OperatorStatus,
    OperatorStatusHistory,
    PhonebookEntry,
    PhonebookPage,
    StatusPeriod,
    UserExten,
    VipexUser,
)
from vipexsync.vipex.retry import parse_retry_after
from vipexsync.wire import ENVELOPE_KEY, OPEN_END, parse_local

_FIELD_TYPES: Final = frozenset(get_args(FieldType))
_FORWARD_TYPES: Final = frozenset(get_args(ForwardType))
_DESTINATION_TYPES: Final = frozenset(get_args(DestinationType))
_CALL_TYPES: Final = frozenset(get_args(CallType))


# --------------------------------------------------------------------------- envelope


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def looks_like_html(content_type: str | None, body: bytes) -> bool:
    """A web page instead of the API: a maintenance page, a login form, a proxy error."""
    if content_type and "html" in content_type.lower():
        return True
    head = body.lstrip()[:15].lower()
    return head.startswith((b"<!doctype", b"<html", b"<"))


def _without_secrets(url: str | None) -> str:
    """A URL to show in a message: no userinfo, no query."""
    if not url:
        return "(no Location given)"
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_status(action: str, status: int, headers: Mapping[str, str], now: datetime) -> None:
    """Raise the error an HTTP status means; return for 2xx."""
    if 200 <= status < 300:
        return
    if status in (401, 403):
        raise AuthError(action, status)
    if status == 429:
        raise RateLimitedError(action, parse_retry_after(_header(headers, "Retry-After"), now))
    if status >= 500:
        raise ServerError(action, status)
    if 300 <= status < 400:
        # Never followed: requests would turn the POST into a GET and drop every
        # parameter. The operator should configure the final URL instead.
        raise ApiError(
            action,
            f"VIPeX answered {action} with a redirect (HTTP {status}) to "
            f"{_without_secrets(_header(headers, 'Location'))}; set [vipex] url to that address.",
        )
    raise ApiError(
        action,
        f"VIPeX answered HTTP {status} to {action}, which the API never does on purpose. "
        "Check [vipex] url (it must point at the VIPeX host; the client adds ?rt=api).",
    )


def decode_envelope(action: str, content_type: str | None, body: bytes) -> dict[str, Any]:
    """The ``onvipex_result`` object of a 2xx answer, or the error it amounts to.

    ``result: 1`` returns the object; ``result: 0`` raises ApiResultError with the
    server's reason; anything that is not the JSON envelope we asked for (an HTML
    maintenance page, garbage, a JSON body of another shape) is a TransportError.
    """
    if looks_like_html(content_type, body):
        raise TransportError(
            action,
            "the answer was an HTML page, not JSON (VIPeX maintenance, a proxy error page, "
            "or a URL that is not the API)",
            sent=True,
        )
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TransportError(
            action, f"the answer was not valid JSON ({len(body)} bytes: {exc})", sent=True
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get(ENVELOPE_KEY), dict):
        raise TransportError(
            action, f"the answer was JSON but had no {ENVELOPE_KEY!r} object", sent=True
        )
    envelope = cast("dict[str, Any]", document[ENVELOPE_KEY])
    result = envelope.get("result")
    if result in (1, "1") and not isinstance(result, bool):
        return envelope
    if result in (0, "0") and not isinstance(result, bool):
        reason = envelope.get("reason")
        raise ApiResultError(action, reason if isinstance(reason, str) else "")
    raise TransportError(
        action,
        f"the answer's {ENVELOPE_KEY}.result was {result!r}, expected 1 or 0",
        sent=True,
    )


def interpret_answer(
    action: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime,
) -> dict[str, Any]:
    """HTTP status and body to the ``onvipex_result`` object, or the matching error."""
    check_status(action, status, headers, now)
    return decode_envelope(action, _header(headers, "Content-Type"), body)


# --------------------------------------------------------------------------- field access


def _malformed(action: str, where: str, problem: str) -> TransportError:
    return TransportError(action, f"the answer's field {where} {problem}", sent=True)


def _describe(value: object) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


@dataclass(frozen=True, slots=True)
class Fields:
    """Typed, path-aware reads from one JSON object of an answer."""

    action: str
    data: Mapping[str, Any]
    path: str = ENVELOPE_KEY

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}"

    def _wrong(self, key: str, expected: str, value: object) -> TransportError:
        return _malformed(
            self.action, self._where(key), f"should be {expected}, got {_describe(value)}"
        )

    def raw(self, key: str) -> object:
        if key not in self.data:
            raise _malformed(self.action, self._where(key), "is missing")
        return self.data[key]

    def integer(self, key: str) -> int:
        value = self.raw(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value.strip())
        raise self._wrong(key, "an integer", value)

    def optional_integer(self, key: str) -> int | None:
        if self.data.get(key) is None:
            return None
        return self.integer(key)

    def string(self, key: str) -> str:
        """A string; an integer is accepted and turned into its digits."""
        value = self.raw(key)
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise self._wrong(key, "a string", value)

    def optional_string(self, key: str) -> str | None:
        if self.data.get(key) is None:
            return None
        return self.string(key)

    def text(self, key: str) -> str:
        """A free text that must be present; ``null`` reads as empty."""
        if self.raw(key) is None:
            return ""
        return self.string(key)

    def number(self, key: str) -> str:
        """A phone number or extension: VIPeX sends digits as a JSON number or a string."""
        value = self.raw(key)
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise _malformed(self.action, self._where(key), f"is negative: {value}")
            return str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise self._wrong(key, "a phone number", value)

    def flag(self, key: str) -> bool:
        """A 0/1 flag (also accepted: true/false and "0"/"1")."""
        value = self.raw(key)
        if isinstance(value, bool):
            return value
        if value in (0, 1, "0", "1"):
            return value in (1, "1")
        raise self._wrong(key, "0 or 1", value)

    def local_time(self, key: str) -> datetime | None:
        """A Budapest local date-time; ``null`` and the all-zero open end read as None."""
        value = self.raw(key)
        if value is None or value == OPEN_END:
            return None
        if not isinstance(value, str):
            raise self._wrong(key, "a date-time", value)
        try:
            return parse_local(value)
        except ValueError:
            raise _malformed(
                self.action, self._where(key), f"is not YYYY-MM-DD HH:MM:SS: {value!r}"
            ) from None

    def choice(self, key: str, allowed: frozenset[str]) -> str:
        value = self.string(key)
        if value not in allowed:
            raise _malformed(
                self.action,
                self._where(key),
                f"is {value!r}, expected one of {', '.join(sorted(allowed))}",
            )
        return value

    def objects(self, key: str, *, required: bool = True) -> list[Fields]:
        """The objects of an array field (a missing or null array is empty unless required)."""
        if key not in self.data and not required:
            return []
        value = self.raw(key)
        if value is None and not required:
            return []
        if not isinstance(value, list):
            raise self._wrong(key, "an array", value)
        items: list[Fields] = []
        for index, item in enumerate(value):
            where = f"{self._where(key)}[{index}]"
            if not isinstance(item, dict):
                raise _malformed(self.action, where, f"should be an object, got {_describe(item)}")
            items.append(Fields(self.action, item, where))
        return items

    def object(self, key: str) -> Fields:
        value = self.raw(key)
        if not isinstance(value, dict):
            raise self._wrong(key, "an object", value)
        return Fields(self.action, value, self._where(key))


def split_tags(value: object) -> tuple[str, ...]:
    """Comma-joined tags to a tuple: stripped, empties dropped, order kept."""
    if value is None:
        return ()
    if isinstance(value, str):
        return _split_tag_text(value)
    parts: Sequence[object] = value if isinstance(value, list) else [value]
    return tuple(text for part in parts if (text := str(part).strip()))


@functools.lru_cache(maxsize=4096)
def _split_tag_text(value: str) -> tuple[str, ...]:
    """Cached: a phonebook repeats a few tag strings 100k times; one shared tuple each."""
    return tuple(text for part in value.split(",") if (text := part.strip()))


# --------------------------------------------------------------------------- phonebook


def _custom_values(fields: Fields) -> tuple[CustomFieldValue, ...]:
    values = []
    for item in fields.objects("custom_field_options", required=False):
        raw = item.raw("field_value")
        value = "" if raw is None else item.string("field_value")
        values.append(CustomFieldValue(field_id=item.integer("field_id"), field_value=value))
    return tuple(values)


def parse_entry(fields: Fields) -> PhonebookEntry:
    """One phonebook entry: its fields at the top of ``fields``."""
    tags_value = fields.raw("tags")
    if tags_value is not None and not isinstance(tags_value, str | list):
        raise _malformed(
            fields.action, f"{fields.path}.tags", f"should be a string, got {_describe(tags_value)}"
        )
    return PhonebookEntry(
        phonenumber=fields.number("phonenumber"),
        name=fields.text("name"),
        tags=split_tags(tags_value),
        comment=fields.text("comment"),
        custom_field_options=_custom_values(fields),
    )


def parse_phonebook_entry(action: str, result: Mapping[str, Any]) -> PhonebookEntry:
    return parse_entry(Fields(action, result))


def parse_phonebook_page(action: str, result: Mapping[str, Any]) -> PhonebookPage:
    fields = Fields(action, result)
    meta = fields.object("metadata")
    return PhonebookPage(
        entries=tuple(parse_entry(item) for item in fields.objects("phonebook_list")),
        metadata=ListMetadata(
            max_queryable_rows=meta.integer("max_queryable_rows"),
            full_count=meta.integer("full_count"),
            list_count=meta.integer("list_count"),
            list_from=meta.integer("list_from"),
            list_to=meta.integer("list_to"),
        ),
    )


def parse_custom_fields(action: str, result: Mapping[str, Any]) -> tuple[CustomField, ...]:
    fields = Fields(action, result)
    custom: list[CustomField] = []
    for item in fields.objects("phonebook_custom_field_list"):
        custom.append(
            CustomField(
                field_id=item.integer("field_id"),
                field_name=item.string("field_name"),
                field_type=cast("FieldType", item.choice("field_type", _FIELD_TYPES)),
                options=tuple(
                    CustomFieldOption(
                        option_id=option.integer("option_id"),
                        option_label=option.string("option_label"),
                    )
                    for option in item.objects("options", required=False)
                ),
            )
        )
    return tuple(custom)


# --------------------------------------------------------------------------- calls


def parse_call_id(action: str, result: Mapping[str, Any]) -> int:
    """The ``id`` of a call started by dial_phonenumber or outbound_ivr."""
    return Fields(action, result).integer("id")


def parse_new_status_id(action: str, result: Mapping[str, Any]) -> int:
    return Fields(action, result).integer("new_status_id")


def parse_current_calls(action: str, result: Mapping[str, Any]) -> ExtenCurrentCalls:
    fields = Fields(action, result)
    return ExtenCurrentCalls(
        exten=fields.number("exten"),
        calls=tuple(
            CurrentCall(
                id=item.integer("id"),
                call_id=item.integer("call_id"),
                other_party_type=item.string("other_party_type"),
                direction=item.string("direction"),
                start_time=item.local_time("start_time"),
                answer_time=item.local_time("answer_time") if "answer_time" in item.data else None,
                other_party_number=item.number("other_party_number"),
            )
            for item in fields.objects("extens_current_calls", required=False)
        ),
    )


# --------------------------------------------------------------------------- users


def _user(fields: Fields) -> VipexUser:
    return VipexUser(
        id=fields.integer("id"),
        name=fields.text("name"),
        email=fields.text("email"),
        operator=fields.flag("operator"),
        status=fields.optional_integer("status"),
        extens=tuple(
            UserExten(
                exten=item.number("exten"),
                cost_location=item.optional_string("cost_location"),
                default=item.flag("default"),
                operator=item.flag("operator"),
            )
            for item in fields.objects("extens", required=False)
        ),
    )


def parse_user(action: str, result: Mapping[str, Any]) -> VipexUser:
    return _user(Fields(action, result))


def parse_user_list(action: str, result: Mapping[str, Any]) -> tuple[VipexUser, ...]:
    return tuple(_user(item) for item in Fields(action, result).objects("user_list"))


def parse_status_list(action: str, result: Mapping[str, Any]) -> tuple[OperatorStatus, ...]:
    return tuple(
        OperatorStatus(
            status_id=item.integer("status_id"),
            status=item.integer("status"),
            label=item.text("label"),
            logout=item.flag("logout"),
            deleted=item.flag("deleted"),
        )
        for item in Fields(action, result).objects("status_list")
    )


def parse_status_history(action: str, result: Mapping[str, Any]) -> OperatorStatusHistory:
    fields = Fields(action, result)
    return OperatorStatusHistory(
        id=fields.integer("id"),
        periods=tuple(
            StatusPeriod(
                status_id=item.integer("status_id"),
                date_from=item.local_time("date_from"),
                date_to=item.local_time("date_to"),
            )
            for item in fields.objects("status_history", required=False)
        ),
    )


# --------------------------------------------------------------------------- call forwards


def _forward(fields: Fields) -> CallForward:
    call_type = fields.data.get("call_type")
    return CallForward(
        forward_type=cast("ForwardType", fields.choice("forward_type", _FORWARD_TYPES)),
        destination_type=cast(
            "DestinationType", fields.choice("destination_type", _DESTINATION_TYPES)
        ),
        destination_number=fields.text("destination_number")
        if "destination_number" in fields.data
        else "",
        noanswer_timeout=fields.optional_integer("noanswer_timeout"),
        call_type=None
        if call_type in (None, "")
        else cast("CallType", fields.choice("call_type", _CALL_TYPES)),
    )


def parse_forward_list(action: str, result: Mapping[str, Any]) -> CallForwardList:
    fields = Fields(action, result)
    return CallForwardList(
        number=fields.number("number"),
        forwards=tuple(
            _forward(item) for item in fields.objects("call_forward_list", required=False)
        ),
    )

"""The 17 documented VIPeX actions over :class:`~vipexsync.emulator.state.StateData`.

Each handler validates all of its parameters first and only then changes the
state, so a refused call (``result: 0``) never changes anything. Reasons are
Hungarian, like the vendor's, and name the parameter or record at fault.

Rules where the vendor document is silent (the strict reading):

- Every parameter the document lists without "(opcionális)" is required,
  including ``offset`` and ``limit`` of ``get_phonebook_list``.
- Phone numbers (``phonenumber``, ``destination_number`` of a phone-number
  forward) are international digits: only ASCII digits, no leading ``0``,
  8 to 15 digits (``^[1-9][0-9]{7,14}$``). Ids and counts are non-negative
  decimal integers; JSON bodies may send them as JSON numbers.
- ``set_phonebook_entry``: a parameter not sent keeps its old value (on
  create: empty); ``""`` clears it. This and the storing of values can be
  switched (:mod:`vipexsync.emulator.semantics`): omitted fields cleared,
  names cut, text normalised to NFC or trimmed. ``tags`` is a comma-joined string; tags
  are stripped, empty ones dropped, duplicates kept once, and joined back with
  ``,``. In ``custom_field_options`` each item needs an integer ``field_id``
  of a defined custom field and a *string* ``field_value``; a field not sent
  keeps its value, ``""`` clears it; a menu value must equal one option label
  exactly; a number sequence is digit groups joined by commas
  (``^[0-9]+(,[0-9]+)*$``); a field id twice in one call is refused. An empty
  ``custom_field_options`` string counts as not sent.
- Answers list an entry's custom fields in ascending ``field_id`` order and
  leave out cleared ones.
- ``get_phonebook_list``: ascending numeric phone-number order; ``limit``
  must be at least 1 and is capped at 200 (``max_queryable_rows``);
  ``list_from`` = offset, ``list_to`` = offset + list_count - 1, so an empty
  page (offset at or past the end) answers ``list_count`` 0 and
  ``list_to`` = offset - 1. ``full_count`` is a string, as in the example.
- ``get_phonebook_entry`` and ``del_phonebook_entry`` of a number that is not
  in the phonebook answer ``result: 0``.
- ``set_operator_status`` answers ``new_status_id`` with the status *code*
  (0-9) of the status now set: the vendor example sets ``status_id=2`` and
  gets ``new_status_id: 1``, and status id 2 has code 1. The user must be an
  operator and the status must exist and not be deleted. The open period of
  the user's status history is closed and a new open one starts.
- Call forwards: ``number`` must be an extension or phone number of the
  subscription; a ``voicemail`` forward of an extension always goes to the
  extension's own box (``destination_number`` optional and ignored), of a
  phone number to one of the subscription's voicemail boxes; ``exten``
  destinations must be extensions of the subscription. ``noanswer_timeout``
  (default 30) is kept only for ``noanswer``; ``call_type`` (default ``all``)
  only for extensions. ``del_call_forward`` of a forward that is not set
  answers ``result: 0``.
- ``dial_phonenumber`` needs a base or user extension, ``outbound_ivr`` an
  IVR technical extension; call ids come from a per-subscription counter.
  Both log the call (``EmulatorState.calls_made``).
- ``get_operator_status_history`` answers the periods that overlap
  [date_from, date_to] (an open period runs until now), unclipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from vipexsync.emulator.semantics import Semantics
from vipexsync.emulator.state import (
    CallForwardRecord,
    CallLogRecord,
    CustomFieldDef,
    EmulatorState,
    PhonebookRecord,
    StateData,
    StatusPeriodRecord,
    Subscription,
)
from vipexsync.wire import MAX_QUERYABLE_ROWS, OPEN_END, format_local, parse_local

__all__ = ["ACTIONS", "ApiFailure", "BinaryAnswer", "Params", "is_valid_phonenumber"]

PHONE_RE: Final = re.compile(r"[1-9][0-9]{7,14}")
INT_RE: Final = re.compile(r"[0-9]{1,18}")
DIGITS_RE: Final = re.compile(r"[0-9]+")
NUMBER_SEQUENCE_RE: Final = re.compile(r"[0-9]+(,[0-9]+)*")
FORWARD_TYPES: Final = ("immediate", "busy", "unavailable", "noanswer")
DESTINATION_TYPES: Final = ("voicemail", "exten", "phonenumber")
CALL_TYPES: Final = ("internal", "external", "all")
DEFAULT_NOANSWER_TIMEOUT: Final = 30


class ApiFailure(Exception):
    """An API call refused with ``result: 0`` and this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class BinaryAnswer:
    """A non-envelope answer (``get_record``): raw bytes as an attachment."""

    data: bytes
    content_type: str
    filename: str


def is_valid_phonenumber(text: str) -> bool:
    return text.isascii() and PHONE_RE.fullmatch(text) is not None


class Params:
    """The request's parameters: strings, or JSON values from a JSON body."""

    def __init__(self, values: Mapping[str, object]) -> None:
        self.values = dict(values)

    def raw(self, name: str) -> object:
        return self.values.get(name)

    def opt_str(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, str | int):
            return str(value)
        raise ApiFailure(f"Hibás paraméter: {name} (szöveg vagy szám kell)")

    def text(self, name: str) -> str:
        value = self.opt_str(name)
        if value is None or value == "":
            raise ApiFailure(f"Hiányzó paraméter: {name}")
        return value

    def integer(self, name: str) -> int:
        value = self.values.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        text = self.text(name)
        if not text.isascii() or INT_RE.fullmatch(text) is None:
            raise ApiFailure(f"Hibás paraméter: {name} (nemnegatív egész szám kell): {text!r}")
        return int(text)

    def opt_integer(self, name: str) -> int | None:
        if self.opt_str(name) in (None, ""):
            return None
        return self.integer(name)

    def phonenumber(self, name: str = "phonenumber") -> str:
        text = self.text(name)
        if not is_valid_phonenumber(text):
            raise ApiFailure(
                f"Érvénytelen telefonszám: {name}={text!r} (nemzetközi formátum, "
                "csak számjegyek, nem kezdődhet 0-val, 8-15 jegy)"
            )
        return text

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        text = self.text(name)
        if text not in allowed:
            raise ApiFailure(f"Hibás paraméter: {name}={text!r} (lehet: {', '.join(allowed)})")
        return text


Handler = Callable[[EmulatorState, StateData, Params], "tuple[dict[str, object], bool]"]


def _subscription(data: StateData, params: Params) -> Subscription:
    vipex_id = params.text("vipex_id")
    sub = data.subscriptions.get(vipex_id)
    if sub is None:
        raise ApiFailure(f"Ismeretlen előfizetés: vipex_id={vipex_id}")
    return sub


def _now(state: EmulatorState) -> str:
    return format_local(state.clock())


# -- calls ----------------------------------------------------------------------


def _log_call(
    state: EmulatorState,
    data: StateData,
    sub: Subscription,
    action: str,
    exten: str,
    phonenumber: str,
    digits: str | None,
) -> dict[str, object]:
    call_id = sub.next_call_id
    sub.next_call_id += 1
    data.calls.append(
        CallLogRecord(call_id, action, sub.vipex_id, exten, phonenumber, digits, _now(state))
    )
    return {"id": call_id}


def dial_phonenumber(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    exten = p.text("exten")
    phonenumber = p.phonenumber()
    if sub.exten_kind(exten) not in ("base", "user"):
        raise ApiFailure(f"A mellék nem található az előfizetésben: exten={exten}")
    return _log_call(state, data, sub, "dial_phonenumber", exten, phonenumber, None), True


def outbound_ivr(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    phonenumber = p.phonenumber()
    exten = p.text("exten")
    digits = p.opt_str("digits") or None
    if digits is not None and DIGITS_RE.fullmatch(digits) is None:
        raise ApiFailure(f"Hibás paraméter: digits={digits!r} (csak számjegyek)")
    if sub.exten_kind(exten) != "ivr":
        raise ApiFailure(f"Nincs ilyen híváslogika (IVR) technikai mellék: exten={exten}")
    return _log_call(state, data, sub, "outbound_ivr", exten, phonenumber, digits), True


def get_extens_current_calls(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    exten = p.text("exten")
    if sub.exten_kind(exten) is None:
        raise ApiFailure(f"A mellék nem található az előfizetésben: exten={exten}")
    calls = [
        {
            "id": c.id,
            "call_id": c.call_id,
            "other_party_type": c.other_party_type,
            "direction": c.direction,
            "start_time": c.start_time,
            "answer_time": c.answer_time,
            "other_party_number": c.other_party_number,
        }
        for c in sub.current_calls.get(exten, [])
    ]
    return {"exten": exten, "extens_current_calls": calls}, False


# -- users and operators ----------------------------------------------------------


def _user_json(sub: Subscription, user_id: int) -> dict[str, object]:
    user = sub.users.get(user_id)
    if user is None:
        raise ApiFailure(f"Nincs ilyen felhasználó: id={user_id}")
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "operator": int(user.operator),
        "status": user.status,
        "extens": [
            {
                "exten": e.exten,
                "cost_location": e.cost_location,
                "default": int(e.default),
                "operator": int(e.operator),
            }
            for e in user.extens
        ],
    }


def get_vipex_user(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    return _user_json(sub, p.integer("id")), False


def get_vipex_user_list(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    users = [_user_json(sub, uid) for uid in sorted(sub.users) if sub.users[uid].listed]
    return {"user_list": users}, False


def get_operator_status_list(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    statuses = [
        {
            "status_id": s.status_id,
            "status": s.status,
            "label": s.label,
            "logout": int(s.logout),
            "deleted": int(s.deleted),
        }
        for s in sub.statuses
    ]
    return {"status_list": statuses}, False


def _datetime_param(p: Params, name: str) -> str:
    text = p.text(name)
    try:
        parse_local(text)
    except ValueError:
        raise ApiFailure(f"Hibás dátum: {name}={text!r} (formátum: éééé-hh-nn óó:pp:mm)") from None
    return text


def get_operator_status_history(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    user_id = p.integer("id")
    date_from = _datetime_param(p, "date_from")
    date_to = _datetime_param(p, "date_to")
    if date_from > date_to:
        raise ApiFailure(f"A date_from ({date_from}) későbbi, mint a date_to ({date_to})")
    if user_id not in sub.users:
        raise ApiFailure(f"Nincs ilyen felhasználó: id={user_id}")
    now = _now(state)
    # Same-format local date-times compare correctly as strings.
    periods = [
        {"status_id": h.status_id, "date_from": h.date_from, "date_to": h.date_to}
        for h in sub.status_history.get(user_id, [])
        if h.date_from <= date_to and (now if h.date_to == OPEN_END else h.date_to) >= date_from
    ]
    return {"id": user_id, "status_history": periods}, False


def set_operator_status(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    user_id = p.integer("user_id")
    status_id = p.integer("status_id")
    user = sub.users.get(user_id)
    if user is None:
        raise ApiFailure(f"Nincs ilyen felhasználó: user_id={user_id}")
    if not user.operator:
        raise ApiFailure(f"A felhasználó nem operátor: user_id={user_id}")
    status = next((s for s in sub.statuses if s.status_id == status_id), None)
    if status is None or status.deleted:
        raise ApiFailure(f"Nincs ilyen operátori státusz: status_id={status_id}")
    now = _now(state)
    history = sub.status_history.setdefault(user_id, [])
    for period in history:
        if period.date_to == OPEN_END:
            period.date_to = now
    history.append(StatusPeriodRecord(status_id, now, OPEN_END))
    user.status = status.status
    return {"new_status_id": status.status}, True


# -- call forwards -------------------------------------------------------------------


def _forwardable(sub: Subscription, p: Params) -> tuple[str, str]:
    number = p.text("number")
    kind = sub.exten_kind(number)
    if kind is None:
        raise ApiFailure(f"A szám nem tartozik az előfizetéshez: number={number}")
    return number, kind


def set_call_forward(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    number, kind = _forwardable(sub, p)
    is_exten = kind != "phonenumber"
    forward_type = p.choice("forward_type", FORWARD_TYPES)
    destination_type = p.choice("destination_type", DESTINATION_TYPES)
    if destination_type == "voicemail" and is_exten:
        destination = number
    elif destination_type == "voicemail":
        destination = p.text("destination_number")
        if sub.exten_kind(destination) != "voicemail":
            raise ApiFailure(f"Nincs ilyen hangposta fiók: destination_number={destination}")
    elif destination_type == "exten":
        destination = p.text("destination_number")
        if sub.exten_kind(destination) in (None, "phonenumber"):
            raise ApiFailure(
                f"A mellék nem található az előfizetésben: destination_number={destination}"
            )
    else:
        destination = p.phonenumber("destination_number")
    timeout = p.opt_integer("noanswer_timeout")
    if timeout is not None and timeout < 1:
        raise ApiFailure("Hibás paraméter: noanswer_timeout (pozitív egész másodperc kell)")
    call_type = p.choice("call_type", CALL_TYPES) if p.opt_str("call_type") else None
    record = CallForwardRecord(
        forward_type,
        destination_type,
        destination,
        (timeout or DEFAULT_NOANSWER_TIMEOUT) if forward_type == "noanswer" else None,
        (call_type or "all") if is_exten else None,
    )
    sub.forwards.setdefault(number, {})[forward_type] = record
    return {}, True


def get_call_forward_list(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    number, _ = _forwardable(sub, p)
    forwards: list[dict[str, object]] = []
    for f in sub.forwards.get(number, {}).values():
        item: dict[str, object] = {
            "forward_type": f.forward_type,
            "destination_type": f.destination_type,
            "destination_number": f.destination_number,
        }
        if f.noanswer_timeout is not None:
            item["noanswer_timeout"] = f.noanswer_timeout
        if f.call_type is not None:
            item["call_type"] = f.call_type
        forwards.append(item)
    return {"number": number, "call_forward_list": forwards}, False


def del_call_forward(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    number, _ = _forwardable(sub, p)
    forward_type = p.choice("forward_type", FORWARD_TYPES)
    existing = sub.forwards.get(number, {})
    if forward_type not in existing:
        raise ApiFailure(f"Nincs {forward_type} típusú átirányítás beállítva: number={number}")
    del existing[forward_type]
    if not existing:
        del sub.forwards[number]
    return {}, True


# -- phonebook ------------------------------------------------------------------------


def _entry_json(phonenumber: str, rec: PhonebookRecord) -> dict[str, object]:
    return {
        "phonenumber": int(phonenumber),
        "name": rec.name,
        "tags": ",".join(rec.tags),
        "comment": rec.comment,
        "custom_field_options": [
            {"field_id": fid, "field_value": rec.custom_fields[fid]}
            for fid in sorted(rec.custom_fields)
        ],
    }


def _split_tags(text: str, rules: Semantics) -> list[str]:
    tags: list[str] = []
    for part in text.split(","):
        tag = rules.stored(part).strip()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def _check_field_value(fdef: CustomFieldDef, value: str) -> None:
    if value == "":
        return
    if fdef.field_type == "menu" and value not in fdef.labels():
        raise ApiFailure(
            f"Érvénytelen érték a(z) {fdef.field_id} ({fdef.field_name}) menü mezőben: "
            f"{value!r} (lehet: {', '.join(fdef.labels())})"
        )
    if fdef.field_type == "number_sequence" and NUMBER_SEQUENCE_RE.fullmatch(value) is None:
        raise ApiFailure(
            f"Érvénytelen számsor a(z) {fdef.field_id} ({fdef.field_name}) mezőben: {value!r} "
            "(számsorok vesszővel összefűzve)"
        )


def _custom_field_options(sub: Subscription, p: Params) -> dict[int, str]:
    raw = p.raw("custom_field_options")
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ApiFailure("Hibás paraméter: custom_field_options (nem érvényes JSON)") from None
    if not isinstance(raw, list):
        raise ApiFailure("Hibás paraméter: custom_field_options (JSON tömb kell)")
    values: dict[int, str] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"field_id", "field_value"}:
            raise ApiFailure(
                f"Hibás paraméter: custom_field_options[{index}] "
                "(objektum kell field_id és field_value kulcsokkal)"
            )
        field_id, value = item["field_id"], item["field_value"]
        if not isinstance(field_id, int) or isinstance(field_id, bool):
            raise ApiFailure(f"Hibás paraméter: custom_field_options[{index}].field_id (egész)")
        if not isinstance(value, str):
            raise ApiFailure(
                f"Hibás paraméter: custom_field_options[{index}].field_value (string kell)"
            )
        fdef = sub.custom_fields.get(field_id)
        if fdef is None:
            raise ApiFailure(f"Ismeretlen egyedi mező: field_id={field_id}")
        if field_id in values:
            raise ApiFailure(f"Az egyedi mező kétszer szerepel: field_id={field_id}")
        _check_field_value(fdef, value)
        values[field_id] = value
    return values


def set_phonebook_entry(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    phonenumber = p.phonenumber()
    name = p.opt_str("name")
    tags = p.opt_str("tags")
    comment = p.opt_str("comment")
    custom = _custom_field_options(sub, p)
    rules = state.semantics
    # A service that clears what it is not sent starts from an empty entry.
    rec = sub.phonebook.get(phonenumber)
    if rec is None or rules.omitted == "clear":
        rec = PhonebookRecord()
    updated = PhonebookRecord(
        name=rec.name if name is None else rules.stored_name(name),
        tags=list(rec.tags) if tags is None else _split_tags(tags, rules),
        comment=rec.comment if comment is None else rules.stored(comment),
        custom_fields=dict(rec.custom_fields),
    )
    for fid, value in custom.items():
        if sub.custom_fields[fid].field_type == "text":
            value = rules.stored(value)
        if value == "":
            updated.custom_fields.pop(fid, None)
        else:
            updated.custom_fields[fid] = value
    sub.phonebook[phonenumber] = updated
    return {}, True


def _existing_entry(sub: Subscription, p: Params) -> tuple[str, PhonebookRecord]:
    phonenumber = p.phonenumber()
    rec = sub.phonebook.get(phonenumber)
    if rec is None:
        raise ApiFailure(f"A telefonszám nem szerepel a telefonkönyvben: {phonenumber}")
    return phonenumber, rec


def get_phonebook_entry(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    phonenumber, rec = _existing_entry(sub, p)
    return _entry_json(phonenumber, rec), False


def del_phonebook_entry(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    phonenumber, _ = _existing_entry(sub, p)
    del sub.phonebook[phonenumber]
    return {}, True


def get_phonebook_list(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    offset = p.integer("offset")
    limit = p.integer("limit")
    if limit < 1:
        raise ApiFailure("Hibás paraméter: limit (legalább 1)")
    limit = min(limit, MAX_QUERYABLE_ROWS)
    numbers = sub.sorted_numbers()
    page = [(num, sub.phonebook[num]) for num in numbers[offset : offset + limit]]
    return {
        "phonebook_list": [_entry_json(num, rec) for num, rec in page],
        "metadata": {
            "max_queryable_rows": MAX_QUERYABLE_ROWS,
            "full_count": str(len(numbers)),
            "list_count": len(page),
            "list_from": offset,
            "list_to": offset + len(page) - 1,
        },
    }, False


def get_phonebook_custom_field_list(
    state: EmulatorState, data: StateData, p: Params
) -> tuple[dict[str, object], bool]:
    sub = _subscription(data, p)
    fields: list[dict[str, object]] = []
    for f in sub.custom_fields.values():
        item: dict[str, object] = {
            "field_id": f.field_id,
            "field_name": f.field_name,
            "field_type": f.field_type,
        }
        if f.field_type == "menu":
            item["options"] = [{"option_id": i, "option_label": lbl} for i, lbl in f.options]
        fields.append(item)
    return {"phonebook_custom_field_list": fields}, False


def get_record(data: StateData, p: Params) -> BinaryAnswer:
    """The recording itself; not an envelope answer, so it has its own signature."""
    rec = p.text("rec")
    recording = data.recordings.get(rec)
    if recording is None:
        raise ApiFailure(f"Nincs ilyen hangfelvétel: rec={rec}")
    return BinaryAnswer(recording.data, recording.content_type, recording.filename)


ACTIONS: Final[dict[str, Handler]] = {
    "dial_phonenumber": dial_phonenumber,
    "outbound_ivr": outbound_ivr,
    "get_extens_current_calls": get_extens_current_calls,
    "get_vipex_user": get_vipex_user,
    "get_vipex_user_list": get_vipex_user_list,
    "get_operator_status_list": get_operator_status_list,
    "get_operator_status_history": get_operator_status_history,
    "set_operator_status": set_operator_status,
    "set_call_forward": set_call_forward,
    "get_call_forward_list": get_call_forward_list,
    "del_call_forward": del_call_forward,
    "set_phonebook_entry": set_phonebook_entry,
    "get_phonebook_entry": get_phonebook_entry,
    "get_phonebook_list": get_phonebook_list,
    "del_phonebook_entry": del_phonebook_entry,
    "get_phonebook_custom_field_list": get_phonebook_custom_field_list,
}
"""Envelope-answering actions; ``get_record`` (binary) is handled apart."""

ALL_ACTIONS: Final = (*ACTIONS, "get_record")

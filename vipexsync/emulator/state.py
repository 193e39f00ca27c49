"""In-memory state of the VIPeX emulator, thread-safe behind one lock.

The state holds any number of subscriptions (keyed by ``vipex_id``), each with
its phonebook, phonebook custom fields, users and their extensions, the
subscription's other numbers (base extensions, IVR technical extensions,
voicemail boxes, phone numbers), operator statuses and status history, current
calls, call forwards and a log of the calls the API started. Recordings are
global: ``get_record`` takes no ``vipex_id``.

The HTTP layer (:mod:`vipexsync.emulator.actions`) reads and changes this data
inside :meth:`EmulatorState.transaction`, so every API call is atomic. The
public helper methods (``put_entry`` and friends) are the "by hand" edits that
tests and the demo use to change the PBX behind the client's back.

Phone numbers are kept as digit strings; the phonebook is listed in ascending
numeric order of the phone number (for digit strings without leading zeros that
is shorter-first, then lexicographic), which is stable while nothing changes.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vipexsync.emulator import semantics as emulator_semantics
from vipexsync.wire import BUDAPEST, OPEN_END

__all__ = [
    "CallForwardRecord",
    "CallLogRecord",
    "CurrentCallRecord",
    "CustomFieldDef",
    "EmulatorState",
    "ExtenRecord",
    "OperatorStatusRecord",
    "Phonebook",
    "PhonebookRecord",
    "Recording",
    "StatusPeriodRecord",
    "Subscription",
    "UserRecord",
    "example_state",
    "phone_sort_key",
]

STATE_FORMAT_VERSION = 1

#: Kinds of numbers a subscription owns besides users' extensions.
NUMBER_KINDS = ("base", "user", "ivr", "voicemail", "phonenumber")


def phone_sort_key(phonenumber: str) -> tuple[int, str]:
    """Numeric order for digit strings without leading zeros."""
    return (len(phonenumber), phonenumber)


@dataclass
class CustomFieldDef:
    field_id: int
    field_name: str
    field_type: str  # menu | number_sequence | text
    options: list[tuple[int, str]] = field(default_factory=list)

    def labels(self) -> list[str]:
        return [label for _, label in self.options]


@dataclass
class PhonebookRecord:
    name: str = ""
    tags: list[str] = field(default_factory=list)
    comment: str = ""
    custom_fields: dict[int, str] = field(default_factory=dict)


class Phonebook(dict[str, PhonebookRecord]):
    """A phonebook dict that keeps its numbers' listing order until a number comes or goes.

    Sorting 100k numbers for every 200-row page made one listing cost ~35 s of
    emulator CPU; replacing an entry's record keeps the order, so only adding
    or removing a number drops the cached order.
    """

    _order: list[str] | None = None

    def sorted_numbers(self) -> list[str]:
        if self._order is None:
            self._order = sorted(self, key=phone_sort_key)
        return self._order

    def __setitem__(self, key: str, value: PhonebookRecord) -> None:
        if key not in self:
            self._order = None
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._order = None

    def pop(self, key: str, *default: Any) -> Any:
        self._order = None
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, PhonebookRecord]:
        self._order = None
        return super().popitem()

    def clear(self) -> None:
        self._order = None
        super().clear()

    def update(self, *args: Any, **kwargs: PhonebookRecord) -> None:
        self._order = None
        super().update(*args, **kwargs)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self._order = None
        return super().setdefault(key, default)

    def __ior__(self, other: Any) -> Any:  # type: ignore[misc]
        self._order = None
        return super().__ior__(other)


@dataclass
class ExtenRecord:
    exten: str
    cost_location: str | None = None
    default: bool = False
    operator: bool = False


@dataclass
class UserRecord:
    """A VIPeX user. ``status`` is the operator status *code* (0 = callable).

    ``listed`` is False for users that ``get_vipex_user`` finds but
    ``get_vipex_user_list`` does not show: the vendor document's examples are
    not mutually consistent (its user list has users 1, 2 and 81 while other
    examples use users 27 and 82 of the same subscription), and the example
    state reproduces every example verbatim.
    """

    id: int
    name: str
    email: str
    operator: bool
    status: int | None
    extens: list[ExtenRecord] = field(default_factory=list)
    listed: bool = True


@dataclass
class OperatorStatusRecord:
    status_id: int
    status: int  # the code, 0..9; only 0 is callable
    label: str
    logout: bool = False
    deleted: bool = False


@dataclass
class StatusPeriodRecord:
    status_id: int
    date_from: str  # wire format, Budapest local time
    date_to: str  # OPEN_END while still in the status


@dataclass
class CurrentCallRecord:
    id: int
    call_id: int
    other_party_type: str
    direction: str
    start_time: str
    answer_time: str | None
    other_party_number: str


@dataclass
class CallForwardRecord:
    forward_type: str
    destination_type: str
    destination_number: str
    noanswer_timeout: int | None = None  # only for forward_type "noanswer"
    call_type: str | None = None  # only when the forwarded number is an extension


@dataclass
class CallLogRecord:
    """A call the API started (dial_phonenumber or outbound_ivr)."""

    id: int
    action: str
    vipex_id: str
    exten: str
    phonenumber: str
    digits: str | None
    time: str


@dataclass
class Recording:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Subscription:
    vipex_id: str
    phonebook: dict[str, PhonebookRecord] = field(default_factory=Phonebook)
    custom_fields: dict[int, CustomFieldDef] = field(default_factory=dict)
    users: dict[int, UserRecord] = field(default_factory=dict)
    numbers: dict[str, str] = field(default_factory=dict)  # number -> kind (NUMBER_KINDS)
    statuses: list[OperatorStatusRecord] = field(default_factory=list)
    status_history: dict[int, list[StatusPeriodRecord]] = field(default_factory=dict)
    current_calls: dict[str, list[CurrentCallRecord]] = field(default_factory=dict)
    forwards: dict[str, dict[str, CallForwardRecord]] = field(default_factory=dict)
    next_call_id: int = 1000000

    def exten_kind(self, number: str) -> str | None:
        """The kind of a number of this subscription (users' extensions are "user")."""
        kind = self.numbers.get(number)
        if kind is not None:
            return kind
        for user in self.users.values():
            if any(e.exten == number for e in user.extens):
                return "user"
        return None

    def sorted_numbers(self) -> list[str]:
        """The phone numbers in listing order (cached while the set of numbers is unchanged)."""
        book = self.phonebook
        if isinstance(book, Phonebook):
            return book.sorted_numbers()
        return sorted(book, key=phone_sort_key)

    def sorted_phonebook(self) -> list[tuple[str, PhonebookRecord]]:
        book = self.phonebook
        return [(number, book[number]) for number in self.sorted_numbers()]


@dataclass
class StateData:
    """Everything the emulator holds; only touched under the state's lock."""

    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    recordings: dict[str, Recording] = field(default_factory=dict)
    calls: list[CallLogRecord] = field(default_factory=list)


def _now_local() -> datetime:
    return datetime.now(BUDAPEST)


def _entry_snapshot(phonenumber: str, record: PhonebookRecord) -> dict[str, object]:
    return {
        "phonenumber": phonenumber,
        "name": record.name,
        "tags": list(record.tags),
        "comment": record.comment,
        "custom_fields": dict(record.custom_fields),
    }


def _check_digits(phonenumber: str) -> None:
    if not phonenumber.isascii() or not phonenumber.isdigit() or phonenumber.startswith("0"):
        raise ValueError(
            f"phone number {phonenumber!r} must be digits without a leading zero "
            "(international format, no '+')"
        )


class EmulatorState:
    """All emulator data behind one re-entrant lock.

    ``clock`` gives the current Budapest local time (for call logs and status
    changes); tests may replace it. Change listeners run after every change,
    still under the lock, so a listener that saves the state sees it whole.
    """

    def __init__(self, clock: Callable[[], datetime] = _now_local) -> None:
        # How set_phonebook_entry stores what it is sent (not saved with the data).
        self.semantics = emulator_semantics.default_semantics()
        self._lock = threading.RLock()
        self._data = StateData()
        self._listeners: list[Callable[[], None]] = []
        self.clock = clock

    # -- locking and change notification ------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[StateData]:
        """Hold the lock and hand out the raw data; call :meth:`changed` after writes."""
        with self._lock:
            yield self._data

    def changed(self) -> None:
        """Tell the listeners (e.g. the state-file saver) that data changed."""
        with self._lock:
            for listener in list(self._listeners):
                listener()

    def add_change_listener(self, listener: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_change_listener(self, listener: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.remove(listener)

    def _subscription(self, vipex_id: str) -> Subscription:
        try:
            return self._data.subscriptions[vipex_id]
        except KeyError:
            raise KeyError(f"no subscription {vipex_id!r} in the emulator state") from None

    # -- set-up and "by hand" edits -----------------------------------------

    def add_subscription(self, vipex_id: str) -> None:
        with self._lock:
            self._data.subscriptions.setdefault(vipex_id, Subscription(vipex_id))
            self.changed()

    def subscription_ids(self) -> list[str]:
        with self._lock:
            return list(self._data.subscriptions)

    def add_custom_field(
        self,
        vipex_id: str,
        field_id: int,
        field_name: str,
        field_type: str,
        options: Sequence[tuple[int, str]] = (),
    ) -> None:
        if field_type not in ("menu", "number_sequence", "text"):
            raise ValueError(f"custom field type {field_type!r} is not menu/number_sequence/text")
        with self._lock:
            sub = self._subscription(vipex_id)
            sub.custom_fields[field_id] = CustomFieldDef(
                field_id, field_name, field_type, [(int(i), str(lbl)) for i, lbl in options]
            )
            self.changed()

    def put_entry(
        self,
        vipex_id: str,
        phonenumber: str,
        name: str,
        tags: Sequence[str] = (),
        comment: str = "",
        custom_fields: Mapping[int, str] | None = None,
    ) -> None:
        """Create or replace an entry as a person would in the web UI (no request counted)."""
        _check_digits(phonenumber)
        with self._lock:
            sub = self._subscription(vipex_id)
            sub.phonebook[phonenumber] = PhonebookRecord(
                name=name,
                tags=[t for t in tags if t],
                comment=comment,
                custom_fields={int(k): v for k, v in (custom_fields or {}).items() if v != ""},
            )
            self.changed()

    def remove_entry(self, vipex_id: str, phonenumber: str) -> bool:
        with self._lock:
            sub = self._subscription(vipex_id)
            gone = sub.phonebook.pop(phonenumber, None) is not None
            if gone:
                self.changed()
            return gone

    def entries(self, vipex_id: str) -> list[dict[str, object]]:
        """Snapshot of the phonebook in listing order."""
        with self._lock:
            sub = self._subscription(vipex_id)
            return [_entry_snapshot(num, rec) for num, rec in sub.sorted_phonebook()]

    def entry(self, vipex_id: str, phonenumber: str) -> dict[str, object] | None:
        with self._lock:
            rec = self._subscription(vipex_id).phonebook.get(phonenumber)
            return None if rec is None else _entry_snapshot(phonenumber, rec)

    def add_number(self, vipex_id: str, number: str, kind: str) -> None:
        """Give the subscription a base/ivr/voicemail extension or a phone number."""
        if kind not in NUMBER_KINDS:
            raise ValueError(f"number kind {kind!r} is not one of {NUMBER_KINDS}")
        with self._lock:
            self._subscription(vipex_id).numbers[number] = kind
            self.changed()

    def add_user(
        self,
        vipex_id: str,
        user_id: int,
        name: str,
        email: str,
        *,
        operator: bool = False,
        status: int | None = None,
        extens: Sequence[ExtenRecord] = (),
        listed: bool = True,
    ) -> None:
        with self._lock:
            self._subscription(vipex_id).users[user_id] = UserRecord(
                user_id, name, email, operator, status, list(extens), listed
            )
            self.changed()

    def user(self, vipex_id: str, user_id: int) -> UserRecord | None:
        with self._lock:
            return self._subscription(vipex_id).users.get(user_id)

    def add_operator_status(
        self,
        vipex_id: str,
        status_id: int,
        status: int,
        label: str,
        *,
        logout: bool = False,
        deleted: bool = False,
    ) -> None:
        with self._lock:
            self._subscription(vipex_id).statuses.append(
                OperatorStatusRecord(status_id, status, label, logout, deleted)
            )
            self.changed()

    def add_status_period(
        self, vipex_id: str, user_id: int, status_id: int, date_from: str, date_to: str = OPEN_END
    ) -> None:
        with self._lock:
            history = self._subscription(vipex_id).status_history.setdefault(user_id, [])
            history.append(StatusPeriodRecord(status_id, date_from, date_to))
            self.changed()

    def status_history(self, vipex_id: str, user_id: int) -> list[StatusPeriodRecord]:
        with self._lock:
            return list(self._subscription(vipex_id).status_history.get(user_id, []))

    def add_current_call(self, vipex_id: str, exten: str, call: CurrentCallRecord) -> None:
        with self._lock:
            self._subscription(vipex_id).current_calls.setdefault(exten, []).append(call)
            self.changed()

    def set_forward(self, vipex_id: str, number: str, forward: CallForwardRecord) -> None:
        with self._lock:
            forwards = self._subscription(vipex_id).forwards.setdefault(number, {})
            forwards[forward.forward_type] = forward
            self.changed()

    def forwards(self, vipex_id: str, number: str) -> list[CallForwardRecord]:
        with self._lock:
            return list(self._subscription(vipex_id).forwards.get(number, {}).values())

    def set_next_call_id(self, vipex_id: str, call_id: int) -> None:
        with self._lock:
            self._subscription(vipex_id).next_call_id = call_id
            self.changed()

    def add_recording(
        self, rec: str, filename: str, data: bytes, content_type: str = "audio/wav"
    ) -> None:
        with self._lock:
            self._data.recordings[rec] = Recording(filename, content_type, data)
            self.changed()

    def calls_made(self) -> list[CallLogRecord]:
        """Every call started through the API, oldest first."""
        with self._lock:
            return list(self._data.calls)

    # -- persistence ----------------------------------------------------------

    def to_json(self) -> dict[str, object]:
        with self._lock:
            return _data_to_json(self._data)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EmulatorState:
        state = cls()
        state._data = _data_from_json(data)
        return state

    def save(self, path: Path) -> None:
        """Write the state as JSON atomically (temporary file, then rename)."""
        text = json.dumps(self.to_json(), ensure_ascii=False, indent=1)
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path) -> EmulatorState:
        with Path(path).open(encoding="utf-8") as handle:
            data = json.load(handle)
        if not isinstance(data, dict):
            raise ValueError(f"emulator state file {path} does not hold a JSON object")
        return cls.from_json(data)


# -- JSON (de)serialisation ---------------------------------------------------


def _data_to_json(data: StateData) -> dict[str, object]:
    subs: list[dict[str, object]] = []
    for sub in data.subscriptions.values():
        subs.append(
            {
                "vipex_id": sub.vipex_id,
                "next_call_id": sub.next_call_id,
                "numbers": dict(sub.numbers),
                "custom_fields": [
                    {
                        "field_id": f.field_id,
                        "field_name": f.field_name,
                        "field_type": f.field_type,
                        "options": [[i, lbl] for i, lbl in f.options],
                    }
                    for f in sub.custom_fields.values()
                ],
                "phonebook": [
                    {
                        "phonenumber": num,
                        "name": rec.name,
                        "tags": list(rec.tags),
                        "comment": rec.comment,
                        "custom_fields": {str(k): v for k, v in rec.custom_fields.items()},
                    }
                    for num, rec in sub.sorted_phonebook()
                ],
                "users": [
                    {
                        "id": u.id,
                        "name": u.name,
                        "email": u.email,
                        "operator": u.operator,
                        "status": u.status,
                        "listed": u.listed,
                        "extens": [
                            {
                                "exten": e.exten,
                                "cost_location": e.cost_location,
                                "default": e.default,
                                "operator": e.operator,
                            }
                            for e in u.extens
                        ],
                    }
                    for u in sub.users.values()
                ],
                "statuses": [
                    {
                        "status_id": s.status_id,
                        "status": s.status,
                        "label": s.label,
                        "logout": s.logout,
                        "deleted": s.deleted,
                    }
                    for s in sub.statuses
                ],
                "status_history": {
                    str(uid): [[p.status_id, p.date_from, p.date_to] for p in periods]
                    for uid, periods in sub.status_history.items()
                },
                "current_calls": {
                    exten: [vars(c).copy() for c in calls]
                    for exten, calls in sub.current_calls.items()
                },
                "forwards": {
                    number: [vars(f).copy() for f in fwd.values()]
                    for number, fwd in sub.forwards.items()
                },
            }
        )
    return {
        "format": STATE_FORMAT_VERSION,
        "subscriptions": subs,
        "recordings": {
            rec: {
                "filename": r.filename,
                "content_type": r.content_type,
                "data": base64.b64encode(r.data).decode("ascii"),
            }
            for rec, r in data.recordings.items()
        },
        "calls": [vars(c).copy() for c in data.calls],
    }


def _data_from_json(raw: Mapping[str, Any]) -> StateData:
    if raw.get("format") != STATE_FORMAT_VERSION:
        raise ValueError(
            f"emulator state format {raw.get('format')!r} is not {STATE_FORMAT_VERSION}; "
            "delete the state file to start from the example data"
        )
    data = StateData()
    for s in raw.get("subscriptions", []):
        sub = Subscription(str(s["vipex_id"]), next_call_id=int(s["next_call_id"]))
        sub.numbers = {str(k): str(v) for k, v in s.get("numbers", {}).items()}
        for f in s.get("custom_fields", []):
            sub.custom_fields[int(f["field_id"])] = CustomFieldDef(
                int(f["field_id"]),
                str(f["field_name"]),
                str(f["field_type"]),
                [(int(i), str(lbl)) for i, lbl in f.get("options", [])],
            )
        for e in s.get("phonebook", []):
            sub.phonebook[str(e["phonenumber"])] = PhonebookRecord(
                str(e["name"]),
                [str(t) for t in e["tags"]],
                str(e["comment"]),
                {int(k): str(v) for k, v in e["custom_fields"].items()},
            )
        for u in s.get("users", []):
            sub.users[int(u["id"])] = UserRecord(
                int(u["id"]),
                str(u["name"]),
                str(u["email"]),
                bool(u["operator"]),
                None if u["status"] is None else int(u["status"]),
                [ExtenRecord(**x) for x in u["extens"]],
                bool(u.get("listed", True)),
            )
        sub.statuses = [OperatorStatusRecord(**x) for x in s.get("statuses", [])]
        sub.status_history = {
            int(uid): [StatusPeriodRecord(int(p[0]), str(p[1]), str(p[2])) for p in periods]
            for uid, periods in s.get("status_history", {}).items()
        }
        sub.current_calls = {
            str(exten): [CurrentCallRecord(**c) for c in calls]
            for exten, calls in s.get("current_calls", {}).items()
        }
        sub.forwards = {
            str(number): {f["forward_type"]: CallForwardRecord(**f) for f in fwds}
            for number, fwds in s.get("forwards", {}).items()
        }
        data.subscriptions[sub.vipex_id] = sub
    for rec, r in raw.get("recordings", {}).items():
        data.recordings[str(rec)] = Recording(
            str(r["filename"]), str(r["content_type"]), base64.b64decode(r["data"])
        )
    data.calls = [CallLogRecord(**c) for c in raw.get("calls", [])]
    return data


# -- the vendor document's example data ---------------------------------------


def silent_wav(seconds: float = 0.1, rate: int = 8000) -> bytes:
    """A valid mono 8-bit PCM WAV of silence, as a stand-in recording."""
    samples = int(seconds * rate)
    body = b"\x80" * samples
    header = b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8)
    return header + fmt + b"data" + struct.pack("<I", len(body)) + body


#: The recording id the example state holds (``rec`` of ``get_record``).
EXAMPLE_RECORDING_ID = "b3BlbmV0LTExNDExNzgwNA"

_EXAMPLE_STATUSES = (
    (1, 0, "Hívható", False),
    (2, 1, "Kijelentkezett", True),
    (6, 2, "Szünet", False),
    (8, 4, "Utómunka", False),
)


def example_state() -> EmulatorState:
    """The vendor document's example data, so each example request gets its example answer.

    Subscription 1643897 holds the phonebook (18 entries; the document's
    example entry 3619996000 is the 12th in number order, so offset=11&limit=1
    lists it), the custom fields, extension 2000's current calls, the call
    forwards of 234, IVR extension 700 and the next call id 1912945.
    Subscription 3212601 holds the users, operator statuses, user 27's status
    history, extension 1600 and the next call id 2253053.
    """
    st = EmulatorState()
    a, b = "1643897", "3212601"
    st.add_subscription(a)
    st.add_subscription(b)

    # -- 1643897: phonebook side
    st.add_custom_field(a, 1, "teszt1", "menu", [(1, "opt1"), (9, "opt2"), (3, "opt3")])
    st.add_custom_field(a, 10, "irsz", "number_sequence")
    st.add_custom_field(a, 19, "Teszt szöveg", "text")
    lower = [
        ("3612345601", "Alfa Bt.", ["ugyfel"], "", {10: "1011"}),
        ("3612345602", "Béta Kft.", ["ugyfel", "vip"], "Hívja délelőtt", {1: "opt2"}),
        ("3612345603", "Gamma Zrt.", [], "", {}),
        ("3612345604", "Delta Szerviz", ["szallito"], "", {19: "Karbantartás"}),
        ("3612345605", "Epszilon Kft.", [], "Régi ügyfél", {}),
        ("3612345606", "Zéta Bt.", ["ugyfel"], "", {10: "1051,1052"}),
        ("3612345607", "Éta Iroda", [], "", {1: "opt3"}),
        ("3612345608", "Théta Kft.", ["partner"], "", {}),
        ("3612345609", "Ióta Nyomda", [], "", {}),
        ("3612345610", "Kappa Logisztika", ["szallito"], "", {}),
        ("3612345611", "Lambda Labor", [], "", {}),
    ]
    higher = [
        ("36201234567", "Kovács Anna", ["ugyfel"], "", {}),
        ("36209876543", "Nagy Péter", [], "", {}),
        ("36301112233", "Szabó Éva", ["vip"], "", {1: "opt1"}),
        ("36305556677", "Tóth Gábor", [], "", {}),
        ("36701234568", "Horváth Zsófia", ["partner"], "", {}),
        ("36709998877", "Varga István", [], "Csak e-mailben", {}),
    ]
    for num, name, tags, comment, custom in lower + higher:
        st.put_entry(a, num, name, tags, comment, custom)
    st.put_entry(
        a, "3619996000", "Opennetworks Kft", ["tag1", "tag2", "tag3"], "Test comment", {1: "opt1"}
    )
    for num, kind in (
        ("234", "base"),
        ("6025", "base"),
        ("432", "user"),
        ("700", "ivr"),
        ("800", "voicemail"),
        ("3615550100", "phonenumber"),
    ):
        st.add_number(a, num, kind)
    st.add_user(
        a,
        5,
        "Demo Operátor",
        "demo@example.hu",
        operator=True,
        status=0,
        extens=[ExtenRecord("2000", "100", default=True, operator=True)],
    )
    st.add_user(
        a,
        6,
        "Demo Felhasználó",
        "demo2@example.hu",
        extens=[ExtenRecord("2002", None, default=True)],
    )
    for status_id, code, label, logout in _EXAMPLE_STATUSES:
        st.add_operator_status(a, status_id, code, label, logout=logout)
    st.add_current_call(
        a,
        "2000",
        CurrentCallRecord(
            114117854,
            114117804,
            "external",
            "inbound",
            "2023-07-21 16:29:58",
            "2023-07-21 16:30:11",
            "3619996000",
        ),
    )
    st.add_current_call(
        a,
        "2000",
        CurrentCallRecord(
            114118134, 114118134, "internal", "outbound", "2023-07-21 16:31:56", None, "2002"
        ),
    )
    st.set_forward(a, "234", CallForwardRecord("noanswer", "phonenumber", "36701234567", 60, "all"))
    st.set_forward(a, "234", CallForwardRecord("unavailable", "exten", "432", None, "external"))
    st.set_next_call_id(a, 1912945)

    # -- 3212601: users and operators
    st.add_user(
        b,
        1,
        "Teszt Felhasznalo 1",
        "test_user1@opennet.hu",
        operator=True,
        status=0,
        extens=[ExtenRecord("1100", "311", default=True, operator=True)],
    )
    st.add_user(
        b,
        2,
        "Teszt Felhasznalo 2",
        "test_user2@opennet.hu",
        extens=[ExtenRecord("1101", "311", default=True), ExtenRecord("1103", "312")],
    )
    st.add_user(
        b,
        81,
        "Teszt Felhasznalo 3",
        "test_user3@opennet.hu",
        extens=[ExtenRecord("1110", None, default=True), ExtenRecord("1111", None)],
    )
    st.add_user(
        b,
        27,
        "Teszt Felhasznalo",
        "test_user@opennet.hu",
        operator=True,
        status=0,
        extens=[ExtenRecord("1105", "520", default=True, operator=True)],
        listed=False,
    )
    st.add_user(
        b,
        82,
        "Teszt Operator",
        "test_operator@opennet.hu",
        operator=True,
        status=0,
        extens=[ExtenRecord("1120", "520", default=True, operator=True)],
        listed=False,
    )
    for status_id, code, label, logout in _EXAMPLE_STATUSES:
        st.add_operator_status(b, status_id, code, label, logout=logout)
    for status_id, start, end in (
        (6, "2019-12-09 16:31:35", "2019-12-09 16:31:39"),
        (1, "2019-12-09 16:31:40", "2019-12-09 16:31:50"),
        (6, "2019-12-09 16:31:51", "2019-12-09 16:31:53"),
        (2, "2019-12-09 16:31:54", "2019-12-09 16:31:55"),
        (1, "2019-12-09 16:31:56", OPEN_END),
    ):
        st.add_status_period(b, 27, status_id, start, end)
    st.add_number(b, "1600", "base")
    st.add_number(b, "3615550200", "phonenumber")
    st.set_next_call_id(b, 2253053)

    st.add_recording(EXAMPLE_RECORDING_ID, "114117804.wav", silent_wav())
    return st

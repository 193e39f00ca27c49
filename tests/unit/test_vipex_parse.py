"""The vendor document's example answers, verbatim, parsed by the client's parsers.

The answers come from ``vendor_examples`` (copied from
/work/shared/spec/vipex-api.hu.txt, escapes kept), shared with the emulator's
tests, so these tests pin the client to what the real service is documented to send.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vendor_examples import EXAMPLES
from vipexsync.errors import (
    ApiError,
    ApiResultError,
    AuthError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from vipexsync.vipex import parse
from vipexsync.vipex.models import (
    CallForward,
    CurrentCall,
    CustomField,
    CustomFieldOption,
    CustomFieldValue,
    ListMetadata,
    OperatorStatus,
    PhonebookEntry,
    StatusPeriod,
    UserExten,
    VipexUser,
)
from vipexsync.wire import BUDAPEST

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
JSON_HEADERS = {"Content-Type": "application/json"}


def answer(action: str, text: str) -> dict[str, Any]:
    return parse.interpret_answer(action, 200, JSON_HEADERS, text.encode("utf-8"), NOW)


def documented(action: str) -> dict[str, Any]:
    """The vendor's example answer for ``action``, through the envelope check."""
    return answer(action, EXAMPLES[action].answer)


def local(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BUDAPEST)


OPENNETWORKS = PhonebookEntry(
    phonenumber="3619996000",
    name="Opennetworks Kft",
    tags=("tag1", "tag2", "tag3"),
    comment="Test comment",
    custom_field_options=(CustomFieldValue(field_id=1, field_value="opt1"),),
)


# ------------------------------------------------------------------ one test per example


def test_dial_phonenumber_example() -> None:
    action = "dial_phonenumber"
    assert parse.parse_call_id(action, documented(action)) == 2253053


def test_outbound_ivr_example() -> None:
    action = "outbound_ivr"
    assert parse.parse_call_id(action, documented(action)) == 1912945


def test_get_extens_current_calls_example() -> None:
    action = "get_extens_current_calls"
    calls = parse.parse_current_calls(action, documented(action))
    assert calls.exten == "2000"
    assert calls.calls == (
        CurrentCall(
            id=114117854,
            call_id=114117804,
            other_party_type="external",
            direction="inbound",
            start_time=local(2023, 7, 21, 16, 29, 58),
            answer_time=local(2023, 7, 21, 16, 30, 11),
            other_party_number="3619996000",
        ),
        CurrentCall(
            id=114118134,
            call_id=114118134,
            other_party_type="internal",
            direction="outbound",
            start_time=local(2023, 7, 21, 16, 31, 56),
            answer_time=None,
            other_party_number="2002",
        ),
    )
    # Local summer time in Budapest is UTC+2.
    start = calls.calls[0].start_time
    assert start is not None
    assert start.astimezone(UTC) == datetime(2023, 7, 21, 14, 29, 58, tzinfo=UTC)


def test_get_vipex_user_example() -> None:
    action = "get_vipex_user"
    user = parse.parse_user(action, documented(action))
    assert user == VipexUser(
        id=27,
        name="Teszt Felhasznalo",
        email="test_user@opennet.hu",
        operator=True,
        status=0,
        extens=(UserExten(exten="1105", cost_location="520", default=True, operator=True),),
    )


def test_get_vipex_user_list_example() -> None:
    action = "get_vipex_user_list"
    users = parse.parse_user_list(action, documented(action))
    assert [u.id for u in users] == [1, 2, 81]
    assert users[1] == VipexUser(
        id=2,
        name="Teszt Felhasznalo 2",
        email="test_user2@opennet.hu",
        operator=False,
        status=None,
        extens=(
            UserExten(exten="1101", cost_location="311", default=True, operator=False),
            UserExten(exten="1103", cost_location="312", default=False, operator=False),
        ),
    )
    assert users[2].extens[0].cost_location is None
    assert users[0].status == 0


def test_get_operator_status_list_example() -> None:
    action = "get_operator_status_list"
    statuses = parse.parse_status_list(action, documented(action))
    assert statuses == (
        OperatorStatus(status_id=1, status=0, label="Hívható", logout=False, deleted=False),
        OperatorStatus(status_id=2, status=1, label="Kijelentkezett", logout=True, deleted=False),
        OperatorStatus(status_id=6, status=2, label="Szünet", logout=False, deleted=False),
        OperatorStatus(status_id=8, status=4, label="Utómunka", logout=False, deleted=False),
    )
    assert [s.callable for s in statuses] == [True, False, False, False]


def test_get_operator_status_history_example() -> None:
    action = "get_operator_status_history"
    history = parse.parse_status_history(action, documented(action))
    assert history.id == 27
    assert len(history.periods) == 5
    assert history.periods[0] == StatusPeriod(
        status_id=6,
        date_from=local(2019, 12, 9, 16, 31, 35),
        date_to=local(2019, 12, 9, 16, 31, 39),
    )
    assert history.periods[-1] == StatusPeriod(
        status_id=1, date_from=local(2019, 12, 9, 16, 31, 56), date_to=None
    )
    first = history.periods[0].date_from
    assert first is not None
    assert first.utcoffset() is not None  # aware, winter time UTC+1
    assert first.astimezone(UTC).hour == 15


def test_set_operator_status_example() -> None:
    action = "set_operator_status"
    assert parse.parse_new_status_id(action, documented(action)) == 1


@pytest.mark.parametrize(
    "action",
    ["set_call_forward", "del_call_forward", "set_phonebook_entry", "del_phonebook_entry"],
)
def test_result_only_examples(action: str) -> None:
    assert documented(action) == {"result": 1}


def test_get_call_forward_list_example() -> None:
    action = "get_call_forward_list"
    forwards = parse.parse_forward_list(action, documented(action))
    assert forwards.number == "234"
    assert forwards.forwards == (
        CallForward(
            forward_type="noanswer",
            destination_type="phonenumber",
            destination_number="36701234567",
            noanswer_timeout=60,
            call_type="all",
        ),
        CallForward(
            forward_type="unavailable",
            destination_type="exten",
            destination_number="432",
            noanswer_timeout=None,
            call_type="external",
        ),
    )


def test_get_phonebook_entry_example() -> None:
    action = "get_phonebook_entry"
    entry = parse.parse_phonebook_entry(action, documented(action))
    assert entry == OPENNETWORKS
    assert isinstance(entry.phonenumber, str)


def test_get_phonebook_list_example() -> None:
    action = "get_phonebook_list"
    page = parse.parse_phonebook_page(action, documented(action))
    assert page.entries == (OPENNETWORKS,)
    assert page.metadata == ListMetadata(
        max_queryable_rows=200, full_count=18, list_count=1, list_from=11, list_to=11
    )


def test_get_phonebook_custom_field_list_example() -> None:
    action = "get_phonebook_custom_field_list"
    fields = parse.parse_custom_fields(action, documented(action))
    assert fields == (
        CustomField(
            field_id=1,
            field_name="teszt1",
            field_type="menu",
            options=(
                CustomFieldOption(1, "opt1"),
                CustomFieldOption(9, "opt2"),
                CustomFieldOption(3, "opt3"),
            ),
        ),
        CustomField(field_id=10, field_name="irsz", field_type="number_sequence"),
        CustomField(field_id=19, field_name="Teszt szöveg", field_type="text"),
    )


# ------------------------------------------------------------------ quirks and failures


def test_tags_are_stripped_and_empties_dropped() -> None:
    assert parse.split_tags(" a, b ,,c ,") == ("a", "b", "c")
    assert parse.split_tags("") == ()
    assert parse.split_tags(None) == ()


def test_result_zero_is_an_api_result_error_with_the_reason() -> None:
    body = json.dumps({"onvipex_result": {"result": 0, "reason": "Hiányzó paraméter: exten"}})
    with pytest.raises(ApiResultError) as caught:
        parse.interpret_answer("dial_phonenumber", 200, JSON_HEADERS, body.encode(), NOW)
    assert caught.value.reason == "Hiányzó paraméter: exten"
    assert caught.value.action == "dial_phonenumber"


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthError), (403, AuthError), (500, ServerError), (502, ServerError), (404, ApiError)],
)
def test_http_statuses_map_to_errors(status: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse.interpret_answer("get_vipex_user", status, {}, b"<html>nope</html>", NOW)


def test_429_carries_retry_after_in_seconds_or_as_a_date() -> None:
    with pytest.raises(RateLimitedError) as caught:
        parse.interpret_answer("x", 429, {"retry-after": "7"}, b"slow down", NOW)
    assert caught.value.retry_after == 7.0
    with pytest.raises(RateLimitedError) as caught:
        parse.interpret_answer("x", 429, {"Retry-After": "Thu, 01 Jan 2026 12:00:30 GMT"}, b"", NOW)
    assert caught.value.retry_after == 30.0
    with pytest.raises(RateLimitedError) as caught:
        parse.interpret_answer("x", 429, {}, b"", NOW)
    assert caught.value.retry_after is None


@pytest.mark.parametrize(
    ("content_type", "body", "words"),
    [
        ("text/html", b"<html><body>Karbantartas</body></html>", "HTML"),
        (None, b"  <!DOCTYPE html><html></html>", "HTML"),
        ("application/json", b"not json at all", "not valid JSON"),
        ("application/json", b"[1, 2]", "no 'onvipex_result'"),
        ("application/json", b'{"result": 1}', "no 'onvipex_result'"),
        ("application/json", b'{"onvipex_result": {"id": 3}}', "result was None"),
        ("application/json", b'{"onvipex_result": {"result": true}}', "result was True"),
    ],
)
def test_bodies_that_are_not_the_envelope_are_transport_errors(
    content_type: str | None, body: bytes, words: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    with pytest.raises(TransportError) as caught:
        parse.interpret_answer("get_phonebook_entry", 200, headers, body, NOW)
    assert caught.value.sent is True
    assert words in str(caught.value)
    assert "get_phonebook_entry" in str(caught.value)


@pytest.mark.parametrize(
    ("result", "field"),
    [
        ({"result": 1, "name": "x", "tags": "", "comment": ""}, "onvipex_result.phonenumber"),
        (
            {"result": 1, "phonenumber": True, "name": "x", "tags": "", "comment": ""},
            "onvipex_result.phonenumber",
        ),
        ({"result": 1, "phonenumber": "36", "tags": "", "comment": ""}, "onvipex_result.name"),
        (
            {"result": 1, "phonenumber": 36, "name": "x", "tags": 5, "comment": ""},
            "onvipex_result.tags",
        ),
        (
            {
                "result": 1,
                "phonenumber": 36,
                "name": "x",
                "tags": "",
                "comment": "",
                "custom_field_options": [{"field_id": "one", "field_value": "a"}],
            },
            "onvipex_result.custom_field_options[0].field_id",
        ),
        (
            {
                "result": 1,
                "phonenumber": 36,
                "name": "x",
                "tags": "",
                "comment": "",
                "custom_field_options": "nope",
            },
            "onvipex_result.custom_field_options",
        ),
    ],
)
def test_malformed_entries_name_the_field(result: dict[str, Any], field: str) -> None:
    with pytest.raises(TransportError) as caught:
        parse.parse_phonebook_entry("get_phonebook_entry", result)
    assert field in str(caught.value)
    assert "get_phonebook_entry" in str(caught.value)


def test_malformed_metadata_and_dates_name_the_field() -> None:
    page = json.loads(EXAMPLES["get_phonebook_list"].answer)["onvipex_result"]
    page["metadata"]["full_count"] = "many"
    with pytest.raises(TransportError, match=r"onvipex_result\.metadata\.full_count"):
        parse.parse_phonebook_page("get_phonebook_list", page)
    history = json.loads(EXAMPLES["get_operator_status_history"].answer)["onvipex_result"]
    history["status_history"][1]["date_to"] = "2019-12-09T16:31:50"
    with pytest.raises(TransportError, match=r"status_history\[1\]\.date_to"):
        parse.parse_status_history("get_operator_status_history", history)
    statuses = json.loads(EXAMPLES["get_operator_status_list"].answer)["onvipex_result"]
    statuses["status_list"][0]["logout"] = 2
    with pytest.raises(TransportError, match=r"status_list\[0\]\.logout"):
        parse.parse_status_list("get_operator_status_list", statuses)
    fields = json.loads(EXAMPLES["get_phonebook_custom_field_list"].answer)["onvipex_result"]
    fields["phonebook_custom_field_list"][2]["field_type"] = "date"
    with pytest.raises(TransportError, match=r"field_type is 'date'"):
        parse.parse_custom_fields("get_phonebook_custom_field_list", fields)


def test_lenient_where_the_meaning_is_clear() -> None:
    # null comment/tags read as empty, numeric field values and string counts as text/ints.
    entry = parse.parse_phonebook_entry(
        "get_phonebook_entry",
        {
            "result": 1,
            "phonenumber": "3612345678",
            "name": "A",
            "tags": None,
            "comment": None,
            "custom_field_options": [{"field_id": "10", "field_value": 1234}],
        },
    )
    assert entry == PhonebookEntry(
        phonenumber="3612345678",
        name="A",
        tags=(),
        comment="",
        custom_field_options=(CustomFieldValue(10, "1234"),),
    )


def test_redirects_are_reported_not_followed_and_hide_credentials() -> None:
    headers = {"Location": "https://user:pw@cloud.example.hu/new/?rt=api&token=abc"}
    with pytest.raises(ApiError) as caught:
        parse.interpret_answer("get_vipex_user", 301, headers, b"", NOW)
    text = str(caught.value)
    assert "https://cloud.example.hu/new/" in text
    assert "pw" not in text
    assert "token" not in text


# ------------------------------------------------------------------ robustness

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

PARSERS: list[tuple[str, Callable[[str, dict[str, Any]], object]]] = [
    ("get_phonebook_entry", parse.parse_phonebook_entry),
    ("get_phonebook_list", parse.parse_phonebook_page),
    ("get_phonebook_custom_field_list", parse.parse_custom_fields),
    ("get_extens_current_calls", parse.parse_current_calls),
    ("get_vipex_user", parse.parse_user),
    ("get_vipex_user_list", parse.parse_user_list),
    ("get_operator_status_list", parse.parse_status_list),
    ("get_operator_status_history", parse.parse_status_history),
    ("get_call_forward_list", parse.parse_forward_list),
    ("dial_phonenumber", parse.parse_call_id),
]


_DELETE = object()


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found: list[tuple[object, ...]] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found.extend(_paths(inner, (*prefix, key)))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found.extend(_paths(inner, (*prefix, index)))
    return found


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_corruption_of_an_answer_parses_or_is_a_transport_error(data: st.DataObject) -> None:
    action, parser = data.draw(st.sampled_from(PARSERS))
    result = json.loads(EXAMPLES[action].answer)["onvipex_result"]
    path = data.draw(st.sampled_from(_paths(result)))
    replacement = data.draw(json_values | st.just(_DELETE))
    target: Any = result
    for step in path[:-1]:
        target = target[step]
    if replacement is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = replacement
    message = ""
    try:
        parser(action, result)
    except TransportError as error:  # the only failure allowed
        message = str(error)
    if message:
        assert action in message
        assert "answer's field" in message

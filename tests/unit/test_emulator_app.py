"""The emulator's WSGI app, driven in-process with werkzeug's test Client."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from xml.etree import ElementTree

import pytest
from werkzeug.test import Client, TestResponse

from vipexsync.emulator.app import EmulatorApp
from vipexsync.emulator.faults import Faults
from vipexsync.emulator.state import EmulatorState, example_state
from vipexsync.wire import BUDAPEST

AUTH = {"Authorization": "Basic " + base64.b64encode(b"api_user:api_password").decode()}
A = "1643897"
B = "3212601"


class Api:
    """A tiny caller around the test Client that returns the onvipex_result dict."""

    def __init__(self, state: EmulatorState | None = None, faults: Faults | None = None) -> None:
        self.state = state if state is not None else example_state()
        self.app = EmulatorApp(self.state, faults)
        self.client = Client(self.app)

    def raw(self, method: str = "GET", **kwargs: Any) -> TestResponse:
        kwargs.setdefault("headers", AUTH)
        return self.client.open("/", method=method, **kwargs)

    def get(self, **params: object) -> dict[str, Any]:
        response = self.raw(query_string={"rt": "api", **params})
        return self._decode(response)

    def post_form(self, **params: object) -> dict[str, Any]:
        response = self.raw("POST", query_string={"rt": "api"}, data=params)
        return self._decode(response)

    def post_json(self, body: Mapping[str, object]) -> dict[str, Any]:
        response = self.raw("POST", query_string={"rt": "api"}, json=body)
        return self._decode(response)

    @staticmethod
    def _decode(response: TestResponse) -> dict[str, Any]:
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "application/json"
        result = json.loads(response.get_data(as_text=True))["onvipex_result"]
        assert isinstance(result, dict)
        return result


@pytest.fixture
def api() -> Api:
    return Api()


def ok(result: Mapping[str, Any]) -> Mapping[str, Any]:
    assert result["result"] == 1, result
    return result


def refused(result: Mapping[str, Any], *words: str) -> str:
    assert result["result"] == 0, result
    reason = result["reason"]
    assert isinstance(reason, str)
    assert reason
    for word in words:
        assert word in reason
    return reason


# -- routing, auth, verbs -------------------------------------------------------


@pytest.mark.parametrize("query", ["", "rt=web", "action=get_phonebook_list&vipex_id=1643897"])
def test_without_rt_api_the_web_ui_answers_html(api: Api, query: str) -> None:
    response = api.raw(query_string=query)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "<html" in response.get_data(as_text=True)
    assert api.app.request_counts() == {}


def test_rt_in_the_body_does_not_reach_the_api(api: Api) -> None:
    response = api.raw("POST", data={"rt": "api", "action": "get_phonebook_list"})
    assert response.mimetype == "text/html"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + base64.b64encode(b"api_user:wrong").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"someone:api_password").decode()},
        {"Authorization": "Bearer api_password"},
    ],
)
def test_missing_or_wrong_credentials_get_401(api: Api, headers: dict[str, str]) -> None:
    response = api.raw(query_string={"rt": "api", "action": "get_phonebook_entry"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="VIPeX"'
    assert api.app.request_counts() == {"get_phonebook_entry": 1}


def test_custom_credentials() -> None:
    app = EmulatorApp(example_state(), credentials={"u": "p"})
    client = Client(app)
    good = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
    query = {"rt": "api", "action": "get_phonebook_custom_field_list", "vipex_id": A}
    assert client.get("/", query_string=query, headers=good).status_code == 200
    assert client.get("/", query_string=query, headers=AUTH).status_code == 401
    assert repr(app) == "EmulatorApp(users=['u'])"


def test_other_verbs_are_not_allowed(api: Api) -> None:
    response = api.raw("PUT", query_string={"rt": "api", "action": "get_phonebook_list"})
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


# -- envelope-level refusals -------------------------------------------------------------


def test_missing_and_unknown_action(api: Api) -> None:
    refused(api.get(vipex_id=A), "action")
    refused(api.get(action="get_everything", vipex_id=A), "get_everything")


def test_version(api: Api) -> None:
    ok(api.get(action="get_phonebook_custom_field_list", vipex_id=A, version="1.0"))
    refused(api.get(action="get_phonebook_custom_field_list", vipex_id=A, version="2.0"), "2.0")


def test_unknown_format_is_refused_in_json(api: Api) -> None:
    refused(api.get(action="get_phonebook_custom_field_list", vipex_id=A, format="yaml"), "yaml")


@pytest.mark.parametrize(
    "action",
    [
        "dial_phonenumber",
        "outbound_ivr",
        "get_extens_current_calls",
        "get_vipex_user",
        "get_vipex_user_list",
        "get_operator_status_list",
        "get_operator_status_history",
        "set_operator_status",
        "set_call_forward",
        "get_call_forward_list",
        "del_call_forward",
        "set_phonebook_entry",
        "get_phonebook_entry",
        "get_phonebook_list",
        "del_phonebook_entry",
        "get_phonebook_custom_field_list",
    ],
)
def test_unknown_or_missing_subscription(api: Api, action: str) -> None:
    refused(api.get(action=action, vipex_id="999"), "999")
    refused(api.get(action=action), "vipex_id")


def test_unsupported_content_type_is_refused(api: Api) -> None:
    response = api.raw(
        "POST",
        query_string={"rt": "api"},
        data="action=get_phonebook_list",
        content_type="text/plain",
    )
    refused(Api._decode(response), "Content-Type")


@pytest.mark.parametrize("body", ["{not json", "[1, 2]"])
def test_malformed_json_body_is_refused(api: Api, body: str) -> None:
    response = api.raw(
        "POST", query_string={"rt": "api"}, data=body, content_type="application/json"
    )
    refused(Api._decode(response), "JSON")


# -- body types ----------------------------------------------------------------------


ENTRY = {
    "action": "set_phonebook_entry",
    "vipex_id": A,
    "phonenumber": "36123456789",
    "name": "Kiss Béla",
    "tags": "ugyfel, vip",
    "comment": "Megjegyzés",
}
CUSTOM = [{"field_id": 10, "field_value": "1011,1012"}, {"field_id": 19, "field_value": "Ő ű"}]
EXPECTED = {
    "phonenumber": "36123456789",
    "name": "Kiss Béla",
    "tags": ["ugyfel", "vip"],
    "comment": "Megjegyzés",
    "custom_fields": {10: "1011,1012", 19: "Ő ű"},
}


def test_set_entry_by_get_query(api: Api) -> None:
    ok(api.get(**ENTRY, custom_field_options=json.dumps(CUSTOM)))
    assert api.state.entry(A, "36123456789") == EXPECTED


def test_set_entry_by_form_body(api: Api) -> None:
    ok(api.post_form(**ENTRY, custom_field_options=json.dumps(CUSTOM)))
    assert api.state.entry(A, "36123456789") == EXPECTED


def test_set_entry_by_multipart_body(api: Api) -> None:
    seen: list[str] = []

    def spy(environ: dict[str, Any], start_response: Any) -> Any:
        seen.append(environ.get("CONTENT_TYPE", ""))
        return api.app(environ, start_response)

    response = Client(spy).post(
        "/",
        query_string={"rt": "api"},
        data={**ENTRY, "custom_field_options": json.dumps(CUSTOM)},
        content_type="multipart/form-data",
        headers=AUTH,
    )
    assert seen[0].startswith("multipart/form-data; boundary=")
    ok(Api._decode(response))
    assert api.state.entry(A, "36123456789") == EXPECTED


@pytest.mark.parametrize("as_string", [True, False])
def test_set_entry_by_json_body(api: Api, as_string: bool) -> None:
    custom: object = json.dumps(CUSTOM) if as_string else CUSTOM
    ok(api.post_json({**ENTRY, "phonenumber": 36123456789, "custom_field_options": custom}))
    assert api.state.entry(A, "36123456789") == EXPECTED


def test_body_parameters_override_the_query(api: Api) -> None:
    response = api.raw(
        "POST",
        query_string={"rt": "api", "action": "get_phonebook_entry", "vipex_id": "999"},
        data={"vipex_id": A, "phonenumber": "3619996000"},
    )
    assert ok(Api._decode(response))["name"] == "Opennetworks Kft"


def test_json_body_with_numbers_for_ids(api: Api) -> None:
    result = ok(api.post_json({"action": "get_vipex_user", "vipex_id": 3212601, "id": 27}))
    assert result["id"] == 27


# -- formats ----------------------------------------------------------------------------


def test_xml_format(api: Api) -> None:
    response = api.raw(
        query_string={
            "rt": "api",
            "action": "get_phonebook_list",
            "vipex_id": A,
            "offset": 11,
            "limit": 1,
            "format": "xml",
        }
    )
    assert response.mimetype == "application/xml"
    root = ElementTree.fromstring(response.get_data())  # noqa: S314 - our own output
    assert root.tag == "onvipex_result"
    assert root.findtext("result") == "1"
    items = root.findall("phonebook_list/item")
    assert len(items) == 1
    assert items[0].findtext("phonenumber") == "3619996000"
    assert items[0].findtext("custom_field_options/item/field_value") == "opt1"
    assert root.findtext("metadata/full_count") == "18"


def test_xml_null_and_empty_list(api: Api) -> None:
    api.state.put_entry(A, "36111111111", "X")
    response = api.raw(
        query_string={
            "rt": "api",
            "action": "get_extens_current_calls",
            "vipex_id": A,
            "exten": "2000",
            "format": "xml",
        }
    )
    root = ElementTree.fromstring(response.get_data())  # noqa: S314 - our own output
    answer = root.findall("extens_current_calls/item")[1].find("answer_time")
    assert answer is not None
    assert answer.get("nil") == "true"


def test_php_format_is_serialize_of_the_envelope(api: Api) -> None:
    response = api.raw(
        query_string={
            "rt": "api",
            "action": "get_vipex_user",
            "vipex_id": B,
            "id": 27,
            "format": "php",
        }
    )
    assert response.get_data(as_text=True) == (
        'a:1:{s:14:"onvipex_result";a:7:{s:6:"result";i:1;s:2:"id";i:27;'
        's:4:"name";s:17:"Teszt Felhasznalo";s:5:"email";s:20:"test_user@opennet.hu";'
        's:8:"operator";i:1;s:6:"status";i:0;s:6:"extens";a:1:{i:0;a:4:{'
        's:5:"exten";s:4:"1105";s:13:"cost_location";s:3:"520";s:7:"default";i:1;'
        's:8:"operator";i:1;}}}}'
    )


def test_php_format_of_a_refusal(api: Api) -> None:
    response = api.raw(query_string={"rt": "api", "action": "nope", "format": "php", "vipex_id": A})
    text = response.get_data(as_text=True)
    assert text.startswith('a:1:{s:14:"onvipex_result";a:2:{s:6:"result";i:0;s:6:"reason";s:')


# -- phone number rule -----------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "06201234567",
        "+36201234567",
        "3620123",
        "3620123456789012",
        "36 20 1234567",
        "36-20-1234567",
        "3620123456a",
        "",
        "３６２０１２３４５６７",
    ],
)
def test_invalid_phone_numbers_are_refused(api: Api, number: str) -> None:
    refused(api.get(action="set_phonebook_entry", vipex_id=A, phonenumber=number, name="X"))
    refused(api.get(action="get_phonebook_entry", vipex_id=A, phonenumber=number))
    assert len(api.state.entries(A)) == 18


@pytest.mark.parametrize("number", ["36201234", "362012345678901", "12025550123"])
def test_valid_phone_number_lengths(api: Api, number: str) -> None:
    ok(api.get(action="set_phonebook_entry", vipex_id=A, phonenumber=number, name="X"))


# -- phonebook semantics -------------------------------------------------------------------


def test_create_with_only_a_number_gives_empty_fields(api: Api) -> None:
    ok(api.get(action="set_phonebook_entry", vipex_id=A, phonenumber="36111111111"))
    assert api.state.entry(A, "36111111111") == {
        "phonenumber": "36111111111",
        "name": "",
        "tags": [],
        "comment": "",
        "custom_fields": {},
    }


def test_fields_not_sent_keep_their_value_and_empty_clears(api: Api) -> None:
    num = "3619996000"
    ok(api.get(action="set_phonebook_entry", vipex_id=A, phonenumber=num, name="Új név"))
    entry = api.state.entry(A, num)
    assert entry is not None
    assert entry["name"] == "Új név"
    assert entry["tags"] == ["tag1", "tag2", "tag3"]
    assert entry["comment"] == "Test comment"
    assert entry["custom_fields"] == {1: "opt1"}
    ok(api.get(action="set_phonebook_entry", vipex_id=A, phonenumber=num, tags="", comment=""))
    entry = api.state.entry(A, num)
    assert entry is not None
    assert (entry["name"], entry["tags"], entry["comment"]) == ("Új név", [], "")


def test_custom_fields_not_sent_are_kept_and_empty_value_clears(api: Api) -> None:
    num = "3619996000"
    opts = [{"field_id": 10, "field_value": "1"}]
    ok(
        api.post_json(
            {
                "action": "set_phonebook_entry",
                "vipex_id": A,
                "phonenumber": num,
                "custom_field_options": opts,
            }
        )
    )
    assert api.state.entry(A, num)["custom_fields"] == {1: "opt1", 10: "1"}  # type: ignore[index]
    opts = [{"field_id": 1, "field_value": ""}]
    ok(
        api.post_json(
            {
                "action": "set_phonebook_entry",
                "vipex_id": A,
                "phonenumber": num,
                "custom_field_options": opts,
            }
        )
    )
    assert api.state.entry(A, num)["custom_fields"] == {10: "1"}  # type: ignore[index]
    answer = ok(api.get(action="get_phonebook_entry", vipex_id=A, phonenumber=num))
    assert answer["custom_field_options"] == [{"field_id": 10, "field_value": "1"}]


def test_tags_are_stripped_deduplicated_and_joined(api: Api) -> None:
    ok(
        api.get(
            action="set_phonebook_entry", vipex_id=A, phonenumber="36111111111", tags=" a ,b,,a, c "
        )
    )
    answer = ok(api.get(action="get_phonebook_entry", vipex_id=A, phonenumber="36111111111"))
    assert answer["tags"] == "a,b,c"
    assert answer["phonenumber"] == 36111111111


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ([{"field_id": 99, "field_value": "x"}], ["99"]),
        ([{"field_id": 1, "field_value": "opt4"}], ["opt4"]),
        ([{"field_id": 1, "field_value": "OPT1"}], ["OPT1"]),
        ([{"field_id": 1, "field_value": "1"}], ["menü"]),
        ([{"field_id": 10, "field_value": "12,,3"}], ["számsor"]),
        ([{"field_id": 10, "field_value": "12 3"}], ["számsor"]),
        ([{"field_id": 10, "field_value": "12;3"}], ["számsor"]),
        ([{"field_id": 10, "field_value": "1a"}], ["számsor"]),
        ([{"field_id": 10, "field_value": 1011}], ["field_value"]),
        ([{"field_id": "10", "field_value": "1011"}], ["field_id"]),
        ([{"field_id": 10}], ["custom_field_options[0]"]),
        ([{"field_id": 19, "field_value": "a"}, {"field_id": 19, "field_value": "b"}], ["19"]),
        ({"field_id": 19, "field_value": "a"}, ["tömb"]),
        ("[{", ["JSON"]),
    ],
)
def test_bad_custom_field_options_are_refused_without_change(
    api: Api, options: object, words: list[str]
) -> None:
    before = api.state.entries(A)
    raw = options if isinstance(options, str) else json.dumps(options)
    refused(
        api.get(
            action="set_phonebook_entry",
            vipex_id=A,
            phonenumber="3619996000",
            name="Changed",
            custom_field_options=raw,
        ),
        *words,
    )
    assert api.state.entries(A) == before


def test_menu_and_sequence_values_accepted(api: Api) -> None:
    opts = json.dumps(
        [{"field_id": 1, "field_value": "opt3"}, {"field_id": 10, "field_value": "1,22,333"}]
    )
    ok(
        api.post_form(
            action="set_phonebook_entry",
            vipex_id=A,
            phonenumber="36111111111",
            custom_field_options=opts,
        )
    )
    assert api.state.entry(A, "36111111111")["custom_fields"] == {  # type: ignore[index]
        1: "opt3",
        10: "1,22,333",
    }


def test_get_and_delete_of_a_missing_number_are_refused(api: Api) -> None:
    refused(api.get(action="get_phonebook_entry", vipex_id=A, phonenumber="36111111111"))
    refused(api.get(action="del_phonebook_entry", vipex_id=A, phonenumber="36111111111"))
    ok(api.get(action="del_phonebook_entry", vipex_id=A, phonenumber="3619996000"))
    refused(api.get(action="del_phonebook_entry", vipex_id=A, phonenumber="3619996000"))
    refused(api.get(action="get_phonebook_entry", vipex_id=A, phonenumber="3619996000"))


def test_listing_is_in_numeric_order_with_correct_metadata(api: Api) -> None:
    api.state.put_entry(A, "99999999", "Short but large?")
    result = ok(api.get(action="get_phonebook_list", vipex_id=A, offset=0, limit=5))
    numbers = [row["phonenumber"] for row in result["phonebook_list"]]
    assert numbers == [99999999, 3612345601, 3612345602, 3612345603, 3612345604]
    assert result["metadata"] == {
        "max_queryable_rows": 200,
        "full_count": "19",
        "list_count": 5,
        "list_from": 0,
        "list_to": 4,
    }
    everything = ok(api.get(action="get_phonebook_list", vipex_id=A, offset=0, limit=200))
    all_numbers = [row["phonenumber"] for row in everything["phonebook_list"]]
    assert all_numbers == sorted(all_numbers)
    assert len(all_numbers) == 19


def test_limit_is_capped_at_200_and_pages_cover_everything() -> None:
    state = EmulatorState()
    state.add_subscription("1")
    for i in range(450):
        state.put_entry("1", f"3620{i:07d}", f"N{i}")
    api = Api(state)
    first = ok(api.get(action="get_phonebook_list", vipex_id="1", offset=0, limit=1000))
    assert first["metadata"]["list_count"] == 200
    assert first["metadata"]["list_to"] == 199
    last = ok(api.get(action="get_phonebook_list", vipex_id="1", offset=400, limit=200))
    assert last["metadata"] == {
        "max_queryable_rows": 200,
        "full_count": "450",
        "list_count": 50,
        "list_from": 400,
        "list_to": 449,
    }


def test_empty_page_past_the_end(api: Api) -> None:
    result = ok(api.get(action="get_phonebook_list", vipex_id=A, offset=18, limit=10))
    assert result["phonebook_list"] == []
    assert result["metadata"] == {
        "max_queryable_rows": 200,
        "full_count": "18",
        "list_count": 0,
        "list_from": 18,
        "list_to": 17,
    }


@pytest.mark.parametrize(
    ("offset", "limit", "word"),
    [
        (None, 10, "offset"),
        (0, None, "limit"),
        (-1, 10, "offset"),
        (0, 0, "limit"),
        ("x", 10, "offset"),
        (0, "1.5", "limit"),
    ],
)
def test_bad_paging_parameters(api: Api, offset: object, limit: object, word: str) -> None:
    params = {k: v for k, v in {"offset": offset, "limit": limit}.items() if v is not None}
    refused(api.get(action="get_phonebook_list", vipex_id=A, **params), word)


def test_custom_field_list_of_a_subscription_without_fields(api: Api) -> None:
    assert (
        ok(api.get(action="get_phonebook_custom_field_list", vipex_id=B))[
            "phonebook_custom_field_list"
        ]
        == []
    )


# -- calls -----------------------------------------------------------------------------------


def test_dial_logs_the_call_and_ids_increase(api: Api) -> None:
    first = ok(
        api.get(action="dial_phonenumber", vipex_id=B, exten="1600", phonenumber="3619996000")
    )["id"]
    second = ok(
        api.post_form(
            action="dial_phonenumber", vipex_id=B, exten="1105", phonenumber="36201234567"
        )
    )["id"]
    assert (first, second) == (2253053, 2253054)
    calls = api.state.calls_made()
    assert [(c.id, c.action, c.exten, c.phonenumber) for c in calls] == [
        (2253053, "dial_phonenumber", "1600", "3619996000"),
        (2253054, "dial_phonenumber", "1105", "36201234567"),
    ]


def test_outbound_ivr_logs_digits(api: Api) -> None:
    ok(api.get(action="outbound_ivr", vipex_id=A, phonenumber="36201234567", exten="700"))
    ok(
        api.get(
            action="outbound_ivr", vipex_id=A, phonenumber="36201234567", exten="700", digits="42"
        )
    )
    assert [c.digits for c in api.state.calls_made()] == [None, "42"]


@pytest.mark.parametrize(
    ("action", "params", "word"),
    [
        ("dial_phonenumber", {"vipex_id": B, "exten": "9999", "phonenumber": "3619996000"}, "9999"),
        (
            "dial_phonenumber",
            {"vipex_id": B, "exten": "1600", "phonenumber": "061999600"},
            "phonenumber",
        ),
        ("dial_phonenumber", {"vipex_id": B, "phonenumber": "3619996000"}, "exten"),
        ("outbound_ivr", {"vipex_id": A, "exten": "2000", "phonenumber": "3619996000"}, "IVR"),
        (
            "outbound_ivr",
            {"vipex_id": A, "exten": "700", "phonenumber": "3619996000", "digits": "12a"},
            "digits",
        ),
        ("get_extens_current_calls", {"vipex_id": A, "exten": "9999"}, "9999"),
        ("get_extens_current_calls", {"vipex_id": A}, "exten"),
        ("get_record", {"rec": "nope"}, "nope"),
        ("get_record", {}, "rec"),
    ],
)
def test_call_refusals(api: Api, action: str, params: dict[str, str], word: str) -> None:
    refused(api.get(action=action, **params), word)
    assert api.state.calls_made() == []


def test_current_calls_of_an_idle_exten_is_an_empty_array(api: Api) -> None:
    result = ok(api.get(action="get_extens_current_calls", vipex_id=A, exten="2002"))
    assert result == {"result": 1, "exten": "2002", "extens_current_calls": []}


# -- users and operator statuses ---------------------------------------------------------------


def test_set_operator_status_updates_user_and_history(api: Api) -> None:
    api.state.clock = lambda: datetime(2024, 5, 1, 9, 30, 0, tzinfo=BUDAPEST)
    result = ok(api.get(action="set_operator_status", vipex_id=B, user_id=27, status_id=6))
    assert result["new_status_id"] == 2
    user = ok(api.get(action="get_vipex_user", vipex_id=B, id=27))
    assert user["status"] == 2
    history = ok(
        api.get(
            action="get_operator_status_history",
            vipex_id=B,
            id=27,
            date_from="2024-05-01 00:00:00",
            date_to="2024-05-01 23:59:59",
        )
    )
    assert history["status_history"] == [
        {"status_id": 1, "date_from": "2019-12-09 16:31:56", "date_to": "2024-05-01 09:30:00"},
        {"status_id": 6, "date_from": "2024-05-01 09:30:00", "date_to": "0000-00-00 00:00:00"},
    ]


def test_status_history_outside_the_range_is_empty(api: Api) -> None:
    result = ok(
        api.get(
            action="get_operator_status_history",
            vipex_id=B,
            id=27,
            date_from="2019-12-08 00:00:00",
            date_to="2019-12-08 23:59:59",
        )
    )
    assert result["status_history"] == []


@pytest.mark.parametrize(
    ("action", "params", "word"),
    [
        ("get_vipex_user", {"id": "999"}, "999"),
        ("get_vipex_user", {"id": "abc"}, "id"),
        ("get_vipex_user", {}, "id"),
        ("set_operator_status", {"user_id": "999", "status_id": "1"}, "999"),
        ("set_operator_status", {"user_id": "2", "status_id": "1"}, "operátor"),
        ("set_operator_status", {"user_id": "27", "status_id": "5"}, "status_id"),
        (
            "get_operator_status_history",
            {"id": "27", "date_from": "2019-12-09", "date_to": "2019-12-09 23:59:59"},
            "date_from",
        ),
        (
            "get_operator_status_history",
            {"id": "27", "date_from": "2019-12-10 00:00:00", "date_to": "2019-12-09 23:59:59"},
            "date_to",
        ),
        (
            "get_operator_status_history",
            {"id": "999", "date_from": "2019-12-09 00:00:00", "date_to": "2019-12-09 23:59:59"},
            "999",
        ),
    ],
)
def test_user_refusals(api: Api, action: str, params: dict[str, str], word: str) -> None:
    refused(api.get(action=action, vipex_id=B, **params), word)


def test_deleted_status_cannot_be_set() -> None:
    state = example_state()
    state.add_operator_status(B, 9, 5, "Régi", deleted=True)
    api = Api(state)
    refused(api.get(action="set_operator_status", vipex_id=B, user_id=27, status_id=9), "9")
    listed = ok(api.get(action="get_operator_status_list", vipex_id=B))["status_list"]
    assert listed[-1] == {"status_id": 9, "status": 5, "label": "Régi", "logout": 0, "deleted": 1}


# -- call forwards -----------------------------------------------------------------------------


def forwards(api: Api, number: str) -> list[dict[str, Any]]:
    result = ok(api.get(action="get_call_forward_list", vipex_id=A, number=number))
    assert result["number"] == number
    value = result["call_forward_list"]
    assert isinstance(value, list)
    return value


def test_forward_same_type_overwrites_and_defaults_apply(api: Api) -> None:
    ok(
        api.get(
            action="set_call_forward",
            vipex_id=A,
            number="6025",
            forward_type="noanswer",
            destination_type="exten",
            destination_number="432",
        )
    )
    ok(
        api.get(
            action="set_call_forward",
            vipex_id=A,
            number="6025",
            forward_type="noanswer",
            destination_type="voicemail",
        )
    )
    ok(
        api.get(
            action="set_call_forward",
            vipex_id=A,
            number="6025",
            forward_type="busy",
            destination_type="phonenumber",
            destination_number="36201234567",
            noanswer_timeout="15",
            call_type="internal",
        )
    )
    assert forwards(api, "6025") == [
        {
            "forward_type": "noanswer",
            "destination_type": "voicemail",
            "destination_number": "6025",
            "noanswer_timeout": 30,
            "call_type": "all",
        },
        {
            "forward_type": "busy",
            "destination_type": "phonenumber",
            "destination_number": "36201234567",
            "call_type": "internal",
        },
    ]


def test_forward_of_a_phone_number_has_no_call_type(api: Api) -> None:
    ok(
        api.get(
            action="set_call_forward",
            vipex_id=A,
            number="3615550100",
            forward_type="immediate",
            destination_type="voicemail",
            destination_number="800",
            call_type="all",
        )
    )
    assert forwards(api, "3615550100") == [
        {"forward_type": "immediate", "destination_type": "voicemail", "destination_number": "800"}
    ]


def test_delete_forward(api: Api) -> None:
    ok(api.get(action="del_call_forward", vipex_id=A, number="234", forward_type="noanswer"))
    assert [f["forward_type"] for f in forwards(api, "234")] == ["unavailable"]
    refused(
        api.get(action="del_call_forward", vipex_id=A, number="234", forward_type="noanswer"),
        "noanswer",
    )


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"number": "5555", "forward_type": "busy", "destination_type": "voicemail"}, "5555"),
        (
            {"number": "234", "forward_type": "sometimes", "destination_type": "voicemail"},
            "forward_type",
        ),
        (
            {
                "number": "234",
                "forward_type": "busy",
                "destination_type": "fax",
                "destination_number": "1",
            },
            "destination_type",
        ),
        (
            {
                "number": "234",
                "forward_type": "busy",
                "destination_type": "exten",
                "destination_number": "9999",
            },
            "9999",
        ),
        (
            {
                "number": "234",
                "forward_type": "busy",
                "destination_type": "phonenumber",
                "destination_number": "0612345678",
            },
            "destination_number",
        ),
        (
            {
                "number": "3615550100",
                "forward_type": "busy",
                "destination_type": "voicemail",
                "destination_number": "2000",
            },
            "2000",
        ),
        (
            {
                "number": "234",
                "forward_type": "noanswer",
                "destination_type": "voicemail",
                "noanswer_timeout": "0",
            },
            "noanswer_timeout",
        ),
        (
            {
                "number": "234",
                "forward_type": "noanswer",
                "destination_type": "voicemail",
                "call_type": "some",
            },
            "call_type",
        ),
        ({"forward_type": "busy", "destination_type": "voicemail"}, "number"),
    ],
)
def test_forward_refusals_change_nothing(api: Api, params: dict[str, str], word: str) -> None:
    before = forwards(api, "234")
    refused(api.get(action="set_call_forward", vipex_id=A, **params), word)
    assert forwards(api, "234") == before


def test_forward_list_and_delete_of_unknown_number(api: Api) -> None:
    refused(api.get(action="get_call_forward_list", vipex_id=A, number="5555"), "5555")
    refused(
        api.get(action="del_call_forward", vipex_id=A, number="234", forward_type="never"),
        "forward_type",
    )


# -- faults ------------------------------------------------------------------------------------


def test_error_rate_answers_5xx_html_and_changes_nothing() -> None:
    faults = Faults(error_rate=1.0, seed=1)
    api = Api(faults=faults)
    statuses = set()
    for _ in range(20):
        response = api.raw(query_string={"rt": "api", **ENTRY})
        statuses.add(response.status_code)
        assert response.mimetype == "text/html"
    assert statuses <= {500, 502, 503}
    assert len(statuses) > 1
    assert api.state.entry(A, "36123456789") is None
    assert api.app.request_counts() == {"set_phonebook_entry": 20}


def test_rate_limit_every_nth_request() -> None:
    faults = Faults(rate_limit_every=3, retry_after_seconds=2)
    api = Api(faults=faults)
    codes = []
    for _ in range(6):
        response = api.raw(query_string={"rt": "api", **ENTRY})
        codes.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "2"
    assert codes == [200, 200, 429, 200, 200, 429]
    faults.retry_after_seconds = 0.25
    faults.rate_limit_every = 1
    assert api.raw(query_string={"rt": "api", **ENTRY}).headers["Retry-After"] == "0.25"


def test_html_rate_answers_a_maintenance_page_without_running() -> None:
    api = Api(faults=Faults(html_rate=1.0))
    response = api.raw(query_string={"rt": "api", **ENTRY})
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert api.state.entry(A, "36123456789") is None


def test_faults_limited_to_actions_and_reset() -> None:
    faults = Faults(error_rate=1.0, actions=frozenset({"get_phonebook_list"}))
    api = Api(faults=faults)
    ok(api.get(**ENTRY))
    response = api.raw(
        query_string={
            "rt": "api",
            "action": "get_phonebook_list",
            "vipex_id": A,
            "offset": 0,
            "limit": 5,
        }
    )
    assert response.status_code >= 500
    faults.reset()
    assert faults == Faults()
    ok(api.get(action="get_phonebook_list", vipex_id=A, offset=0, limit=5))


def test_seeded_faults_are_repeatable() -> None:
    def run() -> list[int]:
        api = Api(faults=Faults(error_rate=0.5, seed=42))
        return [
            api.raw(
                query_string={"rt": "api", "action": "get_vipex_user_list", "vipex_id": B}
            ).status_code
            for _ in range(30)
        ]

    first = run()
    assert first == run()
    assert 200 in first
    assert any(code >= 500 for code in first)


def test_hang_runs_the_action_then_answers_normally() -> None:
    api = Api(faults=Faults(hang_rate=1.0, hang_seconds=0.01))
    ok(api.get(**ENTRY))
    assert api.state.entry(A, "36123456789") is not None
    assert api.app.held_writes() == {0}  # the write log says its answer was held back
    api.app.faults.reset()
    ok(api.get(**ENTRY))
    assert api.app.held_writes() == {0}
    assert len(api.app.write_log()) == 2


def test_page_shift_inserts_rows_before_later_pages() -> None:
    faults = Faults(page_shift=2)
    api = Api(faults=faults)
    first = ok(api.get(action="get_phonebook_list", vipex_id=A, offset=0, limit=10))
    assert first["metadata"]["full_count"] == "18"
    second = ok(api.get(action="get_phonebook_list", vipex_id=A, offset=10, limit=10))
    assert second["metadata"]["full_count"] == "20"
    seen = [r["phonenumber"] for r in first["phonebook_list"] + second["phonebook_list"]]
    assert len(seen) != len(set(seen))  # rows shifted: duplicates across pages
    assert len(api.state.entries(A)) == 20


def test_refused_numbers_answer_result_0_and_change_nothing() -> None:
    api = Api(faults=Faults(refuse_numbers=frozenset({"36123456789"})))
    refused = api.get(**ENTRY)
    assert refused["result"] == 0
    assert "elutasította" in refused["reason"]
    assert api.state.entry(A, "36123456789") is None
    assert api.app.write_log() == []
    api.app.faults.reset()
    ok(api.get(**ENTRY))
    assert api.app.write_log() == [("api_user", "set_phonebook_entry", "36123456789")]


def test_smaller_pages_are_advertised_and_used() -> None:
    api = Api(faults=Faults(max_queryable_rows=4))
    page = ok(api.get(action="get_phonebook_list", vipex_id=A, offset=0, limit=200))
    assert page["metadata"]["max_queryable_rows"] == 4
    assert len(page["phonebook_list"]) == 4
    assert page["metadata"]["full_count"] == "18"


def test_listing_swap_skips_one_row_and_keeps_full_count() -> None:
    api = Api()
    numbers = [str(e["phonenumber"]) for e in api.state.entries(A)]
    added = "99999999999"
    api.app.faults.listing_swap = (numbers[0], added)
    first = ok(api.get(action="get_phonebook_list", vipex_id=A, offset=0, limit=5))
    rest = ok(api.get(action="get_phonebook_list", vipex_id=A, offset=5, limit=200))
    assert first["metadata"]["full_count"] == rest["metadata"]["full_count"] == "18"
    seen = [str(r["phonenumber"]) for r in first["phonebook_list"] + rest["phonebook_list"]]
    assert numbers[5] not in seen  # slid onto the page already read
    assert added in seen
    assert api.app.faults.listing_swap is None  # fires once


def test_request_counts_and_reset(api: Api) -> None:
    api.get(action="get_vipex_user_list", vipex_id=B)
    api.get(action="get_vipex_user_list", vipex_id=B)
    api.get(vipex_id=B)
    assert api.app.request_counts() == {"get_vipex_user_list": 2, "": 1}
    api.app.reset_counts()
    assert api.app.request_counts() == {}

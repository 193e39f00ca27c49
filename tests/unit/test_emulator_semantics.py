"""The emulator's switchable write semantics, each switch on its own."""

from __future__ import annotations

import base64
import json
import unicodedata
from typing import Any

import pytest
from werkzeug.test import Client

from vipexsync.emulator import semantics as emulator_semantics
from vipexsync.emulator.app import EmulatorApp
from vipexsync.emulator.semantics import Semantics
from vipexsync.emulator.state import EmulatorState, example_state

AUTH = {"Authorization": "Basic " + base64.b64encode(b"api_user:api_password").decode()}

A = "1643897"
NUMBER = "3612345678"
NFD = unicodedata.normalize("NFD", "Józsa Éva")


class Api:
    """Calls the emulator's WSGI app in-process (GET, JSON answers)."""

    def __init__(self, state: EmulatorState) -> None:
        self.client = Client(EmulatorApp(state))

    def get(self, **params: object) -> dict[str, Any]:
        response = self.client.get("/", query_string={"rt": "api", **params}, headers=AUTH)
        result = json.loads(response.get_data(as_text=True))["onvipex_result"]
        assert isinstance(result, dict)
        return result


def api_with(semantics: Semantics) -> Api:
    state = example_state()
    state.semantics = semantics
    return Api(state)


def write(api: Api, **params: Any) -> None:
    if "custom_field_options" in params:
        params["custom_field_options"] = json.dumps(params["custom_field_options"])
    answer = api.get(action="set_phonebook_entry", vipex_id=A, phonenumber=NUMBER, **params)
    assert answer["result"] == 1, answer


def read(api: Api) -> dict[str, Any]:
    answer = api.get(action="get_phonebook_entry", vipex_id=A, phonenumber=NUMBER)
    assert answer["result"] == 1, answer
    return answer


FULL = {
    "name": "Teszt Elek",
    "tags": "a,b",
    "comment": "megjegyzés",
    "custom_field_options": [
        {"field_id": 1, "field_value": "opt1"},
        {"field_id": 19, "field_value": "szöveg"},
    ],
}


def fields(entry: dict[str, Any]) -> dict[int, str]:
    return {o["field_id"]: o["field_value"] for o in entry["custom_field_options"]}


def test_keep_is_the_default_and_keeps_what_is_not_sent() -> None:
    api = api_with(Semantics())
    write(api, **FULL)
    write(api, name="Új", custom_field_options=[{"field_id": 19, "field_value": "más"}])
    entry = read(api)
    assert entry["comment"] == "megjegyzés"
    assert entry["tags"] == "a,b"
    assert fields(entry) == {1: "opt1", 19: "más"}


def test_clear_empties_what_an_update_does_not_send() -> None:
    api = api_with(Semantics(omitted="clear"))
    write(api, **FULL)
    write(api, name="Új", custom_field_options=[{"field_id": 19, "field_value": "más"}])
    entry = read(api)
    assert entry["name"] == "Új"
    assert entry["comment"] == ""
    assert entry["tags"] == ""
    assert fields(entry) == {19: "más"}
    write(api, name="Csak név")  # no custom_field_options at all: every field cleared
    assert fields(read(api)) == {}


def test_max_name_length_cuts_names_only() -> None:
    api = api_with(Semantics(max_name_length=5))
    write(api, **{**FULL, "name": "Hosszú Név", "comment": "hosszú megjegyzés"})
    entry = read(api)
    assert entry["name"] == "Hossz"
    assert entry["comment"] == "hosszú megjegyzés"


@pytest.mark.parametrize(("normalise", "expected"), [("nfc", "Józsa Éva"), ("none", NFD)])
def test_normalise(normalise: str, expected: str) -> None:
    api = api_with(Semantics(normalise=normalise))  # type: ignore[arg-type]
    write(api, **{**FULL, "name": NFD, "comment": NFD})
    entry = read(api)
    assert entry["name"] == entry["comment"] == expected


@pytest.mark.parametrize(("trim", "expected"), [(True, "x y"), (False, "  x y  ")])
def test_trim(trim: bool, expected: str) -> None:
    api = api_with(Semantics(trim=trim))
    padded = [{"field_id": 19, "field_value": "  x y  "}]
    write(api, name="  x y  ", comment="  x y  ", custom_field_options=padded)
    entry = read(api)
    assert entry["name"] == entry["comment"] == fields(entry)[19] == expected


def test_a_cut_that_ends_in_a_space_is_trimmed_again() -> None:
    assert Semantics(trim=True, max_name_length=4).stored_name("ab  cd") == "ab"
    assert Semantics(max_name_length=4).stored_name("ab  cd") == "ab  "


def test_a_new_state_starts_from_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulator_semantics, "DEFAULT", Semantics(omitted="clear"))
    state = EmulatorState()
    assert state.semantics == Semantics(omitted="clear")
    state.semantics.trim = True
    assert EmulatorState().semantics.trim is False  # each state has its own copy

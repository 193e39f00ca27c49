"""Each example request of the vendor document, against example_state(), gets the documented answer.

The queries and expected answers come from ``vendor_examples`` (verbatim from
vipex-api.hu.txt), which the client's parser tests use too.
"""

from __future__ import annotations

import base64
import json

import pytest
from werkzeug.test import Client

from vendor_examples import EXAMPLES
from vipexsync.emulator.app import EmulatorApp
from vipexsync.emulator.state import example_state

AUTH = "Basic " + base64.b64encode(b"api_user:api_password").decode()


@pytest.mark.parametrize("action", sorted(EXAMPLES))
def test_documented_example_answers_verbatim(action: str) -> None:
    query, documented = EXAMPLES[action]
    client = Client(EmulatorApp(example_state()))
    response = client.get("/?" + query, headers={"Authorization": AUTH})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json.loads(response.get_data(as_text=True)) == json.loads(documented)


def test_every_documented_action_has_an_example_or_a_binary_answer() -> None:
    from vipexsync.emulator.actions import ALL_ACTIONS

    assert len(ALL_ACTIONS) == 17
    assert set(ALL_ACTIONS) - set(EXAMPLES) == {"get_record"}


def test_labels_are_json_escaped_on_the_wire() -> None:
    client = Client(EmulatorApp(example_state()))
    query = EXAMPLES["get_operator_status_list"].query
    body = client.get("/?" + query, headers={"Authorization": AUTH}).get_data(as_text=True)
    assert r'"H\u00edvhat\u00f3"' in body
    assert "Hívható" not in body


def test_get_record_answers_the_audio_as_an_attachment() -> None:
    from vipexsync.emulator.state import EXAMPLE_RECORDING_ID

    client = Client(EmulatorApp(example_state()))
    response = client.get(
        f"/?rt=api&action=get_record&rec={EXAMPLE_RECORDING_ID}", headers={"Authorization": AUTH}
    )
    assert response.status_code == 200
    assert response.mimetype == "audio/wav"
    assert response.headers["Content-Disposition"] == 'attachment; filename="114117804.wav"'
    data = response.get_data()
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WAVE"

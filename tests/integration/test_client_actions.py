"""Every client method against the emulator over real HTTP, in every body encoding."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vipexsync.emulator.server import RunningEmulator
from vipexsync.emulator.state import EXAMPLE_RECORDING_ID
from vipexsync.errors import ApiResultError
from vipexsync.vipex import ENCODINGS, Encoding, RetryPolicy, VipexClient
from vipexsync.vipex.models import (
    CallForward,
    CustomField,
    CustomFieldOption,
    CustomFieldValue,
    PhonebookEntry,
)
from vipexsync.wire import BUDAPEST

PHONEBOOK = "1643897"
OPERATORS = "3212601"
QUICK = RetryPolicy(deadline_seconds=5.0, max_attempts=2, initial_backoff=0.01, max_backoff=0.02)


@pytest.fixture(params=ENCODINGS)
def encoding(request: pytest.FixtureRequest) -> Encoding:
    value: Encoding = request.param
    return value


@pytest.fixture
def client(emulator: Any, encoding: Encoding) -> Iterator[VipexClient]:
    running: RunningEmulator = emulator
    with VipexClient(
        running.url,
        running.username,
        running.password,
        timeout=5.0,
        encoding=encoding,
        retry=QUICK,
    ) as vipex:
        yield vipex


def test_phonebook_write_read_delete_round_trip(client: VipexClient, emulator: Any) -> None:
    number = "36123456789"
    custom = (
        CustomFieldValue(1, "opt2"),
        CustomFieldValue(10, "1011,1012"),
        CustomFieldValue(19, 'Szöveg, "idézőjel" & más'),
    )
    client.set_phonebook_entry(
        PHONEBOOK,
        number,
        name="Árvíztűrő Tükörfúrógép Kft.",
        tags=["crm-sync", " vip ", ""],
        comment="Első sor & második",
        custom_field_options=custom,
    )
    entry = client.get_phonebook_entry(PHONEBOOK, number)
    assert entry == PhonebookEntry(
        phonenumber=number,
        name="Árvíztűrő Tükörfúrógép Kft.",
        tags=("crm-sync", "vip"),
        comment="Első sor & második",
        custom_field_options=custom,
    )
    stored = emulator.state.entry(PHONEBOOK, number)
    assert stored is not None
    assert stored["tags"] == ["crm-sync", "vip"]

    # Overwrite: "" clears the comment and a custom field.
    client.set_phonebook_entry(
        PHONEBOOK,
        number,
        name="Új név",
        tags=["crm-sync"],
        comment="",
        custom_field_options=[CustomFieldValue(1, "opt3"), CustomFieldValue(10, "")],
    )
    entry = client.get_phonebook_entry(PHONEBOOK, number)
    assert entry.name == "Új név"
    assert entry.comment == ""
    assert entry.tags == ("crm-sync",)
    values = {v.field_id: v.field_value for v in entry.custom_field_options}
    assert values.get(1) == "opt3"
    assert values.get(10, "") == ""

    assert client.del_phonebook_entry(PHONEBOOK, number) is True
    assert emulator.state.entry(PHONEBOOK, number) is None
    # Idempotent: deleting what is gone reports False instead of failing.
    assert client.del_phonebook_entry(PHONEBOOK, number) is False
    with pytest.raises(ApiResultError):
        client.get_phonebook_entry(PHONEBOOK, number)


def test_phonebook_page_and_listing_of_the_example(client: VipexClient) -> None:
    page = client.get_phonebook_page(PHONEBOOK, 11, 1)
    assert page.entries == (
        PhonebookEntry(
            "3619996000",
            "Opennetworks Kft",
            ("tag1", "tag2", "tag3"),
            "Test comment",
            (CustomFieldValue(1, "opt1"),),
        ),
    )
    assert (page.metadata.full_count, page.metadata.list_from, page.metadata.list_to) == (
        18,
        11,
        11,
    )
    listing = client.get_phonebook_list(PHONEBOOK)
    assert listing.stable
    assert listing.full_count == 18
    assert len(listing.entries) == 18
    assert listing.pages == 1


def test_custom_field_list(client: VipexClient) -> None:
    assert client.get_phonebook_custom_field_list(PHONEBOOK) == (
        CustomField(
            1,
            "teszt1",
            "menu",
            (
                CustomFieldOption(1, "opt1"),
                CustomFieldOption(9, "opt2"),
                CustomFieldOption(3, "opt3"),
            ),
        ),
        CustomField(10, "irsz", "number_sequence"),
        CustomField(19, "Teszt szöveg", "text"),
    )


def test_dial_and_outbound_ivr(client: VipexClient, emulator: Any) -> None:
    assert client.dial_phonenumber(OPERATORS, "1600", "3619996000") == 2253053
    assert client.outbound_ivr(PHONEBOOK, "36201234567", "700", digits="12345678") == 1912945
    assert client.outbound_ivr(PHONEBOOK, "36201234567", "700") == 1912946
    calls = emulator.state.calls_made()
    assert [(c.action, c.exten, c.phonenumber, c.digits) for c in calls] == [
        ("dial_phonenumber", "1600", "3619996000", None),
        ("outbound_ivr", "700", "36201234567", "12345678"),
        ("outbound_ivr", "700", "36201234567", None),
    ]


def test_current_calls(client: VipexClient) -> None:
    current = client.get_extens_current_calls(PHONEBOOK, "2000")
    assert current.exten == "2000"
    assert [c.id for c in current.calls] == [114117854, 114118134]
    assert current.calls[0].answer_time == datetime(2023, 7, 21, 16, 30, 11, tzinfo=BUDAPEST)
    assert current.calls[1].answer_time is None


def test_users_and_operator_statuses(client: VipexClient) -> None:
    user = client.get_vipex_user(OPERATORS, 27)
    assert (user.id, user.name, user.operator, user.status) == (27, "Teszt Felhasznalo", True, 0)
    assert [e.exten for e in user.extens] == ["1105"]
    users = client.get_vipex_user_list(OPERATORS)
    assert [u.id for u in users] == [1, 2, 81]
    assert users[2].extens[0].cost_location is None
    statuses = client.get_operator_status_list(OPERATORS)
    assert [(s.status_id, s.label, s.logout) for s in statuses] == [
        (1, "Hívható", False),
        (2, "Kijelentkezett", True),
        (6, "Szünet", False),
        (8, "Utómunka", False),
    ]
    assert client.set_operator_status(OPERATORS, 82, 2) == 1


def test_status_history_sends_budapest_local_times(client: VipexClient) -> None:
    # Midnight in Budapest on 9 Dec 2019 is 23:00 UTC the day before (winter time).
    history = client.get_operator_status_history(
        OPERATORS,
        27,
        datetime(2019, 12, 8, 23, 0, 0, tzinfo=UTC),
        datetime(2019, 12, 9, 23, 59, 59, tzinfo=BUDAPEST),
    )
    assert history.id == 27
    assert len(history.periods) == 5
    assert history.periods[0].date_from == datetime(2019, 12, 9, 16, 31, 35, tzinfo=BUDAPEST)
    assert history.periods[-1].date_to is None


def test_call_forwards(client: VipexClient) -> None:
    existing = client.get_call_forward_list(PHONEBOOK, "234")
    assert existing.number == "234"
    assert existing.forwards[0] == CallForward("noanswer", "phonenumber", "36701234567", 60, "all")
    forward = CallForward("noanswer", "phonenumber", "36701234567", 45, "external")
    client.set_call_forward(PHONEBOOK, "6025", forward)
    client.set_call_forward(PHONEBOOK, "6025", CallForward("busy", "exten", "432"))
    forwards = {f.forward_type: f for f in client.get_call_forward_list(PHONEBOOK, "6025").forwards}
    assert forwards["noanswer"].noanswer_timeout == 45
    assert forwards["noanswer"].destination_number == "36701234567"
    assert forwards["busy"].destination_type == "exten"
    client.del_call_forward(PHONEBOOK, "6025", "noanswer")
    remaining = client.get_call_forward_list(PHONEBOOK, "6025").forwards
    assert [f.forward_type for f in remaining] == ["busy"]


def test_get_record_to_a_path_and_to_a_stream(
    client: VipexClient, emulator: Any, tmp_path: Path
) -> None:
    with emulator.state.transaction() as data:
        expected = data.recordings[EXAMPLE_RECORDING_ID].data
    target = tmp_path / "call.wav"
    recording = client.get_record(EXAMPLE_RECORDING_ID, target)
    assert target.read_bytes() == expected
    assert recording.filename == "114117804.wav"
    assert recording.size == len(expected)
    assert recording.content_type is not None
    assert "audio" in recording.content_type
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.wav"]  # no temp file left
    buffer = io.BytesIO()
    again = client.get_record(EXAMPLE_RECORDING_ID, buffer)
    assert buffer.getvalue() == expected
    assert again.size == len(expected)


def test_get_record_of_an_unknown_id_is_refused_and_writes_nothing(
    client: VipexClient, tmp_path: Path
) -> None:
    target = tmp_path / "missing.wav"
    with pytest.raises(ApiResultError):
        client.get_record("no-such-recording", target)
    assert list(tmp_path.iterdir()) == []


def test_raw_call_returns_the_result_object(client: VipexClient) -> None:
    result = client.call(
        "get_phonebook_entry", {"vipex_id": PHONEBOOK, "phonenumber": "3619996000"}
    )
    assert result["result"] == 1
    assert result["phonenumber"] == 3619996000
    assert client.request_count == 1


def test_url_keeps_path_and_query_and_adds_rt_api(emulator: Any) -> None:
    # The emulator ignores the extra parameter; the path "/" and rt=api must survive.
    with VipexClient(
        emulator.url + "?tenant=x", emulator.username, emulator.password, retry=QUICK
    ) as vipex:
        assert vipex.get_phonebook_entry(PHONEBOOK, "3619996000").name == "Opennetworks Kft"
        assert "password" not in repr(vipex)
        assert repr(vipex) == f"VipexClient(url={emulator.url!r}, username='api_user')"


def test_from_config(emulator: Any, tmp_path: Path) -> None:
    from vipexsync.config import Secret, VipexConfig

    cfg = VipexConfig(
        url=emulator.url,
        username=emulator.username,
        password=Secret(emulator.password),
        timeout_seconds=3.0,
        concurrency=2,
        retry_deadline_seconds=9.0,
        max_retry_after_seconds=4.0,
    )
    with VipexClient.from_config(cfg) as vipex:
        assert vipex.concurrency == 2
        assert vipex.get_phonebook_entry(PHONEBOOK, "3619996000").name == "Opennetworks Kft"
        assert emulator.password not in repr(vipex)

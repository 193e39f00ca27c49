"""Documented failures over real HTTP: refusals, auth, odd answers, and no leaked secrets."""

from __future__ import annotations

import json
import logging
import socket
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from support import serve
from vipexsync.emulator.app import EmulatorApp
from vipexsync.emulator.faults import Faults
from vipexsync.emulator.server import serve_in_thread
from vipexsync.emulator.state import example_state
from vipexsync.errors import (
    ApiError,
    ApiResultError,
    AuthError,
    ServerError,
    TransportError,
    VipexSyncError,
)
from vipexsync.vipex import RetryPolicy, VipexClient
from vipexsync.vipex.models import CustomFieldValue

PHONEBOOK = "1643897"
QUICK = RetryPolicy(deadline_seconds=5.0, max_attempts=2, initial_backoff=0.01, max_backoff=0.02)
SECRET = "Zx9-very-secret-pw!"


def no_sleep(_seconds: float) -> None:
    """Retries in these tests need no real waiting."""


def make_client(url: str, password: str = "api_password", **kwargs: Any) -> VipexClient:  # noqa: S107
    kwargs.setdefault("retry", QUICK)
    kwargs.setdefault("sleep", no_sleep)
    return VipexClient(url, "api_user", password, timeout=2.0, **kwargs)


def write(client: VipexClient, vipex_id: str, number: str, **fields: Any) -> None:
    client.set_phonebook_entry(
        vipex_id,
        number,
        name=fields.get("name", "Teszt"),
        tags=fields.get("tags", ()),
        comment=fields.get("comment", ""),
        custom_field_options=fields.get("custom", ()),
    )


@pytest.mark.parametrize(
    ("vipex_id", "number", "custom", "words"),
    [
        (PHONEBOOK, "0612345678", (), "phonenumber"),
        ("9999999", "3612345678", (), "9999999"),
        (PHONEBOOK, "3612345678", (CustomFieldValue(1, "nincs ilyen"),), ""),
        (PHONEBOOK, "3612345678", (CustomFieldValue(10, "12a"),), ""),
        (PHONEBOOK, "3612345678", (CustomFieldValue(777, "x"),), "777"),
    ],
    ids=["bad-number", "unknown-subscription", "bad-menu", "bad-sequence", "unknown-field"],
)
def test_refusals_raise_api_result_error_once(
    emulator: Any, vipex_id: str, number: str, custom: tuple[CustomFieldValue, ...], words: str
) -> None:
    with make_client(emulator.url) as client:
        with pytest.raises(ApiResultError) as caught:
            write(client, vipex_id, number, custom=custom)
        assert caught.value.reason
        assert words in caught.value.reason
        assert "set_phonebook_entry" in str(caught.value)
    assert emulator.app.request_counts() == {"set_phonebook_entry": 1}
    assert emulator.state.entry(PHONEBOOK, "3612345678") is None


def test_wrong_password_is_an_auth_error_not_retried(emulator: Any) -> None:
    with make_client(emulator.url, password="wrong") as client, pytest.raises(AuthError) as caught:
        client.get_phonebook_custom_field_list(PHONEBOOK)
    assert caught.value.status == 401
    assert emulator.app.request_counts() == {"get_phonebook_custom_field_list": 1}


def test_unknown_action_through_raw_call(emulator: Any) -> None:
    with make_client(emulator.url) as client, pytest.raises(ApiResultError):
        client.call("no_such_action", {})


def refusing_deletes(inner: EmulatorApp) -> Callable[..., Any]:
    """The emulator, except that every delete is refused although the entry exists.

    It looks at the query string only (the client uses GET here), so the body
    stays unread for the emulator.
    """

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        if request.args.get("action") == "del_phonebook_entry":
            body = json.dumps({"onvipex_result": {"result": 0, "reason": "Zárolt bejegyzés"}})
            return Response(body, content_type="application/json")(environ, start_response)
        return inner(environ, start_response)

    return app


def test_a_refused_delete_of_an_existing_entry_is_raised() -> None:
    inner = EmulatorApp(example_state(), Faults(), {"api_user": "api_password"})
    with serve(refusing_deletes(inner)) as url, make_client(url, encoding="get") as client:
        with pytest.raises(ApiResultError) as caught:
            client.del_phonebook_entry(PHONEBOOK, "3619996000")
        assert caught.value.reason == "Zárolt bejegyzés"
        assert caught.value.action == "del_phonebook_entry"
        assert client.request_count == 2  # the delete, then one successful check
    assert inner.request_counts() == {"get_phonebook_entry": 1}
    assert inner.state.entry(PHONEBOOK, "3619996000") is not None


def fixed_answer(status: int, body: bytes, content_type: str) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return Response(body, status=status, content_type=content_type)(environ, start_response)

    return app


@pytest.mark.parametrize(
    ("status", "body", "content_type", "error", "words"),
    [
        (
            200,
            b'{"onvipex_result": {"result": 1, "name": "x", "tags": "", "comment": ""}}',
            "application/json",
            TransportError,
            "onvipex_result.phonenumber is missing",
        ),
        (200, b'{"status": "ok"}', "application/json", TransportError, "onvipex_result"),
        (200, b"\x00\xff garbage", "application/octet-stream", TransportError, "not valid JSON"),
        (200, b"<html>Karbantartas</html>", "text/html", TransportError, "HTML page"),
        (404, b"<html>Not found</html>", "text/html", ApiError, "HTTP 404"),
        (503, b"<html>down</html>", "text/html", ServerError, "HTTP 503"),
    ],
)
def test_odd_answers_over_http(
    status: int, body: bytes, content_type: str, error: type[Exception], words: str
) -> None:
    with (
        serve(fixed_answer(status, body, content_type)) as url,
        make_client(url) as client,
        pytest.raises(error) as caught,
    ):
        client.get_phonebook_entry(PHONEBOOK, "3619996000")
    assert words in str(caught.value)
    assert "get_phonebook_entry" in str(caught.value)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_connection_refused_is_a_transport_error_that_never_left() -> None:
    with make_client(closed_port_url()) as client:
        with pytest.raises(TransportError) as caught:
            client.get_phonebook_custom_field_list(PHONEBOOK)
        assert caught.value.sent is False
        assert client.request_count == QUICK.max_attempts


def all_text(error: BaseException) -> str:
    """Everything an operator could see of an error: messages, reprs, the whole chain."""
    return "\n".join(
        [str(error), repr(error), *traceback.format_exception(error), str(error.__cause__)]
    )


@pytest.mark.parametrize("encoding", ["form", "get", "json", "multipart"])
def test_the_password_never_reaches_logs_or_errors(
    caplog: pytest.LogCaptureFixture, encoding: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    texts: list[str] = []
    with serve_in_thread(password=SECRET) as running:

        def attempt(client: VipexClient, call: Callable[[VipexClient], object]) -> None:
            with pytest.raises(VipexSyncError) as caught:
                call(client)
            texts.append(all_text(caught.value))
            texts.append(repr(client))

        with make_client(running.url, password=SECRET, encoding=encoding) as client:
            # result 0
            attempt(client, lambda c: c.get_phonebook_entry(PHONEBOOK, "3600000000"))
            # 5xx, retried then given up
            running.faults.error_rate = 1.0
            attempt(client, lambda c: c.get_phonebook_custom_field_list(PHONEBOOK))
            running.faults.reset()
            # an HTML maintenance page
            running.faults.html_rate = 1.0
            attempt(client, lambda c: c.get_vipex_user_list("3212601"))
            running.faults.reset()
        # auth failure: both the wrong and the right password must stay hidden
        with make_client(running.url, password=SECRET + "-wrong", encoding=encoding) as client:
            attempt(client, lambda c: c.get_phonebook_custom_field_list(PHONEBOOK))
        # timeout
        running.faults.hang_rate = 1.0
        running.faults.hang_seconds = 5.0
        with VipexClient(
            running.url, "api_user", SECRET, timeout=0.2, retry=QUICK, sleep=no_sleep
        ) as client:
            attempt(client, lambda c: c.get_phonebook_custom_field_list(PHONEBOOK))
    # transport: nothing listening
    with make_client(
        closed_port_url().replace("http://", "http://api_user:" + SECRET + "@"),
        password=SECRET,
        encoding=encoding,
    ) as client:
        attempt(client, lambda c: c.get_phonebook_custom_field_list(PHONEBOOK))

    assert len(texts) == 12
    logged = [record.getMessage() for record in caplog.records]
    # The capture did see the failures, urllib3's own debug lines included.
    assert any("retrying" in line for line in logged)
    assert any(record.name.startswith("urllib3") for record in caplog.records)
    for text in texts + logged:
        assert SECRET not in text


@pytest.mark.parametrize(
    ("encoding", "method", "mimetype"),
    [
        ("form", "POST", "application/x-www-form-urlencoded"),
        ("json", "POST", "application/json"),
        ("multipart", "POST", "multipart/form-data"),
        ("get", "GET", ""),
    ],
)
def test_each_encoding_is_what_goes_on_the_wire(encoding: Any, method: str, mimetype: str) -> None:
    inner = EmulatorApp(example_state(), Faults(), {"api_user": "api_password"})
    seen: list[tuple[str, str, list[str]]] = []

    def recording(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        seen.append((request.method, request.mimetype, sorted(request.args)))
        return inner(environ, start_response)

    with serve(recording) as url, make_client(url + "?tenant=7", encoding=encoding) as client:
        client.set_phonebook_entry(
            PHONEBOOK,
            "3612345678",
            name="Wire",
            tags=["a", "b"],
            comment="",
            custom_field_options=[CustomFieldValue(1, "opt1")],
        )
    query = ["rt", "tenant"]
    if encoding == "get":
        query = sorted([*query, "action", "version", "format", "vipex_id", "phonenumber"])
        query = sorted([*query, "name", "tags", "comment", "custom_field_options"])
    assert seen == [(method, mimetype, query)]
    stored = inner.state.entry(PHONEBOOK, "3612345678")
    assert stored is not None
    assert stored["tags"] == ["a", "b"]
    assert stored["custom_fields"] == {1: "opt1"}

"""The client's prepared form POST: the same request session.request builds, failures mapped."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from vipexsync.errors import TransportError
from vipexsync.vipex import RetryPolicy, VipexClient

ONCE = RetryPolicy(deadline_seconds=5.0, max_attempts=1)


@pytest.mark.parametrize(
    ("url", "username", "password"),
    [
        ("http://127.0.0.1:9/", "api_user", "api_password"),
        ("https://pbx.example.hu/api/?tenant=7&rt=web", "üser", "Árvíztűrő tükörfúrógép"),
    ],
)
def test_the_form_post_is_the_one_session_request_prepares(
    url: str, username: str, password: str
) -> None:
    flat = {
        "action": "set_phonebook_entry",
        "version": "1.0",
        "format": "json",
        "vipex_id": "1643897",
        "phonenumber": "3612345678",
        "name": "Kovács & Társa = 100% + ű",
        "tags": "a,b c",
        "comment": "",
        "custom_field_options": '[{"field_id":7,"field_value":"Ügyfél/1?x=2"}]',
    }
    with VipexClient(url, username, password) as client:
        ours = client.prepare_form(flat)
        theirs = client._session.prepare_request(
            requests.Request("POST", client._api_url, data=flat)
        )
        again = client.prepare_form({"action": "get_vipex_user_list"})
        settings = client._session.merge_environment_settings(theirs.url, {}, None, None, None)
        sent_with = (client._verify, client._proxies, None)
    assert sent_with == (settings["verify"], settings["proxies"], settings["cert"])
    assert (ours.method, ours.url, ours.body) == (theirs.method, theirs.url, theirs.body)
    assert dict(ours.headers) == dict(theirs.headers)
    # Each call has its own headers: one call's length never leaks into another's.
    assert again.headers["Content-Length"] == str(len(str(again.body)))
    assert ours.headers["Content-Length"] == theirs.headers["Content-Length"]


@contextmanager
def cut_short_server() -> Iterator[str]:
    """Answers every request with headers promising 100 bytes, sends 10, hangs up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100\r\n\r\n" + b'{"onvipex_'
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def test_a_body_cut_short_is_a_transport_error() -> None:
    with (
        cut_short_server() as url,
        VipexClient(url, "u", "p", retry=ONCE) as client,
        pytest.raises(TransportError) as caught,
    ):
        client.get_phonebook_custom_field_list("1643897")
    assert caught.value.sent is True
    assert "get_phonebook_custom_field_list" in str(caught.value)

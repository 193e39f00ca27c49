"""The emulator over real HTTP on loopback: serve_in_thread, faults, and serve_forever."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from vipexsync.emulator.server import RunningEmulator, serve_in_thread
from vipexsync.emulator.state import EmulatorState
from vipexsync.vipex.client import VipexClient

A = "1643897"


def call(emu: RunningEmulator, **params: str | int) -> dict[str, Any]:
    response = requests.get(
        emu.url, params={"rt": "api", **params}, auth=(emu.username, emu.password), timeout=10
    )
    assert response.status_code == 200
    result = response.json()["onvipex_result"]
    assert isinstance(result, dict)
    return result


def test_fixture_serves_the_example_state(emulator: RunningEmulator) -> None:
    assert emulator.url.startswith("http://127.0.0.1:")
    assert emulator.url.endswith("/")
    assert emulator.vipex_id == A
    result = call(emulator, action="get_phonebook_list", vipex_id=A, offset=11, limit=1)
    assert result["phonebook_list"][0]["phonenumber"] == 3619996000
    assert result["metadata"]["full_count"] == "18"
    assert emulator.password not in repr(emulator)


def test_web_ui_and_auth_over_http(emulator: RunningEmulator) -> None:
    page = requests.get(emulator.url, timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    denied = requests.get(
        emulator.url, params={"rt": "api", "action": "get_vipex_user_list"}, timeout=10
    )
    assert denied.status_code == 401
    assert denied.headers["WWW-Authenticate"] == 'Basic realm="VIPeX"'
    assert emulator.app.request_counts() == {"get_vipex_user_list": 1}


OPTIONS = json.dumps([{"field_id": 1, "field_value": "opt2"}])


@pytest.mark.parametrize("encoding", ["get", "form", "json", "multipart"])
def test_every_body_type_over_http(emulator: RunningEmulator, encoding: str) -> None:
    params = {
        "action": "set_phonebook_entry",
        "vipex_id": A,
        "phonenumber": "36111111111",
        "name": "Áron",
        "tags": "a,b",
        "comment": "",
        "custom_field_options": OPTIONS,
    }
    auth = (emulator.username, emulator.password)
    url = emulator.url + "?rt=api"
    if encoding == "get":
        response = requests.get(url, params=params, auth=auth, timeout=10)
    elif encoding == "form":
        response = requests.post(url, data=params, auth=auth, timeout=10)
    elif encoding == "json":
        body = {**params, "custom_field_options": json.loads(OPTIONS)}
        response = requests.post(url, json=body, auth=auth, timeout=10)
    else:
        files = {k: (None, v) for k, v in params.items()}
        response = requests.post(url, files=files, auth=auth, timeout=10)
        assert response.request.headers["Content-Type"].startswith("multipart/form-data")
    assert response.json() == {"onvipex_result": {"result": 1}}
    assert emulator.state.entry(A, "36111111111") == {
        "phonenumber": "36111111111",
        "name": "Áron",
        "tags": ["a", "b"],
        "comment": "",
        "custom_fields": {1: "opt2"},
    }


def test_faults_switch_while_running(emulator: RunningEmulator) -> None:
    auth = (emulator.username, emulator.password)
    params = {"rt": "api", "action": "get_vipex_user_list", "vipex_id": "3212601"}
    emulator.faults.error_rate = 1.0
    assert requests.get(emulator.url, params=params, auth=auth, timeout=10).status_code >= 500
    emulator.faults.reset()
    emulator.faults.rate_limit_every = 1
    emulator.faults.retry_after_seconds = 3
    limited = requests.get(emulator.url, params=params, auth=auth, timeout=10)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    emulator.faults.reset()
    emulator.faults.html_rate = 1.0
    maintenance = requests.get(emulator.url, params=params, auth=auth, timeout=10)
    assert maintenance.status_code == 200
    assert maintenance.headers["Content-Type"].startswith("text/html")
    emulator.faults.reset()
    assert call(emulator, action="get_vipex_user_list", vipex_id="3212601")["result"] == 1
    assert emulator.app.request_counts() == {"get_vipex_user_list": 4}


@pytest.mark.timeout(20)
def test_hang_times_the_client_out_but_the_write_happens_and_stop_is_prompt() -> None:
    with serve_in_thread() as emu:
        emu.faults.hang_rate = 1.0
        emu.faults.hang_seconds = 60.0
        with pytest.raises(requests.Timeout):
            requests.get(
                emu.url,
                params={
                    "rt": "api",
                    "action": "dial_phonenumber",
                    "vipex_id": "3212601",
                    "exten": "1600",
                    "phonenumber": "3619996000",
                },
                auth=(emu.username, emu.password),
                timeout=0.3,
            )
        assert [c.id for c in emu.state.calls_made()] == [2253053]
    # leaving the block stopped the server although a request was still hanging
    # (pytest-timeout fails this test if stop() waited for the 60 s hang)


def test_concurrent_writes_are_all_kept(emulator: RunningEmulator) -> None:
    errors: list[BaseException] = []

    def writer(start: int) -> None:
        try:
            with requests.Session() as session:
                for i in range(start, start + 25):
                    response = session.post(
                        emulator.url + "?rt=api",
                        data={
                            "action": "set_phonebook_entry",
                            "vipex_id": A,
                            "phonenumber": f"3630{i:07d}",
                            "name": f"N{i}",
                        },
                        auth=(emulator.username, emulator.password),
                        timeout=10,
                    )
                    assert response.json()["onvipex_result"]["result"] == 1
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n * 100,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(emulator.state.entries(A)) == 18 + 100
    assert emulator.app.request_counts() == {"set_phonebook_entry": 100}


def test_binary_recording_over_http(emulator: RunningEmulator) -> None:
    from vipexsync.emulator.state import EXAMPLE_RECORDING_ID

    response = requests.get(
        emulator.url,
        params={"rt": "api", "action": "get_record", "rec": EXAMPLE_RECORDING_ID},
        auth=(emulator.username, emulator.password),
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/wav"
    assert response.headers["Content-Disposition"] == 'attachment; filename="114117804.wav"'
    assert response.content.startswith(b"RIFF")


# -- serve_forever in a subprocess (signals need a main thread) -----------------------

SERVE = """
import logging, sys
from pathlib import Path
from vipexsync.emulator.faults import Faults
from vipexsync.emulator.server import serve_forever
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
serve_forever("127.0.0.1", 0, Path(sys.argv[1]), Faults(), "u", "secret-pw")
"""


def _start_cli_emulator(state_file: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(state_file)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "listening on" in line:
            url = line.split("listening on ", 1)[1].split("?", 1)[0]
            return proc, url
    proc.kill()
    raise AssertionError("the emulator did not log its URL")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    return err


@pytest.mark.timeout(60)
def test_serve_forever_persists_state_across_restarts(tmp_path: Path) -> None:
    state_file = tmp_path / "emulator.json"
    proc, url = _start_cli_emulator(state_file)
    try:
        assert state_file.exists()  # written at start
        response = requests.post(
            url + "?rt=api",
            data={
                "action": "set_phonebook_entry",
                "vipex_id": A,
                "phonenumber": "36111111111",
                "name": "Tartós",
            },
            auth=("u", "secret-pw"),
            timeout=10,
        )
        assert response.json()["onvipex_result"]["result"] == 1
        # saved after the change, before any shutdown
        assert EmulatorState.load(state_file).entry(A, "36111111111") is not None
    finally:
        err = _stop(proc)
    assert "saved" in err
    assert "secret-pw" not in err

    proc, url = _start_cli_emulator(state_file)
    try:
        response = requests.get(
            url,
            params={
                "rt": "api",
                "action": "get_phonebook_entry",
                "vipex_id": A,
                "phonenumber": "36111111111",
            },
            auth=("u", "secret-pw"),
            timeout=10,
        )
        assert response.json()["onvipex_result"]["name"] == "Tartós"
    finally:
        _stop(proc)


# -- HTTP/1.1 keep-alive -------------------------------------------------------------


def _address(emu: RunningEmulator) -> tuple[str, int]:
    parts = urlsplit(emu.url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def _http(emu: RunningEmulator) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(*_address(emu), timeout=10)


def _basic(emu: RunningEmulator) -> dict[str, str]:
    token = base64.b64encode(f"{emu.username}:{emu.password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _exchange(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request on ``conn``; the answer must be delimited and leave the connection open."""
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    payload = response.read()
    assert response.version == 11
    assert response.getheader("Content-Length") == str(len(payload))
    assert response.getheader("Connection") is None
    assert not response.will_close
    return response.status, payload


def test_one_connection_carries_answers_faults_and_unread_bodies(
    emulator: RunningEmulator,
) -> None:
    conn = _http(emulator)
    auth = _basic(emulator)
    users = "/?rt=api&action=get_vipex_user_list&vipex_id=3212601"
    form = {"Content-Type": "application/x-www-form-urlencoded", **auth}
    try:
        status, body = _exchange(conn, "GET", users, headers=auth)
        assert status == 200
        assert json.loads(body)["onvipex_result"]["result"] == 1
        # the web UI never reads this body; it must not be taken for the next request
        status, body = _exchange(conn, "POST", "/", body=b"x=" + b"y" * 5000, headers=form)
        assert (status, body.startswith(b"<!DOCTYPE html>")) == (200, True)
        emulator.faults.error_rate = 1.0
        assert _exchange(conn, "GET", users, headers=auth)[0] >= 500
        emulator.faults.reset()
        emulator.faults.rate_limit_every = 1
        assert _exchange(conn, "GET", users, headers=auth)[0] == 429
        emulator.faults.reset()
        emulator.faults.html_rate = 1.0
        status, body = _exchange(conn, "GET", users, headers=auth)
        assert (status, b"<html" in body) == (200, True)
        emulator.faults.reset()
        assert _exchange(conn, "GET", users)[0] == 401
        assert _exchange(conn, "PUT", "/?rt=api")[0] == 405
        write = b"action=set_phonebook_entry&vipex_id=1643897&phonenumber=36111111111&name=K"
        status, body = _exchange(conn, "POST", "/?rt=api", body=write, headers=form)
        assert json.loads(body) == {"onvipex_result": {"result": 1}}
    finally:
        conn.close()
    assert emulator.state.entry(A, "36111111111") is not None
    assert emulator.connections_opened() == 1


def test_chunked_request_body_is_read_whole(emulator: RunningEmulator) -> None:
    conn = _http(emulator)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **_basic(emulator)}
    chunks = iter([b"action=get_vipex_user_list&", b"vipex_id=3212601"])
    try:
        conn.request("POST", "/?rt=api", body=chunks, headers=headers, encode_chunked=True)
        response = conn.getresponse()
        assert json.loads(response.read())["onvipex_result"]["result"] == 1
        assert _exchange(conn, "GET", "/")[0] == 200
    finally:
        conn.close()
    assert emulator.connections_opened() == 1


def test_http_1_0_clients_get_connection_close(emulator: RunningEmulator) -> None:
    with socket.create_connection(_address(emulator), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"\r\nConnection: close" in head
    assert f"\r\nContent-Length: {len(body)}".encode() in head


@pytest.mark.timeout(20)
def test_stop_ends_idle_keep_alive_connections_and_hung_requests() -> None:
    with serve_in_thread() as emu:
        idle = _http(emu)
        assert _exchange(idle, "GET", "/")[0] == 200
        emu.faults.hang_rate = 1.0
        emu.faults.hang_seconds = 60.0
        hung = _http(emu)
        hung.request("GET", "/?rt=api&action=get_vipex_user_list", headers=_basic(emu))
        while emu.app.request_counts().get("get_vipex_user_list", 0) == 0:
            threading.Event().wait(0.01)
    # leaving the block stopped the server: the hung request got its answer, closed,
    # and the idle connection was ended (no thread left waiting for a next request)
    answer = hung.getresponse()
    assert answer.status == 200
    assert answer.getheader("Connection") == "close"
    answer.read()
    assert idle.sock is not None
    assert idle.sock.recv(1) == b""
    idle.close()
    hung.close()


def test_the_client_reuses_its_pooled_connections(emulator: RunningEmulator) -> None:
    with VipexClient(
        emulator.url, emulator.username, emulator.password, timeout=10.0, concurrency=2
    ) as vipex:
        for i in range(12):
            vipex.set_phonebook_entry(
                A, f"3640{i:07d}", name=f"K{i}", tags=(), comment="", custom_field_options=()
            )
        listing = vipex.get_phonebook_list(A)
        assert vipex.request_count >= 13
    assert len(listing.entries) == 18 + 12
    assert 1 <= emulator.connections_opened() <= 2

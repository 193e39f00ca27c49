"""sd_notify against real Unix datagram sockets (a path and an abstract name)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vipexsync.sdnotify import Notifier


class Listener:
    """A bound SOCK_DGRAM socket standing in for systemd's notify socket."""

    def __init__(self, address: str | bytes, env_value: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(5)
        self.env_value = env_value

    def receive(self) -> str:
        return self.sock.recv(4096).decode("utf-8")

    def nothing_waiting(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(5)
        return False


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Listener]:
    if request.param == "path":
        path = tmp_path / "notify.sock"
        made = Listener(str(path), str(path))
    else:
        name = f"vipexsync-test-{uuid.uuid4().hex}"
        made = Listener(b"\0" + name.encode(), "@" + name)
    try:
        yield made
    finally:
        made.sock.close()


def test_messages_arrive(listener: Listener) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": listener.env_value})
    assert notifier.enabled
    assert notifier.ready()
    assert listener.receive() == "READY=1\n"
    assert notifier.status("syncing crm: 40 %")
    assert listener.receive() == "STATUS=syncing crm: 40 %\n"
    assert notifier.watchdog()
    assert listener.receive() == "WATCHDOG=1\n"
    assert notifier.stopping("bye")
    assert listener.receive() == "STOPPING=1\nSTATUS=bye\n"
    assert notifier.ready("idle")
    assert listener.receive() == "READY=1\nSTATUS=idle\n"
    assert notifier.notify(EXTEND_TIMEOUT_USEC="5000000", STATUS="two\nlines")
    assert listener.receive() == "EXTEND_TIMEOUT_USEC=5000000\nSTATUS=two lines\n"
    notifier.close()


def test_no_socket_is_a_no_op(listener: Listener) -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()
    assert listener.nothing_waiting()


def test_reads_os_environ(listener: Listener, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.env_value)
    assert Notifier().status("from the environment")
    assert listener.receive() == "STATUS=from the environment\n"


def test_send_errors_do_not_raise(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    assert notifier.enabled
    assert notifier.ready() is False


def test_relative_socket_is_ignored() -> None:
    assert not Notifier({"NOTIFY_SOCKET": "relative.sock"}).enabled


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "120000000"}, 120.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert Notifier(env).watchdog_interval() == expected

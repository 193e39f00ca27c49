"""Running the emulator: in a test's thread, or in the foreground for the CLI."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from vipexsync.emulator.app import EmulatorApp
from vipexsync.emulator.faults import Faults
from vipexsync.emulator.state import EmulatorState, example_state

__all__ = ["RunningEmulator", "serve_forever", "serve_in_thread"]

log = logging.getLogger("vipexsync.emulator")


class _QuietHandler(WSGIRequestHandler):
    """Request lines go to our logger at DEBUG (no credentials are in them)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s -> %s", self.command, self.path, code)

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("werkzeug %s: " + message, type, *args)


@dataclass
class RunningEmulator:
    url: str
    username: str
    password: str
    app: EmulatorApp
    state: EmulatorState
    faults: Faults
    vipex_id: str
    _server: BaseWSGIServer | None = None
    _thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"RunningEmulator(url={self.url!r}, username={self.username!r})"

    def stop(self) -> None:
        """Stop serving; hung requests are released so this returns promptly."""
        server, self._server = self._server, None
        if server is None:
            return
        self.app.release_waits()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _start(
    state: EmulatorState, faults: Faults, host: str, port: int, username: str, password: str
) -> tuple[BaseWSGIServer, EmulatorApp]:
    app = EmulatorApp(state, faults, {username: password})
    server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
    return server, app


def _url(server: BaseWSGIServer, host: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{server.server_port}/"


@contextmanager
def serve_in_thread(
    state: EmulatorState | None = None,
    *,
    faults: Faults | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    username: str = "api_user",
    password: str = "api_password",  # noqa: S107 - the documented test credentials
    vipex_id: str = "1643897",
) -> Iterator[RunningEmulator]:
    """Serve the emulator on a (free, when ``port`` is 0) port in a daemon thread."""
    state = state if state is not None else example_state()
    faults = faults if faults is not None else Faults()
    server, app = _start(state, faults, host, port, username, password)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.name = f"vipex-emulator-{server.server_port}"
    running = RunningEmulator(
        _url(server, host), username, password, app, state, faults, vipex_id, server, thread
    )
    thread.start()
    try:
        yield running
    finally:
        running.stop()


def serve_forever(
    host: str,
    port: int,
    state_file: Path | None,
    faults: Faults,
    username: str,
    password: str,
) -> None:
    """Serve in the foreground until SIGTERM/SIGINT, keeping ``state_file`` up to date.

    The state is loaded from ``state_file`` when it exists (else the vendor
    document's example data), saved atomically after every change and once
    more on exit.
    """
    if state_file is not None and state_file.exists():
        state = EmulatorState.load(state_file)
        origin = f"state loaded from {state_file}"
    else:
        state = example_state()
        origin = "example state"
    if state_file is not None:
        state_file.parent.mkdir(parents=True, exist_ok=True)
        saver = _Saver(state, state_file)
        state.add_change_listener(saver)
        saver()
    server, app = _start(state, faults, host, port, username, password)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping the emulator", signal.Signals(signum).name)
        app.release_waits()
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info("VIPeX emulator listening on %s?rt=api (%s)", _url(server, host), origin)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
        if state_file is not None:
            state.save(state_file)
            log.info("emulator state saved to %s", state_file)


class _Saver:
    """Change listener that writes the state file (it runs under the state lock)."""

    def __init__(self, state: EmulatorState, path: Path) -> None:
        self._state = state
        self._path = path

    def __call__(self) -> None:
        self._state.save(self._path)

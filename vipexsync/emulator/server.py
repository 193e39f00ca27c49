"""Running the emulator: in a test's thread, or in the foreground for the CLI."""

from __future__ import annotations

import contextlib
import io
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler

from vipexsync.emulator.app import EmulatorApp
from vipexsync.emulator.faults import Faults
from vipexsync.emulator.semantics import Semantics
from vipexsync.emulator.state import EmulatorState, example_state

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["RunningEmulator", "serve_forever", "serve_in_thread"]

log = logging.getLogger("vipexsync.emulator")


#: An idle keep-alive connection is closed after this long (clients reopen one).
IDLE_TIMEOUT_SECONDS = 30.0

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding"})


class _QuietHandler(WSGIRequestHandler):
    """Request lines go to our logger at DEBUG (no credentials are in them)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s -> %s", self.command, self.path, code)

    def log(self, type: str, message: str, *args: Any) -> None:
        log.debug("werkzeug %s: " + message, type, *args)


class _KeepAliveHandler(_QuietHandler):
    """HTTP/1.1 with persistent connections, as a real VIPeX front end would speak.

    werkzeug's own ``run_wsgi`` always answers ``Connection: close``, so every
    client request paid a new TCP connection and a new server thread. Here the
    request body is read in full before the application runs (so the next
    request line is where the stream expects it, whatever the app read) and
    the answer is buffered, so every response carries an exact
    Content-Length - faults, HTML pages and errors included.
    """

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_SECONDS
    disable_nagle_algorithm = True
    server: _KeepAliveServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").strip(" \t").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        try:
            body = self._read_body(environ)
        except ValueError as exc:
            self.close_connection = True
            text = f"Bad request body: {exc}\n".encode()
            self._send("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8")], text)
            return
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("wsgi.input_terminated", None)
        environ.pop("HTTP_TRANSFER_ENCODING", None)  # de-chunked above
        status, headers, payload = self._call_app(environ)
        self._send(status, headers, payload)

    def _read_body(self, environ: WSGIEnvironment) -> bytes:
        """The whole request body (Content-Length or chunked), so none is left unread."""
        if environ.get("wsgi.input_terminated"):  # chunked: werkzeug's de-chunking reader
            try:
                data = environ["wsgi.input"].read()
            except (ConnectionError, TimeoutError):
                raise
            except OSError as exc:  # a malformed chunk header
                raise ValueError(str(exc)) from None
            return bytes(data) if data else b""
        declared = environ.get("CONTENT_LENGTH", "").strip()
        if not declared:
            return b""
        if not declared.isdigit():
            raise ValueError(f"Content-Length {declared!r} is not a byte count")
        length = int(declared)
        data = self.rfile.read(length) if length else b""
        if len(data) != length:
            raise ConnectionError("the client closed the connection inside the request body")
        return data

    def _call_app(self, environ: WSGIEnvironment) -> tuple[str, list[tuple[str, str]], bytes]:
        chunks: list[bytes] = []
        started: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Callable[[bytes], object]:
            # Nothing is sent before the app returns, so a later call may replace the first.
            started[:] = [(status, list(headers))]
            return chunks.append

        try:
            result: Iterable[bytes] = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            if not started:
                raise RuntimeError("the application returned without start_response()")
        except Exception:
            log.exception("emulator error answering %s %s", self.command, self.path.split("?")[0])
            self.close_connection = True
            text = b"Internal Server Error\n"
            return "500 Internal Server Error", [("Content-Type", "text/plain")], text
        status, headers = started[0]
        return status, headers, b"".join(chunks)

    def _send(self, status: str, headers: list[tuple[str, str]], payload: bytes) -> None:
        code_text, _, reason = status.partition(" ")
        code = int(code_text)
        bodiless = self.command == "HEAD" or code < 200 or code in (204, 304)
        self.send_response(code, reason or None)
        for name, value in headers:
            lowered = name.lower()
            if lowered in _HOP_BY_HOP or (lowered == "content-length" and not bodiless):
                continue
            self.send_header(name, value)
        if not bodiless:
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection or self.server.closing:
            self.send_header("Connection", "close")  # also sets close_connection
        elif self.request_version != "HTTP/1.1":
            self.send_header("Connection", "keep-alive")
        self.end_headers()
        if not bodiless and payload:
            self.wfile.write(payload)


class _KeepAliveServer(ThreadedWSGIServer):
    """Threaded (daemon threads) server that ends its idle keep-alive connections on close.

    A handler thread waiting for a client's next request would otherwise keep
    its socket open after the server stopped.
    """

    def __init__(self, host: str, port: int, app: EmulatorApp) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._closing = threading.Event()
        self.connections_accepted = 0
        super().__init__(host, port, app, handler=_KeepAliveHandler)

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)
            self.connections_accepted += 1

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def shutdown(self) -> None:
        self._closing.set()
        super().shutdown()

    def server_close(self) -> None:
        """Close the listening socket and end every connection's wait for a next request.

        A request being answered still gets its answer (only reading is shut
        down); the handler then sees end-of-stream and closes.
        """
        self._closing.set()
        super().server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                connection.shutdown(socket.SHUT_RD)


@dataclass
class RunningEmulator:
    url: str
    username: str
    password: str
    app: EmulatorApp
    state: EmulatorState
    faults: Faults
    vipex_id: str
    _server: _KeepAliveServer | None = None
    _thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"RunningEmulator(url={self.url!r}, username={self.username!r})"

    def connections_opened(self) -> int:
        """TCP connections accepted so far (keep-alive lets clients reuse them)."""
        return self._server.connections_accepted if self._server is not None else 0

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
) -> tuple[_KeepAliveServer, EmulatorApp]:
    app = EmulatorApp(state, faults, {username: password})
    return _KeepAliveServer(host, port, app), app


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
    semantics: Semantics | None = None,
) -> Iterator[RunningEmulator]:
    """Serve the emulator on a (free, when ``port`` is 0) port in a daemon thread.

    ``semantics`` replaces the state's write semantics (default: the state's own).
    """
    state = state if state is not None else example_state()
    if semantics is not None:
        state.semantics = semantics
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
    semantics: Semantics | None = None,
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
    if semantics is not None:
        state.semantics = semantics
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
    log.info(
        "VIPeX emulator listening on %s?rt=api (%s; %s)",
        _url(server, host),
        origin,
        state.semantics.describe(),
    )
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

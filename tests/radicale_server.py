"""A real Radicale CardDAV server for the tests (PyPI ``radicale``, in the dev extra).

``start_radicale`` runs ``python -m radicale`` as a subprocess on a free
loopback port, with htpasswd (plain) authentication and its own storage
folder; the tests then create address books and upload cards over CardDAV
(MKCOL, PUT, DELETE), as a user's phone or desktop client would. Where
Radicale cannot start (not installed, fails to bind) the caller skips, with
Radicale's own words as the reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import requests

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from vipexsync.emulator.server import RunningEmulator

START_SECONDS = 30.0
USER = "alice"  # the user of the `radicale` fixture's server
PASSWORD = "Jelszó-ű-7731"  # not latin-1: basic auth must go out as UTF-8

MKCOL_ADDRESSBOOK = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">'
    b"<D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>"
    b"</D:prop></D:set></D:mkcol>"
)


class RadicaleUnavailable(RuntimeError):
    """Radicale is not installed here or would not start; the message says why."""


def free_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class RunningRadicale:
    """A Radicale subprocess; ``url`` is its base URL (ends with /)."""

    url: str
    username: str
    password: str
    folder: Path
    process: subprocess.Popen[bytes]
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.session.auth = (self.username.encode("utf-8"), self.password.encode("utf-8"))  # type: ignore[assignment]

    def book_url(self, name: str) -> str:
        return f"{self.url}{self.username}/{name}/"

    def make_book(self, name: str | None = None) -> str:
        """A new, empty address book (extended MKCOL); its URL."""
        url = self.book_url(name or f"book-{uuid.uuid4().hex[:8]}")
        answer = self.session.request(
            "MKCOL",
            url,
            data=MKCOL_ADDRESSBOOK,
            headers={"Content-Type": "application/xml"},
            timeout=10,
        )
        assert answer.status_code == 201, (answer.status_code, answer.text)
        return url

    def put(self, book: str, name: str, card: str | bytes) -> None:
        """Upload (create or replace) one card, as a CardDAV client does."""
        body = card.encode("utf-8") if isinstance(card, str) else card
        answer = self.session.put(
            f"{book}{name}",
            data=body,
            headers={"Content-Type": "text/vcard; charset=utf-8"},
            timeout=10,
        )
        assert answer.status_code in (201, 204), (name, answer.status_code, answer.text)

    def delete(self, book: str, name: str) -> None:
        answer = self.session.delete(f"{book}{name}", timeout=10)
        assert answer.status_code in (200, 204), (name, answer.status_code, answer.text)

    def get(self, book: str, name: str) -> str:
        answer = self.session.get(f"{book}{name}", timeout=10)
        assert answer.status_code == 200, (name, answer.status_code)
        return answer.content.decode("utf-8")

    def log(self) -> str:
        path = self.folder / "radicale.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Kill the server at once (SIGKILL), as a crash or a power cut would."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.session.close()


def _config(folder: Path, port: int, tls: tuple[Path, Path] | None) -> Path:
    config = folder / "radicale.conf"
    ssl = f"ssl = True\ncertificate = {tls[0]}\nkey = {tls[1]}\n" if tls else ""
    config.write_text(
        f"""\
[server]
hosts = 127.0.0.1:{port}
{ssl}
[auth]
type = htpasswd
htpasswd_filename = {folder / "users"}
htpasswd_encryption = plain
delay = 0

[rights]
type = owner_only

[storage]
filesystem_folder = {folder / "storage"}

[logging]
level = warning
""",
        encoding="utf-8",
    )
    return config


def _wait_until_up(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-600:]
            raise RadicaleUnavailable(f"Radicale exited with {process.returncode}: {tail}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=10)
    raise RadicaleUnavailable(f"Radicale did not listen on port {port} within {START_SECONDS} s")


@contextlib.contextmanager
def start_radicale(
    folder: Path, username: str, password: str, *, tls: tuple[Path, Path] | None = None
) -> Iterator[RunningRadicale]:
    """Radicale on a free loopback port, for this user; killed on exit.

    ``tls`` is a (certificate, key) pair: Radicale then speaks HTTPS only.
    """
    if importlib.util.find_spec("radicale") is None:
        raise RadicaleUnavailable("the radicale package is not installed (pip install radicale)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "users").write_text(f"{username}:{password}\n", encoding="utf-8")
    for attempt in range(3):  # the free port may be taken between the probe and the bind
        port = free_port()
        log = folder / "radicale.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "radicale", "--config", str(_config(folder, port, tls))],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_until_up(process, port, log)
        except RadicaleUnavailable:
            if attempt == 2:
                raise
            continue
        scheme = "https" if tls else "http"
        running = RunningRadicale(
            f"{scheme}://127.0.0.1:{port}/", username, password, folder, process
        )
        if tls:
            running.session.trust_env = False  # else $REQUESTS_CA_BUNDLE overrides verify
            running.session.verify = str(tls[0])
        try:
            yield running
        finally:
            running.stop()
        return


Corruption = Callable[[str, bytes, int, bytes], tuple[int, bytes]]


def forwarding_proxy(
    target: str, corrupt: Corruption, rewrite: Callable[[bytes], bytes] | None = None
) -> WSGIApplication:
    """A WSGI app that forwards every request to ``target`` (a server's base URL).

    ``corrupt(method, request_body, status, answer_body)`` may change the
    answer before it goes back: a truncated body, a removed element, another
    status; ``rewrite(request_body)`` may change what the server is asked.
    Served with ``support.serve``, it stands between the client under
    test and a real server, as a broken proxy or a failing server would.
    """

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            name: environ[key]
            for name, key in (
                ("Authorization", "HTTP_AUTHORIZATION"),
                ("Depth", "HTTP_DEPTH"),
                ("Content-Type", "CONTENT_TYPE"),
            )
            if environ.get(key)
        }
        path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8")
        answer = requests.request(
            environ["REQUEST_METHOD"],
            target.rstrip("/") + urllib.parse.quote(path),
            data=rewrite(body) if rewrite is not None else body,
            headers=headers,
            timeout=30,
            allow_redirects=False,
        )
        status, content = corrupt(
            environ["REQUEST_METHOD"], body, answer.status_code, answer.content
        )
        kept = [
            (k, v)
            for k, v in answer.headers.items()
            if k.lower() in ("content-type", "etag", "www-authenticate", "location")
        ]
        start_response(f"{status} X", [*kept, ("Content-Length", str(len(content)))])
        return [content]

    return app


def vcard(uid: str, name: str, *numbers: str) -> str:
    """A plain vCard 3.0 with these cell numbers."""
    tels = "".join(f"TEL;TYPE=CELL:{n}\r\n" for n in numbers)
    head = f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\nN:{name};;;;\r\n"
    return f"{head}{tels}UID:{uid}\r\nEND:VCARD\r\n"


def write_job_config(
    folder: Path,
    vipex: RunningEmulator,
    book: str,
    *,
    dav_password: str | None = PASSWORD,
    vipex_id: str = "1643897",
) -> Path:
    """vipexsync.toml with one job reading ``book`` (carddav) into the emulator.

    ``dav_password`` goes to a password_file; None leaves it to
    $VIPEXSYNC_SOURCE_PASSWORD.
    """
    secret = folder / "vipex-password"
    secret.write_text(f"{vipex.password}\n", encoding="utf-8")
    secret.chmod(0o600)
    password_line = ""
    if dav_password is not None:
        dav_secret = folder / "carddav-password"
        dav_secret.write_text(f"{dav_password}\n", encoding="utf-8")
        dav_secret.chmod(0o600)
        password_line = 'password_file = "carddav-password"'
    config = folder / "vipexsync.toml"
    config.write_text(
        f"""\
[vipex]
url = "{vipex.url}"
username = "{vipex.username}"
password_file = "vipex-password"
allow_http = true
timeout_seconds = 5
retry_deadline_seconds = 5

[database]
url = "sqlite:///{folder / "mirror.sqlite3"}"

[metrics]
listen = ""

[[jobs]]
name = "dav"
vipex_id = "{vipex_id}"
full_resync_cron = ""
max_delete_ratio = 1.0

[jobs.source]
type = "carddav"
url = "{book}"
username = "{USER}"
{password_line}
allow_http = true
batch_size = 2
timeout_seconds = 5
# no [jobs.mapping]: every voice number, named by FN (the vCard defaults)
""",
        encoding="utf-8",
    )
    config.chmod(0o600)
    return config

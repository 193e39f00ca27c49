"""Helpers shared by the test tiers (importable as `support`: pytest pythonpath)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from werkzeug.serving import make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from vipexsync.emulator.server import RunningEmulator


@contextmanager
def serve(app: WSGIApplication, ssl_context: tuple[str, str] | None = None) -> Iterator[str]:
    """Any WSGI app on a free loopback port, threaded werkzeug in a thread; yields its base URL.

    Tests wrap or stand in for real services (the emulator with middleware, a
    CRM API) and serve them over real HTTP, so the code under test meets a
    real server. ``ssl_context`` is a (cert, key) pair for HTTPS.
    """
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=ssl_context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def serve_empty_vipex(vipex_id: str, *more_ids: str) -> Iterator[RunningEmulator]:
    """The emulator with empty phonebooks for these subscriptions, over loopback HTTP.

    The first id is the one the RunningEmulator advertises as ``vipex_id``.
    """
    from vipexsync.emulator.server import serve_in_thread
    from vipexsync.emulator.state import EmulatorState

    state = EmulatorState()
    for each in (vipex_id, *more_ids):
        state.add_subscription(each)
    with serve_in_thread(state, vipex_id=vipex_id) as running:
        yield running


OMITTED_ENV = "VIPEXSYNC_TEST_EMULATOR_OMITTED"
"""``keep`` (default) or ``clear``: what the tests' emulators do with an omitted field.

``pytest --emulator-omitted=clear`` sets it; conftest makes every emulator a
test starts play that world, and job_files states ``write_semantics`` to match.
"""


def emulator_omitted() -> str:
    mode = os.environ.get(OMITTED_ENV, "keep")
    if mode not in ("keep", "clear"):
        raise ValueError(f"${OMITTED_ENV} must be keep or clear, not {mode!r}")
    return mode


def stated_semantics_for(omitted: str) -> str:
    """The ``write_semantics`` a test config states for an emulator in ``omitted`` mode."""
    return "clear_omitted" if omitted == "clear" else "probe"


def with_write_semantics(config_text: str, stated: str) -> str:
    """``config_text`` with ``write_semantics = stated`` added to its [vipex] table."""
    line = f'write_semantics = "{stated}"\n'
    return config_text.replace("[vipex]\n", "[vipex]\n" + line, 1)


def cli_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a vipexsync subprocess: ours without VIPEXSYNC_*, then ``extra``.

    A developer's or CI's VIPEXSYNC_* settings must not reach the CLI under
    test; only what the test itself sets.
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VIPEXSYNC_")}
    environ.update(extra or {})
    return environ


MINIMAL_CONFIG = """
[vipex]
url = "https://cloud.example.hu"
username = "api_user"
{vipex_extra}

[[jobs]]
name = "crm"
vipex_id = "1643897"
[jobs.source]
type = "csv"
path = "crm.csv"
key = "id"
[jobs.mapping]
phone_fields = ["phone"]
name = "{{name}}"
"""


def run_cli(
    config: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m vipexsync --config CONFIG ARGS...`` as a subprocess, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "vipexsync", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=cli_environ(env),
        check=False,
    )


def write_minimal_config(folder: Path, vipex_extra: str = "", mode: int = 0o600) -> Path:
    """A smallest valid vipexsync.toml (one CSV job) in ``folder``, with ``mode``.

    ``vipex_extra`` is TOML put into [vipex], e.g. how the password is given.
    """
    path = folder / "vipexsync.toml"
    path.write_text(MINIMAL_CONFIG.format(vipex_extra=vipex_extra), encoding="utf-8")
    path.chmod(mode)
    return path


CRM_HEADER = ["id", "last_name", "first_name", "company", "phone", "mobile", "segment", "kind"]


def write_crm(path: Path, rows: list[dict[str, str]]) -> None:
    """Write a small UTF-8 CRM export with the columns above."""
    import csv

    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CRM_HEADER)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in CRM_HEADER})


def crm_row(key: int, phone: str, name: str = "", **fields: str) -> dict[str, str]:
    last, _, first = (name or f"Ügyfél {key}").partition(" ")
    row = {"id": str(key), "last_name": last, "first_name": first, "phone": phone}
    row.update(fields)
    return row


JOB_TOML = """\
[vipex]
url = "{url}"
username = "{username}"
password_file = "vipex-password"
allow_http = true
timeout_seconds = {timeout}
concurrency = {concurrency}
retry_deadline_seconds = {retry_deadline}

[database]
url = "{database}"

[metrics]
listen = ""

[logging]
level = "INFO"

[[jobs]]
name = "{job}"
vipex_id = "{vipex_id}"
interval_seconds = 60
full_resync_cron = ""
default_region = "HU"
ownership_tag = "{ownership_tag}"
delete = "{delete}"
max_deletes = {max_deletes}
max_delete_ratio = {max_delete_ratio}
min_source_records = {min_source_records}

[jobs.source]
type = "csv"
path = "crm.csv"
key = "id"

[jobs.mapping]
phone_fields = ["phone", "mobile"]
name = "{{last_name}} {{first_name}}"
comment = "{{company}}"
tags = ["{{segment}}"]
{custom_fields}
"""


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made by openssl."""
    import shutil

    import pytest

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed; it makes the test certificate")
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key

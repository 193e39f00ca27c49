"""A distinctive password through every failure path; it must surface nowhere.

Each scenario runs three times: the CLI as a subprocess (full resync, text
logs at DEBUG), the CLI again (incremental, JSON logs at DEBUG), and in this
process (caplog at DEBUG, a Metrics registry on the Runtime). Then the
password is searched, in every spelling it could leak in, through stdout,
stderr, log records, the --plan-out file, the report, the scraped metrics,
exception texts and every row of every table of the SQLite mirror.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import subprocess
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest
from werkzeug.wrappers import Response

from radicale_server import RadicaleUnavailable, start_radicale, vcard
from support import cli_environ, crm_row, serve, write_crm
from vipexsync.config import load_config
from vipexsync.emulator.faults import Faults
from vipexsync.emulator.server import RunningEmulator, serve_in_thread
from vipexsync.emulator.state import EmulatorState
from vipexsync.errors import VipexSyncError
from vipexsync.logsetup import JsonFormatter
from vipexsync.metrics import Metrics
from vipexsync.runtime import Runtime
from vipexsync.sync.model import Mode
from vipexsync.sync.runner import RunOptions

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

SECRET = "Pw-ÁrvíztűrőTükörfúrógép-7731"
USER = "api_user"
VIPEX_ID = "1643897"


def spellings(secret: str) -> set[str]:
    """Every form the secret could leak in: raw, escaped, encoded, in a Basic header."""
    utf8 = secret.encode("utf-8")
    return {
        secret,
        unicodedata.normalize("NFD", secret),
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],  # \u-escaped, as json.dumps(ensure_ascii=True) writes it
        repr(utf8)[2:-1],  # b'...' with \x escapes, as in a repr of bytes
        utf8.decode("latin-1"),  # mojibake
        base64.b64encode(utf8).decode(),
        base64.b64encode(f"{USER}:{secret}".encode()).decode(),
        "Tükörfúrógép-7731",  # a telling fragment, in case something truncates
    }


FORMS = spellings(SECRET)


def assert_clean(where: str, text: str) -> None:
    found = [form for form in FORMS if form in text]
    assert not found, f"the password leaked into {where} as {found!r}"


# -- the world around a run --------------------------------------------------------


def free_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def http_source_app(status: int) -> Callable[..., Iterable[bytes]]:
    """A CRM endpoint that answers every request with ``status``."""
    answer = Response('{"error": "nope"}', status=status, content_type="application/json")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return answer(environ, start_response)

    return app


@dataclass
class Scenario:
    """One failure path: how the configuration and the emulator are set up."""

    name: str
    faults: dict[str, object] = field(default_factory=dict)
    server_password: str = SECRET
    vipex_id: str = VIPEX_ID
    unreachable_vipex: bool = False
    database_password: bool = False
    http_source_status: int | None = None  # an HTTP CRM source answering this status
    http_source_unreachable: bool = False
    carddav: str | None = None  # a carddav source: "ok", "wrong" (401) or "unreachable"
    expect_exit: tuple[int, ...] = (1,)
    # (log format, mode) of the CLI runs; the slow paths (retries with back-off) run once.
    cli_runs: tuple[tuple[str, str], ...] = (("text", "--full-resync"), ("json", ""))
    slow: bool = False  # several seconds of retries and back-off


SCENARIOS = [
    Scenario("success", expect_exit=(0,)),
    Scenario("wrong password (401)", server_password="másik-jelszó"),
    Scenario("5xx storm", faults={"error_rate": 1.0, "seed": 1}),
    Scenario("html bodies", faults={"html_rate": 1.0, "seed": 2}),
    Scenario(
        "timeouts",
        faults={"hang_rate": 1.0, "hang_seconds": 1.5, "seed": 3},
        cli_runs=(("json", ""),),
        slow=True,
    ),
    Scenario("result 0 answers", vipex_id="999"),
    Scenario("unreachable vipex", unreachable_vipex=True),
    Scenario("database url with a password", database_password=True, expect_exit=(1, 2)),
    Scenario("http source 401 with a bearer token", http_source_status=401),
    Scenario("http source 5xx storm", http_source_status=503, cli_runs=(("text", ""),), slow=True),
    Scenario(
        "http source unreachable, token in its query",
        http_source_unreachable=True,
        cli_runs=(("json", "--full-resync"),),
        slow=True,
    ),
    Scenario("carddav source", carddav="ok", expect_exit=(0,)),
    Scenario("carddav source refuses the password (401)", carddav="wrong"),
    Scenario(
        "carddav source unreachable",
        carddav="unreachable",
        cli_runs=(("json", "--full-resync"),),
        slow=True,
    ),
]


@pytest.fixture(
    params=[
        pytest.param(s, id=s.name, marks=[pytest.mark.slow] if s.slow else []) for s in SCENARIOS
    ]
)
def scenario(request: pytest.FixtureRequest) -> Scenario:
    return request.param  # type: ignore[no-any-return]


def secret_file(path: Path, value: str) -> str:
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path.name


def source_block(scenario: Scenario, crm_url: str | None) -> str:
    if scenario.carddav is not None:
        assert crm_url is not None
        return (
            f'[jobs.source]\ntype = "carddav"\nurl = "{crm_url}"\nusername = "{USER}"\n'
            'password_file = "crm-token"\nallow_http = true\ntimeout_seconds = 0.5\n'
        )
    if crm_url is None:
        return '[jobs.source]\ntype = "csv"\npath = "crm.csv"\nkey = "id"\n'
    return (
        f'[jobs.source]\ntype = "http"\nurl = "{crm_url}"\nkey = "id"\n'
        'bearer_token_file = "crm-token"\ntimeout_seconds = 0.5\n'
    )


def write_config(
    folder: Path, scenario: Scenario, vipex_url: str, crm_url: str | None, fmt: str
) -> Path:
    write_crm(
        folder / "crm.csv", [crm_row(i, f"+36 1 {7000000 + i}", f"Titok{i} Ede") for i in (1, 2, 3)]
    )
    secret_file(folder / "vipex-password", SECRET)
    secret_file(folder / "crm-token", SECRET)
    database = f"sqlite:///{folder / 'mirror.sqlite3'}"
    if scenario.database_password:
        database = f"postgresql+psycopg://u:{quote(SECRET, safe='')}@127.0.0.1:{free_port()}/x"
    config = folder / f"vipexsync-{fmt}.toml"
    config.write_text(
        f"""\
[vipex]
url = "{vipex_url}"
username = "{USER}"
password_file = "vipex-password"
allow_http = true
timeout_seconds = 0.5
concurrency = 2
retry_deadline_seconds = 1.0

[database]
url = "{database}"

[metrics]
listen = ""

[logging]
level = "DEBUG"
format = "{fmt}"

[[jobs]]
name = "crm"
vipex_id = "{scenario.vipex_id}"
full_resync_cron = ""
ownership_tag = "crm-sync"

{source_block(scenario, crm_url)}
[jobs.mapping]
{mapping_block(scenario)}
""",
        encoding="utf-8",
    )
    config.chmod(0o600)
    return config


def mapping_block(scenario: Scenario) -> str:
    if scenario.carddav is not None:
        return 'phone_fields = ["tel1"]\nname = "{fn}"'
    return 'phone_fields = ["phone"]\nname = "{last_name} {first_name}"\ncomment = "{company}"'


@pytest.fixture
def vipex(scenario: Scenario) -> Iterator[RunningEmulator]:
    state = EmulatorState()
    state.add_subscription(VIPEX_ID)
    faults = Faults(**scenario.faults)  # type: ignore[arg-type]
    with serve_in_thread(
        state, faults=faults, username=USER, password=scenario.server_password
    ) as running:
        yield running


@pytest.fixture
def crm_url(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    if scenario.carddav == "unreachable":
        yield f"http://127.0.0.1:{free_port()}/{USER}/contacts/"
    elif scenario.carddav is not None:
        # Radicale knows the user with SECRET, or ("wrong") with another password.
        password = SECRET if scenario.carddav == "ok" else "egy-másik-jelszó"
        try:
            server = start_radicale(tmp_path_factory.mktemp("radicale"), USER, password)
            with server as radicale:
                book = radicale.make_book("contacts")
                for i in (1, 2, 3):
                    radicale.put(
                        book, f"{i}.vcf", vcard(str(i), f"Titok{i} Ede", f"+36 1 700000{i}")
                    )
                yield book
        except RadicaleUnavailable as exc:
            pytest.skip(f"Radicale cannot start here: {exc}")
    elif scenario.http_source_unreachable:
        yield f"http://127.0.0.1:{free_port()}/crm?api_key={quote(SECRET, safe='')}"
    elif scenario.http_source_status is not None:
        with serve(http_source_app(scenario.http_source_status)) as url:
            yield f"{url}crm"
    else:
        yield None


def vipex_url(scenario: Scenario, vipex: RunningEmulator) -> str:
    return f"http://127.0.0.1:{free_port()}/" if scenario.unreachable_vipex else vipex.url


# -- where to look -------------------------------------------------------------------


def database_text(mirror: Path) -> str:
    """Every row of every table of the SQLite mirror, as text."""
    if not mirror.exists():
        return ""
    engine = sa.create_engine(f"sqlite:///{mirror}")
    lines = []
    try:
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                    lines.append(f"{table}: {tuple(row)!r} {tuple(map(str, row))}")
    finally:
        engine.dispose()
    return "\n".join(lines)


def run_cli(config: Path, plan_file: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "vipexsync",
            "--config",
            str(config),
            "sync",
            *mode,
            "--plan-out",
            str(plan_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_environ(),
        check=False,
    )


def test_password_appears_nowhere(
    scenario: Scenario,
    vipex: RunningEmulator,
    crm_url: str | None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = vipex_url(scenario, vipex)
    plan_file = tmp_path / "plan.json"
    mirror = tmp_path / "mirror.sqlite3"

    # The CLI twice: full resync with text logs, incremental with JSON logs.
    for fmt, flag in scenario.cli_runs:
        mode = (flag,) if flag else ()
        config = write_config(tmp_path, scenario, url, crm_url, fmt)
        result = run_cli(config, plan_file, *mode)
        where = f"the CLI ({fmt} logs, {mode or 'incremental'})"
        assert result.returncode in scenario.expect_exit, result.stdout + result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip(), "DEBUG logging wrote nothing"
        assert_clean(f"stdout of {where}", result.stdout)
        assert_clean(f"stderr of {where}", result.stderr)
        if fmt == "json":
            for line in result.stderr.splitlines():
                if line.startswith("{"):
                    assert_clean(
                        "a JSON log line, decoded", json.dumps(json.loads(line), ensure_ascii=False)
                    )
        if plan_file.exists():
            assert_clean("the --plan-out file", plan_file.read_text(encoding="utf-8"))

    # In this process, with caplog at DEBUG and a metrics registry.
    config_path = write_config(tmp_path, scenario, url, crm_url, "text")
    metrics = Metrics(jobs=["crm"])
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        loaded = load_config(config_path)
        texts += [repr(loaded), str(loaded)]
        try:
            with Runtime(loaded, metrics=metrics) as runtime:
                report = runtime.run_job(
                    loaded.jobs[0], RunOptions(mode=Mode.FULL, plan_out=plan_file)
                )
        except VipexSyncError as exc:  # the database cannot be reached: the run never starts
            if not scenario.database_password:
                raise
            texts += [str(exc), repr(exc), repr(exc.__cause__), repr(exc.__context__)]
        else:
            texts += [report.as_text(), json.dumps(report.as_json(), ensure_ascii=False)]
            texts.append(json.dumps(report.as_json()))
            assert report.exit_code in scenario.expect_exit, report.error
    formatter, json_formatter = logging.Formatter(), JsonFormatter()
    for record in caplog.records:
        texts.append(formatter.format(record))
        texts.append(json_formatter.format(record))
    assert texts
    assert_clean("the in-process logs, report or exception", "\n".join(texts))
    assert_clean("the metrics", generate_latest(metrics.registry).decode("utf-8"))
    if plan_file.exists():
        assert_clean("the --plan-out file", plan_file.read_text(encoding="utf-8"))
    assert_clean("the mirror database", database_text(mirror))
    if scenario.name == "success":
        assert plan_file.exists()
        assert "runs" in database_text(mirror)

"""Configuration: TOML loaded into frozen, typed objects; secret resolution.

The dataclasses are the interface the rest of vipexsync codes against (field
names follow ../shared/CONTRACT.md). :func:`load_config` finds and reads the
file; :func:`parse_config` turns the parsed TOML into those objects, checking
everything at once so that an operator sees every problem in one go, each
named by its key path (``jobs[0].source.type``). Indexes in key paths count
from 0, in the order the ``[[jobs]]`` tables appear.

Secrets (the VIPeX password, an HTTP source's token or password) are read
from files or the environment here and wrapped in :class:`Secret`; no message
this module builds ever contains one.
"""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import hashlib
import ipaddress
import json
import os
import re
import stat
import string
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit

from vipexsync.errors import ConfigError
from vipexsync.semantics import STATED_CHOICES, StatedSemantics

DeletePolicy = Literal["owned", "all", "never"]


@dataclass(frozen=True, slots=True)
class Secret:
    """A string that never shows itself in a repr, str or log line."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"


@dataclass(frozen=True, slots=True)
class VipexConfig:
    url: str
    username: str
    password: Secret
    timeout_seconds: float = 15.0
    concurrency: int = 4
    verify_tls: bool = True
    ca_bundle: Path | None = None
    allow_http: bool = False
    retry_deadline_seconds: float = 120.0  # total time the retry layer may spend on one call
    max_retry_after_seconds: float = 60.0  # a longer Retry-After is capped to this
    # What set_phonebook_entry does with an omitted field: "probe" follows what
    # `vipexsync probe` recorded; keep_omitted / clear_omitted state it.
    write_semantics: StatedSemantics = "probe"
    probe_number: str = ""  # the reserved test number of `vipexsync probe`; "" = the default


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str
    auto_upgrade: bool = True  # migrate an empty or outdated database on start

    def redacted_url(self) -> str:
        """The URL with any password replaced by ``***``, for logs and messages."""
        return redact_database_url(self.url)

    def __repr__(self) -> str:
        return f"DatabaseConfig(url={self.redacted_url()!r}, auto_upgrade={self.auto_upgrade!r})"


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9717"  # "" turns the endpoint off


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True, slots=True)
class CsvSourceConfig:
    path: Path
    key: str
    encoding: str = "utf-8"
    delimiter: str = ","
    type: Literal["csv"] = "csv"


@dataclass(frozen=True, slots=True)
class SqlSourceConfig:
    url: str
    query: str
    key: str
    params: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    type: Literal["sql"] = "sql"

    def __repr__(self) -> str:
        return (
            f"SqlSourceConfig(url={redact_database_url(self.url)!r}, query={self.query!r}, "
            f"key={self.key!r}, params={self.params!r})"
        )


@dataclass(frozen=True, slots=True)
class HttpSourceConfig:
    url: str
    key: str
    records_path: str = ""  # dotted path to the list inside the JSON answer; "" = the answer itself
    paging: Literal["none", "offset", "cursor"] = "none"
    page_size: int = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    cursor_param: str = "cursor"
    next_cursor_path: str = "next"  # dotted path to the next cursor in the answer
    bearer_token: Secret | None = None
    username: str | None = None
    password: Secret | None = None
    timeout_seconds: float = 30.0
    verify_tls: bool = True
    type: Literal["http"] = "http"

    def __repr__(self) -> str:
        # The URL's query may carry an API key (``?api_key=...``): shown masked.
        return (
            f"HttpSourceConfig(url={redact_url_query(self.url)!r}, key={self.key!r}, "
            f"records_path={self.records_path!r}, paging={self.paging!r}, "
            f"bearer_token={self.bearer_token!r}, username={self.username!r}, "
            f"password={self.password!r}, timeout_seconds={self.timeout_seconds!r})"
        )


@dataclass(frozen=True, slots=True)
class VcardSourceConfig:
    path: Path  # a .vcf file or a folder of them
    key: str = "UID"
    encoding: str = "utf-8"  # for values that declare no CHARSET
    type: Literal["vcard"] = "vcard"


SourceConfig = CsvSourceConfig | SqlSourceConfig | HttpSourceConfig | VcardSourceConfig


@dataclass(frozen=True, slots=True)
class MappingConfig:
    phone_fields: tuple[str, ...]
    name: str
    comment: str = ""
    tags: tuple[str, ...] = ()
    custom_fields: Mapping[str, str] = field(default_factory=dict)  # VIPeX field name -> template


@dataclass(frozen=True, slots=True)
class JobConfig:
    name: str
    vipex_id: str
    source: SourceConfig
    mapping: MappingConfig
    interval_seconds: int = 300
    full_resync_cron: str = "30 3 * * *"
    default_region: str = "HU"
    ownership_tag: str = "crm-sync"
    delete: DeletePolicy = "owned"
    max_deletes: int = 100
    max_delete_ratio: float = 0.10
    min_source_records: int = 1


@dataclass(frozen=True, slots=True)
class Config:
    vipex: VipexConfig
    database: DatabaseConfig
    metrics: MetricsConfig
    logging: LoggingConfig
    jobs: tuple[JobConfig, ...]
    path: Path | None = None  # the file it came from

    def job(self, name: str) -> JobConfig:
        for job in self.jobs:
            if job.name == name:
                return job
        from vipexsync.errors import UsageError

        names = ", ".join(j.name for j in self.jobs)
        raise UsageError(f"no job named {name!r} in the configuration; jobs are: {names}")


# --------------------------------------------------------------------------
# Where the file is
# --------------------------------------------------------------------------

CONFIG_ENV = "VIPEXSYNC_CONFIG"
PASSWORD_ENV = "VIPEXSYNC_VIPEX_PASSWORD"  # noqa: S105 - the variable's name, not a password
CREDENTIAL_NAME = "vipex-password"
LOCAL_CONFIG = Path("vipexsync.toml")
SYSTEM_CONFIG = Path("/etc/vipexsync/vipexsync.toml")
DEFAULT_DATABASE_URL = "sqlite:////var/lib/vipexsync/mirror.sqlite3"


def resolve_default_config_path(environ: Mapping[str, str]) -> Path | None:
    """The file to use when no --config was given, or None when there is none.

    An explicit ``$VIPEXSYNC_CONFIG`` wins even when it names a missing file,
    so that a typo there is reported instead of silently loading another file.
    """
    explicit = environ.get(CONFIG_ENV, "")
    if explicit:
        return Path(explicit).expanduser()
    for candidate in (LOCAL_CONFIG, SYSTEM_CONFIG):
        if candidate.is_file():
            return candidate.absolute()
    return None


def load_config(path: Path | None = None, *, environ: Mapping[str, str] | None = None) -> Config:
    """Find, read and validate the configuration file; ConfigError on any problem."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    if path is None:
        path = resolve_default_config_path(env)
        if path is None:
            raise ConfigError(
                "no configuration file found; tried: "
                f"${CONFIG_ENV} (not set), ./{LOCAL_CONFIG} (in {Path.cwd()}), {SYSTEM_CONFIG}. "
                f"Pass --config PATH, set ${CONFIG_ENV}, or start from "
                "config/vipexsync.example.toml."
            )
    path = Path(path).expanduser().absolute()
    data, mode = _read_toml(path)
    return parse_config(
        data, base_dir=path.parent, environ=env, source=str(path), file_mode=mode, path=path
    )


def _read_toml(path: Path) -> tuple[dict[str, Any], int]:
    """The parsed TOML and the file's permission bits; every failure as a ConfigError."""
    try:
        with path.open("rb") as handle:
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            raw = handle.read()
    except FileNotFoundError:
        raise ConfigError(
            f"configuration file {path} does not exist; check the path "
            f"(--config or ${CONFIG_ENV}) or copy config/vipexsync.example.toml there"
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"configuration path {path} is a directory, not a file; name the .toml file itself"
        ) from None
    except PermissionError:
        raise ConfigError(
            f"cannot read configuration file {path}: permission denied; make it readable "
            "by the user vipexsync runs as (and by no one else if it holds a password)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"configuration file {path} is not valid UTF-8 (byte {exc.start}, line {line}); "
            "save it as UTF-8"
        ) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors add
    try:
        return tomllib.loads(text), mode
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None


# --------------------------------------------------------------------------
# Checking one table
# --------------------------------------------------------------------------


def _toml_type(value: object) -> str:
    """How TOML would call the type of a value, for messages (never the value itself)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return type(value).__name__


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(slots=True)
class _Table:
    """One TOML table under check: typed getters that record a problem and go on.

    Each getter returns the default when the key is missing or wrong, so that
    checking continues and every problem is collected; the caller raises at
    the end if any were found.
    """

    data: Mapping[str, Any]
    path: str  # key path prefix: "", "vipex", "jobs[0].source"
    label: str  # how the operator sees it: "[vipex]", "[[jobs]] 'crm'"
    problems: list[str]

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def problem(self, name: str, message: str) -> None:
        self.problems.append(f"{self.key(name)}: {message}")

    def has(self, name: str) -> bool:
        return name in self.data

    def unknown_keys(self, valid: Iterable[str]) -> None:
        valid_keys = sorted(valid)
        for name in self.data:
            if name not in valid_keys:
                self.problem(
                    name,
                    f"unknown key {name!r} in {self.label}{_did_you_mean(name, valid_keys)}; "
                    f"valid keys: {', '.join(valid_keys)}",
                )

    def _missing(self, name: str) -> None:
        self.problem(name, f"required key {name!r} is missing from {self.label}")

    def string(self, name: str, default: str = "", *, required: bool = False) -> str:
        if name not in self.data:
            if required:
                self._missing(name)
            return default
        value = self.data[name]
        if not isinstance(value, str):
            self.problem(name, f"expected a string, got {_toml_type(value)}")
            return default
        if required and not value.strip():
            self.problem(name, "must not be empty")
            return default
        return value

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        if name not in self.data:
            return default
        value = self.data[name]
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(name, f"expected an integer, got {_toml_type(value)}")
            return default
        if minimum is not None and value < minimum:
            self.problem(name, f"must be at least {minimum}, got {value}")
            return default
        if maximum is not None and value > maximum:
            self.problem(name, f"must be at most {maximum}, got {value}")
            return default
        return value

    def number(
        self,
        name: str,
        default: float,
        *,
        positive: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        if name not in self.data:
            return default
        value = self.data[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(name, f"expected a number, got {_toml_type(value)}")
            return default
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            self.problem(name, "must be a finite number")
            return default
        if positive and number <= 0:
            self.problem(name, f"must be greater than 0, got {value}")
            return default
        if minimum is not None and number < minimum:
            self.problem(name, f"must be at least {minimum:g}, got {value}")
            return default
        if maximum is not None and number > maximum:
            self.problem(name, f"must be at most {maximum:g}, got {value}")
            return default
        return number

    def boolean(self, name: str, default: bool) -> bool:
        if name not in self.data:
            return default
        value = self.data[name]
        if not isinstance(value, bool):
            hint = " (write true or false without quotes)" if isinstance(value, str) else ""
            self.problem(name, f"expected a boolean, got {_toml_type(value)}{hint}")
            return default
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.string(name, default)
        if value not in choices:
            self.problem(
                name,
                f"{value!r} is not valid{_did_you_mean(value, choices)}; "
                f"use one of: {', '.join(choices)}",
            )
            return default
        return value

    def string_list(self, name: str, *, required: bool = False) -> tuple[str, ...]:
        if name not in self.data:
            if required:
                self._missing(name)
            return ()
        value = self.data[name]
        if not isinstance(value, list):
            self.problem(name, f"expected an array of strings, got {_toml_type(value)}")
            return ()
        items: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.problem(f"{name}[{index}]", f"expected a string, got {_toml_type(item)}")
            else:
                items.append(item)
        if required and not value:
            self.problem(name, "must list at least one entry")
        return tuple(items)

    def table(self, name: str, label: str, *, required: bool = False) -> _Table | None:
        if name not in self.data:
            if required:
                self.problem(name, f"required table {label} is missing")
            return None
        value = self.data[name]
        if not isinstance(value, dict):
            self.problem(name, f"expected a table {label}, got {_toml_type(value)}")
            return None
        return _Table(value, self.key(name), label, self.problems)

    def path_value(self, name: str, base_dir: Path, *, required: bool = False) -> Path | None:
        """A file system path; a relative one is taken relative to the config file."""
        text = self.string(name, required=required)
        if not text:
            if name in self.data and not required:
                self.problem(name, "must not be empty (leave the key out instead)")
            return None
        return _resolve_path(text, base_dir)


def _resolve_path(text: str, base_dir: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base_dir / path


# --------------------------------------------------------------------------
# The whole file
# --------------------------------------------------------------------------

_TOP_KEYS = ("vipex", "database", "metrics", "logging", "jobs")


def parse_config(
    data: Mapping[str, Any],
    *,
    base_dir: Path,
    environ: Mapping[str, str],
    source: str = "<config>",
    file_mode: int | None = None,
    path: Path | None = None,
) -> Config:
    """Validate already-parsed TOML into a Config; reads only secret files.

    ``file_mode`` is the permission bits of the file the data came from: an
    inline password is accepted only when it shows no group or other access.
    None means the data did not come from a file (a test, the demo), and
    inline secrets are accepted.
    """
    problems: list[str] = []
    root = _Table(data, "", "the top level of the file", problems)
    root.unknown_keys(_TOP_KEYS)
    secrets = _SecretContext(base_dir, environ, file_mode, source)

    vipex_table = root.table("vipex", "[vipex]", required=True)
    vipex = _parse_vipex(vipex_table, secrets) if vipex_table else None
    database = _parse_database(
        root.table("database", "[database]") or _empty("database", "[database]", problems),
        base_dir,
        environ,
    )
    metrics = _parse_metrics(
        root.table("metrics", "[metrics]") or _empty("metrics", "[metrics]", problems)
    )
    logging = _parse_logging(
        root.table("logging", "[logging]") or _empty("logging", "[logging]", problems)
    )
    jobs = _parse_jobs(root, secrets)

    if problems or vipex is None:
        count = len(problems)
        raise ConfigError(
            f"invalid configuration in {source}: {count} problem{'s' if count != 1 else ''} "
            "(fix them all, then run `vipexsync check`):",
            tuple(problems),
        )
    return Config(
        vipex=vipex,
        database=database,
        metrics=metrics,
        logging=logging,
        jobs=jobs,
        path=path,
    )


def _empty(path: str, label: str, problems: list[str]) -> _Table:
    return _Table({}, path, label, problems)


# --------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SecretContext:
    base_dir: Path
    environ: Mapping[str, str]
    file_mode: int | None
    source: str


def _read_secret_file(path: Path) -> tuple[str | None, str | None]:
    """(secret, None) or (None, what went wrong); one trailing newline is dropped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, f"secret file {path} does not exist"
    except IsADirectoryError:
        return None, f"secret file {path} is a directory, not a file"
    except PermissionError:
        return None, (
            f"cannot read secret file {path}: permission denied; make it readable by the "
            "user vipexsync runs as (mode 0600, owned by that user)"
        )
    except OSError as exc:
        return None, f"cannot read secret file {path}: {exc.strerror or exc}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"secret file {path} is not valid UTF-8"
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        return None, f"secret file {path} is empty"
    return text, None


def _inline_secret(table: _Table, name: str, ctx: _SecretContext) -> Secret | None:
    """An inline secret, refused when the file it sits in is readable by others."""
    value = table.data[name]
    if not isinstance(value, str):
        table.problem(name, f"expected a string, got {_toml_type(value)}")
        return None
    if not value:
        table.problem(name, "must not be empty")
        return None
    if ctx.file_mode is not None and ctx.file_mode & 0o077:
        table.problem(
            name,
            f"an inline {name} is accepted only in a file that no group or other user can "
            f"read, and {ctx.source} has mode {ctx.file_mode:04o}; run `chmod 600 "
            f"{ctx.source}`, or move the secret to {name}_file",
        )
        return None
    return Secret(value)


def _file_or_inline_secret(table: _Table, name: str, ctx: _SecretContext) -> Secret | None:
    """``name_file`` or inline ``name`` (not both); None when neither is set."""
    file_key = f"{name}_file"
    if table.has(name) and table.has(file_key):
        table.problem(name, f"set either {name} or {file_key} in {table.label}, not both")
        return None
    if table.has(name):
        return _inline_secret(table, name, ctx)
    if table.has(file_key):
        secret_path = table.path_value(file_key, ctx.base_dir)
        if secret_path is None:
            return None
        secret, error = _read_secret_file(secret_path)
        if error is not None:
            table.problem(file_key, error)
            return None
        return Secret(cast(str, secret))
    return None


def _vipex_password(table: _Table, ctx: _SecretContext) -> Secret | None:
    """The first of: password_file / inline password, the environment, the systemd credential."""
    if table.has("password") or table.has("password_file"):
        return _file_or_inline_secret(table, "password", ctx)
    from_env = ctx.environ.get(PASSWORD_ENV, "")
    if from_env:
        return Secret(from_env)
    credentials = ctx.environ.get("CREDENTIALS_DIRECTORY", "")
    if credentials:
        credential = Path(credentials) / CREDENTIAL_NAME
        if credential.exists():
            secret, error = _read_secret_file(credential)
            if error is not None:
                table.problem("password", f"systemd credential: {error}")
                return None
            return Secret(cast(str, secret))
    table.problem(
        "password",
        'no VIPeX password found; give it in one of four ways: password_file = "..." in '
        f"[vipex]; the environment variable ${PASSWORD_ENV}; a systemd credential named "
        f"{CREDENTIAL_NAME!r} (LoadCredential={CREDENTIAL_NAME}:/path, read from "
        '$CREDENTIALS_DIRECTORY); or password = "..." in [vipex] of a file only its owner '
        "can read (chmod 600)",
    )
    return None


# --------------------------------------------------------------------------
# [vipex], [database], [metrics], [logging]
# --------------------------------------------------------------------------

_VIPEX_KEYS = (
    "url",
    "username",
    "password",
    "password_file",
    "timeout_seconds",
    "concurrency",
    "verify_tls",
    "ca_bundle",
    "allow_http",
    "retry_deadline_seconds",
    "max_retry_after_seconds",
    "write_semantics",
    "probe_number",
)


def _parse_vipex(table: _Table, ctx: _SecretContext) -> VipexConfig | None:
    table.unknown_keys(_VIPEX_KEYS)
    url = table.string("url", required=True)
    username = table.string("username", required=True)
    allow_http = table.boolean("allow_http", False)
    if url:
        error = _vipex_url_problem(url, allow_http)
        if error:
            table.problem("url", error)
    verify_tls = table.boolean("verify_tls", True)
    ca_bundle = table.path_value("ca_bundle", ctx.base_dir)
    if ca_bundle is not None:
        if not verify_tls:
            table.problem(
                "ca_bundle",
                "ca_bundle is set but verify_tls = false turns verification off; "
                "remove one of them",
            )
        elif not ca_bundle.is_file():
            table.problem("ca_bundle", f"CA bundle {ca_bundle} does not exist or is not a file")
    timeout = table.number("timeout_seconds", 15.0, positive=True)
    concurrency = table.integer("concurrency", 4, minimum=1, maximum=64)
    deadline = table.number("retry_deadline_seconds", 120.0, positive=True)
    max_retry_after = table.number("max_retry_after_seconds", 60.0, positive=True)
    write_semantics = table.choice("write_semantics", "probe", STATED_CHOICES)
    probe_number = table.string("probe_number", "")
    if probe_number and re.fullmatch(r"[1-9][0-9]{7,14}", probe_number) is None:
        table.problem(
            "probe_number",
            "the probe number must be in VIPeX's form: international digits without '+' or "
            "leading zeros, 8 to 15 of them (e.g. 447700900999)",
        )
    password = _vipex_password(table, ctx)
    if password is None:
        return None
    return VipexConfig(
        url=url,
        username=username,
        password=password,
        timeout_seconds=timeout,
        concurrency=concurrency,
        verify_tls=verify_tls,
        ca_bundle=ca_bundle,
        allow_http=allow_http,
        retry_deadline_seconds=deadline,
        max_retry_after_seconds=max_retry_after,
        write_semantics=cast(StatedSemantics, write_semantics),
        probe_number=probe_number,
    )


def _vipex_url_problem(url: str, allow_http: bool) -> str | None:
    """Why the VIPeX base URL is unusable, or None. Never echoes the URL."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return 'must start with https:// (e.g. "https://cloud.opennet.hu")'
    if parts.username is not None or parts.password is not None:
        return (
            "must not contain a user name or password; use [vipex] username and "
            "password_file instead"
        )
    if not parts.hostname:
        return 'has no host name (e.g. "https://cloud.opennet.hu")'
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "has an invalid port number"
    if scheme == "http" and not allow_http:
        return (
            "http:// would send the API username and password in clear text; use https://, "
            "or set allow_http = true in [vipex] if you really mean it (e.g. a local emulator)"
        )
    return None


def _default_database_url(environ: Mapping[str, str]) -> str:
    """sqlite in systemd's StateDirectory= when there is one, else /var/lib/vipexsync."""
    state = environ.get("STATE_DIRECTORY", "")
    if state:
        first = state.split(":")[0]  # several StateDirectory= entries are ':'-separated
        return f"sqlite:///{first}/mirror.sqlite3"
    return DEFAULT_DATABASE_URL


def redact_url_query(url: str) -> str:
    """A URL safe to show: no user info, and every query value replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "<unparsable URL>"
    query = "&".join(f"{p.partition('=')[0]}=***" for p in parts.query.split("&") if p)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_database_url(url: str) -> str:
    """A database URL safe to show: the password (if any) becomes ``***``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


def _normalise_database_url(url: str, base_dir: Path) -> tuple[str, str | None]:
    """(usable URL, None) or (url, why not): sqlite or postgresql+psycopg only."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url, (
            "is not a database URL; use sqlite:////absolute/path/mirror.sqlite3 or "
            "postgresql+psycopg://user@host/dbname"
        )
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            return url, f"SQLite driver {driver!r} is not supported; write sqlite:///..."
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            resolved = _resolve_path(database, base_dir)
            parsed = parsed.set(database=str(resolved))
        return parsed.render_as_string(hide_password=False), None
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            return url, (
                f"PostgreSQL driver {driver!r} is not installed; vipexsync uses psycopg 3: "
                "write postgresql+psycopg://..."
            )
        parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed.render_as_string(hide_password=False), None
    return url, f"database {backend!r} is not supported; use sqlite or postgresql"


def _parse_database(table: _Table, base_dir: Path, environ: Mapping[str, str]) -> DatabaseConfig:
    table.unknown_keys(("url", "auto_upgrade"))
    default = _default_database_url(environ)
    url = table.string("url", default)
    if not url.strip():
        table.problem("url", "must not be empty (leave the key out for the default)")
        url = default
    url, error = _normalise_database_url(url, base_dir)
    if error:
        table.problem("url", error)
    return DatabaseConfig(url=url, auto_upgrade=table.boolean("auto_upgrade", True))


_HOST_NAME = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)


def _listen_problem(listen: str) -> str | None:
    """Why a metrics ``host:port`` is unusable, or None; "" (off) is fine."""
    if listen == "":
        return None
    example = 'e.g. "127.0.0.1:9717", "0.0.0.0:9717" or "[::1]:9717"; "" turns metrics off'
    if listen.startswith("["):
        host, sep, port = listen[1:].partition("]:")
        if not sep:
            return f"{listen!r} is not host:port ({example})"
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"{host!r} in brackets is not an IPv6 address ({example})"
    else:
        host, sep, port = listen.rpartition(":")
        if not sep or not host:
            return f"{listen!r} is not host:port ({example})"
        if ":" in host:
            return f'an IPv6 address needs brackets: "[{host}]:{port}"'
        if not _HOST_NAME.match(host):
            return f"{host!r} is not a host name or IP address ({example})"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"port {port!r} is not a number from 1 to 65535 ({example})"
    return None


def _parse_metrics(table: _Table) -> MetricsConfig:
    table.unknown_keys(("listen",))
    listen = table.string("listen", "127.0.0.1:9717")
    error = _listen_problem(listen)
    if error:
        table.problem("listen", error)
    return MetricsConfig(listen=listen)


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _parse_logging(table: _Table) -> LoggingConfig:
    table.unknown_keys(("level", "format"))
    level = table.string("level", "INFO")
    if level.upper() not in _LEVELS:
        table.problem(
            "level",
            f"{level!r} is not a log level{_did_you_mean(level.upper(), _LEVELS)}; "
            f"use one of: {', '.join(_LEVELS)}",
        )
        level = "INFO"
    log_format = table.choice("format", "text", ("text", "json"))
    return LoggingConfig(level=level.upper(), format=cast(Literal["text", "json"], log_format))


# --------------------------------------------------------------------------
# [[jobs]]
# --------------------------------------------------------------------------

_JOB_KEYS = (
    "name",
    "vipex_id",
    "interval_seconds",
    "full_resync_cron",
    "default_region",
    "ownership_tag",
    "delete",
    "max_deletes",
    "max_delete_ratio",
    "min_source_records",
    "source",
    "mapping",
)
_JOB_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_SOURCE_TYPES = ("csv", "sql", "http", "vcard")
_SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "csv": ("type", "path", "encoding", "delimiter", "key"),
    "sql": ("type", "url", "query", "key", "params"),
    "http": (
        "type",
        "url",
        "key",
        "records_path",
        "paging",
        "page_size",
        "offset_param",
        "limit_param",
        "cursor_param",
        "next_cursor_path",
        "bearer_token",
        "bearer_token_file",
        "username",
        "password",
        "password_file",
        "timeout_seconds",
        "verify_tls",
    ),
    "vcard": ("type", "path", "key", "encoding"),
}
_MAPPING_KEYS = ("phone_fields", "name", "comment", "tags", "custom_fields")


def _parse_jobs(root: _Table, ctx: _SecretContext) -> tuple[JobConfig, ...]:
    if not root.has("jobs"):
        root.problem("jobs", "at least one [[jobs]] table is required")
        return ()
    raw = root.data["jobs"]
    if isinstance(raw, dict):
        root.problem("jobs", "jobs must be an array of tables: write [[jobs]] (double brackets)")
        return ()
    if not isinstance(raw, list):
        root.problem("jobs", f"expected an array of [[jobs]] tables, got {_toml_type(raw)}")
        return ()
    if not raw:
        root.problem("jobs", "at least one [[jobs]] table is required")
        return ()
    jobs: list[JobConfig] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        path = f"jobs[{index}]"
        if not isinstance(item, dict):
            root.problems.append(f"{path}: expected a [[jobs]] table, got {_toml_type(item)}")
            continue
        job = _parse_job(_Table(item, path, f"[[jobs]] #{index}", root.problems), ctx)
        if job is None:
            continue
        folded = job.name.casefold()
        if folded in seen:
            root.problems.append(
                f"{path}.name: job name {job.name!r} is already used by jobs[{seen[folded]}]; "
                "job names must be unique (ignoring case): they name metrics and locks"
            )
        else:
            seen[folded] = index
        jobs.append(job)
    return tuple(jobs)


def _parse_job(table: _Table, ctx: _SecretContext) -> JobConfig | None:
    name = table.string("name", required=True)
    if name:
        table.label = f"[[jobs]] {name!r}"
        if not _JOB_NAME.match(name):
            table.problem(
                "name",
                f"{name!r} may contain only letters A-Z and a-z, digits, '_', '.' and '-' "
                "(it becomes a metric label and a lock name)",
            )
    table.unknown_keys(_JOB_KEYS)
    vipex_id = _vipex_id(table)
    interval = table.integer("interval_seconds", 300, minimum=10)
    cron = table.string("full_resync_cron", "30 3 * * *")
    cron = cron if cron.strip() else ""  # blank = never
    cron_error = _cron_problem(cron)
    if cron_error:
        table.problem("full_resync_cron", cron_error)
    region = _region(table)
    ownership_tag = table.string("ownership_tag", "crm-sync")
    if "," in ownership_tag:
        table.problem("ownership_tag", "must not contain a comma (VIPeX separates tags by commas)")
    delete = table.choice("delete", "owned", ("owned", "all", "never"))
    max_deletes = table.integer("max_deletes", 100, minimum=0)
    max_delete_ratio = table.number("max_delete_ratio", 0.10, minimum=0.0, maximum=1.0)
    min_source_records = table.integer("min_source_records", 1, minimum=0)

    suffix = f" of job {name!r}" if name else ""
    source_table = table.table("source", f"[jobs.source]{suffix}", required=True)
    source = _parse_source(source_table, ctx) if source_table else None
    mapping_table = table.table("mapping", f"[jobs.mapping]{suffix}", required=True)
    mapping = _parse_mapping(mapping_table) if mapping_table else None
    if source is None or mapping is None:
        return None
    return JobConfig(
        name=name,
        vipex_id=vipex_id,
        source=source,
        mapping=mapping,
        interval_seconds=interval,
        full_resync_cron=cron,
        default_region=region,
        ownership_tag=ownership_tag,
        delete=cast(DeletePolicy, delete),
        max_deletes=max_deletes,
        max_delete_ratio=max_delete_ratio,
        min_source_records=min_source_records,
    )


def _vipex_id(table: _Table) -> str:
    """The subscription id: digits, as a string (a TOML integer is accepted too)."""
    if not table.has("vipex_id"):
        table.problem("vipex_id", f"required key 'vipex_id' is missing from {table.label}")
        return ""
    value = table.data["vipex_id"]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return value
    shown = f"{value!r}" if isinstance(value, str) else _toml_type(value)
    table.problem("vipex_id", f"must be the subscription's numeric id (digits), got {shown}")
    return ""


def _cron_problem(expression: str) -> str | None:
    """Why a 5-field crontab expression is unusable, or None ("" = never)."""
    if expression.strip() == "":
        return None
    fields = expression.split()
    if len(fields) != 5:
        return (
            f"{expression!r} has {len(fields)} fields; a crontab expression has 5: "
            'minute hour day-of-month month day-of-week (e.g. "30 3 * * *"); "" = never'
        )
    if any(ch.isdigit() for ch in fields[4]):
        return (
            f"day of week {fields[4]!r}: write weekdays by name (sun, mon-fri, ...): numbers "
            "mean different days to cron (0 = Sunday) and to the scheduler (0 = Monday)"
        )
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(expression, timezone="UTC")
    except (ValueError, TypeError, KeyError) as exc:
        return f"{expression!r} is not a valid crontab expression: {exc}"
    return None


def _region(table: _Table) -> str:
    import phonenumbers

    region = table.string("default_region", "HU")
    upper = region.upper()
    supported: set[str] = phonenumbers.SUPPORTED_REGIONS
    if upper not in supported:
        table.problem(
            "default_region",
            f"{region!r} is not a region phonenumbers knows{_did_you_mean(upper, supported)}; "
            'use a two-letter ISO 3166 code such as "HU", "AT", "DE" or "GB"',
        )
        return "HU"
    return upper


# --------------------------------------------------------------------------
# [jobs.source]
# --------------------------------------------------------------------------


def _parse_source(table: _Table, ctx: _SecretContext) -> SourceConfig | None:
    if not table.has("type"):
        table.problem(
            "type",
            f"required key 'type' is missing from {table.label}; use one of: "
            f"{', '.join(_SOURCE_TYPES)}",
        )
        return None
    kind = table.data["type"]
    if not isinstance(kind, str) or kind not in _SOURCE_TYPES:
        shown = repr(kind) if isinstance(kind, str) else _toml_type(kind)
        near = _did_you_mean(kind, _SOURCE_TYPES) if isinstance(kind, str) else ""
        table.problem(
            "type",
            f"unknown source type {shown} in {table.label}{near}; valid types: "
            f"{', '.join(_SOURCE_TYPES)}",
        )
        return None
    table.label = f"{table.label} (type {kind!r})"
    table.unknown_keys(_SOURCE_KEYS[kind])
    if kind == "csv":
        return _parse_csv(table, ctx)
    if kind == "sql":
        return _parse_sql(table)
    if kind == "http":
        return _parse_http(table, ctx)
    return _parse_vcard(table, ctx)


def _encoding(table: _Table, default: str) -> str:
    encoding = table.string("encoding", default)
    try:
        codecs.lookup(encoding)
    except LookupError:
        table.problem(
            "encoding",
            f'{encoding!r} is not an encoding Python knows; e.g. "utf-8" or "cp1250" '
            "(a Hungarian Excel export)",
        )
    return encoding


def _parse_csv(table: _Table, ctx: _SecretContext) -> CsvSourceConfig | None:
    path = table.path_value("path", ctx.base_dir, required=True)
    key = table.string("key", required=True)
    encoding = _encoding(table, "utf-8")
    delimiter = table.string("delimiter", ",")
    if len(delimiter) != 1:
        table.problem(
            "delimiter", f'must be exactly one character (e.g. "," or ";"), got {delimiter!r}'
        )
    if path is None:
        return None
    return CsvSourceConfig(path=path, key=key, encoding=encoding, delimiter=delimiter)


_SCALARS = (str, int, float, bool)


def _parse_sql(table: _Table) -> SqlSourceConfig | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    url = table.string("url", required=True)
    if url:
        try:
            make_url(url)
        except ArgumentError:
            table.problem(
                "url",
                'is not a SQLAlchemy database URL (e.g. "postgresql+psycopg://reader@crm/crm" '
                'or "sqlite:////srv/crm.sqlite3")',
            )
    query = table.string("query", required=True)
    key = table.string("key", required=True)
    params: dict[str, str | int | float | bool] = {}
    params_table = table.table("params", f"[jobs.source.params] of {table.label}")
    if params_table is not None:
        for name, value in params_table.data.items():
            if isinstance(value, _SCALARS):
                params[name] = value
            else:
                params_table.problem(
                    name,
                    f"expected a string, number or boolean, got {_toml_type(value)}",
                )
    return SqlSourceConfig(url=url, query=query, key=key, params=params)


def _parse_http(table: _Table, ctx: _SecretContext) -> HttpSourceConfig | None:
    url = table.string("url", required=True)
    if url:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            table.problem("url", "must be an http:// or https:// URL with a host name")
    key = table.string("key", required=True)
    paging = table.choice("paging", "none", ("none", "offset", "cursor"))
    page_size = table.integer("page_size", 100, minimum=1, maximum=100_000)
    names = {}
    for name, default in (
        ("offset_param", "offset"),
        ("limit_param", "limit"),
        ("cursor_param", "cursor"),
        ("next_cursor_path", "next"),
    ):
        names[name] = table.string(name, default)
        if not names[name]:
            table.problem(name, "must not be empty")
    token = _file_or_inline_secret(table, "bearer_token", ctx)
    username = table.string("username") or None
    password = _file_or_inline_secret(table, "password", ctx)
    if token is not None and (username is not None or password is not None):
        table.problem(
            "bearer_token", "use either bearer_token or username/password (basic auth), not both"
        )
    if (
        username is not None
        and password is None
        and not (table.has("password") or table.has("password_file"))
    ):
        table.problem("password", "username is set, so basic auth needs password_file or password")
    if password is not None and username is None:
        table.problem("username", "a password is set, so basic auth needs a username too")
    timeout = table.number("timeout_seconds", 30.0, positive=True)
    verify_tls = table.boolean("verify_tls", True)
    return HttpSourceConfig(
        url=url,
        key=key,
        records_path=table.string("records_path", ""),
        paging=cast(Literal["none", "offset", "cursor"], paging),
        page_size=page_size,
        offset_param=names["offset_param"],
        limit_param=names["limit_param"],
        cursor_param=names["cursor_param"],
        next_cursor_path=names["next_cursor_path"],
        bearer_token=token,
        username=username,
        password=password,
        timeout_seconds=timeout,
        verify_tls=verify_tls,
    )


def _parse_vcard(table: _Table, ctx: _SecretContext) -> VcardSourceConfig | None:
    path = table.path_value("path", ctx.base_dir, required=True)
    key = table.string("key", "UID")
    if not key.strip():
        table.problem("key", 'must not be empty (the default is "UID")')
    encoding = _encoding(table, "utf-8")
    if path is None:
        return None
    return VcardSourceConfig(path=path, key=key or "UID", encoding=encoding)


# --------------------------------------------------------------------------
# [jobs.mapping]
# --------------------------------------------------------------------------


def template_problem(template: str) -> str | None:
    """Why a mapping template is unusable, or None.

    Only plain ``{field}`` placeholders are allowed; ``{{`` and ``}}`` are
    literal braces. A dot inside a name is part of the name (an HTTP source
    flattens nested objects to ``address.city``), not attribute access.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return (
            f"template {template!r} does not parse ({exc}); placeholders are {{field}}, "
            "and a literal brace is written {{ or }}"
        )
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name == "":
            return f"template {template!r} has an empty placeholder {{}}; name the field: {{id}}"
        if name.isdigit():
            return (
                f"template {template!r} has a positional placeholder {{{name}}}; "
                "name the source field instead, e.g. {id}"
            )
        if name != name.strip():
            return f"template {template!r}: remove the spaces around {{{name.strip()}}}"
        if "[" in name or "]" in name:
            return (
                f"template {template!r}: {{{name}}} uses index access, which templates do "
                "not support; use the plain field name"
            )
        if conversion is not None:
            return (
                f"template {template!r}: {{{name}!{conversion}}} uses a conversion, which "
                f"templates do not support; write {{{name}}}"
            )
        if spec:
            return (
                f"template {template!r}: {{{name}:{spec}}} uses a format spec, which "
                f"templates do not support; write {{{name}}}"
            )
    return None


def _template(table: _Table, name: str, *, required: bool = False) -> str:
    template = table.string(name, required=required)
    error = template_problem(template)
    if error:
        table.problem(name, error)
    return template


def _parse_mapping(table: _Table) -> MappingConfig | None:
    table.unknown_keys(_MAPPING_KEYS)
    phone_fields = table.string_list("phone_fields", required=True)
    for index, phone_field in enumerate(phone_fields):
        if not phone_field.strip():
            table.problem(f"phone_fields[{index}]", "must name a source field, not be empty")
    if len(set(phone_fields)) != len(phone_fields):
        table.problem("phone_fields", "lists the same field more than once")
    name = _template(table, "name", required=True)
    comment = _template(table, "comment")
    tags = table.string_list("tags")
    for index, tag in enumerate(tags):
        error = template_problem(tag)
        if error:
            table.problem(f"tags[{index}]", error)
        elif "," in "".join(part[0] for part in string.Formatter().parse(tag)):
            table.problem(
                f"tags[{index}]",
                "a tag must not contain a comma (VIPeX separates tags by commas); "
                "give each tag its own template",
            )
    custom_fields: dict[str, str] = {}
    fields_table = table.table("custom_fields", "[jobs.mapping.custom_fields]")
    if fields_table is not None:
        seen: dict[str, str] = {}
        for field_name, template in fields_table.data.items():
            key = json.dumps(field_name, ensure_ascii=False)
            if not isinstance(template, str):
                fields_table.problem(key, f"expected a template string, got {_toml_type(template)}")
                continue
            if not field_name.strip():
                fields_table.problem(key, "the VIPeX custom field name must not be empty")
                continue
            folded = field_name.strip().casefold()
            if folded in seen:
                fields_table.problem(
                    key,
                    f"names the same VIPeX custom field as {seen[folded]!r} "
                    "(names are matched ignoring case and surrounding spaces)",
                )
                continue
            seen[folded] = field_name
            error = template_problem(template)
            if error:
                fields_table.problem(key, error)
            custom_fields[field_name] = template
    if not phone_fields or not name:
        return None
    return MappingConfig(
        phone_fields=phone_fields,
        name=name,
        comment=comment,
        tags=tags,
        custom_fields=custom_fields,
    )


# --------------------------------------------------------------------------
# Fingerprint
# --------------------------------------------------------------------------

_FINGERPRINT_VERSION = 1
# Source keys that say how to fetch but not what is fetched: a change to them
# must not look like a changed mapping (which withholds deletions).
_NOT_FINGERPRINTED = frozenset({"bearer_token", "password", "timeout_seconds", "verify_tls"})


def _source_settings(source: SourceConfig) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for spec in dataclasses.fields(source):
        name = spec.name
        if name in _NOT_FINGERPRINTED:
            continue
        value = getattr(source, name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        if name == "url" and isinstance(source, SqlSourceConfig):
            value = redact_database_url(value)
        settings[name] = value
    return settings


def mapping_fingerprint(job: JobConfig) -> str:
    """A stable sha256 hex digest of what decides the job's desired entries.

    It covers the source (not its secrets, timeouts or TLS settings), the
    mapping, and the job keys that shape every entry (default_region,
    ownership_tag); not the schedule or the guard thresholds. Canonical JSON
    keeps it equal across processes and Python versions.
    """
    mapping = job.mapping
    document = {
        "fingerprint_version": _FINGERPRINT_VERSION,
        "source": _source_settings(job.source),
        "mapping": {
            "phone_fields": list(mapping.phone_fields),
            "name": mapping.name,
            "comment": mapping.comment,
            "tags": list(mapping.tags),
            "custom_fields": dict(mapping.custom_fields),
        },
        "default_region": job.default_region,
        "ownership_tag": job.ownership_tag,
    }
    canonical = json.dumps(
        document, sort_keys=True, ensure_ascii=True, separators=(",", ":"), allow_nan=False
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()

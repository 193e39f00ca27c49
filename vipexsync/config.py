"""Configuration: TOML loaded into frozen, typed objects; secret resolution.

The dataclasses are the interface the rest of vipexsync codes against (field
names follow ../shared/CONTRACT.md), and each of their fields is also the ONE
declaration of its configuration key (:func:`setting`: type, default, range
or choices, required-ness, secret-ness, a one-line doc). From those
declarations come the validation here, the defaults, and the generated
``config/vipexsync.example.toml`` and ``vipexsync init`` starter
(vipexsync/config_render.py).

:func:`load_config` finds and reads the file; :func:`parse_config` turns the
parsed TOML into those objects, checking everything at once so that an
operator sees every problem in one go, each named by its key path
(``jobs[0].source.type``). Indexes in key paths count from 0, in the order the
``[[jobs]]`` tables appear.

Secrets (the VIPeX password, an HTTP source's token or password) are read
from files or the environment here and wrapped in :class:`Secret`; no message
this module builds ever contains one.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import ipaddress
import json
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit

from vipexsync.config_schema import (
    Secret,
    SecretContext,
    Table,
    config_class,
    did_you_mean,
    key_of,
    keys_of,
    read_key,
    read_secret_file,
    read_settings,
    resolve_path,
    setting,
    toml_names,
    toml_type,
)
from vipexsync.errors import ConfigError
from vipexsync.semantics import STATED_CHOICES, StatedSemantics
from vipexsync.template import parse_template, template_problem

__all__ = ["Secret"]  # re-exported: the rest of vipexsync imports it from here

DeletePolicy = Literal["owned", "all", "never"]

CONFIG_ENV = "VIPEXSYNC_CONFIG"
PASSWORD_ENV = "VIPEXSYNC_VIPEX_PASSWORD"  # noqa: S105 - the variable's name, not a password
SOURCE_PASSWORD_ENV = "VIPEXSYNC_SOURCE_PASSWORD"  # noqa: S105 - a carddav source's password
CREDENTIAL_NAME = "vipex-password"
LOCAL_CONFIG = Path("vipexsync.toml")
SYSTEM_CONFIG = Path("/etc/vipexsync/vipexsync.toml")
DEFAULT_DATABASE_URL = "sqlite:////var/lib/vipexsync/mirror.sqlite3"


# --------------------------------------------------------------------------
# Checks of one value (pure; each returns the problem or None, never the value
# of a secret). The declarations below name them.
# --------------------------------------------------------------------------


def _not_empty(value: str) -> str | None:
    return None if value else "must not be empty"


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


_HOST_NAME = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)


def _probe_number_problem(number: str) -> str | None:
    """Why a probe number is not in VIPeX's form, or None; "" (the default) is fine."""
    if number == "" or re.fullmatch(r"[1-9][0-9]{7,14}", number):
        return None
    return (
        f"{number!r} is not in VIPeX's form: international digits without '+' or leading "
        "zeros, 8 to 15 of them (e.g. 442079460999)"
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


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _level_problem(level: str) -> str | None:
    if level.upper() in _LEVELS:
        return None
    return (
        f"{level!r} is not a log level{did_you_mean(level.upper(), _LEVELS)}; "
        f"use one of: {', '.join(_LEVELS)}"
    )


_JOB_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _job_name_problem(name: str) -> str | None:
    if not name or _JOB_NAME.match(name):
        return None
    return (
        f"{name!r} may contain only letters A-Z and a-z, digits, '_', '.' and '-' "
        "(it becomes a metric label and a lock name)"
    )


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


def _region_problem(region: str) -> str | None:
    import phonenumbers

    upper = region.upper()
    supported: set[str] = phonenumbers.SUPPORTED_REGIONS
    if upper in supported:
        return None
    return (
        f"{region!r} is not a region phonenumbers knows{did_you_mean(upper, supported)}; "
        'use a two-letter ISO 3166 code such as "HU", "AT", "DE" or "GB"'
    )


def tag_in_normal_form(tag: str) -> bool:
    """Whether ``tag`` is written as VIPeX keeps a tag: trimmed, single spaces, printable.

    The ownership tag is compared with the tags VIPeX lists, so a tag that
    the writer would clean (``"crm  sync"``) could never be recognised.
    """
    return tag.isprintable() and " ".join(tag.split()) == tag


def _tag_comma_problem(tag: str) -> str | None:
    if "," in tag:
        return "must not contain a comma (VIPeX separates tags by commas)"
    if not tag_in_normal_form(tag):
        return (
            f"{tag!r} is not in the form VIPeX stores a tag in (no leading or trailing "
            "spaces, single spaces between words, no tabs or control characters); write "
            f"{' '.join(tag.split())!r}"
        )
    return None


def _encoding_problem(encoding: str) -> str | None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        return (
            f'{encoding!r} is not an encoding Python knows; e.g. "utf-8" or "cp1250" '
            "(a Hungarian Excel export)"
        )
    return None


def _delimiter_problem(delimiter: str) -> str | None:
    if len(delimiter) == 1:
        return None
    return f'must be exactly one character (e.g. "," or ";"), got {delimiter!r}'


def _sql_url_problem(url: str) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not url:
        return None
    try:
        make_url(url)
    except ArgumentError:
        return (
            'is not a SQLAlchemy database URL (e.g. "postgresql+psycopg://reader@crm/crm" '
            'or "sqlite:////srv/crm.sqlite3")'
        )
    return None


def _http_url_problem(url: str) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host name"
    return None


def _carddav_url_problem(url: str) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return (
            "must be the address book's https:// URL, e.g. "
            '"https://cloud.example.hu/remote.php/dav/addressbooks/users/NAME/contacts/"'
        )
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password; use username and password_file"
    return None


def _vcard_key_problem(key: str) -> str | None:
    return None if key.strip() else 'must not be empty (the default is "UID")'


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


def _blank_is_never(cron: str) -> str:
    return cron if cron.strip() else ""


def _empty_is_none(text: str) -> str | None:
    return text or None


# --------------------------------------------------------------------------
# The configuration objects; each setting() field declares one key
# --------------------------------------------------------------------------


@config_class
class VipexConfig:
    url: str = setting(
        "Base URL of the VIPeX service; the client adds ?rt=api itself.",
        kind="string",
        example="https://cloud.opennet.hu",
        notes=["Must be https:// (http:// is refused unless allow_http = true, see below)."],
    )
    username: str = setting("The API user's name.", kind="string", example="api_user")
    password: Secret = setting(
        "The API user's password; this file need not hold it.",
        kind="secret",
        custom=True,
        shown=False,
        example="/etc/vipexsync/vipex-password",
        default_doc=f"${PASSWORD_ENV}, else $CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}",
        notes=[
            "One of the four ways is required; password_file or password wins. The",
            "credential comes from systemd's LoadCredential=vipex-password:/path (or",
            "LoadCredentialEncrypted=, see `systemd-creds encrypt`).",
        ],
    )
    timeout_seconds: float = setting(
        "Seconds to wait for one API answer.", kind="number", default=15.0, positive=True
    )
    concurrency: int = setting(
        "Parallel API requests for the whole process.",
        kind="integer",
        default=4,
        minimum=1,
        maximum=64,
        notes=[
            "Every job, listing and write shares this cap, however many jobs run at once.",
            'Lower it if VIPeX answers "429 Too Many Requests" often.',
        ],
    )
    verify_tls: bool = setting("Check the server's TLS certificate.", kind="boolean", default=True)
    ca_bundle: Path | None = setting(
        "A CA bundle (PEM) to verify the server against instead of the system's CAs.",
        kind="path",
        default=None,
        shown=False,
        example="/etc/vipexsync/proxy-ca.pem",
        notes=[
            "E.g. behind a TLS-inspecting proxy. The file must exist; it cannot be",
            "combined with verify_tls = false.",
        ],
    )
    allow_http: bool = setting(
        "Allow an http:// url.",
        kind="boolean",
        default=False,
        shown=False,
        notes=[
            "The API username and password would travel in clear text, so this is meant",
            "for a local emulator only (`vipexsync emulator`), never for the real service.",
        ],
    )
    retry_deadline_seconds: float = setting(
        "Total seconds the retry layer may spend on one API call.",
        kind="number",
        default=120.0,
        positive=True,
        shown=False,
        notes=["(Retries of 429, 5xx and network errors, with back-off.)"],
    )
    max_retry_after_seconds: float = setting(
        "A server's Retry-After longer than this many seconds is capped to it.",
        kind="number",
        default=60.0,
        positive=True,
        shown=False,
    )
    write_semantics: StatedSemantics = setting(
        "What VIPeX's set_phonebook_entry does with a field it is NOT sent.",
        kind="choice",
        default="probe",
        choices=STATED_CHOICES,
        shown=False,
        notes=[
            "The vendor document does not say. vipexsync never sends the custom fields",
            "your mapping leaves out; if VIPeX clears them, every update would wipe them.",
            '"probe": follow what `vipexsync probe` recorded for the subscription; until',
            "a probe has run, writes behave as if omitted fields were kept and",
            "`vipexsync check` warns.",
            '"keep_omitted" / "clear_omitted": state it. With "clear_omitted" each update',
            "first reads the entry (one get_phonebook_entry call) and re-sends the custom",
            "fields the mapping does not manage. Trimming, truncation and normalisation",
            "are only ever learnt by the probe.",
        ],
    )
    probe_number: str = setting(
        "The reserved test number `vipexsync probe` creates, changes and deletes.",
        kind="string",
        default="",
        example="442079460999",
        shown=False,
        check=_probe_number_problem,
        default_doc="442079460999",
        notes=[
            'In VIPeX\'s form: international digits, no "+". It must be a valid number',
            "that is NOT in the phonebook: the probe refuses a number that exists. The",
            "default, +44 20 7946 0999, is from the range Ofcom reserves for drama, never",
            "anyone's line. `vipexsync probe --number N` overrides it.",
        ],
    )


@config_class
class DatabaseConfig:
    url: str = setting(
        "SQLAlchemy URL of the mirror; SQLite or PostgreSQL (psycopg 3) only.",
        kind="string",
        default=DEFAULT_DATABASE_URL,
        custom=True,
        default_doc=(
            f"{DEFAULT_DATABASE_URL}, or $STATE_DIRECTORY/mirror.sqlite3 when systemd "
            "sets $STATE_DIRECTORY (StateDirectory=vipexsync)"
        ),
        notes=[
            "A relative SQLite path (sqlite:///mirror.sqlite3) is relative to this file.",
            '"postgresql://" is accepted and means "postgresql+psycopg://".',
            "For replicas sharing one job set, use PostgreSQL, e.g.",
            '  url = "postgresql+psycopg://vipexsync@db.example.com/vipexsync"',
            "(prefer a ~/.pgpass file or PGPASSWORD over a password in the URL).",
        ],
    )
    auto_upgrade: bool = setting(
        "Create or migrate the database schema on start.",
        kind="boolean",
        default=True,
        shown=False,
        notes=["With false, run `vipexsync db upgrade` yourself after every upgrade."],
    )
    keep_days: int = setting(
        "Days of run history and change log (`vipexsync history`) to keep.",
        kind="integer",
        default=90,
        minimum=0,
        maximum=36500,
        shown=False,
        notes=[
            "The daemon prunes older rows at start and then hourly, in small batches;",
            "`vipexsync db prune` does it once. The newest run of each job and mode is",
            "always kept. 0 keeps everything.",
        ],
    )

    def redacted_url(self) -> str:
        """The URL with any password replaced by ``***``, for logs and messages."""
        return redact_database_url(self.url)

    def __repr__(self) -> str:
        return (
            f"DatabaseConfig(url={self.redacted_url()!r}, auto_upgrade={self.auto_upgrade!r}, "
            f"keep_days={self.keep_days!r})"
        )


@config_class
class MetricsConfig:
    listen: str = setting(
        'host:port the endpoint listens on; "" turns it off.',
        kind="string",
        default="127.0.0.1:9717",
        check=_listen_problem,
        notes=['IPv6 addresses go in brackets: "[::1]:9717". All interfaces: "0.0.0.0:9717".'],
    )


@config_class
class LoggingConfig:
    level: str = setting(
        "The least severe level logged (any case).",
        kind="string",
        default="INFO",
        choices=_LEVELS,
        check=_level_problem,
        convert=str.upper,
    )
    format: Literal["text", "json"] = setting(
        'One readable line per event ("text") or one JSON object per line ("json").',
        kind="choice",
        default="text",
        choices=("text", "json"),
        notes=['"json" is for log shippers.'],
    )


@config_class
class CsvSourceConfig:
    """A CSV export with a header row naming the fields."""

    path: Path = setting(
        "The CSV file, with a header row naming the fields.", kind="path", example="crm-export.csv"
    )
    key: str | tuple[str, ...] = setting(
        "The column holding the CRM's stable record id, or a list of columns.",
        kind="string",
        default=(),
        example="id",
        custom=True,  # a string or a list: read by _csv_key
        default_doc="a digest of the row",
        notes=[
            'A list is a composite key (["First Name", "Last Name", "Company"]), for',
            "exports without an id column (Google, Outlook, Thunderbird).",
            "Left out, a record's key is a digest of the whole row: stable across",
            "re-exports and re-ordering, but new when any cell of the row changes (its",
            "entries are then rewritten, not lost); identical rows get ~2, ~3... The",
            "report counts each key rule. Never key on a row number: it changes on every",
            "re-export (the source warns when every key equals its row number).",
        ],
    )
    encoding: str = setting(
        "Text encoding (a byte-order mark is tolerated).",
        kind="string",
        default="utf-8",
        check=_encoding_problem,
        notes=['A Hungarian Excel export is usually encoding = "cp1250", delimiter = ";".'],
    )
    delimiter: str = setting(
        "Field separator, one character.", kind="string", default=",", check=_delimiter_problem
    )
    type: Literal["csv"] = "csv"

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The key's columns; () means the documented fallback (a digest of the row)."""
        if isinstance(self.key, str):
            return (self.key,) if self.key else ()
        return tuple(self.key)


_SQL_QUERY_EXAMPLE = (
    "  SELECT id, last_name, first_name, company, phone, mobile, segment\n"
    "  FROM contacts WHERE active AND region = :region\n"
)


@config_class
class SqlSourceConfig:
    """Any database SQLAlchemy can reach, read with one SELECT (give it a read-only user)."""

    url: str = setting(
        "SQLAlchemy URL of the CRM database.",
        kind="string",
        check=_sql_url_problem,
        example="postgresql+psycopg://crm_reader@crm-db/crm",
    )
    query: str = setting(
        "The SELECT that reads the records; its column labels are the field names.",
        kind="string",
        example=_SQL_QUERY_EXAMPLE,
    )
    key: str = setting(
        "The column holding the CRM's stable record id.", kind="string", example="id"
    )
    params: Mapping[str, str | int | float | bool] = setting(
        "Bound parameters of the query (:region), strings, numbers or booleans.",
        kind="table",
        default={},
        custom=True,
        example={"region": "HU"},
    )
    type: Literal["sql"] = "sql"

    def __repr__(self) -> str:
        return (
            f"SqlSourceConfig(url={redact_database_url(self.url)!r}, query={self.query!r}, "
            f"key={self.key!r}, params={self.params!r})"
        )


@config_class
class HttpSourceConfig:
    """A JSON endpoint, read with GET. Nested objects become dotted field names:
    {"address": {"city": "Pécs"}} is the field address.city ({address.city} in templates).
    """

    url: str = setting(
        "The JSON endpoint, read with GET.",
        kind="string",
        check=_http_url_problem,
        example="https://crm.example.com/api/contacts",
    )
    key: str = setting("The record field with the stable id.", kind="string", example="id")
    records_path: str = setting(
        'Dotted path to the list inside the answer; "" = the answer itself is the list.',
        kind="string",
        default="",
        example="data.items",
    )
    paging: Literal["none", "offset", "cursor"] = setting(
        "How further pages are asked for.",
        kind="choice",
        default="none",
        choices=("none", "offset", "cursor"),
        example="cursor",
    )
    page_size: int = setting(
        "Records asked for per page.", kind="integer", default=100, minimum=1, maximum=100_000
    )
    offset_param: str = setting(
        "Offset paging: the query parameter carrying the offset.",
        kind="string",
        default="offset",
        check=_not_empty,
    )
    limit_param: str = setting(
        "Offset paging: the query parameter carrying the page size.",
        kind="string",
        default="limit",
        check=_not_empty,
    )
    cursor_param: str = setting(
        "Cursor paging: the query parameter sending the cursor.",
        kind="string",
        default="cursor",
        check=_not_empty,
    )
    next_cursor_path: str = setting(
        "Cursor paging: dotted path to the next cursor in the answer.",
        kind="string",
        default="next",
        check=_not_empty,
    )
    bearer_token: Secret | None = setting(
        "A token sent as Authorization: Bearer.",
        kind="secret",
        default=None,
        example="/etc/vipexsync/crm-token",
        fingerprint="never",
        notes=["Use either a token or basic auth (username and password), not both."],
    )
    username: str | None = setting(
        "Basic auth: the user name.",
        kind="string",
        default=None,
        convert=_empty_is_none,
        shown=False,
        example="sync",
    )
    password: Secret | None = setting(
        "Basic auth: the password.",
        kind="secret",
        default=None,
        shown=False,
        example="/etc/vipexsync/crm-password",
        fingerprint="never",
    )
    timeout_seconds: float = setting(
        "Seconds to wait for one answer.",
        kind="number",
        default=30.0,
        positive=True,
        fingerprint="never",
    )
    max_attempts: int = setting(
        "Tries per request when it fails, times out or is answered 429 or 5xx.",
        kind="integer",
        default=4,
        minimum=1,
        maximum=20,
        shown=False,
        fingerprint="never",
    )
    retry_backoff_seconds: float = setting(
        "Seconds to wait before the second try; each later wait doubles, up to 30 s.",
        kind="number",
        default=1.0,
        minimum=0,
        maximum=60,
        shown=False,
        fingerprint="never",
    )
    verify_tls: bool = setting(
        "Check the server's TLS certificate.", kind="boolean", default=True, fingerprint="never"
    )
    ca_bundle: Path | None = setting(
        "A private CA's certificates (PEM) to trust instead of the system's.",
        kind="path",
        default=None,
        shown=False,
        example="/etc/vipexsync/crm-ca.pem",
        fingerprint="never",
        notes=["The file must exist; it cannot be combined with verify_tls = false."],
    )
    type: Literal["http"] = "http"

    def __repr__(self) -> str:
        # The URL's query may carry an API key (``?api_key=...``): shown masked.
        return (
            f"HttpSourceConfig(url={redact_url_query(self.url)!r}, key={self.key!r}, "
            f"records_path={self.records_path!r}, paging={self.paging!r}, "
            f"bearer_token={self.bearer_token!r}, username={self.username!r}, "
            f"password={self.password!r}, timeout_seconds={self.timeout_seconds!r})"
        )


@config_class
class VcardSourceConfig:
    """vCard (.vcf) files, as address books and phones export them."""

    path: Path = setting(
        "A vCard (.vcf) file or a folder of them.", kind="path", example="contacts/"
    )
    key: str = setting(
        "The vCard property holding the stable id.",
        kind="string",
        default="UID",
        check=_vcard_key_problem,
        notes=[
            "A card without it (Google, Outlook, Apple, Android and Thunderbird exports",
            "carry none) gets a digest of its FN, N, ORG and the digits of its numbers:",
            "stable across re-exports and re-ordering, but a new key when the contact's",
            "name or numbers change (its entries are then rewritten, not lost). Cards",
            "equal in all of those get ~2, ~3... The run report counts each key rule.",
        ],
    )
    encoding: str = setting(
        "Text encoding of values that declare no CHARSET and are not valid UTF-8.",
        kind="string",
        default="utf-8",
        check=_encoding_problem,
        fingerprint="unless-default",  # added after the fingerprint's first version
        notes=[
            'An Outlook export without charsets: "cp1250". Valid UTF-8 is always read as',
            "UTF-8, so one folder may mix both. CHARSET= and QUOTED-PRINTABLE are",
            "honoured, UTF-16 files are recognised. A value that cannot be decoded costs",
            "that value, or the card if the mapping uses it.",
            "A vcard job may leave out [jobs.mapping], or its phone_fields (default",
            '["tel_voice"]: every voice number, TEL without FAX/PAGER/MODEM type, each its',
            'own entry; pick by type with "tel_cell", "tel_work", "tel_home") and name',
            '(default "{fn|n|org}"). A TEL no phone field holds is counted and listed',
            "(number_not_synced), never dropped silently.",
        ],
    )
    type: Literal["vcard"] = "vcard"


@config_class
class CarddavSourceConfig:
    """One address book on a CardDAV server (Nextcloud, Radicale, Baïkal, SOGo, iCloud)."""

    url: str = setting(
        "The address book collection itself.",
        kind="string",
        check=_carddav_url_problem,
        example="https://cloud.example.hu/remote.php/dav/addressbooks/users/sync/contacts/",
        notes=[
            "Radicale: https://HOST/USER/BOOK/;",
            "Baïkal: https://HOST/dav.php/addressbooks/USER/default/;",
            "SOGo: https://HOST/SOGo/dav/USER/Contacts/personal/.",
            "A URL that is not an address book (a principal, the home set) is refused.",
            "The cards go through the vcard source's parser: the same fields (fn, n, org,",
            "tel_voice, tel_cell...), and the job may leave out [jobs.mapping] as a vcard",
            "job may. A read that fails or is cut short deletes nothing.",
        ],
    )
    username: str | None = setting(
        "HTTP basic auth: the user name; leave it out for a server without authentication.",
        kind="string",
        default=None,
        convert=_empty_is_none,
        example="sync",
    )
    password: Secret | None = setting(
        "HTTP basic auth: the password.",
        kind="secret",
        default=None,
        custom=True,
        example="/etc/vipexsync/carddav-password",
        default_doc=f"${SOURCE_PASSWORD_ENV} when username is set",
        fingerprint="never",
        notes=["iCloud needs an app-specific password."],
    )
    key: str = setting(
        "The card property holding the stable id.",
        kind="string",
        default="UID",
        check=_vcard_key_problem,
        notes=[
            'A card without it is keyed by its path on the server ("href:/..."), which',
            "the server keeps for the card's life.",
        ],
    )
    ca_bundle: Path | None = setting(
        "A CA bundle (PEM) to verify the server against instead of the system's CAs.",
        kind="path",
        default=None,
        shown=False,
        example="/etc/vipexsync/carddav-ca.pem",
        fingerprint="never",
        notes=["E.g. a private CA. It cannot be combined with verify_tls = false."],
    )
    verify_tls: bool = setting(
        "Check the server's TLS certificate.", kind="boolean", default=True, fingerprint="never"
    )
    allow_http: bool = setting(
        "Allow an http:// url (the password would travel in clear text).",
        kind="boolean",
        default=False,
        shown=False,
        fingerprint="never",
    )
    timeout_seconds: float = setting(
        "Seconds to wait for one answer.",
        kind="number",
        default=30.0,
        positive=True,
        fingerprint="never",
        notes=["Connection failures, timeouts, 429 and 5xx are retried a few times first."],
    )
    batch_size: int = setting(
        "Cards fetched per addressbook-multiget request.",
        kind="integer",
        default=100,
        minimum=1,
        maximum=1000,
        fingerprint="never",
    )
    sync_collection: bool = setting(
        "Use sync-collection (RFC 6578) when the server offers it.",
        kind="boolean",
        default=True,
        fingerprint="never",
        notes=[
            "A daemon then fetches only the cards that changed since its last tick (a",
            "full resync, and every new process, read all). false: always PROPFIND +",
            "addressbook-multiget (RFC 6352).",
        ],
    )
    type: Literal["carddav"] = "carddav"


SourceConfig = (
    CsvSourceConfig | SqlSourceConfig | HttpSourceConfig | VcardSourceConfig | CarddavSourceConfig
)

# Every source type, by its `type`; the first is the example file's and init's default.
SOURCE_TYPES: dict[str, type[SourceConfig]] = {
    "csv": CsvSourceConfig,
    "sql": SqlSourceConfig,
    "http": HttpSourceConfig,
    "vcard": VcardSourceConfig,
    "carddav": CarddavSourceConfig,
}


@config_class
class MappingConfig:
    phone_fields: tuple[str, ...] = setting(
        "Source fields holding phone numbers; each non-empty one becomes an entry.",
        kind="strings",
        example=["phone", "mobile"],
        notes=["(Each entry gets the same name, comment and tags.) At least one."],
    )
    name: str = setting(
        "The entry's display name (a template).",
        kind="string",
        check=template_problem,
        example="{last_name} {first_name}",
    )
    comment: str = setting(
        "The entry's comment (a template).",
        kind="string",
        default="",
        check=template_problem,
        example="{company}",
    )
    tags: tuple[str, ...] = setting(
        "Tag templates; the ownership tag is added to these. A tag has no comma.",
        kind="strings",
        default=(),
        example=["{segment}"],
    )
    custom_fields: Mapping[str, str] = setting(
        "VIPeX phonebook custom fields, by their NAME in VIPeX, each = a template.",
        kind="table",
        default={},
        custom=True,
        example={"Ügyfélkód": "{id}"},
        notes=[
            "`vipexsync fields` lists the names your subscription has; an unknown name",
            "is an error.",
        ],
    )


@config_class
class JobConfig:
    name: str = setting(
        "Unique name of the job: letters, digits, '_', '.' and '-' only.",
        kind="string",
        check=_job_name_problem,
        example="crm",
        notes=["It becomes a metric label and a lock name."],
    )
    vipex_id: str = setting(
        "The VIPeX subscription id (digits) whose phonebook this job manages.",
        kind="string",
        custom=True,
        example="1643897",
    )
    source: SourceConfig
    mapping: MappingConfig
    interval_seconds: int = setting(
        "Seconds between incremental runs (which only send real changes).",
        kind="integer",
        default=300,
        minimum=10,
    )
    full_resync_cron: str = setting(
        'When to run a full resync, as a 5-field crontab in local time; "" = never.',
        kind="string",
        default="30 3 * * *",
        check=_cron_problem,
        convert=_blank_is_never,
        notes=[
            "A full resync also repairs entries edited by hand in the PBX. The fields are",
            "minute hour day-of-month month day-of-week; write weekdays by name",
            '("30 3 * * sun", "0 6 * * mon-fri"): numbers are refused because cron and',
            "the scheduler disagree on which day 0 is.",
        ],
    )
    default_region: str = setting(
        "Region for numbers written without a country code (ISO 3166, e.g. HU, AT, DE).",
        kind="string",
        default="HU",
        check=_region_problem,
        convert=str.upper,
    )
    ownership_tag: str = setting(
        'Tag added to every entry this job writes; "" = none.',
        kind="string",
        default="crm-sync",
        check=_tag_comma_problem,
        notes=[
            'So ownership survives a lost database. No commas; with "" only the mirror',
            "proves ownership. Written as VIPeX keeps a tag: trimmed, single spaces.",
            "Jobs that share a vipex_id each need their own non-empty tag (and none of",
            'them delete = "all"): an entry belongs only to the job whose tag it carries.',
        ],
    )
    delete: DeletePolicy = setting(
        "Which entries may be deleted when the CRM no longer has them.",
        kind="choice",
        default="owned",
        choices=("owned", "all", "never"),
        notes=[
            '  "owned": only entries this job wrote or tagged',
            '  "all":   anything in the phonebook not in the CRM (the CRM owns it all)',
            '  "never": nothing is ever deleted',
        ],
    )
    max_deletes: int = setting(
        "Guard: a run that would delete more entries than this deletes none.",
        kind="integer",
        default=100,
        minimum=0,
        notes=[
            "A guarded run exits with code 3 until an operator runs",
            "`vipexsync sync --force-delete`.",
        ],
    )
    max_delete_ratio: float = setting(
        "Guard: the same, for a share of the owned entries.",
        kind="number",
        default=0.10,
        minimum=0.0,
        maximum=1.0,
    )
    min_source_records: int = setting(
        "Guard: a source read with fewer records than this deletes nothing.",
        kind="integer",
        default=1,
        minimum=0,
    )


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
                f"Pass --config PATH or set ${CONFIG_ENV}; to start one, run "
                "`vipexsync init` (it writes ./vipexsync.toml, commented)."
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
            f"(--config or ${CONFIG_ENV}), or write a starter there with `vipexsync init {path}`"
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
    root = Table(data, "", "the top level of the file", problems)
    root.unknown_keys(_TOP_KEYS)
    ctx = SecretContext(base_dir, environ, file_mode, source)

    vipex_table = root.table("vipex", "[vipex]", required=True)
    vipex = _parse_vipex(vipex_table, ctx) if vipex_table else None
    database = _parse_database(_section(root, "database"), ctx)
    metrics = MetricsConfig(**read_settings(_section(root, "metrics"), MetricsConfig, ctx))
    logging = LoggingConfig(**read_settings(_section(root, "logging"), LoggingConfig, ctx))
    jobs = _parse_jobs(root, ctx)

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


def _section(root: Table, name: str) -> Table:
    """An optional top-level table, or an empty one standing in for it."""
    label = f"[{name}]"
    table = root.table(name, label) or Table({}, name, label, root.problems)
    table.unknown_keys(toml_names(_SECTIONS[name]))
    return table


# --------------------------------------------------------------------------
# [vipex], [database]: the keys that need more than their declaration
# --------------------------------------------------------------------------


def _parse_vipex(table: Table, ctx: SecretContext) -> VipexConfig | None:
    table.unknown_keys(toml_names(VipexConfig))
    values = read_settings(table, VipexConfig, ctx)
    if values["url"]:
        error = _vipex_url_problem(values["url"], values["allow_http"])
        if error:
            table.problem("url", error)
    _check_ca_bundle(table, values)
    password = _vipex_password(table, ctx)
    if password is None:
        return None
    return VipexConfig(**values, password=password)


def _check_ca_bundle(table: Table, values: Mapping[str, Any]) -> None:
    """``ca_bundle`` names a file that exists, and only while verification is on."""
    ca_bundle = values["ca_bundle"]
    if ca_bundle is not None:
        if not values["verify_tls"]:
            table.problem(
                "ca_bundle",
                "ca_bundle is set but verify_tls = false turns verification off; "
                "remove one of them",
            )
        elif not ca_bundle.is_file():
            table.problem("ca_bundle", f"CA bundle {ca_bundle} does not exist or is not a file")


def _vipex_password(table: Table, ctx: SecretContext) -> Secret | None:
    """The first of: password_file / inline password, the environment, the systemd credential."""
    if table.has("password") or table.has("password_file"):
        return read_key(table, key_of(VipexConfig, "password"), ctx)  # type: ignore[no-any-return]
    from_env = ctx.environ.get(PASSWORD_ENV, "")
    if from_env:
        return Secret(from_env)
    credentials = ctx.environ.get("CREDENTIALS_DIRECTORY", "")
    if credentials:
        credential = Path(credentials) / CREDENTIAL_NAME
        if credential.exists():
            secret, error = read_secret_file(credential)
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


def _default_database_url(environ: Mapping[str, str]) -> str:
    """sqlite in systemd's StateDirectory= when there is one, else /var/lib/vipexsync."""
    state = environ.get("STATE_DIRECTORY", "")
    if state:
        first = state.split(":")[0]  # several StateDirectory= entries are ':'-separated
        return f"sqlite:///{first}/mirror.sqlite3"
    return DEFAULT_DATABASE_URL


_PLAIN_SQLITE = re.compile(r"sqlite:///([A-Za-z0-9/._-]+)")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/._-]+")


def _plain_sqlite_url(url: str, base_dir: Path) -> str | None:
    """A ``sqlite:///path`` URL of plain characters, normalised as below without
    importing SQLAlchemy (a one-shot quiet tick never needs it, issue 13)."""
    found = _PLAIN_SQLITE.fullmatch(url)
    if found is None:
        return None
    resolved = str(resolve_path(found.group(1), base_dir))
    return f"sqlite:///{resolved}" if _PLAIN_PATH.fullmatch(resolved) else None


def _normalise_database_url(url: str, base_dir: Path) -> tuple[str, str | None]:
    """(usable URL, None) or (url, why not): sqlite or postgresql+psycopg only."""
    plain = _plain_sqlite_url(url, base_dir)
    if plain is not None:
        return plain, None
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
            resolved = resolve_path(database, base_dir)
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


def _parse_database(table: Table, ctx: SecretContext) -> DatabaseConfig:
    default = _default_database_url(ctx.environ)
    url = table.string("url", default)
    if not url.strip():
        table.problem("url", "must not be empty (leave the key out for the default)")
        url = default
    url, error = _normalise_database_url(url, ctx.base_dir)
    if error:
        table.problem("url", error)
    return DatabaseConfig(**read_settings(table, DatabaseConfig, ctx, url=url))


# --------------------------------------------------------------------------
# [[jobs]]
# --------------------------------------------------------------------------


def _parse_jobs(root: Table, ctx: SecretContext) -> tuple[JobConfig, ...]:
    if not root.has("jobs"):
        root.problem("jobs", "at least one [[jobs]] table is required")
        return ()
    raw = root.data["jobs"]
    if isinstance(raw, dict):
        root.problem("jobs", "jobs must be an array of tables: write [[jobs]] (double brackets)")
        return ()
    if not isinstance(raw, list):
        root.problem("jobs", f"expected an array of [[jobs]] tables, got {toml_type(raw)}")
        return ()
    if not raw:
        root.problem("jobs", "at least one [[jobs]] table is required")
        return ()
    jobs: list[JobConfig] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        path = f"jobs[{index}]"
        if not isinstance(item, dict):
            root.problems.append(f"{path}: expected a [[jobs]] table, got {toml_type(item)}")
            continue
        job = _parse_job(Table(item, path, f"[[jobs]] #{index}", root.problems), ctx)
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
    root.problems.extend(_shared_subscription_problems(jobs))
    return tuple(jobs)


def _shared_subscription_problems(jobs: list[JobConfig]) -> list[str]:
    """Jobs on one subscription must each own their entries by their own tag.

    Ownership of a VIPeX entry comes from the job's ownership tag; two jobs
    with the same tag (or none) on one phonebook would delete each other's
    entries, and ``delete = "all"`` would delete the other job's outright.
    """
    problems: list[str] = []
    by_subscription: dict[str, list[tuple[int, JobConfig]]] = {}
    for index, job in enumerate(jobs):
        if job.vipex_id:
            by_subscription.setdefault(job.vipex_id, []).append((index, job))
    for vipex_id, sharing in by_subscription.items():
        if len(sharing) < 2:
            continue
        names = " and ".join(f"jobs[{i}] {job.name!r}" for i, job in sharing)
        tags: dict[str, str] = {}
        for index, job in sharing:
            where = f"jobs[{index}] {job.name!r}"
            if not job.ownership_tag:
                problems.append(
                    f"jobs[{index}].ownership_tag: {names} share vipex_id {vipex_id}, so each "
                    f"needs its own non-empty ownership_tag; {where} has none"
                )
            elif job.ownership_tag in tags:
                problems.append(
                    f"jobs[{index}].ownership_tag: {names} share vipex_id {vipex_id} and "
                    f"{tags[job.ownership_tag]} and {where} both use ownership_tag "
                    f"{job.ownership_tag!r}; each would delete the other's entries. Give "
                    "each job its own tag"
                )
            else:
                tags[job.ownership_tag] = where
            if job.delete == "all":
                problems.append(
                    f"jobs[{index}].delete: {names} share vipex_id {vipex_id}, and "
                    f'delete = "all" in {where} would delete the other job\'s entries; '
                    'use delete = "owned"'
                )
    return problems


def _parse_job(table: Table, ctx: SecretContext) -> JobConfig | None:
    name = read_key(table, key_of(JobConfig, "name"), ctx)
    if name:
        table.label = f"[[jobs]] {name!r}"
    table.unknown_keys(toml_names(JobConfig, "source", "mapping"))
    values = read_settings(table, JobConfig, ctx, name=name, vipex_id=_vipex_id(table))
    suffix = f" of job {name!r}" if name else ""
    source_table = table.table("source", f"[jobs.source]{suffix}", required=True)
    source = _parse_source(source_table, ctx) if source_table else None
    # A vCard or CardDAV job may leave the mapping out: its fields are known.
    # (Judged by the declared type, so a source with a problem of its own does
    # not also make the mapping's defaults look missing.)
    kind = source_table.data.get("type") if source_table else None
    vcard = kind in CARD_SOURCE_TYPES
    mapping_table = table.table("mapping", f"[jobs.mapping]{suffix}", required=not vcard)
    if mapping_table is None and vcard:
        mapping_table = Table({}, table.key("mapping"), f"[jobs.mapping]{suffix}", table.problems)
    mapping = _parse_mapping(mapping_table, ctx, vcard=vcard) if mapping_table else None
    if source is None or mapping is None:
        return None
    return JobConfig(**values, source=source, mapping=mapping)


def _vipex_id(table: Table) -> str:
    """The subscription id: digits, as a string (a TOML integer is accepted too)."""
    if not table.has("vipex_id"):
        table.missing("vipex_id")
        return ""
    value = table.data["vipex_id"]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return value
    shown = f"{value!r}" if isinstance(value, str) else toml_type(value)
    table.problem("vipex_id", f"must be the subscription's numeric id (digits), got {shown}")
    return ""


# --------------------------------------------------------------------------
# [jobs.source]
# --------------------------------------------------------------------------


def _parse_source(table: Table, ctx: SecretContext) -> SourceConfig | None:
    kinds = tuple(SOURCE_TYPES)
    if not table.has("type"):
        table.problem(
            "type",
            f"required key 'type' is missing from {table.label}; use one of: {', '.join(kinds)}",
        )
        return None
    kind = table.data["type"]
    if not isinstance(kind, str) or kind not in SOURCE_TYPES:
        shown = repr(kind) if isinstance(kind, str) else toml_type(kind)
        near = did_you_mean(kind, kinds) if isinstance(kind, str) else ""
        table.problem(
            "type",
            f"unknown source type {shown} in {table.label}{near}; valid types: {', '.join(kinds)}",
        )
        return None
    table.label = f"{table.label} (type {kind!r})"
    cls = SOURCE_TYPES[kind]
    table.unknown_keys(toml_names(cls, "type"))
    values = read_settings(table, cls, ctx)
    if cls is SqlSourceConfig:
        values["params"] = _sql_params(table)
    elif cls is CsvSourceConfig:
        values["key"] = _csv_key(table)
    elif cls is HttpSourceConfig:
        _check_http_auth(table, values)
        _check_ca_bundle(table, values)
    elif cls is CarddavSourceConfig:
        values["password"] = _carddav_password(table, values, ctx)
        _check_ca_bundle(table, values)
        if values["url"].lower().startswith("http:") and not values["allow_http"]:
            table.problem(
                "url",
                "http:// would send the CardDAV password in clear text; use https://, or set "
                "allow_http = true in this source if you really mean it (e.g. on loopback)",
            )
    # A required path that is missing leaves nothing to read: no source.
    if any(
        key.kind == "path" and key.required and values[key.name] is None for key in keys_of(cls)
    ):
        return None
    return cls(**values)


_SCALARS = (str, int, float, bool)


def _csv_key(table: Table) -> str | tuple[str, ...]:
    """A CSV source's key: one column, a list of columns, or () (the row digest)."""
    if not table.has("key"):
        return ()
    if isinstance(table.data["key"], list):
        columns = table.string_list("key")
        if not columns or any(not column.strip() for column in columns):
            table.problem("key", "list the key's columns, none of them empty")
        elif len(set(columns)) != len(columns):
            table.problem("key", "lists the same column more than once")
        return columns
    key = table.string("key")
    if not key.strip():
        table.problem("key", "must name a column (or leave the key out for the row digest)")
    return key


def _sql_params(table: Table) -> dict[str, str | int | float | bool]:
    params: dict[str, str | int | float | bool] = {}
    params_table = table.table("params", f"[jobs.source.params] of {table.label}")
    if params_table is not None:
        for name, value in params_table.data.items():
            if isinstance(value, _SCALARS):
                params[name] = value
            else:
                params_table.problem(
                    name,
                    f"expected a string, number or boolean, got {toml_type(value)}",
                )
    return params


def _check_http_auth(table: Table, values: Mapping[str, Any]) -> None:
    """A bearer token or basic auth, not both; basic auth needs both halves."""
    token, username, password = values["bearer_token"], values["username"], values["password"]
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


def _carddav_password(table: Table, values: Mapping[str, Any], ctx: SecretContext) -> Any:
    """password_file / inline password, else $VIPEXSYNC_SOURCE_PASSWORD; only with a username."""
    explicit = table.has("password") or table.has("password_file")
    username = values["username"]
    if explicit:
        if username is None:
            table.problem("username", "a password is set, so basic auth needs a username too")
        return read_key(table, key_of(CarddavSourceConfig, "password"), ctx)
    if username is None:
        return None
    from_env = ctx.environ.get(SOURCE_PASSWORD_ENV, "")
    if from_env:
        return Secret(from_env)
    table.problem(
        "password",
        "username is set, so the CardDAV server needs a password: password_file = "
        f'"..." in this source, or the environment variable ${SOURCE_PASSWORD_ENV}',
    )
    return None


# --------------------------------------------------------------------------
# [jobs.mapping]
# --------------------------------------------------------------------------


#: Source types whose cards the mapping's defaults below fit.
CARD_SOURCE_TYPES = ("vcard", "carddav")
#: What a vCard job's mapping defaults to: every voice number, named by FN,
#: else N, else ORG (company-only contacts).
VCARD_PHONE_FIELDS: tuple[str, ...] = ("tel_voice",)
VCARD_NAME = "{fn|n|org}"


def _parse_mapping(
    table: Table, ctx: SecretContext, *, vcard: bool = False
) -> MappingConfig | None:
    table.unknown_keys(toml_names(MappingConfig))
    defaults: dict[str, Any] = {}
    if vcard and not table.has("phone_fields"):
        defaults["phone_fields"] = VCARD_PHONE_FIELDS
    if vcard and not table.has("name"):
        defaults["name"] = VCARD_NAME
    values = read_settings(table, MappingConfig, ctx, **defaults)
    phone_fields: tuple[str, ...] = values["phone_fields"]
    for index, phone_field in enumerate(phone_fields):
        if not phone_field.strip():
            table.problem(f"phone_fields[{index}]", "must name a source field, not be empty")
    if len(set(phone_fields)) != len(phone_fields):
        table.problem("phone_fields", "lists the same field more than once")
    for index, tag in enumerate(values["tags"]):
        error = template_problem(tag)
        if error:
            table.problem(f"tags[{index}]", error)
        elif "," in parse_template(tag).literal:
            table.problem(
                f"tags[{index}]",
                "a tag must not contain a comma (VIPeX separates tags by commas); "
                "give each tag its own template",
            )
    values["custom_fields"] = _custom_fields(table)
    if not phone_fields or not values["name"]:
        return None
    return MappingConfig(**values)


def _custom_fields(table: Table) -> dict[str, str]:
    """VIPeX custom field name -> template; names unique ignoring case and spaces."""
    custom_fields: dict[str, str] = {}
    fields_table = table.table("custom_fields", "[jobs.mapping.custom_fields]")
    if fields_table is None:
        return custom_fields
    seen: dict[str, str] = {}
    for field_name, template in fields_table.data.items():
        key = json.dumps(field_name, ensure_ascii=False)
        if not isinstance(template, str):
            fields_table.problem(key, f"expected a template string, got {toml_type(template)}")
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
    return custom_fields


# The top-level tables and the objects they fill (the renderer walks these too).
_SECTIONS: dict[str, type[Any]] = {
    "vipex": VipexConfig,
    "database": DatabaseConfig,
    "metrics": MetricsConfig,
    "logging": LoggingConfig,
}


# --------------------------------------------------------------------------
# Fingerprint
# --------------------------------------------------------------------------

_FINGERPRINT_VERSION = 1


def _source_settings(source: SourceConfig) -> dict[str, Any]:
    """The source's settings that decide what is fetched (see Key.fingerprint)."""
    declared = {key.name: key for key in keys_of(type(source))}
    settings: dict[str, Any] = {}
    for spec in dataclasses.fields(source):
        name = spec.name
        key = declared.get(name)  # None: the type
        value = getattr(source, name)
        if key is not None and (
            key.fingerprint == "never"
            or (key.fingerprint == "unless-default" and value == key.default)
        ):
            continue
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

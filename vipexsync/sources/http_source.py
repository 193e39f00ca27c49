"""HTTP source: records from a JSON endpoint (GET), optionally paged.

Config keys (``[jobs.source]`` with ``type = "http"``):

``url``
    The endpoint (https://...). Put credentials in the keys below, not in it.
``key``
    The field holding the CRM's stable record id (a flattened name such as
    ``"id"`` or ``"crm.id"``).
``records_path`` (default ``""``)
    Dotted path to the list of records in the JSON answer, e.g. ``"data.items"``;
    ``""`` means the answer itself is the list.
``paging`` (default ``"none"``)
    ``"none"``: one request. ``"offset"``: sends ``offset_param`` (default
    ``"offset"``) and ``limit_param`` (default ``"limit"``) with ``page_size``
    (default 100); stops on a page shorter than ``page_size``. ``"cursor"``:
    sends the cursor from the previous answer as ``cursor_param`` (default
    ``"cursor"``), read at ``next_cursor_path`` (default ``"next"``); stops
    when it is missing, null or "".
``bearer_token`` / ``bearer_token_file``
    Sent as ``Authorization: Bearer ...``.
``username`` + ``password`` / ``password_file``
    HTTP basic auth (used when no bearer token is set).
``timeout_seconds`` (default 30)
    Per request.
``max_attempts`` (default 4) and ``retry_backoff_seconds`` (default 1)
    Connection failures, timeouts, 429 and 5xx answers are tried again, up to
    ``max_attempts`` in all, waiting ``retry_backoff_seconds`` and then twice
    as long each time (at most 30 s); other non-200 answers fail at once.
``verify_tls`` (default true) and ``ca_bundle``
    Check the server's certificate, against the system's trust store or the
    PEM file ``ca_bundle`` names (a private CA).

Every record must be a JSON object. Values become strings: ``true``/``false``,
null as "", numbers as written; a list of scalars is joined with ", "; nested
objects are flattened with dotted names (``"address.city"``), and lists that
hold objects are indexed (``"phones.0.number"``). Any failed page fails the
whole read; paging stops with an error after 100000 pages or when a cursor
repeats.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import requests
import tenacity

from vipexsync.config import HttpSourceConfig
from vipexsync.errors import SourceError
from vipexsync.sources.base import SourceRecord, clean_value

MAX_PAGES = 100_000
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_SECRET_PARAM_WORDS = ("key", "token", "secret", "password", "passwd", "auth", "sig")
_MISSING = object()


class _RetryableFailure(Exception):
    """One attempt failed in a way another attempt may cure."""


def _safe_url(url: str) -> str:
    """The URL without userinfo, and with secret-looking query values masked."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "(unparseable URL)"
    query = [
        (name, "***" if any(w in name.lower() for w in _SECRET_PARAM_WORDS) else value)
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, urllib.parse.urlencode(query, safe="*"), "")
    )


def resolve_path(document: Any, path: str) -> Any:
    """Follow a dotted path through objects (and list indexes); _MISSING if absent."""
    node = document
    if not path:
        return node
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def scalar_text(value: object) -> str:
    """A JSON scalar as text: true/false, null as "", integral numbers without ".0"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def flatten(record: Mapping[str, Any]) -> dict[str, str]:
    """A JSON object as flat str fields (dotted names for nesting)."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for name, inner in value.items():
                walk(f"{prefix}.{name}" if prefix else str(name), inner)
        elif isinstance(value, list):
            if all(not isinstance(v, Mapping | list) for v in value):
                out[prefix] = ", ".join(
                    t for t in (clean_value(scalar_text(v)) for v in value) if t
                )
            else:
                for index, inner in enumerate(value):
                    walk(f"{prefix}.{index}", inner)
        else:
            out[prefix] = clean_value(scalar_text(value))

    walk("", record)
    return out


class HttpSource:
    """Streams records from a (paged) JSON endpoint."""

    def __init__(self, cfg: HttpSourceConfig) -> None:
        self._cfg = cfg
        self._attempts = max(1, cfg.max_attempts)
        self._backoff = cfg.retry_backoff_seconds
        self._verify: bool | str = (
            str(cfg.ca_bundle) if cfg.verify_tls and cfg.ca_bundle is not None else cfg.verify_tls
        )
        self._safe_url = _safe_url(cfg.url)
        self.description = f"http endpoint {self._safe_url}"

    # -- secrets never leave this object ---------------------------------
    def _secrets(self) -> list[str]:
        cfg = self._cfg
        found = [s.value for s in (cfg.bearer_token, cfg.password) if s is not None and s.value]
        try:
            parts = urllib.parse.urlsplit(cfg.url)
            found += [parts.password] if parts.password else []
            found += [
                v
                for n, v in urllib.parse.parse_qsl(parts.query)
                if v and any(w in n.lower() for w in _SECRET_PARAM_WORDS)
            ]
        except ValueError:
            pass
        return sorted(set(found), key=len, reverse=True)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text

    def _error(self, page: int, detail: str, advice: str) -> SourceError:
        return SourceError(
            self._scrub(
                f"{self.description}: page {page}: {detail}; {advice}. Nothing is deleted "
                "in a run whose source read failed"
            )
        )

    # -- fetching ---------------------------------------------------------
    def _session(self) -> requests.Session:
        cfg = self._cfg
        session = requests.Session()
        session.headers["Accept"] = "application/json"
        # Credentials go out as UTF-8 bytes: as str, requests/http.client encode
        # them as latin-1 and crash on characters such as "ű".
        if cfg.bearer_token is not None:
            session.headers["Authorization"] = b"Bearer " + cfg.bearer_token.value.encode("utf-8")
        elif cfg.username is not None:
            password = cfg.password.value if cfg.password is not None else ""
            session.auth = (cfg.username.encode("utf-8"), password.encode("utf-8"))  # type: ignore[assignment]
        return session

    def _get_once(
        self, session: requests.Session, params: Mapping[str, str], page: int
    ) -> requests.Response:
        cfg = self._cfg
        try:
            response = session.get(
                cfg.url, params=dict(params), timeout=cfg.timeout_seconds, verify=self._verify
            )
        except requests.exceptions.SSLError:
            raise self._error(
                page,
                "the TLS handshake or certificate check failed",
                "check the endpoint's certificate (for a private CA, name its PEM file in "
                "the source's `ca_bundle`); `verify_tls = false` only as a last resort",
            ) from None
        except requests.Timeout:
            raise _RetryableFailure(f"no answer within {cfg.timeout_seconds:g} s") from None
        except requests.ConnectionError as exc:
            raise _RetryableFailure(f"connection failed ({type(exc).__name__})") from None
        except requests.RequestException as exc:
            raise self._error(
                page, f"the request failed ({type(exc).__name__})", "check the source's `url`"
            ) from None
        if response.status_code in _RETRY_STATUSES:
            raise _RetryableFailure(f"HTTP {response.status_code}")
        return response

    def _fetch(self, session: requests.Session, params: Mapping[str, str], page: int) -> Any:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._attempts),
            wait=tenacity.wait_exponential(multiplier=self._backoff, max=30),
            retry=tenacity.retry_if_exception_type(_RetryableFailure),
            reraise=True,
        )
        try:
            response = retrying(self._get_once, session, params, page)
        except _RetryableFailure as exc:
            raise self._error(
                page,
                f"{exc} (after {self._attempts} attempts)",
                "check that the endpoint is up and the source's `url` and `timeout_seconds`",
            ) from None
        status = response.status_code
        if status in (401, 403):
            raise self._error(
                page,
                f"HTTP {status}: the credentials were refused",
                "check the source's bearer_token or username/password",
            )
        if status != 200:
            raise self._error(page, f"HTTP {status}", "check the source's `url` and the endpoint")
        try:
            return response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "unknown content type")
            raise self._error(
                page, f"the answer is not JSON ({kind})", "check the source's `url`"
            ) from None

    # -- paging -----------------------------------------------------------
    def _records_of(self, answer: Any, page: int) -> list[Any]:
        path = self._cfg.records_path
        records = resolve_path(answer, path)
        if not isinstance(records, list):
            where = f"records_path {path!r}" if path else 'the answer itself (records_path "")'
            found = "nothing" if records is _MISSING else f"a JSON {type(records).__name__}"
            raise self._error(
                page,
                f"{where} is {found}, not a list",
                "set the source's `records_path` to the dotted path of the record list",
            )
        return records

    def _page_records(self, items: list[Any], page: int) -> Iterator[SourceRecord]:
        records: list[SourceRecord] = []
        for index, item in enumerate(items, start=1):
            if not isinstance(item, Mapping):
                raise self._error(
                    page,
                    f"item {index} is a JSON {type(item).__name__}, not an object",
                    "check the source's `records_path`",
                )
            fields = flatten(item)
            records.append(
                SourceRecord(
                    key=fields.get(self._cfg.key, ""),
                    fields=fields,
                    locator=f"page {page} item {index}",
                )
            )
        return iter(records)

    def read(self) -> Iterator[SourceRecord]:
        cfg = self._cfg
        with self._session() as session:
            page = 0
            offset = 0
            cursor: str | None = None
            seen_cursors: set[str] = set()
            while True:
                page += 1
                if page > MAX_PAGES:
                    raise self._error(
                        page,
                        f"more than {MAX_PAGES} pages",
                        "the endpoint seems to page endlessly; check `paging` and its params",
                    )
                params: dict[str, str] = {}
                if cfg.paging == "offset":
                    params = {cfg.offset_param: str(offset), cfg.limit_param: str(cfg.page_size)}
                elif cfg.paging == "cursor" and cursor is not None:
                    params = {cfg.cursor_param: cursor}
                answer = self._fetch(session, params, page)
                items = self._records_of(answer, page)
                yield from self._page_records(items, page)
                if cfg.paging == "offset":
                    if len(items) < cfg.page_size:
                        return
                    offset += len(items)
                elif cfg.paging == "cursor":
                    following = resolve_path(answer, cfg.next_cursor_path)
                    if following is _MISSING or following is None or following == "":
                        return
                    if isinstance(following, Mapping | list):
                        raise self._error(
                            page,
                            f"next_cursor_path {cfg.next_cursor_path!r} is not a scalar",
                            "set the source's `next_cursor_path` to the next-cursor value",
                        )
                    cursor = scalar_text(following)
                    if cursor in seen_cursors:
                        raise self._error(
                            page,
                            f"the endpoint returned cursor {cursor!r} a second time",
                            "the paging would never end; check the endpoint",
                        )
                    seen_cursors.add(cursor)
                else:
                    return

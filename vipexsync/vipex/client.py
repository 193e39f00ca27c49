"""The typed VIPeX API client: one method per documented action.

Layers, from the wire up:

* ``_send`` puts one HTTP request on the wire in the chosen body encoding;
  requests' exceptions are mapped to :class:`TransportError` right there, once.
* :mod:`vipexsync.vipex.parse` turns status + body into the ``onvipex_result``
  object or the matching error (pure).
* ``_with_retries`` is the only retry layer (tenacity driven by the pure
  :class:`RetryPolicy`); urllib3's own retries are switched off.
* the action methods build parameters and parse answers into frozen models.

The password lives only in the session's auth object: it is never part of a
URL, a log line, an exception message or a repr.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import logging
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Any, BinaryIO, Literal, Protocol, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
import tenacity
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from vipexsync.config import Secret, VipexConfig
from vipexsync.errors import (
    ApiError,
    ApiResultError,
    ConfigError,
    TransportError,
)
from vipexsync.vipex import parse
from vipexsync.vipex.address import build_api_url
from vipexsync.vipex.listing import (
    assemble_listing,
    assemble_rows,
    effective_page_size,
    page_offsets,
)
from vipexsync.vipex.models import (
    CallForward,
    CallForwardList,
    CustomField,
    CustomFieldValue,
    ExtenCurrentCalls,
    ForwardType,
    ListMetadata,
    OperatorStatus,
    OperatorStatusHistory,
    PhonebookEntry,
    PhonebookListing,
    PhonebookPage,
    PhonebookScan,
    Recording,
    RowT,
    VipexUser,
)
from vipexsync.vipex.retry import RetryPolicy, has_side_effects
from vipexsync.wire import API_VERSION, MAX_QUERYABLE_ROWS, format_local

log = logging.getLogger("vipexsync.vipex")

Encoding = Literal["form", "json", "multipart", "get"]
ENCODINGS: tuple[Encoding, ...] = ("form", "json", "multipart", "get")
_CHUNK = 64 * 1024
_T = TypeVar("_T")


class ApiObserver(Protocol):
    """Hook for metrics: told about every HTTP attempt and every retry."""

    def request_finished(self, action: str, outcome: str, seconds: float) -> None:
        """``outcome`` is ok, api_error, http_error or transport_error."""

    def retried(self, action: str, attempt: int) -> None:
        """``attempt`` is the number of the attempt about to be made (2 for the first retry)."""


def _flat_value(value: object) -> str:
    """A parameter as a form/query/multipart value: arrays and objects as JSON strings."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _never_connected(exc: BaseException) -> bool:
    """Whether a requests ConnectionError happened before any byte was sent.

    urllib3 wraps the cause in MaxRetryError.reason; a NewConnectionError
    (connection refused, DNS failure) means the request never left.
    """
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, urllib3.exceptions.NewConnectionError):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
        stack.append(current.__cause__)
        stack.append(current.__context__)
    return False


def _short_reason(exc: BaseException) -> str:
    """The innermost cause's text: no request URL (which could hold GET parameters)."""
    current: BaseException = exc
    for _ in range(6):
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in current.args if isinstance(a, BaseException)), None)
        if inner is None:
            break
        current = inner
    text = str(current)
    # urllib3 prefixes "HTTPConnection(host=..., port=...): "; keep what follows.
    if "): " in text:
        text = text.split("): ", 1)[1]
    return text[:200] or type(current).__name__


def map_requests_error(
    action: str, exc: requests.RequestException, where: str, timeout: float
) -> TransportError:
    """The one place where requests' exceptions become vipexsync's."""
    if isinstance(exc, requests.ConnectTimeout):
        return TransportError(
            action, f"connecting to {where} timed out after {timeout:g} s", sent=False
        )
    if isinstance(exc, requests.ReadTimeout):
        return TransportError(
            action,
            f"{where} sent no answer within {timeout:g} s (the request may have been carried out)",
            sent=True,
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return TransportError(
            action,
            f"the TLS handshake with {where} failed ({_short_reason(exc)}); "
            "check [vipex] verify_tls / ca_bundle",
            sent=False,
        )
    if isinstance(exc, requests.ConnectionError):
        if _never_connected(exc):
            return TransportError(
                action, f"could not connect to {where}: {_short_reason(exc)}", sent=False
            )
        return TransportError(
            action, f"the connection to {where} broke: {_short_reason(exc)}", sent=True
        )
    return TransportError(action, f"the request to {where} failed: {type(exc).__name__}", sent=True)


def _outcome(error: BaseException) -> str:
    if isinstance(error, ApiResultError):
        return "api_error"
    if isinstance(error, TransportError):
        return "transport_error"
    if isinstance(error, ApiError):
        return "http_error"
    return "transport_error"


def _attachment_name(header: str | None) -> str | None:
    """The file name from a Content-Disposition header, reduced to a bare name."""
    if not header:
        return None
    message = Message()
    message["Content-Disposition"] = header
    name = message.get_filename()
    if not name:
        return None
    bare = PurePosixPath(name.replace("\\", "/")).name
    return bare if bare not in ("", ".", "..") else None


class VipexClient:
    """A thread-safe client for every documented VIPeX action."""

    def __init__(
        self,
        url: str,
        username: str,
        password: Secret | str,
        *,
        timeout: float = 15.0,
        concurrency: int = 4,
        verify_tls: bool | str = True,
        retry: RetryPolicy | None = None,
        encoding: Encoding = "form",
        observer: ApiObserver | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if encoding not in ENCODINGS:
            raise ConfigError(f"unknown VIPeX body encoding {encoding!r}; use one of {ENCODINGS}")
        if concurrency < 1:
            raise ConfigError("[vipex] concurrency must be at least 1")
        self._api_url = build_api_url(url)
        parts = urlsplit(self._api_url)
        # What log lines and messages show: scheme, host and path, never a query.
        self._where = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        self._username = username
        secret = password if isinstance(password, Secret) else Secret(password)
        self._timeout = timeout
        self._concurrency = concurrency
        self._retry = retry or RetryPolicy()
        self._encoding: Encoding = encoding
        self._observer = observer
        self._sleep = sleep
        self._jitter = random.Random()  # noqa: S311 - jitter, not security
        self._count_lock = threading.Lock()
        self._request_count = 0
        # `concurrency` is a cap for the whole process: every job, the listing's
        # page workers and every writer share this client, and no more than
        # `concurrency` requests are ever in flight, however many jobs run at once.
        self._slots = threading.BoundedSemaphore(concurrency)
        # One shared Session for all threads: its pooled adapter is what bounds
        # and reuses connections across the listing's worker threads (a Session
        # per thread would open a pool per thread and defeat `concurrency`).
        # Nothing on it is mutated after this constructor, and cookies are
        # refused outright, so concurrent requests share no changing state.
        session = requests.Session()
        # UTF-8 bytes: requests would encode str credentials as latin-1 and crash
        # on a password like "Árvíztűrő" (ű is not latin-1); RFC 7617 says UTF-8.
        session.auth = requests.auth.HTTPBasicAuth(
            username.encode("utf-8"), secret.value.encode("utf-8")
        )
        # requests re-reads the proxy and CA-bundle variables of the environment
        # on every request (~0.2 ms of CPU under the GIL each, shared by all
        # writer threads); read them once, for the one URL this client calls.
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(self._api_url))
        if verify_tls is True:
            verify_tls = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            )
        session.verify = verify_tls
        session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        session.headers["User-Agent"] = "vipexsync"
        # pool_block: with the slots above the pool never runs short, but if it
        # did, waiting for a connection beats opening one past the cap.
        adapter = HTTPAdapter(
            pool_connections=concurrency,
            pool_maxsize=concurrency,
            max_retries=0,
            pool_block=True,
        )
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        self._session = session
        self._adapter = adapter
        # The form POST every action sends by default, prepared once: requests
        # re-merges the session's headers, auth, cookies and hooks and re-parses
        # the URL on every call (~40 % of a write's CPU in the profile, see
        # bench/RESULTS.md). Each call copies these headers and adds its body;
        # the bytes on the wire are the ones session.request would send
        # (tests/integration/test_client_actions.py compares them).
        template = session.prepare_request(
            requests.Request("POST", self._api_url, data={"action": "-"})
        )
        del template.headers["Content-Length"]
        self._form_url: str = template.url or self._api_url
        self._form_headers = template.headers
        # What session.request would merge in (trust_env is off): its own settings.
        self._verify: bool | str = verify_tls
        self._proxies = dict(session.proxies)

    @classmethod
    def from_config(cls, cfg: VipexConfig, observer: ApiObserver | None = None) -> VipexClient:
        verify: bool | str = str(cfg.ca_bundle) if cfg.ca_bundle is not None else cfg.verify_tls
        return cls(
            cfg.url,
            cfg.username,
            cfg.password,
            timeout=cfg.timeout_seconds,
            concurrency=cfg.concurrency,
            verify_tls=verify,
            retry=RetryPolicy(
                deadline_seconds=cfg.retry_deadline_seconds,
                max_retry_after=cfg.max_retry_after_seconds,
            ),
            observer=observer,
        )

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> VipexClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VipexClient(url={self._where!r}, username={self._username!r})"

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far, retries included."""
        with self._count_lock:
            return self._request_count

    @property
    def concurrency(self) -> int:
        return self._concurrency

    # ------------------------------------------------------------------ transport

    def _send(
        self, action: str, params: Mapping[str, object], *, stream: bool
    ) -> requests.Response:
        """One HTTP request; requests' exceptions leave as TransportError."""
        payload: dict[str, object] = {"action": action, "version": API_VERSION, "format": "json"}
        payload.update((k, v) for k, v in params.items() if v is not None)
        flat = {key: _flat_value(value) for key, value in payload.items()}
        with self._count_lock:
            self._request_count += 1
        log.debug("VIPeX %s: %s %s", action, self._encoding, self._where)
        encoding = self._encoding
        try:
            if encoding == "form" and not stream:
                return self._post_form(flat)
            return self._session.request(
                "GET" if encoding == "get" else "POST",
                self._api_url,
                params=flat if encoding == "get" else None,
                data=flat if encoding == "form" else None,
                json=payload if encoding == "json" else None,
                files={key: (None, value) for key, value in flat.items()}
                if encoding == "multipart"
                else None,
                timeout=(self._timeout, self._timeout),
                stream=stream,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise map_requests_error(action, exc, self._where, self._timeout) from exc

    def prepare_form(self, flat: Mapping[str, str]) -> requests.PreparedRequest:
        """The form POST of ``flat``, as ``session.request(..., data=flat)`` prepares it."""
        body = urlencode(flat)
        prepared = requests.PreparedRequest()
        prepared.method = "POST"
        prepared.url = self._form_url
        prepared.headers = self._form_headers.copy()
        prepared.headers["Content-Length"] = str(len(body))
        prepared.body = body
        return prepared

    def _post_form(self, flat: Mapping[str, str]) -> requests.Response:
        """Send :meth:`prepare_form` through the session's adapter (its pool, TLS
        and timeouts) and read the body, as ``session.request`` would. No
        redirect is followed, no hook is set and cookies are refused, so
        nothing of the session's ``send`` is skipped that could apply."""
        response = self._adapter.send(
            self.prepare_form(flat),
            stream=False,
            timeout=(self._timeout, self._timeout),
            verify=self._verify,
            cert=None,
            proxies=self._proxies,
        )
        response.content  # noqa: B018 - read here, so a broken body maps like any failure
        return response

    def _observe(self, action: str, started: float, error: BaseException | None) -> None:
        seconds = time.monotonic() - started
        outcome = "ok" if error is None else _outcome(error)
        log.debug("VIPeX %s: %s in %.3f s", action, outcome, seconds)
        if self._observer is not None:
            self._observer.request_finished(action, outcome, seconds)

    def _observed(self, action: str, attempt: Callable[[], _T]) -> _T:
        """Run one HTTP attempt in one of the client's slots, telling the log and
        the observer its outcome and time (the time waiting for a slot excluded)."""
        with self._slots:
            started = time.monotonic()
            try:
                result = attempt()
            except Exception as error:
                self._observe(action, started, error)
                raise
        self._observe(action, started, None)
        return result

    def _attempt(self, action: str, params: Mapping[str, object]) -> dict[str, Any]:
        with self._send(action, params, stream=False) as response:
            return parse.interpret_answer(
                action,
                response.status_code,
                response.headers,
                response.content,
                datetime.now(UTC),
            )

    def _with_retries(self, action: str, attempt: Callable[[], _T]) -> _T:
        """Run ``attempt`` (observed) under the retry policy; the last error is raised as is."""
        policy = self._retry
        side_effects = has_side_effects(action)

        def should_retry(error: BaseException) -> bool:
            return policy.is_retryable(error, side_effects=side_effects)

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome is not None else None
            if error is None:
                return 0.0
            return policy.wait_seconds(error, state.attempt_number, self._jitter.random())

        def stop(state: tenacity.RetryCallState) -> bool:
            # Real time already includes real sleeps; with an injected sleep that
            # does not block, the time it was asked to wait still counts.
            elapsed = max(state.seconds_since_start or 0.0, state.idle_for)
            return policy.should_stop(state.attempt_number, elapsed, state.upcoming_sleep)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            log.warning(
                "VIPeX %s failed (attempt %d of at most %d); retrying in %.2f s: %s",
                action,
                state.attempt_number,
                policy.max_attempts,
                state.upcoming_sleep,
                error,
            )
            if self._observer is not None:
                self._observer.retried(action, state.attempt_number + 1)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(should_retry),
            wait=wait,
            stop=stop,
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(lambda: self._observed(action, attempt))

    # ------------------------------------------------------------------ raw

    def call(self, action: str, params: Mapping[str, object]) -> dict[str, Any]:
        """Any action by name; the ``onvipex_result`` object of a ``result: 1`` answer."""
        return self._with_retries(action, lambda: self._attempt(action, params))

    # ------------------------------------------------------------------ calls

    def dial_phonenumber(self, vipex_id: str, exten: str, phonenumber: str) -> int:
        """Ring ``exten``, then dial ``phonenumber``; the call's id. Never sent twice."""
        action = "dial_phonenumber"
        result = self.call(
            action, {"vipex_id": vipex_id, "exten": exten, "phonenumber": phonenumber}
        )
        return parse.parse_call_id(action, result)

    def outbound_ivr(
        self, vipex_id: str, phonenumber: str, exten: str, digits: str | None = None
    ) -> int:
        action = "outbound_ivr"
        params: dict[str, object] = {
            "vipex_id": vipex_id,
            "phonenumber": phonenumber,
            "exten": exten,
        }
        if digits is not None:
            params["digits"] = digits
        return parse.parse_call_id(action, self.call(action, params))

    def get_extens_current_calls(self, vipex_id: str, exten: str) -> ExtenCurrentCalls:
        action = "get_extens_current_calls"
        result = self.call(action, {"vipex_id": vipex_id, "exten": exten})
        return parse.parse_current_calls(action, result)

    def get_record(self, rec: str, dest: Path | BinaryIO) -> Recording:
        """Download a recording into ``dest`` (a path, replaced atomically, or a stream).

        Each attempt downloads into a fresh temporary file, so a retry after a
        broken transfer never leaves half a file behind.
        """
        action = "get_record"
        spool, filename, content_type, size, temp_path = self._with_retries(
            action, lambda: self._download(action, rec, dest)
        )
        try:
            if isinstance(dest, Path):
                spool.close()
                if temp_path is not None:
                    temp_path.replace(dest)
                    temp_path = None
            else:
                spool.seek(0)
                shutil.copyfileobj(spool, dest)
        finally:
            spool.close()
            if temp_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    temp_path.unlink()
        return Recording(filename=filename, content_type=content_type, size=size)

    def _download(
        self, action: str, rec: str, dest: Path | BinaryIO
    ) -> tuple[IO[bytes], str | None, str | None, int, Path | None]:
        with self._send(action, {"rec": rec}, stream=True) as response:
            parse.check_status(action, response.status_code, response.headers, datetime.now(UTC))
            content_type = response.headers.get("Content-Type")
            kind = (content_type or "").lower()
            if "json" in kind or "html" in kind:
                body = self._read_all(action, response)
                parse.decode_envelope(action, content_type, body)
                raise TransportError(
                    action, "expected the recording's audio but got a JSON answer", sent=True
                )
            temp_path: Path | None = None
            spool: IO[bytes]
            if isinstance(dest, Path):
                handle, name = tempfile.mkstemp(
                    dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"
                )
                temp_path = Path(name)
                spool = os.fdopen(handle, "w+b")
            else:
                spool = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller
            size = 0
            try:
                for chunk in response.iter_content(_CHUNK):
                    spool.write(chunk)
                    size += len(chunk)
                spool.flush()
                if temp_path is not None:
                    os.fsync(spool.fileno())
            except BaseException as error:
                spool.close()
                if temp_path is not None:
                    temp_path.unlink(missing_ok=True)
                if isinstance(error, requests.RequestException):
                    raise map_requests_error(action, error, self._where, self._timeout) from error
                raise
            filename = _attachment_name(response.headers.get("Content-Disposition"))
            return spool, filename, content_type, size, temp_path

    def _read_all(self, action: str, response: requests.Response) -> bytes:
        try:
            return response.content
        except requests.RequestException as exc:
            raise map_requests_error(action, exc, self._where, self._timeout) from exc

    # ------------------------------------------------------------------ users and operators

    def get_vipex_user(self, vipex_id: str, user_id: int) -> VipexUser:
        action = "get_vipex_user"
        return parse.parse_user(action, self.call(action, {"vipex_id": vipex_id, "id": user_id}))

    def get_vipex_user_list(self, vipex_id: str) -> tuple[VipexUser, ...]:
        action = "get_vipex_user_list"
        return parse.parse_user_list(action, self.call(action, {"vipex_id": vipex_id}))

    def get_operator_status_list(self, vipex_id: str) -> tuple[OperatorStatus, ...]:
        action = "get_operator_status_list"
        return parse.parse_status_list(action, self.call(action, {"vipex_id": vipex_id}))

    def get_operator_status_history(
        self, vipex_id: str, user_id: int, date_from: datetime, date_to: datetime
    ) -> OperatorStatusHistory:
        """Status periods between two moments (sent as Budapest local times)."""
        action = "get_operator_status_history"
        params = {
            "vipex_id": vipex_id,
            "id": user_id,
            "date_from": format_local(date_from),
            "date_to": format_local(date_to),
        }
        return parse.parse_status_history(action, self.call(action, params))

    def set_operator_status(self, vipex_id: str, user_id: int, status_id: int) -> int:
        """Switch an operator's status; the id actually set. Never sent twice."""
        action = "set_operator_status"
        params = {"vipex_id": vipex_id, "user_id": user_id, "status_id": status_id}
        return parse.parse_new_status_id(action, self.call(action, params))

    # ------------------------------------------------------------------ call forwards

    def set_call_forward(self, vipex_id: str, number: str, forward: CallForward) -> None:
        params: dict[str, object] = {
            "vipex_id": vipex_id,
            "number": number,
            "forward_type": forward.forward_type,
            "destination_type": forward.destination_type,
            "destination_number": forward.destination_number,
            "noanswer_timeout": forward.noanswer_timeout,
            "call_type": forward.call_type,
        }
        self.call("set_call_forward", params)

    def get_call_forward_list(self, vipex_id: str, number: str) -> CallForwardList:
        action = "get_call_forward_list"
        result = self.call(action, {"vipex_id": vipex_id, "number": number})
        return parse.parse_forward_list(action, result)

    def del_call_forward(self, vipex_id: str, number: str, forward_type: ForwardType) -> None:
        self.call(
            "del_call_forward",
            {"vipex_id": vipex_id, "number": number, "forward_type": forward_type},
        )

    # ------------------------------------------------------------------ phonebook

    def set_phonebook_entry(
        self,
        vipex_id: str,
        phonenumber: str,
        *,
        name: str,
        tags: Sequence[str],
        comment: str,
        custom_field_options: Sequence[CustomFieldValue],
    ) -> None:
        """Create or overwrite one entry; every managed field is always sent.

        Omission is never relied on (the vendor does not say whether an omitted
        field is kept or cleared), so ``""`` clears a field.
        """
        clean_tags = [tag.strip() for tag in tags if tag.strip()]
        for tag in clean_tags:
            if "," in tag:
                raise ValueError(
                    f"tag {tag!r} for {phonenumber} contains a comma, which VIPeX would split "
                    "into two tags; the mapping must not produce it"
                )
        params: dict[str, object] = {
            "vipex_id": vipex_id,
            "phonenumber": phonenumber,
            "name": name,
            "tags": ",".join(clean_tags),
            "comment": comment,
            "custom_field_options": [
                {"field_id": value.field_id, "field_value": value.field_value}
                for value in custom_field_options
            ],
        }
        self.call("set_phonebook_entry", params)

    def get_phonebook_entry(self, vipex_id: str, phonenumber: str) -> PhonebookEntry:
        action = "get_phonebook_entry"
        result = self.call(action, {"vipex_id": vipex_id, "phonenumber": phonenumber})
        return parse.parse_phonebook_entry(action, result)

    def get_phonebook_page(
        self, vipex_id: str, offset: int, limit: int = MAX_QUERYABLE_ROWS
    ) -> PhonebookPage:
        action = "get_phonebook_list"
        result = self.call(action, {"vipex_id": vipex_id, "offset": offset, "limit": limit})
        return parse.parse_phonebook_page(action, result)

    def get_phonebook_list(
        self,
        vipex_id: str,
        *,
        progress: Callable[[int, int], None] | None = None,
        concurrent: bool = True,
    ) -> PhonebookListing:
        """The whole phonebook, with a verdict on whether it can be trusted.

        The first page tells ``full_count``; the rest are fetched concurrently
        (at most ``concurrency`` at once). Instability is reported in the
        listing, never raised; a page that still fails after retries raises.
        """
        pages: list[tuple[int, PhonebookPage]] = []
        page_size = self._read_pages(
            vipex_id,
            lambda offset, page: pages.append((offset, page)),
            progress=progress,
            concurrent=concurrent,
        )
        listing = assemble_listing(pages, page_size)
        self._warn_unstable(vipex_id, listing.problems)
        return listing

    def scan_phonebook(
        self,
        vipex_id: str,
        convert: Callable[[PhonebookEntry], RowT],
        *,
        progress: Callable[[int, int], None] | None = None,
        concurrent: bool = True,
    ) -> PhonebookScan[RowT]:
        """:meth:`get_phonebook_list`, keeping only ``convert(row)`` of each row.

        Each page is converted (on this thread) as soon as it arrives and its
        raw rows dropped, so a 100k phonebook is never held twice (raw and
        converted). The same pages, the same verdict.
        """
        pages: list[tuple[int, ListMetadata, list[str], list[RowT]]] = []

        def take(offset: int, page: PhonebookPage) -> None:
            numbers = [entry.phonenumber for entry in page.entries]
            pages.append((offset, page.metadata, numbers, [convert(e) for e in page.entries]))

        page_size = self._read_pages(vipex_id, take, progress=progress, concurrent=concurrent)
        rows, full_count, problems = assemble_rows(pages, page_size, number=str)
        self._warn_unstable(vipex_id, problems)
        return PhonebookScan(
            rows=rows,
            full_count=full_count,
            pages=len(pages),
            stable=not problems,
            problems=problems,
        )

    def _warn_unstable(self, vipex_id: str, problems: Sequence[str]) -> None:
        if problems:
            log.warning(
                "VIPeX phonebook listing of %s is not stable: %s", vipex_id, "; ".join(problems)
            )

    def _read_pages(
        self,
        vipex_id: str,
        take: Callable[[int, PhonebookPage], None],
        *,
        progress: Callable[[int, int], None] | None,
        concurrent: bool,
    ) -> int:
        """Read every page, handing each to ``take`` with its offset; returns the page size.

        ``take`` runs on this thread, in completion order; a page is not held
        here after ``take`` returned.
        """
        first = self.get_phonebook_page(vipex_id, 0, MAX_QUERYABLE_ROWS)
        page_size = effective_page_size(MAX_QUERYABLE_ROWS, first.metadata.max_queryable_rows)
        full_count = first.metadata.full_count
        rows = len(first.entries)
        take(0, first)
        del first
        if progress is not None:
            progress(rows, full_count)
        offsets = page_offsets(full_count, page_size)
        if concurrent and len(offsets) > 1 and self._concurrency > 1:
            executor = ThreadPoolExecutor(
                max_workers=min(self._concurrency, len(offsets)), thread_name_prefix="vipex-page"
            )
            try:
                futures = {
                    executor.submit(self.get_phonebook_page, vipex_id, offset, page_size): offset
                    for offset in offsets
                }
                for future in as_completed(futures):
                    page = future.result()
                    take(futures.pop(future), page)  # popped: the future holds the page
                    rows += len(page.entries)
                    del page
                    if progress is not None:
                        progress(rows, full_count)
            finally:
                executor.shutdown(wait=True, cancel_futures=True)
        else:
            for offset in offsets:
                page = self.get_phonebook_page(vipex_id, offset, page_size)
                take(offset, page)
                rows += len(page.entries)
                del page
                if progress is not None:
                    progress(rows, full_count)
        return page_size

    def del_phonebook_entry(self, vipex_id: str, phonenumber: str) -> bool:
        """Delete one entry; False if it was already gone (an idempotent delete).

        A refused delete is checked with get_phonebook_entry rather than by
        reading the free-form reason: if the entry cannot be found either, it is
        gone; if it is still there, the original refusal is raised.
        """
        try:
            self.call("del_phonebook_entry", {"vipex_id": vipex_id, "phonenumber": phonenumber})
        except ApiResultError as refusal:
            try:
                self.get_phonebook_entry(vipex_id, phonenumber)
            except ApiResultError:
                log.info("VIPeX entry %s in %s was already gone", phonenumber, vipex_id)
                return False
            except ApiError:
                raise refusal from None
            raise refusal from None
        return True

    def get_phonebook_custom_field_list(self, vipex_id: str) -> tuple[CustomField, ...]:
        action = "get_phonebook_custom_field_list"
        return parse.parse_custom_fields(action, self.call(action, {"vipex_id": vipex_id}))

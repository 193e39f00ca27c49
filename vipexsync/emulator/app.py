"""The emulator as a WSGI application (werkzeug).

Order of handling, per request:

1. Without ``rt=api`` in the query string the request reaches the "web UI":
   a small HTML page, status 200 (``rt`` in a body does not count).
2. Only GET and POST are served (else 405). Parameters come from the query
   string, merged with (and overridden by) a POST body in
   ``application/json`` (an object), ``application/x-www-form-urlencoded`` or
   ``multipart/form-data``. Any other Content-Type with a body is refused with
   ``result: 0`` (after authentication).
3. The request is counted under its ``action`` (``""`` when missing) — every
   request from here on, faulted, unauthorised or refused, is counted.
4. Faults (:mod:`vipexsync.emulator.faults`): latency, then 429 / 5xx / HTML
   maintenance page instead of an answer (state unchanged). These stand in
   for a proxy or load balancer, so they come before authentication.
5. HTTP Basic authentication: missing or wrong → 401 with
   ``WWW-Authenticate: Basic realm="VIPeX"``.
6. ``format`` (json/xml/php, else ``result: 0`` in JSON), ``version``
   (absent or ``1.0``), ``action`` (missing or unknown → ``result: 0``).
7. The action runs atomically under the state lock; a page-shift fault first
   inserts entries that sort before every other one. A hang fault runs the
   action first and then holds the answer back, so the client times out
   although the write happened.

429 answers carry ``Retry-After`` in seconds (a decimal fraction when
``retry_after_seconds`` is not whole, so tests can stay fast).
"""

from __future__ import annotations

import hmac
import json
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from vipexsync.emulator.actions import ACTIONS, ApiFailure, Params, get_record
from vipexsync.emulator.faults import FaultDecision, Faults
from vipexsync.emulator.formats import FORMATS, render
from vipexsync.emulator.state import EmulatorState, PhonebookRecord, StateData
from vipexsync.wire import API_VERSION

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["DEFAULT_CREDENTIALS", "EmulatorApp"]

DEFAULT_CREDENTIALS = {"api_user": "api_password"}

_WEB_UI = """<!DOCTYPE html>
<html lang="hu"><head><meta charset="utf-8"><title>VIPeX</title></head>
<body><h1>VIPeX</h1><p>Bejelentkezés szükséges.</p>
<p>Az API a <code>?rt=api</code> paraméterrel érhető el.</p></body></html>
"""

_MAINTENANCE = """<!DOCTYPE html>
<html lang="hu"><head><meta charset="utf-8"><title>Karbantartás</title></head>
<body><h1>Karbantartás</h1><p>A szolgáltatás átmenetileg nem elérhető.</p></body></html>
"""

_ERROR_PAGE = """<!DOCTYPE html>
<html><head><title>{status} {phrase}</title></head>
<body><h1>{status} {phrase}</h1><hr><p>nginx</p></body></html>
"""

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_PHONEBOOK_WRITES = frozenset({"set_phonebook_entry", "del_phonebook_entry"})


class _BadRequest(Exception):
    """The body could not be read as parameters; answered result 0 after auth."""


def _html(text: str, status: int) -> Response:
    return Response(text, status=status, content_type="text/html; charset=utf-8")


def _attachment(filename: str) -> str:
    """``attachment; filename="..."`` (plus RFC 5987 ``filename*`` for non-ASCII names)."""
    plain = filename.encode("ascii", "replace").decode("ascii").replace('"', "_").replace("\\", "_")
    value = f'attachment; filename="{plain}"'
    if plain != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def _retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class EmulatorApp:
    """The VIPeX API over an :class:`EmulatorState`, with switchable :class:`Faults`."""

    def __init__(
        self,
        state: EmulatorState,
        faults: Faults | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.state = state
        self.faults = faults if faults is not None else Faults()
        self._credentials = dict(DEFAULT_CREDENTIALS if credentials is None else credentials)
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._stopping = threading.Event()
        # (user, action, phonenumber) of every phonebook write that changed the
        # state, appended after the change listeners ran (see write_log()).
        self._writes: list[tuple[str, str, str]] = []
        # indices into _writes of the writes whose answer a hang fault held back
        self._held: set[int] = set()

    def __repr__(self) -> str:
        return f"EmulatorApp(users={sorted(self._credentials)!r})"

    # -- counters and shutdown -----------------------------------------------

    def request_counts(self) -> dict[str, int]:
        with self._counts_lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._counts_lock:
            self._counts.clear()

    def add_user(self, username: str, password: str) -> None:
        """Another API user (e.g. one per sync job, so tests can tell who wrote)."""
        self._credentials[username] = password

    def write_log(self) -> list[tuple[str, str, str]]:
        """Every phonebook write so far as (user, action, phonenumber), oldest first.

        An entry is appended once the write changed the state and the change
        listeners returned, before the answer is sent.
        """
        with self._counts_lock:
            return list(self._writes)

    def held_writes(self) -> frozenset[int]:
        """Indices into :meth:`write_log` of the writes whose answer a hang fault held back.

        Such a write changed the state at once, but its answer was sent only
        after ``Faults.hang_seconds``: a client whose timeout is shorter never
        learns that it landed.
        """
        with self._counts_lock:
            return frozenset(self._held)

    def release_waits(self) -> None:
        """End every latency/hang sleep now (used when the server stops)."""
        self._stopping.set()

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    # -- WSGI -------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        response = self._handle(Request(environ))
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        if request.args.get("rt") != "api":
            return _html(_WEB_UI, 200)
        if request.method not in ("GET", "POST"):
            response = _html(_ERROR_PAGE.format(status=405, phrase="Method Not Allowed"), 405)
            response.headers["Allow"] = "GET, POST"
            return response
        body_error: str | None = None
        try:
            values = self._params(request)
        except _BadRequest as exc:
            body_error = str(exc)
            values = {k: request.args[k] for k in request.args}
        params = Params(values)
        action = values.get("action")
        action_name = action if isinstance(action, str) else ""
        with self._counts_lock:
            self._counts[action_name] += 1

        decision = self.faults.decide(action_name)
        self._wait(decision.latency)
        faulted = self._fault_response(decision)
        if faulted is not None:
            return faulted
        if not self._authorised(request):
            response = _html(_ERROR_PAGE.format(status=401, phrase="Unauthorized"), 401)
            response.headers["WWW-Authenticate"] = 'Basic realm="VIPeX"'
            return response

        fmt = values.get("format", "json")
        if fmt not in FORMATS:
            return self._result0(f"Ismeretlen formátum: {fmt!r} (lehet: json, xml, php)", "json")
        assert isinstance(fmt, str)
        version = values.get("version", API_VERSION)
        if str(version) != API_VERSION:
            return self._result0(f"Nem támogatott verzió: {version!r} (csak 1.0)", fmt)
        if body_error is not None:
            return self._result0(body_error, fmt)
        if not action_name:
            return self._result0("Hiányzó paraméter: action", fmt)
        try:
            if self.faults.refuses(action_name, params.raw("phonenumber")):
                raise ApiFailure("A bejegyzést a rendszer elutasította (hibateszt)")
            response = self._run(action_name, params, decision, fmt)
        except ApiFailure as failure:
            response = self._result0(failure.reason, fmt)
        else:
            if action_name in _PHONEBOOK_WRITES:
                user = request.authorization.username if request.authorization else None
                with self._counts_lock:
                    if decision.hang > 0:
                        self._held.add(len(self._writes))
                    self._writes.append((user or "", action_name, str(params.raw("phonenumber"))))
        self._wait(decision.hang)
        return response

    def _run(self, action: str, params: Params, decision: FaultDecision, fmt: str) -> Response:
        if action == "get_record":
            with self.state.transaction() as data:
                answer = get_record(data, params)
            response = Response(answer.data, status=200, content_type=answer.content_type)
            response.headers["Content-Disposition"] = _attachment(answer.filename)
            return response
        handler = ACTIONS.get(action)
        if handler is None:
            raise ApiFailure(f"Ismeretlen action: {action!r}")
        cap = self.faults.max_queryable_rows
        if action == "get_phonebook_list" and cap > 0:
            params = Params({**params.values, "limit": min(params.integer("limit"), cap)})
        with self.state.transaction() as data:
            shifted = False
            if action == "get_phonebook_list" and decision.page_shift > 0:
                shifted = self._shift_page(data, params, decision.page_shift)
            if action == "get_phonebook_list":
                shifted = self._swap_during_listing(data, params) or shifted
            try:
                result, changed = handler(self.state, data, params)
            finally:
                if shifted:
                    self.state.changed()
            if changed:
                self.state.changed()
        metadata = result.get("metadata")
        if cap > 0 and isinstance(metadata, dict):
            metadata["max_queryable_rows"] = cap
        body, content_type = render({"result": 1, **result}, fmt)
        return Response(body, status=200, content_type=content_type)

    @staticmethod
    def _shift_page(data: StateData, params: Params, count: int) -> bool:
        """Insert ``count`` entries sorting before all others (only for offset > 0)."""
        sub = data.subscriptions.get(params.opt_str("vipex_id") or "")
        try:
            offset = params.integer("offset")
        except ApiFailure:
            return False
        if sub is None or offset <= 0:
            return False
        candidate = 10_000_000
        for _ in range(count):
            while str(candidate) in sub.phonebook:
                candidate += 1
            sub.phonebook[str(candidate)] = PhonebookRecord(name=f"Beszúrt {candidate}")
        return True

    def _swap_during_listing(self, data: StateData, params: Params) -> bool:
        """Fire ``faults.listing_swap`` at the first page past offset 0 (see Faults)."""
        sub = data.subscriptions.get(params.opt_str("vipex_id") or "")
        try:
            offset = params.integer("offset")
        except ApiFailure:
            return False
        if sub is None or offset <= 0 or self.faults.listing_swap is None:
            return False
        swap = self.faults.take_listing_swap()
        if swap is None:
            return False
        victim, added = swap
        sub.phonebook.pop(victim, None)
        sub.phonebook[added] = PhonebookRecord(name=f"Beszúrt {added}")
        return True

    def _result0(self, reason: str, fmt: str) -> Response:
        body, content_type = render({"result": 0, "reason": reason}, fmt)
        return Response(body, status=200, content_type=content_type)

    def _fault_response(self, decision: FaultDecision) -> Response | None:
        if decision.rate_limited:
            response = _html(_ERROR_PAGE.format(status=429, phrase="Too Many Requests"), 429)
            response.headers["Retry-After"] = _retry_after(self.faults.retry_after_seconds)
            return response
        if decision.error_status is not None:
            phrase = {500: "Internal Server Error", 502: "Bad Gateway"}.get(
                decision.error_status, "Service Unavailable"
            )
            return _html(
                _ERROR_PAGE.format(status=decision.error_status, phrase=phrase),
                decision.error_status,
            )
        if decision.html:
            return _html(_MAINTENANCE, 200)
        return None

    def _authorised(self, request: Request) -> bool:
        auth = request.authorization
        if auth is None or auth.type != "basic" or auth.username is None:
            return False
        expected = self._credentials.get(auth.username)
        if expected is None or auth.password is None:
            return False
        return hmac.compare_digest(auth.password.encode(), expected.encode())

    @staticmethod
    def _params(request: Request) -> dict[str, object]:
        values: dict[str, object] = {k: request.args[k] for k in request.args}
        if request.method != "POST":
            return values
        mimetype = request.mimetype
        if mimetype == "application/json":
            try:
                body = json.loads(request.get_data(as_text=True) or "{}")
            except ValueError:
                raise _BadRequest("Hibás JSON a kérés törzsében") from None
            if not isinstance(body, dict):
                raise _BadRequest("A JSON törzsnek objektumnak kell lennie")
            values.update({str(k): v for k, v in body.items()})
        elif mimetype in _FORM_TYPES:
            values.update({k: request.form[k] for k in request.form})
        elif request.get_data():
            raise _BadRequest(
                f"Nem támogatott Content-Type: {mimetype or '(nincs)'} "
                "(lehet: application/json, application/x-www-form-urlencoded, "
                "multipart/form-data)"
            )
        values["rt"] = request.args.get("rt")
        return values

"""CardDAV source: the cards of one address book on a CardDAV server.

Config keys (``[jobs.source]`` with ``type = "carddav"``):

``url``
    The address book collection itself (Nextcloud:
    ``https://HOST/remote.php/dav/addressbooks/users/NAME/contacts/``; Radicale:
    ``https://HOST/NAME/ADDRESSBOOK/``; Baïkal: ``https://HOST/dav.php/
    addressbooks/NAME/default/``; SOGo: ``https://HOST/SOGo/dav/NAME/Contacts/
    personal/``; iCloud: the address book URL its discovery gives). A URL that
    is not an address book (a principal, the home set) is refused by name.
``username`` + ``password_file`` (or ``$VIPEXSYNC_SOURCE_PASSWORD``)
    HTTP basic auth. Leave both out for a server without authentication.
``key`` (default ``"UID"``)
    The card property that holds the stable record id. A card without it is
    keyed by its resource's path on the server (``href:/...``), which the
    server keeps for the card's life.
``ca_bundle`` / ``verify_tls`` (default true)
    The CA that signed the server's certificate (a private CA), or no check.
``allow_http`` (default false), ``timeout_seconds`` (default 30)
``batch_size`` (default 100)
    Cards per addressbook-multiget request.
``sync_collection`` (default true)
    Use RFC 6578 sync-collection when the server advertises it: one REPORT
    lists every member with its etag (or, later in the same process, only
    what changed since the last read); otherwise a PROPFIND (Depth 1) lists
    the members. Cards are then fetched with addressbook-multiget (RFC 6352).

How a read works and what stops it:

* A PROPFIND (Depth 0) checks that ``url`` is an address book and which
  reports it offers. Redirects are refused (a PROPFIND must not become a GET),
  naming where the server points.
* The process keeps each address book's cards, etags and sync-token between
  reads, so a daemon tick fetches only the cards that changed. A full resync
  (and every new process) reads everything again. A sync-token the server no
  longer accepts (403/409 ``valid-sync-token``, 410) means a full read.
* Any failure raises :class:`~vipexsync.errors.SourceError`, so the run
  deletes nothing: an HTTP error, a 207 with an error status for a card, a
  card without data, XML that is malformed or cut short, a connection lost
  mid-answer. Connection failures, timeouts, 429 and 5xx are retried first.

Cards are parsed by :func:`vipexsync.sources.vcard.parse_vcards`, with the
vCard source's fields (``fn``, ``n``, ``org``, ``tel_voice``, ``tel1``...; see
:mod:`vipexsync.sources.vcard_source`) and mapping defaults. The text comes
decoded from the XML, so a ``CHARSET`` parameter applies only to
quoted-printable values (Radicale keeps ``CHARSET=windows-1250`` on values it
serves in UTF-8). Each card's locator is its path on the server.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import requests
import tenacity

from vipexsync.config import CarddavSourceConfig, redact_url_query
from vipexsync.errors import SourceError
from vipexsync.sources import carddav_xml as dav
from vipexsync.sources.base import SourceRecord
from vipexsync.sources.vcard import VcardSyntaxError, parse_vcards
from vipexsync.sources.vcard_source import card_record

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_BAD_TOKEN_STATUSES = frozenset({403, 409, 410})
MAX_SYNC_ROUNDS = 10_000  # truncated sync-collection answers followed, at most
#: The key rule named in reports for cards without the key property.
HREF_RULE = "the card's path on the server (card has no {key})"


class _RetryableFailure(Exception):
    """One attempt failed in a way another attempt may cure."""


class _InvalidSyncToken(Exception):
    """The server no longer accepts the sync-token we kept."""


# -- pure parts ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredCard:
    """One member of the address book as last fetched."""

    href: str  # as the server wrote it (sent back in multiget requests)
    etag: str  # "" when the server gave none
    data: str  # the vCard text


@dataclass(frozen=True, slots=True)
class BookState:
    """What a read learnt about an address book, for the next read in this process."""

    sync_token: str  # "" when the server does not do sync-collection
    cards: Mapping[str, StoredCard]  # by member path (see member_path)


def member_path(base_url: str, href: str) -> str:
    """An href (absolute URL, absolute path or relative) as a decoded path, for comparison."""
    path = urllib.parse.urlsplit(urllib.parse.urljoin(base_url, href)).path
    return urllib.parse.unquote(path)


def is_collection_path(collection: str, path: str) -> bool:
    """True for the collection itself (with or without its trailing slash)."""
    return path.rstrip("/") == collection.rstrip("/")


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """Cards kept from the previous read and members to fetch now."""

    kept: Mapping[str, StoredCard]
    fetch: tuple[tuple[str, str], ...]  # (path, href as the server wrote it), in path order


def _keep_or_fetch(
    previous: Mapping[str, StoredCard], members: Mapping[str, tuple[str, str]]
) -> tuple[dict[str, StoredCard], list[tuple[str, str]]]:
    """Keep a member's previous card when both etags are known and equal; else fetch it."""
    kept: dict[str, StoredCard] = {}
    fetch: list[tuple[str, str]] = []
    for path in sorted(members):
        href, etag = members[path]
        old = previous.get(path)
        if old is not None and etag and old.etag == etag:
            kept[path] = old
        else:
            fetch.append((path, href))
    return kept, fetch


def plan_from_listing(
    previous: Mapping[str, StoredCard], listing: Mapping[str, tuple[str, str]]
) -> FetchPlan:
    """A complete listing (path -> (href, etag)); members no longer listed are dropped."""
    kept, fetch = _keep_or_fetch(previous, listing)
    return FetchPlan(kept, tuple(fetch))


def plan_from_changes(
    previous: Mapping[str, StoredCard],
    changed: Mapping[str, tuple[str, str]],
    removed: frozenset[str],
) -> FetchPlan:
    """A sync-collection delta applied to the previous cards."""
    kept = {p: c for p, c in previous.items() if p not in removed and p not in changed}
    reported, fetch = _keep_or_fetch(previous, changed)
    kept.update(reported)
    return FetchPlan(kept, tuple(fetch))


# -- state kept between reads in this process -------------------------------------

_STATES: dict[tuple[str, str], BookState] = {}
_STATES_LOCK = threading.Lock()


def forget_state() -> None:
    """Drop every address book's kept cards (the next reads are full)."""
    with _STATES_LOCK:
        _STATES.clear()


# -- the source --------------------------------------------------------------------


class CarddavSource:
    """Streams the cards of one CardDAV address book."""

    def __init__(
        self,
        cfg: CarddavSourceConfig,
        *,
        full: bool = False,
        attempts: int = 3,
        backoff_seconds: float = 1.0,
    ) -> None:
        self._cfg = cfg
        self._full = full
        self._attempts = max(1, attempts)
        self._backoff = backoff_seconds
        self._url = cfg.url if cfg.url.endswith("/") else cfg.url + "/"
        self._collection = member_path(self._url, self._url)
        self.description = f"carddav address book {redact_url_query(self._url)}"
        self._state_key = (self._url, cfg.username or "")
        # What the last read cost: requests by kind, and cards downloaded.
        self.requests: Counter[str] = Counter()
        self.cards_fetched = 0

    # -- messages --------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        secret = self._cfg.password.value if self._cfg.password is not None else ""
        return text.replace(secret, "***") if secret else text

    def _error(self, detail: str, advice: str) -> SourceError:
        return SourceError(
            self._scrub(
                f"{self.description}: {detail}; {advice}. Nothing is deleted in a run whose "
                "source read failed"
            )
        )

    # -- HTTP ------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = requests.Session()
        session.headers["User-Agent"] = "vipexsync-carddav"
        if self._cfg.username is not None:
            password = self._cfg.password.value if self._cfg.password is not None else ""
            # As UTF-8 bytes: as str, requests encodes them as latin-1 and fails on "ű".
            session.auth = (self._cfg.username.encode("utf-8"), password.encode("utf-8"))  # type: ignore[assignment]
        return session

    def _verify(self) -> bool | str:
        if self._cfg.ca_bundle is not None:
            return str(self._cfg.ca_bundle)
        return self._cfg.verify_tls

    def _send_once(
        self, session: requests.Session, method: str, depth: str, body: bytes, what: str
    ) -> requests.Response:
        self.requests[what.split(" of ", 1)[0]] += 1
        try:
            response = session.request(
                method,
                self._url,
                data=body,
                headers={"Depth": depth, "Content-Type": 'application/xml; charset="utf-8"'},
                timeout=self._cfg.timeout_seconds,
                verify=self._verify(),
                allow_redirects=False,
            )
            # Read the whole body here, so that a connection lost mid-answer is
            # retried like any other connection failure.
            _ = response.content
        except requests.exceptions.SSLError:
            raise self._error(
                f"{what}: the TLS handshake or certificate check failed",
                "check the server's certificate; for a private CA set the source's "
                "`ca_bundle` (`verify_tls = false` only as a last resort)",
            ) from None
        except requests.Timeout:
            raise _RetryableFailure(
                f"no answer within {self._cfg.timeout_seconds:g} s to the {what}"
            ) from None
        except requests.ConnectionError as exc:
            raise _RetryableFailure(
                f"the {what} failed: connection lost or refused ({type(exc).__name__})"
            ) from None
        except requests.RequestException as exc:
            raise self._error(
                f"the {what} failed ({type(exc).__name__})", "check the source's `url`"
            ) from None
        if response.status_code in _RETRY_STATUSES:
            raise _RetryableFailure(f"the {what} was answered HTTP {response.status_code}")
        return response

    def _send(
        self, session: requests.Session, method: str, depth: str, body: bytes, what: str
    ) -> requests.Response:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._attempts),
            wait=tenacity.wait_exponential(multiplier=self._backoff, max=30),
            retry=tenacity.retry_if_exception_type(_RetryableFailure),
            reraise=True,
        )
        try:
            return retrying(self._send_once, session, method, depth, body, what)
        except _RetryableFailure as exc:
            raise self._error(
                f"{exc} (after {self._attempts} attempts)",
                "check that the server is up, and the source's `url` and `timeout_seconds`",
            ) from None

    def _http_failure(self, response: requests.Response, what: str) -> SourceError:
        status = response.status_code
        if status == 401:
            return self._error(
                f"the server refused the credentials for the {what} (HTTP 401)",
                "check the source's `username` and its password (`password_file` or "
                "$VIPEXSYNC_SOURCE_PASSWORD); iCloud needs an app-specific password",
            )
        if status == 403:
            return self._error(
                f"the server denied the {what} (HTTP 403)",
                "check that this user may read the address book at `url`",
            )
        if status == 404:
            return self._error(
                f"the {what} found no such collection (HTTP 404)",
                "check the source's `url`: it must be the address book's own URL",
            )
        if 300 <= status < 400:
            target = response.headers.get("Location", "")
            where = (
                f" to {redact_url_query(urllib.parse.urljoin(self._url, target))}" if target else ""
            )
            return self._error(
                f"the server redirected the {what}{where} (HTTP {status})",
                "set the source's `url` to the address book's own URL (redirects are not "
                "followed: a PROPFIND or REPORT must not turn into a GET)",
            )
        return self._error(
            f"the server answered the {what} with HTTP {status}",
            "check the source's `url` and the server's log",
        )

    def _multistatus(self, response: requests.Response, what: str) -> dav.Multistatus:
        if response.status_code != 207:
            raise self._http_failure(response, what)
        try:
            return dav.parse_multistatus(response.content)
        except dav.XmlError as exc:
            raise self._error(
                f"the answer to the {what} is unusable: {exc}", "try again later"
            ) from None

    # -- the steps of a read ---------------------------------------------------------

    def _collection_info(self, session: requests.Session) -> frozenset[str]:
        """Check that ``url`` is an address book; the reports it supports."""
        what = "PROPFIND of the address book"
        body = dav.propfind_body([dav.RESOURCETYPE, dav.SUPPORTED_REPORT_SET])
        answer = self._multistatus(self._send(session, "PROPFIND", "0", body, what), what)
        for response in answer.responses:
            if is_collection_path(self._collection, member_path(self._url, response.href)):
                kinds = response.children(dav.RESOURCETYPE)
                if dav.ADDRESSBOOK not in kinds:
                    shown = ", ".join(sorted(k.rsplit("}", 1)[-1] for k in kinds)) or "none"
                    raise self._error(
                        f"`url` is not an address book (its resourcetype: {shown})",
                        "point `url` at the address book collection itself, e.g. "
                        ".../addressbooks/users/NAME/contacts/ on Nextcloud",
                    )
                return dav.supported_reports(response)
        raise self._error(
            f"the {what} did not describe the address book itself",
            "check the source's `url`",
        )

    def _member_status_failure(self, href: str, status: int | None, what: str) -> SourceError:
        return self._error(
            f"the {what} reported HTTP {status} for {href}",
            "the server could not return that card; try again, or check the card on the server",
        )

    def _listing(self, session: requests.Session) -> dict[str, tuple[str, str]]:
        """Every member (path -> (href, etag)) by PROPFIND, Depth 1."""
        what = "PROPFIND listing of the cards"
        body = dav.propfind_body([dav.RESOURCETYPE, dav.GETETAG])
        answer = self._multistatus(self._send(session, "PROPFIND", "1", body, what), what)
        members: dict[str, tuple[str, str]] = {}
        for response in answer.responses:
            path = member_path(self._url, response.href)
            if is_collection_path(self._collection, path):
                continue
            if response.status is not None and not 200 <= response.status < 300:
                raise self._member_status_failure(response.href, response.status, what)
            if dav.COLLECTION in response.children(dav.RESOURCETYPE) or path.endswith("/"):
                continue  # a sub-collection is not a card
            members[path] = (response.href, (response.text(dav.GETETAG) or "").strip())
        return members

    def _sync_changes(
        self, session: requests.Session, token: str
    ) -> tuple[str, dict[str, tuple[str, str]], frozenset[str]]:
        """(new token, changed members, removed paths) since ``token`` ("" = all members)."""
        what = "sync-collection REPORT"
        changed: dict[str, tuple[str, str]] = {}
        removed: set[str] = set()
        seen_tokens = {token} if token else set()
        for _round in range(MAX_SYNC_ROUNDS):
            body = dav.sync_collection_body(token, [dav.GETETAG])
            response = self._send(session, "REPORT", "0", body, what)
            if token and response.status_code in _BAD_TOKEN_STATUSES:
                conditions = dav.error_conditions(response.content)
                if response.status_code == 410 or dav.VALID_SYNC_TOKEN in conditions:
                    raise _InvalidSyncToken
            answer = self._multistatus(response, what)
            if not answer.sync_token:
                raise self._error(
                    f"the answer to the {what} carries no sync-token",
                    "set `sync_collection = false` in the source for this server",
                )
            truncated = False
            for item in answer.responses:
                path = member_path(self._url, item.href)
                if is_collection_path(self._collection, path) or path.endswith("/"):
                    truncated = truncated or item.status == 507
                    continue  # the collection itself (iCloud lists it with an etag)
                if item.status == 404:
                    removed.add(path)
                    changed.pop(path, None)
                elif item.status is None or 200 <= item.status < 300:
                    changed[path] = (item.href, (item.text(dav.GETETAG) or "").strip())
                    removed.discard(path)
                else:
                    raise self._member_status_failure(item.href, item.status, what)
            token = answer.sync_token
            if not truncated:
                return token, changed, frozenset(removed)
            if token in seen_tokens:
                raise self._error(
                    f"the {what} was truncated and returned the same sync-token again",
                    "the sync would never end; set `sync_collection = false` in the source",
                )
            seen_tokens.add(token)
        raise self._error(
            f"the {what} was still truncated after {MAX_SYNC_ROUNDS} rounds",
            "set `sync_collection = false` in the source",
        )

    def _multiget(
        self, session: requests.Session, batch: Sequence[tuple[str, str]]
    ) -> list[tuple[str, StoredCard]]:
        what = f"addressbook-multiget of {len(batch)} card(s)"
        body = dav.multiget_body([href for _, href in batch], [dav.GETETAG, dav.ADDRESS_DATA])
        answer = self._multistatus(self._send(session, "REPORT", "1", body, what), what)
        by_path = {member_path(self._url, r.href): r for r in answer.responses}
        cards: list[tuple[str, StoredCard]] = []
        for path, href in batch:
            item = by_path.get(path)
            if item is None:
                raise self._error(
                    f"the {what} did not return {href}", "try again; the server skipped it"
                )
            if item.status is not None and not 200 <= item.status < 300:
                raise self._member_status_failure(href, item.status, what)
            data = item.text(dav.ADDRESS_DATA)
            if data is None or not data.strip():
                status = item.prop_errors.get(dav.ADDRESS_DATA)
                detail = f" (HTTP {status})" if status is not None else ""
                raise self._error(
                    f"the {what} returned no card data for {href}{detail}",
                    "check the card on the server",
                )
            etag = (item.text(dav.GETETAG) or "").strip()
            cards.append((path, StoredCard(href=href, etag=etag, data=data)))
        self.cards_fetched += len(cards)
        return cards

    def _plan(self, session: requests.Session, previous: BookState | None) -> tuple[str, FetchPlan]:
        reports = self._collection_info(session)
        if self._cfg.sync_collection and dav.SYNC_COLLECTION in reports:
            if previous is not None and previous.sync_token:
                try:
                    token, changed, removed = self._sync_changes(session, previous.sync_token)
                    return token, plan_from_changes(previous.cards, changed, removed)
                except _InvalidSyncToken:
                    log.info(
                        "%s: the server no longer accepts the kept sync-token; reading every card",
                        self.description,
                    )
            try:
                token, changed, _ = self._sync_changes(session, "")
            except _InvalidSyncToken:  # pragma: no cover - an empty token is never refused so
                raise self._error("the server refused an empty sync-token", "report this") from None
            cards = previous.cards if previous is not None else {}
            return token, plan_from_listing(cards, changed)
        listing = self._listing(session)
        return "", plan_from_listing(previous.cards if previous is not None else {}, listing)

    # -- Source --------------------------------------------------------------------

    def read(self) -> Iterator[SourceRecord]:
        with _STATES_LOCK:
            previous = None if self._full else _STATES.get(self._state_key)
        cards: dict[str, StoredCard] = {}
        with self._session() as session:
            token, plan = self._plan(session, previous)
            for path, card in plan.kept.items():
                cards[path] = card
                yield from self._records(path, card)
            size = self._cfg.batch_size
            for start in range(0, len(plan.fetch), size):
                for path, card in self._multiget(session, plan.fetch[start : start + size]):
                    cards[path] = card
                    yield from self._records(path, card)
        with _STATES_LOCK:
            _STATES[self._state_key] = BookState(sync_token=token, cards=cards)

    def _records(self, path: str, card: StoredCard) -> Iterator[SourceRecord]:
        try:
            parsed = list(
                parse_vcards(
                    card.data.encode("utf-8"), origin=path, key=self._cfg.key, decoded=True
                )
            )
        except VcardSyntaxError as exc:
            raise self._error(f"{path}: {exc}", "check the card on the server") from None
        for one in parsed:
            if one.key_rule in ("", self._cfg.key.upper()):  # the configured key
                yield card_record(one, path)
                continue
            # No key property: the card's path on the server is a better key than
            # a digest of its contents, as it stays when the name or numbers change.
            suffix = "" if len(parsed) == 1 else f"#{one.index}"
            record = card_record(one, path, key=f"href:{path}{suffix}")
            yield dataclasses.replace(record, key_rule=HREF_RULE.format(key=self._cfg.key.upper()))

"""HTTP source against a real local HTTP server (werkzeug, loopback)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from support import self_signed, serve
from vipexsync.config import HttpSourceConfig, Secret
from vipexsync.errors import SourceError
from vipexsync.sources import SourceRecord, open_source
from vipexsync.sources.http_source import HttpSource

TOKEN = "tok-9f8e7d6c5b4a"
USER, PASSWORD = "crm-reader", "pw-1a2b3c4d"
PEOPLE = [
    {"id": i, "name": f"Ügyfél {i}", "phone": f"+36 1 000 {i:04d}", "vip": i % 2 == 0}
    for i in range(1, 8)
]


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


@dataclass
class CrmApi:
    """A small CRM-like WSGI app; ``hits`` counts requests per path."""

    hits: dict[str, int] = field(default_factory=dict)
    seen_params: list[dict[str, str]] = field(default_factory=list)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        self.seen_params.append(dict(request.args))
        response = self.route(request)
        return response(environ, start_response)

    def route(self, request: Request) -> Response:
        path, args = request.path, request.args
        if path == "/wrapped":
            return json_response({"data": {"items": PEOPLE}, "total": len(PEOPLE)})
        if path == "/bare":
            return json_response(PEOPLE[:2])
        if path in ("/offset", "/offset-fail"):
            offset, limit = int(args["offset"]), int(args["limit"])
            if path == "/offset-fail" and offset > 0:
                return Response("boom", status=500)
            return json_response({"records": PEOPLE[offset : offset + limit]})
        if path in ("/cursor", "/cursor-fail"):
            start = int(args.get("after", "0"))
            if path == "/cursor-fail" and start > 0:
                return Response("<html>maintenance</html>", mimetype="text/html")
            page = PEOPLE[start : start + 3]
            following = str(start + 3) if start + 3 < len(PEOPLE) else None
            return json_response({"items": page, "paging": {"next": following}})
        if path == "/endless":
            return json_response(PEOPLE[:2])  # ignores offset: every page is full
        if path == "/cursor-loop":
            return json_response({"items": PEOPLE[:1], "paging": {"next": "same"}})
        if path == "/bearer":
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return Response("unauthorized", status=401)
            return json_response(PEOPLE[:1])
        if path == "/basic":
            auth = request.authorization
            if auth is None or (auth.username, auth.password) != (USER, PASSWORD):
                return Response("unauthorized", status=401, headers={"WWW-Authenticate": "Basic"})
            return json_response(PEOPLE[:1])
        if path == "/flaky":
            if self.hits[path] < 3:
                return Response("try later", status=503)
            return json_response(PEOPLE[:1])
        if path == "/down":
            return Response("down", status=502)
        if path == "/missing":
            return Response("no", status=404)
        if path == "/not-list":
            return json_response({"data": {"items": {"id": 1}}})
        if path == "/not-objects":
            return json_response([{"id": 1}, "two"])
        if path == "/slow":
            time.sleep(1.0)
            return json_response([])
        if path == "/nested":
            return json_response(
                [
                    {
                        "id": 10,
                        "name": {"first": "Ádám", "last": "Őri"},
                        "tags": ["vip", "partner", None],
                        "phones": [{"type": "work", "number": "+3611"}],
                        "score": 1.0,
                        "ratio": 0.25,
                        "active": True,
                        "note": None,
                        "padded": "  x\u0000 ",
                    },
                    {"name": "no id"},
                ]
            )
        return Response("not found", status=404)


@pytest.fixture
def api() -> Iterator[tuple[CrmApi, str]]:
    app = CrmApi()
    with serve(app) as url:
        yield app, url.rstrip("/")


def read(cfg: HttpSourceConfig, attempts: int = 3) -> list[SourceRecord]:
    quick = replace(cfg, max_attempts=attempts, retry_backoff_seconds=0)
    return list(HttpSource(quick).read())


def test_records_path_and_flat_string_fields(api: tuple[CrmApi, str]) -> None:
    _, base = api
    cfg = HttpSourceConfig(url=f"{base}/wrapped", key="id", records_path="data.items")

    records = list(open_source(cfg).read())

    assert [r.key for r in records] == [str(i) for i in range(1, 8)]
    assert records[1] == SourceRecord(
        key="2",
        fields={"id": "2", "name": "Ügyfél 2", "phone": "+36 1 000 0002", "vip": "true"},
        locator="page 1 item 2",
    )


def test_answer_itself_is_the_list(api: tuple[CrmApi, str]) -> None:
    _, base = api

    records = read(HttpSourceConfig(url=f"{base}/bare", key="id"))

    assert [r.fields["vip"] for r in records] == ["false", "true"]


def test_nested_values_are_flattened(api: tuple[CrmApi, str]) -> None:
    _, base = api

    first, second = read(HttpSourceConfig(url=f"{base}/nested", key="id"))

    assert first.fields == {
        "id": "10",
        "name.first": "Ádám",
        "name.last": "Őri",
        "tags": "vip, partner",
        "phones.0.type": "work",
        "phones.0.number": "+3611",
        "score": "1",
        "ratio": "0.25",
        "active": "true",
        "note": "",
        "padded": "x",
    }
    assert second.key == ""
    assert second.locator == "page 1 item 2"


def test_offset_paging_stops_on_short_page(api: tuple[CrmApi, str]) -> None:
    app, base = api
    cfg = HttpSourceConfig(
        url=f"{base}/offset", key="id", records_path="records", paging="offset", page_size=3
    )

    records = read(cfg)

    assert [r.key for r in records] == [str(i) for i in range(1, 8)]
    assert records[-1].locator == "page 3 item 1"
    assert app.seen_params == [
        {"offset": "0", "limit": "3"},
        {"offset": "3", "limit": "3"},
        {"offset": "6", "limit": "3"},
    ]


def test_offset_paging_with_exact_multiple_asks_for_an_empty_last_page(
    api: tuple[CrmApi, str],
) -> None:
    app, base = api
    cfg = HttpSourceConfig(
        url=f"{base}/offset",
        key="id",
        records_path="records",
        paging="offset",
        page_size=7,
        offset_param="offset",
        limit_param="limit",
    )

    assert len(read(cfg)) == 7
    assert app.hits["/offset"] == 2


def test_cursor_paging_follows_next_until_null(api: tuple[CrmApi, str]) -> None:
    app, base = api
    cfg = HttpSourceConfig(
        url=f"{base}/cursor",
        key="id",
        records_path="items",
        paging="cursor",
        cursor_param="after",
        next_cursor_path="paging.next",
    )

    records = read(cfg)

    assert [r.key for r in records] == [str(i) for i in range(1, 8)]
    assert app.seen_params == [{}, {"after": "3"}, {"after": "6"}]


def test_repeated_cursor_stops_with_error(api: tuple[CrmApi, str]) -> None:
    _, base = api
    cfg = HttpSourceConfig(
        url=f"{base}/cursor-loop",
        key="id",
        records_path="items",
        paging="cursor",
        next_cursor_path="paging.next",
    )

    with pytest.raises(SourceError, match="cursor 'same' a second time"):
        read(cfg)


def test_failure_mid_offset_paging_raises_after_retries(api: tuple[CrmApi, str]) -> None:
    app, base = api
    cfg = HttpSourceConfig(
        url=f"{base}/offset-fail", key="id", records_path="records", paging="offset", page_size=3
    )

    with pytest.raises(SourceError) as info:
        read(cfg, attempts=3)

    assert "page 2" in str(info.value)
    assert "HTTP 500" in str(info.value)
    assert f"{base}/offset-fail" in str(info.value)
    assert app.hits["/offset-fail"] == 1 + 3


def test_non_json_page_mid_cursor_paging_raises(api: tuple[CrmApi, str]) -> None:
    _, base = api
    cfg = HttpSourceConfig(
        url=f"{base}/cursor-fail",
        key="id",
        records_path="items",
        paging="cursor",
        cursor_param="after",
        next_cursor_path="paging.next",
    )

    with pytest.raises(SourceError, match=r"page 2: the answer is not JSON \(text/html"):
        read(cfg)


def test_bearer_token_is_sent_and_never_shown(api: tuple[CrmApi, str]) -> None:
    _, base = api
    good = HttpSourceConfig(url=f"{base}/bearer", key="id", bearer_token=Secret(TOKEN))

    assert [r.key for r in read(good)] == ["1"]

    with pytest.raises(SourceError, match="HTTP 401") as info:
        read(HttpSourceConfig(url=f"{base}/bearer", key="id"))
    assert "credentials" in str(info.value)

    # The token must not leak when the same source fails later.
    broken = HttpSourceConfig(url=f"{base}/down", key="id", bearer_token=Secret(TOKEN))
    with pytest.raises(SourceError) as info:
        read(broken, attempts=2)
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(broken)
    assert TOKEN not in HttpSource(broken).description


def test_basic_auth(api: tuple[CrmApi, str]) -> None:
    _, base = api
    good = HttpSourceConfig(url=f"{base}/basic", key="id", username=USER, password=Secret(PASSWORD))
    wrong = HttpSourceConfig(url=f"{base}/basic", key="id", username=USER, password=Secret("no"))

    assert [r.key for r in read(good)] == ["1"]
    with pytest.raises(SourceError, match="HTTP 401"):
        read(wrong)
    with pytest.raises(SourceError, match="HTTP 401"):
        read(HttpSourceConfig(url=f"{base}/basic", key="id"))


def test_credentials_in_url_are_hidden(api: tuple[CrmApi, str]) -> None:
    _, base = api
    port = base.rsplit(":", 1)[1]
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/missing?api_key={TOKEN}&page=x"

    with pytest.raises(SourceError) as info:
        read(HttpSourceConfig(url=url, key="id"))

    message = str(info.value)
    assert "HTTP 404" in message
    assert PASSWORD not in message
    assert TOKEN not in message
    assert f"http://127.0.0.1:{port}/missing?api_key=***&page=x" in message


def test_5xx_is_retried_then_succeeds(api: tuple[CrmApi, str]) -> None:
    app, base = api

    records = read(HttpSourceConfig(url=f"{base}/flaky", key="id"), attempts=3)

    assert [r.key for r in records] == ["1"]
    assert app.hits["/flaky"] == 3


def test_404_is_not_retried(api: tuple[CrmApi, str]) -> None:
    app, base = api

    with pytest.raises(SourceError, match="HTTP 404"):
        read(HttpSourceConfig(url=f"{base}/missing", key="id"), attempts=3)

    assert app.hits["/missing"] == 1


def test_records_path_not_a_list(api: tuple[CrmApi, str]) -> None:
    _, base = api

    with pytest.raises(SourceError, match=r"records_path 'data\.items' is a JSON dict"):
        read(HttpSourceConfig(url=f"{base}/not-list", key="id", records_path="data.items"))
    with pytest.raises(SourceError, match=r"records_path 'data\.nope' is nothing"):
        read(HttpSourceConfig(url=f"{base}/not-list", key="id", records_path="data.nope"))


def test_item_that_is_not_an_object_fails_the_read(api: tuple[CrmApi, str]) -> None:
    _, base = api

    with pytest.raises(SourceError, match="item 2 is a JSON str"):
        read(HttpSourceConfig(url=f"{base}/not-objects", key="id"))


def test_connection_refused_is_a_source_error() -> None:
    server = make_server("127.0.0.1", 0, CrmApi())
    port = server.server_port
    server.server_close()  # nothing listens on the port now

    with pytest.raises(SourceError, match=r"connection failed.*after 2 attempts"):
        read(HttpSourceConfig(url=f"http://127.0.0.1:{port}/x", key="id"), attempts=2)


def test_timeout_is_a_source_error(api: tuple[CrmApi, str]) -> None:
    _, base = api

    with pytest.raises(SourceError, match=r"no answer within 0.2 s"):
        read(HttpSourceConfig(url=f"{base}/slow", key="id", timeout_seconds=0.2), attempts=1)


def test_endless_paging_is_cut_off_with_an_error(
    api: tuple[CrmApi, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, base = api
    monkeypatch.setattr("vipexsync.sources.http_source.MAX_PAGES", 5)
    cfg = HttpSourceConfig(url=f"{base}/endless", key="id", paging="offset", page_size=2)

    with pytest.raises(SourceError, match="more than 5 pages"):
        read(cfg)

    assert app.hits["/endless"] == 5


@pytest.fixture
def tls_base(tmp_path: Path) -> Iterator[str]:
    """The CRM API over HTTPS; its certificate is ``tmp_path / "cert.pem"`` (a private CA)."""
    cert, key = self_signed(tmp_path, "cert")
    with serve(CrmApi(), ssl_context=(str(cert), str(key))) as url:
        yield url.rstrip("/")


def test_a_private_ca_bundle_is_trusted(tls_base: str, tmp_path: Path) -> None:
    trusted = HttpSourceConfig(url=f"{tls_base}/bare", key="id", ca_bundle=tmp_path / "cert.pem")
    assert [r.key for r in read(trusted)] == ["1", "2"]
    other, _ = self_signed(tmp_path, "other")
    with pytest.raises(SourceError, match="name its PEM file in the source's `ca_bundle`"):
        read(replace(trusted, ca_bundle=other))


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_untrusted_certificate_fails_unless_verification_is_off(tls_base: str) -> None:
    with pytest.raises(SourceError, match="TLS handshake or certificate check failed"):
        read(HttpSourceConfig(url=f"{tls_base}/bare", key="id"))

    unverified = HttpSourceConfig(url=f"{tls_base}/bare", key="id", verify_tls=False)
    assert [r.key for r in read(unverified)] == ["1", "2"]

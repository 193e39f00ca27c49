"""Pure helpers of the source adapters: value conversion, flattening, vCard lexing."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vipexsync.config import (
    CsvSourceConfig,
    HttpSourceConfig,
    Secret,
    SqlSourceConfig,
    VcardSourceConfig,
)
from vipexsync.sources import clean_value, open_source
from vipexsync.sources.csv_source import CsvSource
from vipexsync.sources.http_source import (
    HttpSource,
    _safe_url,
    flatten,
    resolve_path,
    scalar_text,
)
from vipexsync.sources.sql_source import SqlSource, to_text
from vipexsync.sources.vcard import logical_lines, unescape
from vipexsync.sources.vcard_source import VcardSource


def test_clean_value_strips_and_removes_nul() -> None:
    assert clean_value("  a\x00b \t") == "ab"
    assert clean_value("\x00") == ""


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("  kept as is  ", "  kept as is  "),
        (True, "true"),
        (False, "false"),
        (36301234567, "36301234567"),
        (5.0, "5"),
        (2.5, "2.5"),
        (Decimal("12.50"), "12.50"),
        (Decimal("1E+3"), "1000"),
        (Decimal("123"), "123"),
        (dt.date(2024, 2, 29), "2024-02-29"),
        (dt.datetime(2024, 2, 29, 13, 5, 1), "2024-02-29T13:05:01"),
        (dt.time(8, 30), "08:30:00"),
        (b"\xc5\x90", "Ő"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    ],
)
def test_sql_values_as_text(value: object, text: str) -> None:
    assert to_text(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (True, "true"), (False, "false"), (7, "7"), (7.0, "7"), (0.5, "0.5"), ("x", "x")],
)
def test_json_scalars_as_text(value: object, text: str) -> None:
    assert scalar_text(value) == text


def test_flatten_nested_objects_lists_and_scalars() -> None:
    record = {
        "id": 1,
        "address": {"city": " Győr ", "geo": {"lat": 47.68}},
        "tags": ["a", "", None, 3, True],
        "contacts": [{"phone": "+36"}, "x", ["y"]],
        "empty": [],
    }

    assert flatten(record) == {
        "id": "1",
        "address.city": "Győr",
        "address.geo.lat": "47.68",
        "tags": "a, 3, true",
        "contacts.0.phone": "+36",
        "contacts.1": "x",
        "contacts.2": "y",
        "empty": "",
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_flatten_always_gives_clean_strings(record: dict[str, object]) -> None:
    for value in flatten(record).values():
        assert isinstance(value, str)
        assert "\x00" not in value
        assert value == value.strip()


def test_resolve_path() -> None:
    document = {"data": {"items": [{"id": 1}]}, "next": None}

    assert resolve_path(document, "") is document
    assert resolve_path(document, "data.items") == [{"id": 1}]
    assert resolve_path(document, "data.items.0.id") == 1
    assert resolve_path(document, "next") is None
    missing = resolve_path(document, "data.nope")
    assert missing is resolve_path(document, "data.items.5")
    assert missing is not None


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://u:p@crm.example/api?x=1", "https://crm.example/api?x=1"),
        (
            "https://crm.example:8443/api?api_key=abc&page=2",
            "https://crm.example:8443/api?api_key=***&page=2",
        ),
        ("https://crm.example/api?access_token=abc", "https://crm.example/api?access_token=***"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ],
)
def test_http_url_is_shown_without_credentials(url: str, safe: str) -> None:
    assert _safe_url(url) == safe


def test_http_description_hides_secrets() -> None:
    cfg = HttpSourceConfig(
        url="https://reader:pw-in-url@crm.example/api?token=t0k",
        key="id",
        bearer_token=Secret("bearer-secret"),
    )
    description = HttpSource(cfg).description

    for secret in ("pw-in-url", "t0k", "bearer-secret", "reader"):
        assert secret not in description


def test_sql_description_hides_password() -> None:
    source = SqlSource(
        SqlSourceConfig(url="postgresql+psycopg://crm:hunter2@db/crm", query="SELECT 1", key="id")
    )

    assert source.description == "sql database postgresql+psycopg://crm:***@db/crm"


def test_open_source_dispatches_on_type(tmp_path: Path) -> None:
    assert isinstance(open_source(CsvSourceConfig(path=tmp_path / "a.csv", key="id")), CsvSource)
    assert isinstance(open_source(SqlSourceConfig(url="sqlite://", query="", key="id")), SqlSource)
    assert isinstance(open_source(HttpSourceConfig(url="https://x/", key="id")), HttpSource)
    assert isinstance(open_source(VcardSourceConfig(path=tmp_path)), VcardSource)


@pytest.mark.parametrize(
    ("escaped", "text"),
    [
        (r"a\nb", "a\nb"),
        (r"a\Nb", "a\nb"),
        (r"a\,b\;c\\d", "a,b;c\\d"),
        ("plain", "plain"),
        ("trailing\\", "trailing"),
    ],
)
def test_unescape(escaped: str, text: str) -> None:
    assert unescape(escaped) == text


@given(st.text())
def test_unescape_inverts_vcard_escaping(text: str) -> None:
    escaped = (
        text.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\n", "\\n")
    )
    assert unescape(escaped) == text


def test_logical_lines_unfold_and_keep_first_line_numbers() -> None:
    text = b"BEGIN:VCARD\r\nNOTE:one\r\n two\r\n\tthree\r\n\r\nFN:x\nEND:VCARD"

    assert list(logical_lines(text)) == [
        (1, b"BEGIN:VCARD", None),
        (2, b"NOTE:onetwothree", None),
        (6, b"FN:x", None),
        (7, b"END:VCARD", None),
    ]


def test_logical_lines_treat_cr_cr_lf_as_one_line_end_inside_a_fold() -> None:
    text = b"BEGIN:VCARD\r\r\nNOTE:one\r\r\n two\r\r\nFN:x\r\r\nEND:VCARD\r\r\n"

    assert list(logical_lines(text)) == [
        (1, b"BEGIN:VCARD", None),
        (2, b"NOTE:onetwo", None),
        (4, b"FN:x", None),
        (5, b"END:VCARD", None),
    ]


def test_logical_lines_join_quoted_printable_soft_breaks() -> None:
    text = b"NOTE;ENCODING=QUOTED-PRINTABLE:abc=\r\ndef=\r\n=3D\r\nFN:x=\r\nTEL:1"

    assert list(logical_lines(text)) == [
        (1, b"NOTE;ENCODING=QUOTED-PRINTABLE:abcdef=3D", None),
        (4, b"FN:x=", None),
        (5, b"TEL:1", None),
    ]

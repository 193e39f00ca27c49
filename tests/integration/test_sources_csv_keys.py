"""CSV exports without an id column (Google, Outlook, Thunderbird): composite keys, the row
digest, the row-number warning, and encoding advice that names the file's likely encoding."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vipexsync.config import CsvSourceConfig
from vipexsync.errors import SourceError
from vipexsync.sources import SourceRecord, open_source
from vipexsync.sources.csv_source import ROW_DIGEST_RULE

GOOGLE = (
    "First Name,Last Name,Organization Name,Phone 1 - Label,Phone 1 - Value\r\n"
    "Anna,Kiss,,Mobile,+36 30 123 4567 ::: +36 1 234 5678\r\n"
    ",,Acme Kft.,Work,+36 1 999 6000\r\n"
    "Anna,Kiss,,Mobile,+36 30 123 4567 ::: +36 1 234 5678\r\n"
)


def read(
    path: Path, key: str | tuple[str, ...] = (), encoding: str = "utf-8"
) -> list[SourceRecord]:
    return list(open_source(CsvSourceConfig(path=path, key=key, encoding=encoding)).read())


def test_composite_key_joins_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "google.csv"
    path.write_text(GOOGLE, encoding="utf-8")

    records = read(path, key=("First Name", "Last Name", "Organization Name"))

    assert [r.key for r in records] == ["Anna | Kiss | ", " |  | Acme Kft.", "Anna | Kiss | "]
    assert {r.key_rule for r in records} == {""}


def test_left_out_key_is_a_row_digest_stable_across_reorder(tmp_path: Path) -> None:
    path = tmp_path / "google.csv"
    path.write_text(GOOGLE, encoding="utf-8")
    first = read(path)
    lines = GOOGLE.splitlines(keepends=True)
    path.write_text(lines[0] + lines[2] + lines[1], encoding="utf-8")
    reordered = read(path)

    assert all(r.key.startswith("row:") for r in first)
    assert first[0].key != first[1].key
    assert first[2].key == first[0].key + "~2"  # an identical row
    assert {r.key_rule for r in first} == {ROW_DIGEST_RULE}
    assert reordered[0].key == first[1].key
    assert reordered[1].key == first[0].key


def test_missing_composite_key_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "google.csv"
    path.write_text(GOOGLE, encoding="utf-8")
    with pytest.raises(SourceError, match="the key column 'E-mail' is not in the header row"):
        read(path, key=("First Name", "E-mail"))


def test_row_number_key_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "numbered.csv"
    path.write_text("#,name,phone\n1,a,+3612345678\n2,b,+3612345679\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="vipexsync.source"):
        read(path, key="#")
    assert "changes on every re-export" in caplog.text

    caplog.clear()
    path.write_text("id,name,phone\n17,a,+3612345678\n9,b,+3612345679\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="vipexsync.source"):
        read(path, key="id")
    assert caplog.text == ""


@pytest.mark.parametrize(
    ("codec", "named"),
    [("utf-16", "utf-16"), ("utf-16-le", "utf-16-le"), ("cp1250", "cp1250")],
)
def test_encoding_error_names_the_likely_encoding(tmp_path: Path, codec: str, named: str) -> None:
    text = "id,név,telefon,cég\n" + "".join(
        f"{i},Őri Ádám Győző,+36 1 234 56{i:02},Árvíztűrő Tükörfúrógép Kft.\n" for i in range(30)
    )
    path = tmp_path / "export.csv"
    path.write_bytes(text.encode(codec))

    with pytest.raises(SourceError) as info:
        read(path, key="id")

    assert f'set the source\'s `encoding` key to "{named}"' in str(info.value)
    assert len(read(path, key="id", encoding=named)) == 30

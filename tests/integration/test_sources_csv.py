"""CSV source against real files: encodings, Excel exports, quoting, failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from vipexsync.config import CsvSourceConfig
from vipexsync.errors import SourceError
from vipexsync.sources import SourceRecord, open_source
from vipexsync.sources.csv_source import FIELD_SIZE_LIMIT, CsvSource


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def read_all(
    path: Path, *, key: str = "id", encoding: str = "utf-8", delimiter: str = ","
) -> list[SourceRecord]:
    cfg = CsvSourceConfig(path=path, key=key, encoding=encoding, delimiter=delimiter)
    return list(open_source(cfg).read())


def test_hungarian_excel_export_reads_by_configuration_alone(tmp_path: Path) -> None:
    text = (
        "Azonosító;Vezetéknév;Keresztnév;Telefon;Cég\r\n"
        "101;Őri;Ádám;+36 1 234 5678;Űrhajó Kft.\r\n"
        "102;Kovács;Éva Ágnes;06 30 123 4567;Árvíztűrő Zrt.\r\n"
    )
    path = write(tmp_path / "export.csv", text.encode("cp1250"))

    records = read_all(path, key="Azonosító", encoding="cp1250", delimiter=";")

    assert [r.key for r in records] == ["101", "102"]
    assert records[0].fields == {
        "Azonosító": "101",
        "Vezetéknév": "Őri",
        "Keresztnév": "Ádám",
        "Telefon": "+36 1 234 5678",
        "Cég": "Űrhajó Kft.",
    }
    assert records[1].fields["Cég"] == "Árvíztűrő Zrt."
    assert records[0].locator == "export.csv line 2"
    assert records[1].locator == "export.csv line 3"


def test_cp1250_file_read_as_utf8_fails_naming_line_and_encoding_key(tmp_path: Path) -> None:
    lines = ["id;name"] + [f"{i};Plain {i}" for i in range(1, 40)] + ["40;Őri Ádám"]
    path = write(tmp_path / "export.csv", "\r\n".join(lines).encode("cp1250"))

    with pytest.raises(SourceError) as info:
        read_all(path, delimiter=";")

    message = str(info.value)
    assert "line 41" in message
    assert "encoding" in message
    assert "cp1250" in message
    assert str(path) in message


def test_utf8_bom_is_not_part_of_the_first_column_name(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.csv", b"\xef\xbb\xbfid,name\n7,Ann\n")

    records = read_all(path)

    assert records == [
        SourceRecord(key="7", fields={"id": "7", "name": "Ann"}, locator="bom.csv line 2")
    ]


def test_decode_error_after_bom_names_the_right_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bom.csv", b"\xef\xbb\xbfid,name\n1,ok\n2,\xff\n")

    with pytest.raises(SourceError, match="line 3"):
        read_all(path)


def test_quoted_fields_with_newlines_delimiters_and_crlf(tmp_path: Path) -> None:
    data = (
        b"id,name,note,phone\r\n"
        b'1,"Doe, John","first line\r\nsecond; line",+3611111111\r\n'
        b'2,"Say ""hi""",,+3622222222\r\n'
    )
    path = write(tmp_path / "q.csv", data)

    records = read_all(path)

    assert records[0].fields["name"] == "Doe, John"
    assert records[0].fields["note"] == "first line\r\nsecond; line"
    assert records[0].fields["phone"] == "+3611111111"
    assert records[1].fields["name"] == 'Say "hi"'
    assert records[1].fields["note"] == ""
    # The record's locator points at the line where it starts.
    assert records[1].locator == "q.csv line 4"


def test_values_and_keys_are_stripped_and_nul_bytes_removed(tmp_path: Path) -> None:
    path = write(tmp_path / "w.csv", b" id , name \n  42 ,\x00 Ann\x00  \n")

    [record] = read_all(path)

    assert record.key == "42"
    assert record.fields == {"id": "42", "name": "Ann"}


def test_short_row_is_that_records_rejection_and_blank_rows_are_skipped(tmp_path: Path) -> None:
    """Issue 9 item 5: a short row in a complete file is rejected, not padded."""
    path = write(tmp_path / "s.csv", b"id;name;phone\n1;Ann\n\n;;\n2;Bob;+3630\n")

    records = read_all(path, delimiter=";")

    assert [(r.key, r.fields.get("name")) for r in records] == [("1", "Ann"), ("2", "Bob")]
    assert "s.csv line 2 has 2 fields but the header has 3" in records[0].problem
    assert records[1].problem == ""
    assert records[1].locator == "s.csv line 5"


@pytest.mark.parametrize(
    ("data", "line"),
    [
        # The export caught mid-write: its last row has no line ending and is short.
        (b"id,name,phone\n1,Ann,+3611\n2,Bob,+3622\n3,Cil", 4),
        # Any short row in a file that ends without a line ending.
        (b"id,name,phone\n1,Ann\n2,Bob,+3622\n3,Cil,+3633", 2),
        (b"id,name,phone\r\n1,Ann,+3611\r\n2,Bob", 3),
    ],
)
def test_file_cut_mid_write_is_an_incomplete_read(tmp_path: Path, data: bytes, line: int) -> None:
    path = write(tmp_path / "crm.csv", data)

    with pytest.raises(SourceError) as info:
        read_all(path)

    assert "crm.csv" in str(info.value)
    assert f"line {line}" in str(info.value)


def test_last_row_without_line_ending_but_complete_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "crm.csv", b"id,name,phone\n1,Ann,+3611\n2,Bob,+3622")

    records = read_all(path)

    assert [(r.key, r.problem) for r in records] == [("1", ""), ("2", "")]


def test_row_without_key_value_is_yielded_with_empty_key(tmp_path: Path) -> None:
    path = write(tmp_path / "k.csv", b"id,name\n,Ann\n2,Bob\n")

    records = read_all(path)

    assert [r.key for r in records] == ["", "2"]
    assert records[0].fields["name"] == "Ann"


def test_row_with_too_many_fields_fails_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", b"id,name\n1,Ann\n2,Doe, John\n3,Cid\n")

    with pytest.raises(SourceError, match=r"m\.csv line 3 has 3 fields but the header has 2"):
        read_all(path)


def test_trailing_empty_extra_fields_are_tolerated(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", b"id;name\n1;Ann;;\n")

    [record] = read_all(path, delimiter=";")

    assert record.fields == {"id": "1", "name": "Ann"}


def test_missing_key_column_names_key_and_columns_found(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", b"ID,Name,Phone\n1,Ann,+36\n")

    with pytest.raises(SourceError) as info:
        read_all(path, key="id")

    message = str(info.value)
    assert "'id'" in message
    assert "'ID', 'Name', 'Phone'" in message


def test_wrong_delimiter_hint_when_header_is_one_column(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", b"id;name\n1;Ann\n")

    with pytest.raises(SourceError, match="is the delimiter ',' right"):
        read_all(path)


def test_duplicate_header_names_fail(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.csv", b"id,phone,phone\n1,+361,+362\n")

    with pytest.raises(SourceError, match="'phone' more than once"):
        read_all(path)


def test_empty_file_fails(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", b"")

    with pytest.raises(SourceError, match="empty"):
        read_all(path)


def test_header_only_file_yields_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", b"id,name\r\n")

    assert read_all(path) == []


def test_missing_file_fails_naming_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"

    with pytest.raises(SourceError) as info:
        read_all(path)

    assert str(path) in str(info.value)
    assert "`path`" in str(info.value)


def test_unknown_encoding_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"id\n1\n")

    with pytest.raises(SourceError, match=r"unknown encoding 'latin-99'.*`encoding`"):
        read_all(path, encoding="latin-99")


def test_bad_delimiter_is_a_source_error(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", b"id\n1\n")

    with pytest.raises(SourceError, match="one character"):
        read_all(path, delimiter=";;")


def test_unterminated_quote_is_an_error_not_a_swallowed_tail(tmp_path: Path) -> None:
    path = write(tmp_path / "u.csv", b'id,name\n1,"Ann\n2,Bob\n3,Cid\n')

    with pytest.raises(SourceError, match="malformed CSV"):
        read_all(path)


def test_huge_field_is_an_error_on_its_line(tmp_path: Path) -> None:
    big = b"x" * (FIELD_SIZE_LIMIT + 10)
    path = write(tmp_path / "big.csv", b'id,note\n1,ok\n2,"' + big + b'"\n')

    with pytest.raises(SourceError, match="line 3"):
        read_all(path)


def test_tab_delimited_utf16_export(tmp_path: Path) -> None:
    """Excel's "Unicode text" export: UTF-16 with BOM, tab-separated."""
    path = write(tmp_path / "u16.txt", "id\tnév\r\n5\tÖrs\r\n".encode("utf-16"))

    [record] = read_all(path, encoding="utf-16", delimiter="\t")

    assert record.fields == {"id": "5", "név": "Örs"}


def test_description_names_the_file(tmp_path: Path) -> None:
    source = CsvSource(CsvSourceConfig(path=tmp_path / "crm.csv", key="id"))

    assert source.description == f"csv file {tmp_path / 'crm.csv'}"

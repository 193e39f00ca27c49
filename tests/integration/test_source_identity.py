"""The quiet key's source digest (vipexsync/sources/identity.py): the bytes decide."""

from __future__ import annotations

from pathlib import Path

from vipexsync.config import CsvSourceConfig, VcardSourceConfig
from vipexsync.sources.identity import source_identity

CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Kiss Anna\r\nTEL:+3612345678\r\nEND:VCARD\r\n"


def test_a_csv_file_is_its_bytes(tmp_path: Path) -> None:
    csv = tmp_path / "crm.csv"
    csv.write_bytes(b"id,name,phone\r\n1,Anna,0612345678\r\n")
    cfg = CsvSourceConfig(path=csv, key="id")
    first = source_identity(cfg)
    assert first is not None

    data = csv.read_bytes()
    csv.unlink()
    csv.write_bytes(data)
    again = source_identity(cfg)
    assert again is not None
    assert again.content == first.content  # same bytes: the key holds
    assert again.stamp != first.stamp  # but another file: not the one a read saw

    csv.write_bytes(data.replace(b"Anna", b"Anne"))
    edited = source_identity(cfg)
    assert edited is not None
    assert edited.content != first.content

    csv.unlink()
    assert source_identity(cfg) is None  # unknown: the normal path reports it


def test_a_vcard_folder_is_the_files_it_reads(tmp_path: Path) -> None:
    folder = tmp_path / "contacts"
    folder.mkdir()
    (folder / "a.vcf").write_text(CARD, encoding="utf-8")
    cfg = VcardSourceConfig(path=folder)
    first = source_identity(cfg)
    assert first is not None

    (folder / "notes.txt").write_text("not read", encoding="utf-8")
    unchanged = source_identity(cfg)
    assert unchanged is not None
    assert unchanged.content == first.content

    (folder / "b.vcf").write_text(CARD, encoding="utf-8")
    added = source_identity(cfg)
    assert added is not None
    assert added.content != first.content

    (folder / "b.vcf").rename(folder / "c.vcf")
    renamed = source_identity(cfg)
    assert renamed is not None
    assert renamed.content != added.content  # the name is in the location of every record

    for card in folder.glob("*.vcf"):
        card.unlink()
    assert source_identity(cfg) is None  # an empty folder fails the read


def test_sources_outside_files_have_no_digest() -> None:
    from vipexsync.config import HttpSourceConfig, SqlSourceConfig

    assert source_identity(HttpSourceConfig(url="https://crm.example/contacts", key="id")) is None
    sql = SqlSourceConfig(url="sqlite:////srv/crm.sqlite3", query="SELECT 1", key="id")
    assert source_identity(sql) is None

"""vCard source against real .vcf files: 2.1/3.0/4.0 cards, folders, broken files."""

from __future__ import annotations

from pathlib import Path

import pytest

from vipexsync.config import VcardSourceConfig
from vipexsync.errors import SourceError
from vipexsync.sources import SourceRecord, open_source

# An iOS/macOS-style 3.0 export: CRLF, grouped properties, TYPE lists, folding.
CARD_30 = (
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "PRODID:-//Apple Inc.//iPhone OS 17.0//EN\r\n"
    "N:Kovács;Éva;Mária;Dr.;\r\n"
    "FN:Dr. Kovács Éva Mária\r\n"
    "ORG:Árvíztűrő Tükörfúró Zrt.;Értékesítés;Budapesti iroda\r\n"
    "TITLE:Ügyfélkapcsolati vezető\r\n"
    "EMAIL;type=INTERNET;type=WORK;type=pref:eva.kovacs@example.hu\r\n"
    "TEL;TYPE=CELL,VOICE;TYPE=pref:+36 30 123 4567\r\n"
    "item1.TEL;type=WORK:+36 1 999 6000\r\n"
    "item1.X-ABLabel:_$!<Work>!$_\r\n"
    "TEL;TYPE=WORK,FAX:+36 1 999 6001\r\n"
    "TEL;TYPE=HOME:06 1 222 3333\r\n"
    "ADR;TYPE=WORK:;;Fő utca 1.;Budapest;;1011;Magyarország\r\n"
    "NOTE:Első sor\\nMásodik sor\\, vesszővel\\; pontosvesszővel \\\\ per\r\n"
    " jellel és egy nagyon hosszú megjegyzés\r\n"
    "\t, folytatva\r\n"
    "CATEGORIES:VIP,Partner\\, kiemelt\r\n"
    "X-CRM-ID:crm-0042\r\n"
    "PHOTO;ENCODING=b;TYPE=JPEG:/9j/4AAQSkZJRgABAQAAAQABAAD\r\n"
    " /2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxN\r\n"
    "UID:3F2504E0-4F89-11D3-9A0C-0305E82C3301\r\n"
    "END:VCARD\r\n"
)

# A 4.0 card: quoted TYPE list, tel: URIs, LF line endings.
CARD_40 = (
    "BEGIN:VCARD\n"
    "VERSION:4.0\n"
    "FN:Őri Ádám\n"
    "N:Őri;Ádám;;;\n"
    'TEL;VALUE=uri;TYPE="work,voice";PREF=1:tel:+36-1-999-6000\n'
    "TEL;VALUE=uri;TYPE=cell:tel:+36-20-555-0101\n"
    "ORG:Űrhajó Kft.\n"
    "UID:urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6\n"
    "END:VCARD\n"
)

# A 2.1 export from an old phone: bare TYPE words, quoted-printable with soft breaks.
CARD_21 = (
    "BEGIN:VCARD\r\n"
    "VERSION:2.1\r\n"
    "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=C5=90ri;=C3=81d=C3=A1m;;;\r\n"
    "FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=C5=90ri =C3=81d=C3=A1m\r\n"
    "NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:Hossz=C3=BA megjegyz=C3=A9s, t=C3=B6bb=\r\n"
    " sorban=\r\n"
    "=0Av=C3=A9ge\r\n"
    "ORG;CHARSET=ISO-8859-2;ENCODING=QUOTED-PRINTABLE:T=F5zsde Bt.\r\n"
    "TEL;CELL;PREF:+36301112222\r\n"
    "TEL;WORK;VOICE:+3614445555\r\n"
    "END:VCARD\r\n"
)


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def read(path: Path, key: str = "UID") -> list[SourceRecord]:
    return list(open_source(VcardSourceConfig(path=path, key=key)).read())


def test_realistic_30_card(tmp_path: Path) -> None:
    [record] = read(write(tmp_path / "eva.vcf", CARD_30))

    assert record.key == "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
    assert record.locator == "eva.vcf card 1 (line 1, 'Dr. Kovács Éva Mária')"
    assert record.key_rule == ""
    fields = record.fields
    assert fields["fn"] == "Dr. Kovács Éva Mária"
    assert fields["n"] == "Dr. Kovács Éva Mária"
    assert (fields["last_name"], fields["first_name"]) == ("Kovács", "Éva")
    assert fields["name_prefix"] == "Dr."
    assert fields["org"] == "Árvíztűrő Tükörfúró Zrt."
    assert fields["org_full"] == "Árvíztűrő Tükörfúró Zrt. / Értékesítés / Budapesti iroda"
    assert fields["title"] == "Ügyfélkapcsolati vezető"
    assert fields["email"] == "eva.kovacs@example.hu"
    assert [fields[f"tel{i}"] for i in range(1, 5)] == [
        "+36 30 123 4567",
        "+36 1 999 6000",
        "+36 1 999 6001",
        "06 1 222 3333",
    ]
    assert "tel5" not in fields
    assert fields["tel_cell"] == "+36 30 123 4567"
    assert fields["tel_work"] == "+36 1 999 6000"  # the work fax is not the work phone
    assert fields["tel_fax"] == "+36 1 999 6001"
    assert fields["tel_home"] == "06 1 222 3333"
    assert fields["note"] == (
        "Első sor\nMásodik sor, vesszővel; pontosvesszővel \\ per"
        "jellel és egy nagyon hosszú megjegyzés, folytatva"
    )
    assert fields["categories"] == "VIP, Partner, kiemelt"
    assert fields["adr"] == "Fő utca 1., Budapest, 1011, Magyarország"
    assert fields["x-crm-id"] == "crm-0042"
    assert fields["uid"] == "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
    assert "photo" not in fields
    # every voice number, one per line; the fax is listed but not a voice number
    assert fields["tel_voice"] == "+36 30 123 4567\n+36 1 999 6000\n06 1 222 3333"
    assert ("TEL;TYPE=FAX,WORK", "+36 1 999 6001") in record.numbers


def test_realistic_40_card_with_tel_uris(tmp_path: Path) -> None:
    [record] = read(write(tmp_path / "adam.vcf", CARD_40))

    assert record.key == "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    assert record.fields["tel1"] == "+36-1-999-6000"
    assert record.fields["tel_work"] == "+36-1-999-6000"
    assert record.fields["tel_cell"] == "+36-20-555-0101"
    assert record.fields["n"] == "Őri Ádám"
    assert record.fields["org"] == "Űrhajó Kft."
    assert record.fields["org_full"] == "Űrhajó Kft."


def test_quoted_printable_21_card_with_charsets_and_soft_breaks(tmp_path: Path) -> None:
    [record] = read(write(tmp_path / "old-phone.vcf", CARD_21))

    assert record.key.startswith("digest:")  # no UID: a digest of name and numbers
    assert record.key_rule.startswith("digest")
    assert record.fields["fn"] == "Őri Ádám"
    assert (record.fields["last_name"], record.fields["first_name"]) == ("Őri", "Ádám")
    assert record.fields["note"] == "Hosszú megjegyzés, több sorban\nvége"
    assert record.fields["org"] == "Tőzsde Bt."
    assert record.fields["tel_cell"] == "+36301112222"
    assert record.fields["tel_work"] == "+3614445555"


def test_key_is_matched_case_insensitively_against_any_property(tmp_path: Path) -> None:
    path = write(tmp_path / "eva.vcf", CARD_30)

    assert [r.key for r in read(path, key="x-crm-id")] == ["crm-0042"]
    assert [r.key for r in read(path, key="uid")] == ["3F2504E0-4F89-11D3-9A0C-0305E82C3301"]


def test_folder_is_read_in_name_order_non_recursively(tmp_path: Path) -> None:
    folder = tmp_path / "contacts"
    folder.mkdir()
    write(folder / "b-adam.VCF", CARD_40)
    write(folder / "a-eva.vcf", CARD_30 + CARD_21)  # two cards in one file
    write(folder / "notes.txt", "not a card")
    (folder / "sub").mkdir()
    write(folder / "sub" / "c.vcf", "garbage")

    records = read(folder)

    assert [r.locator for r in records] == [
        "contacts/a-eva.vcf card 1 (line 1, 'Dr. Kovács Éva Mária')",
        "contacts/a-eva.vcf card 2 (line 24, 'Őri Ádám')",
        "contacts/b-adam.VCF card 1 (line 1, 'Őri Ádám')",
    ]
    assert records[1].fields["fn"] == "Őri Ádám"


def test_empty_folder_fails(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no \.vcf files"):
        read(tmp_path)


def test_bom_is_tolerated(tmp_path: Path) -> None:
    [record] = read(write(tmp_path / "bom.vcf", b"\xef\xbb\xbf" + CARD_40.encode()))

    assert record.fields["fn"] == "Őri Ádám"


def test_unterminated_card_fails_naming_file_and_line(tmp_path: Path) -> None:
    cut = CARD_40 + CARD_30[: CARD_30.index("UID")]
    path = write(tmp_path / "cut.vcf", cut)

    with pytest.raises(SourceError) as info:
        read(path)

    message = str(info.value)
    assert "cut.vcf line 10" in message
    assert "END:VCARD" in message


def test_begin_inside_card_ends_the_open_card_with_a_note(tmp_path: Path) -> None:
    text = CARD_40.replace("END:VCARD\n", "") + CARD_40
    first, second = read(write(tmp_path / "x.vcf", text))

    assert first.fields["fn"] == second.fields["fn"] == "Őri Ádám"
    assert first.notes == ("has no END:VCARD; it was ended by the BEGIN:VCARD at line 9",)


def test_file_that_is_not_a_vcard_fails(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"notes\.vcf line 1: no BEGIN:VCARD found"):
        read(write(tmp_path / "notes.vcf", "name,phone:x\nAnn,+36\n"))
    with pytest.raises(SourceError, match=r"empty\.vcf: no BEGIN:VCARD found"):
        read(write(tmp_path / "empty.vcf", "\n\n"))


def test_line_without_colon_continues_the_value_before_it(tmp_path: Path) -> None:
    text = CARD_40.replace("ORG:Űrhajó Kft.\n", "ORG:Űrhajó\nKft.\n")
    [record] = read(write(tmp_path / "fold.vcf", text))

    assert record.fields["org"] == "Űrhajó\nKft."
    assert record.notes == ("line 8 is not a property; read as more of the value at line 7",)


def test_undecodable_bytes_cost_only_that_value(tmp_path: Path) -> None:
    data = CARD_40.replace("Űrhajó", "Őrs").encode().replace("Őrs".encode(), "Őrs".encode("cp1250"))
    [record] = read(write(tmp_path / "latin.vcf", data))

    assert record.fields["fn"] == "Őri Ádám"
    assert record.fields["org"] == "\ufffdrs Kft."
    [(_field, why)] = [d for d in record.damaged if d[0] == "org"]
    assert "ORG at line 7 is not valid utf-8" in why


def test_missing_path_fails(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot read"):
        read(tmp_path / "none.vcf")


def test_one_bad_file_of_a_folder_is_reported_and_the_others_read(tmp_path: Path) -> None:
    folder = tmp_path / "contacts"
    folder.mkdir()
    write(folder / "a.vcf", CARD_30)
    write(folder / "b-cut.vcf", CARD_40[: CARD_40.index("END:VCARD")])
    write(folder / "c.vcf", CARD_21)

    records = read(folder)

    assert [r.locator for r in records if not r.unreadable] == [
        "contacts/a.vcf card 1 (line 1, 'Dr. Kovács Éva Mária')",
        "contacts/c.vcf card 1 (line 1, 'Őri Ádám')",
    ]
    [bad] = [r for r in records if r.unreadable]
    assert bad.locator == "contacts/b-cut.vcf"
    assert "line 1: the card that starts here has no END:VCARD" in bad.unreadable


def test_a_single_bad_file_still_fails_the_read(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no END:VCARD"):
        read(write(tmp_path / "cut.vcf", CARD_40[: CARD_40.index("END:VCARD")]))

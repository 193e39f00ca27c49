"""parse_vcards on the quirks real exporters write (pure: bytes in, cards out)."""

from __future__ import annotations

import pytest

from vipexsync.sources.vcard import VcardSyntaxError, parse_vcards, utf16_codec

OUTLOOK_21 = (
    "BEGIN:VCARD\r\n"
    "VERSION:2.1\r\n"
    "N;LANGUAGE=hu;CHARSET=Windows-1250:Kovács;Éva\r\n"
    "FN;CHARSET=Windows-1250:Kovács Éva\r\n"
    "ORG;CHARSET=Windows-1250;ENCODING=QUOTED-PRINTABLE:=C1rv=EDzt=FBr=F5 T=FCk=F6rf=FAr=F3 =\r\n"
    "Zrt.\r\n"
    "TEL;WORK;VOICE:+36 (1) 999-6000\r\n"
    "TEL;WORK;FAX:+36 (1) 999-6001\r\n"
    "END:VCARD\r\n"
).encode("cp1250")


def cards(data: bytes, **kwargs: str) -> list:  # type: ignore[type-arg]
    return list(parse_vcards(data, origin="test.vcf", **kwargs))


def test_outlook_21_charset_raw_8bit_and_qp_soft_break() -> None:
    [card] = cards(OUTLOOK_21)

    assert card.fields["fn"] == "Kovács Éva"
    assert card.fields["last_name"] == "Kovács"
    assert card.fields["org"] == "Árvíztűrő Tükörfúró Zrt."
    assert card.fields["tel_voice"] == "+36 (1) 999-6000"
    assert card.fields["tel_fax"] == "+36 (1) 999-6001"
    assert [(t.value, t.voice) for t in card.tels] == [
        ("+36 (1) 999-6000", True),
        ("+36 (1) 999-6001", False),
    ]
    assert card.damaged == {}
    assert card.key.startswith("digest:")


def test_digest_key_ignores_number_formatting_and_volatile_properties() -> None:
    [card] = cards(OUTLOOK_21)
    reformatted = OUTLOOK_21.replace(b"+36 (1) 999-6000", b"+3619996000").replace(
        b"VERSION:2.1\r\n", b"VERSION:2.1\r\nREV:20260101T000000Z\r\nPRODID:x\r\n"
    )
    [again] = cards(reformatted)
    renamed = OUTLOOK_21.replace("Éva".encode("cp1250"), b"Eve")
    [other] = cards(renamed)

    assert again.key == card.key
    assert other.key != card.key


@pytest.mark.parametrize("bom", [True, False])
def test_utf16_with_and_without_bom(bom: bool) -> None:
    text = OUTLOOK_21.decode("cp1250").replace("CHARSET=Windows-1250", "CHARSET=UTF-8")
    text = text.replace("=C1rv=EDzt=FBr=F5 T=FCk=F6rf=FAr=F3 =\r\nZrt.", "Tükör Kft.")
    data = text.encode("utf-16" if bom else "utf-16-le")

    assert utf16_codec(data) == ("utf-16" if bom else "utf-16-le")
    [card] = cards(data)
    assert card.fields["fn"] == "Kovács Éva"
    assert card.fields["org"] == "Tükör Kft."


def test_iphone_cr_cr_lf_with_folded_lines_and_grouped_tel() -> None:
    data = (
        b"BEGIN:VCARD\r\r\nVERSION:3.0\r\r\nN:Nagy;P\xc3\xa9ter;;;\r\r\n"
        b"FN:Nagy P\xc3\xa9ter\r\r\nitem1.TEL;type=pref:+36 30 12\r\r\n 3 4567\r\r\n"
        b"item1.X-ABLabel:_$!<Mobile>!$_\r\r\nTEL;type=IPHONE;type=CELL;type=VOICE:+36 20 555 0101"
        b"\r\r\nEND:VCARD\r\r\n"
    )
    [card] = cards(data)

    assert card.fields["fn"] == "Nagy Péter"
    assert card.fields["tel_voice"] == "+36 30 123 4567\n+36 20 555 0101"
    assert card.fields["tel_cell"] == "+36 20 555 0101"


def test_company_only_card_has_org_and_empty_name_parts() -> None:
    data = b"BEGIN:VCARD\nVERSION:3.0\nN:;;;;\nFN:\nORG:Acme Kft.;\nTEL:+3612345678\nEND:VCARD\n"
    [card] = cards(data)

    assert card.fields["n"] == ""
    assert card.fields["fn"] == ""
    assert card.fields["org"] == "Acme Kft."


def test_broken_note_and_undecodable_unmapped_value_cost_only_that_value() -> None:
    data = (
        b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:u1\r\nFN:Kiss Anna\r\n"
        b"NOTE:first line\r\nsecond line, call at: 9am\r\nthird \xe9 line\r\n"
        b"TEL;TYPE=WORK:+36 1 234 5678\r\nEND:VCARD\r\n"
    )
    [card] = cards(data)

    assert card.key == "u1"
    assert card.key_rule == ""
    assert card.fields["note"] == "first line\nsecond line, call at: 9am\nthird \ufffd line"
    assert card.fields["tel_voice"] == "+36 1 234 5678"
    assert "NOTE at line 5 is not valid utf-8" in card.damaged["note"]
    assert card.notes == ("line 6 is not a property; read as more of the value at line 5",)


def test_damage_names_the_likely_encoding() -> None:
    text = "BEGIN:VCARD\nFN:Őry Ödön Győző és Társa Kft.\nNOTE:árvíztűrő tükörfúrógép\nEND:VCARD\n"
    [card] = cards(text.encode("cp1250"))

    assert "fn" in card.damaged
    assert "set the source's `encoding` key" in card.damaged["fn"]
    [fixed] = cards(text.encode("cp1250"), encoding="cp1250")
    assert fixed.fields["fn"] == "Őry Ödön Győző és Társa Kft."
    assert fixed.damaged == {}


def test_cut_short_or_not_vcard_raises() -> None:
    with pytest.raises(VcardSyntaxError, match="no END:VCARD") as info:
        cards(b"BEGIN:VCARD\nFN:a\nEND:VCARD\nBEGIN:VCARD\nFN:b\n")
    assert info.value.line == 4
    with pytest.raises(VcardSyntaxError, match="no BEGIN:VCARD"):
        cards(b"name,phone\nAnn,+36\n")


def test_lines_outside_cards_are_skipped_and_noted() -> None:
    data = b"garbage\nBEGIN:VCARD\nFN:a\nEND:VCARD\n"
    [card] = cards(data)
    assert card.notes == ("line(s) 1 before this card stand outside any card and were skipped",)


def test_encoding_applies_only_to_values_that_are_not_utf8() -> None:
    data = "BEGIN:VCARD\nFN:Tóth Gábor\nEND:VCARD\n".encode() + (
        "BEGIN:VCARD\nFN:Molnár Kata\nEND:VCARD\n".encode("cp1250")
    )
    utf8, cp1250 = cards(data, encoding="cp1250")

    assert (utf8.fields["fn"], cp1250.fields["fn"]) == ("Tóth Gábor", "Molnár Kata")
    assert utf8.damaged == cp1250.damaged == {}

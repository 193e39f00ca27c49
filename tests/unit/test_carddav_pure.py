"""The carddav source's pure parts: DAV XML, href comparison, what to fetch, decoded cards."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vipexsync.sources import carddav_xml as dav
from vipexsync.sources.carddav_source import (
    StoredCard,
    member_path,
    plan_from_changes,
    plan_from_listing,
)
from vipexsync.sources.vcard import parse_vcards

BOOK = "https://dav.example.hu/dav/alice/contacts/"

# The shape of RFC 6578's example answer: a changed member, a removed one, the token.
SYNC_ANSWER = b"""<?xml version="1.0" encoding="utf-8" ?>
<D:multistatus xmlns:D="DAV:">
  <D:response>
    <D:href>/dav/alice/contacts/new%20one.vcf</D:href>
    <D:propstat>
      <D:prop><D:getetag>"00001-abcd1"</D:getetag></D:prop>
      <D:status>HTTP/1.1 200 OK</D:status>
    </D:propstat>
  </D:response>
  <D:response>
    <D:href>https://dav.example.hu/dav/alice/contacts/gone.vcf</D:href>
    <D:status>HTTP/1.1 404 Not Found</D:status>
  </D:response>
  <D:sync-token>http://example.com/ns/sync/1234</D:sync-token>
</D:multistatus>
"""


def test_a_sync_answer() -> None:
    answer = dav.parse_multistatus(SYNC_ANSWER)
    assert answer.sync_token == "http://example.com/ns/sync/1234"
    changed, gone = answer.responses
    assert changed.status is None
    assert changed.text(dav.GETETAG) == '"00001-abcd1"'
    assert gone.status == 404
    assert member_path(BOOK, changed.href) == "/dav/alice/contacts/new one.vcf"
    assert member_path(BOOK, gone.href) == "/dav/alice/contacts/gone.vcf"


def test_properties_by_status() -> None:
    body = b"""<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><response>
      <href>/dav/alice/contacts/a.vcf</href>
      <propstat><prop><getetag>"1"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat>
      <propstat><prop><C:address-data/></prop><status>HTTP/1.1 403 Forbidden</status></propstat>
    </response></multistatus>"""
    (response,) = dav.parse_multistatus(body).responses
    assert response.text(dav.GETETAG) == '"1"'
    assert response.text(dav.ADDRESS_DATA) is None
    assert response.prop_errors == {dav.ADDRESS_DATA: 403}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (SYNC_ANSWER[: len(SYNC_ANSWER) // 2], "malformed or cut short"),
        (b"", "malformed or cut short"),
        (b"<html><body>502 Bad Gateway</body></html>", "root element is html"),
        (
            b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            b'<multistatus xmlns="DAV:"><response><href>&b;</href></response></multistatus>',
            "document type declaration",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE m SYSTEM "file:///etc/passwd">'
            b'<multistatus xmlns="DAV:"/>',
            "document type declaration",
        ),
        (
            b'<multistatus xmlns="DAV:"><response><status>HTTP/1.1 200 OK</status>'
            b"</response></multistatus>",
            "has no href",
        ),
        (
            b'<multistatus xmlns="DAV:"><response><href>/a</href><status>OK</status>'
            b"</response></multistatus>",
            "not HTTP/1.1 NNN",
        ),
        (
            b'<multistatus xmlns="DAV:"><response><href>/a</href></response></multistatus>',
            "neither a status nor properties",
        ),
    ],
)
def test_unusable_answers(body: bytes, expected: str) -> None:
    with pytest.raises(dav.XmlError, match=expected):
        dav.parse_multistatus(body)


def test_the_reports_a_collection_supports() -> None:
    body = b"""<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
    <D:response><D:href>/dav/alice/contacts/</D:href><D:propstat><D:prop>
      <D:resourcetype><D:collection/><C:addressbook/></D:resourcetype>
      <D:supported-report-set>
        <D:supported-report><D:report><D:sync-collection/></D:report></D:supported-report>
        <D:supported-report><D:report><C:addressbook-multiget/></D:report></D:supported-report>
      </D:supported-report-set>
    </D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"""
    (response,) = dav.parse_multistatus(body).responses
    assert response.children(dav.RESOURCETYPE) == {dav.COLLECTION, dav.ADDRESSBOOK}
    assert dav.supported_reports(response) == {
        dav.SYNC_COLLECTION,
        dav.tag(dav.CARDDAV, "addressbook-multiget"),
    }


def test_error_conditions() -> None:
    refused = b'<D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>'
    assert dav.error_conditions(refused) == {dav.VALID_SYNC_TOKEN}
    assert dav.error_conditions(b"Forbidden") == frozenset()


def test_request_bodies_escape_and_parse_back() -> None:
    hrefs = ["/dav/alice/contacts/a&b.vcf", "/dav/alice/contacts/<x>.vcf"]
    root = dav.parse_xml(dav.multiget_body(hrefs, [dav.GETETAG, dav.ADDRESS_DATA]))
    assert root.tag == dav.tag(dav.CARDDAV, "addressbook-multiget")
    assert [h.text for h in root.iter(dav.tag(dav.DAV, "href"))] == hrefs
    sync = dav.parse_xml(dav.sync_collection_body("tok&1", [dav.GETETAG]))
    assert sync.findtext(dav.SYNC_TOKEN) == "tok&1"
    assert sync.findtext(dav.tag(dav.DAV, "sync-level")) == "1"


def card(etag: str) -> StoredCard:
    return StoredCard(href="x", etag=etag, data="BEGIN:VCARD\r\nEND:VCARD\r\n")


def test_plan_from_a_listing_keeps_only_known_unchanged_cards() -> None:
    previous = {"/a": card('"1"'), "/b": card('"1"'), "/c": card('"1"'), "/e": card("")}
    listing = {
        "/a": ("a", '"1"'),  # unchanged: kept
        "/b": ("b", '"2"'),  # changed: fetched
        "/d": ("d", '"1"'),  # new: fetched
        "/e": ("e", ""),  # no etag to compare: fetched
    }  # /c is gone: dropped
    plan = plan_from_listing(previous, listing)
    assert list(plan.kept) == ["/a"]
    assert plan.fetch == (("/b", "b"), ("/d", "d"), ("/e", "e"))


def test_plan_from_changes() -> None:
    previous = {"/a": card('"1"'), "/b": card('"1"'), "/c": card('"1"')}
    changed = {"/b": ("b", '"2"'), "/d": ("d", '"1"'), "/a": ("a", '"1"')}
    plan = plan_from_changes(previous, changed, frozenset({"/c", "/x"}))
    assert sorted(plan.kept) == ["/a"]  # reported, but its etag is the one kept
    assert plan.fetch == (("/b", "b"), ("/d", "d"))


def test_decoded_cards_honour_charset_only_for_quoted_printable() -> None:
    # What a CardDAV server sends is text: Radicale keeps CHARSET=windows-1250
    # on a value it already decoded, while a server that stores cards as
    # uploaded still has the quoted-printable windows-1250 bytes.
    data = (
        "BEGIN:VCARD\r\nVERSION:2.1\r\n"
        "FN;CHARSET=windows-1250:Tőzsde Árpád\r\n"
        "ORG;CHARSET=windows-1250;ENCODING=QUOTED-PRINTABLE:=DBrhaj=F3 Kft.\r\n"
        "TEL;WORK;VOICE:+36 1 444 5555\r\n"
        "END:VCARD\r\n"
    ).encode()
    (decoded,) = parse_vcards(data, origin="/book/a.vcf", decoded=True)
    assert decoded.fields["fn"] == "Tőzsde Árpád"
    assert decoded.fields["org"] == "Űrhajó Kft."
    assert not decoded.damaged
    # Read as a file's own bytes instead, the same card is mojibake.
    (as_file,) = parse_vcards(data, origin="a.vcf")
    assert as_file.fields["fn"] != "Tőzsde Árpád"


def test_every_truncation_of_an_answer_is_refused() -> None:
    whole = SYNC_ANSWER.rstrip()
    for cut in range(len(whole)):
        with pytest.raises(dav.XmlError):
            dav.parse_multistatus(whole[:cut])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=40), st.integers(min_value=0), st.integers(min_value=0))
def test_mangled_answers_parse_or_raise_xml_error(junk: bytes, at: int, drop: int) -> None:
    """Bytes spliced in or cut out anywhere: a Multistatus or an XmlError, nothing else."""
    at %= len(SYNC_ANSWER)
    mangled = SYNC_ANSWER[:at] + junk + SYNC_ANSWER[at + drop % 30 :]
    try:
        answer = dav.parse_multistatus(mangled)
    except dav.XmlError:
        return
    assert all(response.href for response in answer.responses)

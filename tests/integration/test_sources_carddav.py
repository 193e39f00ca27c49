"""CardDAV source against a real Radicale server: awkward cards, both read paths, failures.

Cards are uploaded over CardDAV (PUT), as a phone or desktop client would,
and read back through sync-collection (RFC 6578) or, forced, the PROPFIND +
addressbook-multiget path (RFC 6352). Radicale stores what vobject makes of
a card: a vCard 2.1 card keeps its CHARSET parameter but is served as UTF-8
text with the quoted-printable decoded, and loses its bare TYPE words; the
expectations below are what a real Radicale serves.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from radicale_server import Corruption, RunningRadicale, forwarding_proxy
from support import self_signed, serve
from vipexsync.config import CarddavSourceConfig, Secret
from vipexsync.errors import SourceError
from vipexsync.sources import SourceRecord, open_source
from vipexsync.sources.carddav_source import CarddavSource, forget_state

# iOS-style 3.0: UTF-8, a folded NOTE, a grouped item1.TEL with its label.
CARD_IPHONE = (
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "PRODID:-//Apple Inc.//iPhone OS 17.0//EN\r\n"
    "N:Kovács;Éva;;Dr.;\r\n"
    "FN:Dr. Kovács Éva\r\n"
    "ORG:Árvíztűrő Tükörfúró Zrt.;Értékesítés\r\n"
    "TEL;TYPE=CELL,VOICE;TYPE=pref:+36 30 123 4567\r\n"
    "item1.TEL;type=WORK:+36 1 999 6000\r\n"
    "item1.X-ABLabel:_$!<Work>!$_\r\n"
    "NOTE:Első sor\\nMásodik sor és egy nagyon hosszú megjegyzés\\, amely több fizik\r\n"
    " ai sorra van hajtva\r\n"
    "UID:ios-3F2504E0\r\n"
    "END:VCARD\r\n"
)

# Outlook 2003-style 2.1: CHARSET=windows-1250 with QUOTED-PRINTABLE and a soft break.
CARD_OUTLOOK = (
    "BEGIN:VCARD\r\n"
    "VERSION:2.1\r\n"
    "N;CHARSET=windows-1250;ENCODING=QUOTED-PRINTABLE:T=F5zsde;=C1rp=E1d\r\n"
    "FN;CHARSET=windows-1250;ENCODING=QUOTED-PRINTABLE:T=F5zsde =C1rp=E1d\r\n"
    "ORG;CHARSET=windows-1250;ENCODING=QUOTED-PRINTABLE:=DBrhaj=F3 Kft.\r\n"
    "NOTE;CHARSET=windows-1250;ENCODING=QUOTED-PRINTABLE:Hossz=FA megjegyz=E9s, t=F6bb=\r\n"
    "sorban\r\n"
    "TEL;WORK;VOICE:+36 1 444 5555\r\n"
    "TEL;CELL:06 20 555 0101\r\n"
    "UID:outlook-0001\r\n"
    "END:VCARD\r\n"
)

# A company with no person's name: N is empty, FN repeats the company.
CARD_COMPANY = (
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "N:;;;;\r\n"
    "FN:Űrhajó Szerviz Bt.\r\n"
    "ORG:Űrhajó Szerviz Bt.\r\n"
    "TEL;TYPE=WORK:+36 1 777 8888\r\n"
    "UID:company-0001\r\n"
    "END:VCARD\r\n"
)

# vCard 4.0 with tel: URIs and a quoted TYPE list.
CARD_40 = (
    "BEGIN:VCARD\r\n"
    "VERSION:4.0\r\n"
    "FN:Őri Ádám\r\n"
    "N:Őri;Ádám;;;\r\n"
    'TEL;VALUE=uri;TYPE="work,voice":tel:+36-1-999-6001\r\n'
    "UID:urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6\r\n"
    "END:VCARD\r\n"
)

CARDS = {
    "iphone.vcf": CARD_IPHONE,
    "outlook.vcf": CARD_OUTLOOK,
    "company.vcf": CARD_COMPANY,
    "adam.vcf": CARD_40,
}


def simple_card(uid: str, name: str, number: str) -> str:
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\nN:{name};;;;\r\n"
        f"TEL;TYPE=CELL:{number}\r\nUID:{uid}\r\nEND:VCARD\r\n"
    )


def config(server: RunningRadicale, book: str, **overrides: object) -> CarddavSourceConfig:
    cfg = CarddavSourceConfig(
        url=book,
        username=server.username,
        password=Secret(server.password),
        allow_http=True,
        timeout_seconds=10,
    )
    return dataclasses.replace(cfg, **overrides)  # type: ignore[arg-type]


def source(server: RunningRadicale, book: str, **overrides: object) -> CarddavSource:
    return CarddavSource(config(server, book, **overrides), attempts=2, backoff_seconds=0.01)


def by_key(records: list[SourceRecord]) -> dict[str, SourceRecord]:
    keyed = {r.key: r for r in records}
    assert len(keyed) == len(records), [r.key for r in records]
    return keyed


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    forget_state()
    yield
    forget_state()


@pytest.fixture
def book(radicale: RunningRadicale) -> str:
    url = radicale.make_book()
    for name, card in CARDS.items():
        radicale.put(url, name, card)
    return url


@pytest.mark.parametrize("sync_collection", [True, False], ids=["sync-collection", "propfind"])
def test_awkward_cards_read_from_radicale(
    radicale: RunningRadicale, book: str, sync_collection: bool
) -> None:
    reader = source(radicale, book, sync_collection=sync_collection, batch_size=3)
    records = by_key(list(reader.read()))

    assert set(records) == {
        "ios-3F2504E0",
        "outlook-0001",
        "company-0001",
        "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    }
    eva = records["ios-3F2504E0"].fields
    assert eva["fn"] == "Dr. Kovács Éva"
    assert eva["org"] == "Árvíztűrő Tükörfúró Zrt."
    assert eva["tel_cell"] == "+36 30 123 4567"
    assert eva["tel_work"] == "+36 1 999 6000"  # the grouped item1.TEL
    assert eva["note"].endswith("amely több fizikai sorra van hajtva")  # unfolded
    outlook = records["outlook-0001"].fields
    assert outlook["fn"] == "Tőzsde Árpád"  # windows-1250 QP, served by Radicale as UTF-8
    assert outlook["last_name"] == "Tőzsde"
    assert outlook["org"] == "Űrhajó Kft."
    assert {outlook["tel1"], outlook["tel2"]} == {"+36 1 444 5555", "06 20 555 0101"}
    company = records["company-0001"].fields
    assert company["n"] == ""
    assert company["org"] == "Űrhajó Szerviz Bt."
    assert company["tel_work"] == "+36 1 777 8888"
    adam = records["urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"].fields
    assert adam["tel_work"] == "+36-1-999-6001"
    assert "/company.vcf card 1 (line 1, 'Űrhajó Szerviz Bt.')" in records["company-0001"].locator
    # Every voice number, the grouped one included (the default phone field).
    assert eva["tel_voice"].splitlines() == ["+36 30 123 4567", "+36 1 999 6000"]

    # Which protocol path ran: the listing, then two multiget batches of <= 3.
    listing = "sync-collection REPORT" if sync_collection else "PROPFIND listing"
    assert reader.requests[listing] == 1
    assert reader.requests["addressbook-multiget"] == 2
    assert reader.cards_fetched == 4
    other = "PROPFIND listing" if sync_collection else "sync-collection REPORT"
    assert reader.requests[other] == 0


def test_a_card_without_the_key_property_is_keyed_by_its_href(
    radicale: RunningRadicale, book: str
) -> None:
    # Radicale refuses a card without UID, so the key here is a property that
    # only some cards carry; the others fall back to their resource's path.
    radicale.put(
        book,
        "crm.vcf",
        simple_card("crm-uid", "Ügyfél", "+36 1 222 3333").replace(
            "UID:", "X-CRM-ID:crm-42\r\nUID:"
        ),
    )
    records = list(source(radicale, book, key="X-CRM-ID").read())
    keys = sorted(r.key for r in records)
    assert "crm-42" in keys
    path = book.split("127.0.0.1", 1)[1].split("/", 1)[1]
    assert f"href:/{path}company.vcf" in keys
    assert len(keys) == 5
    rules = {r.key: r.key_rule for r in records}
    assert "path on the server" not in rules["crm-42"]  # the configured key
    assert (
        rules[f"href:/{path}company.vcf"] == "the card's path on the server (card has no X-CRM-ID)"
    )


@pytest.mark.parametrize("sync_collection", [True, False], ids=["sync-collection", "propfind"])
def test_a_later_read_sees_added_changed_and_deleted_cards(
    radicale: RunningRadicale, book: str, sync_collection: bool
) -> None:
    first = source(radicale, book, sync_collection=sync_collection)
    assert len(list(first.read())) == 4

    radicale.put(book, "new.vcf", simple_card("new-1", "Új Ügyfél", "+36 1 111 2222"))
    radicale.put(book, "company.vcf", CARD_COMPANY.replace("+36 1 777 8888", "+36 1 777 9999"))
    radicale.delete(book, "adam.vcf")

    second = source(radicale, book, sync_collection=sync_collection)
    records = by_key(list(second.read()))
    assert set(records) == {"ios-3F2504E0", "outlook-0001", "company-0001", "new-1"}
    assert records["company-0001"].fields["tel_work"] == "+36 1 777 9999"
    assert records["new-1"].fields["tel_cell"] == "+36 1 111 2222"
    # Only what changed was downloaded again.
    assert second.cards_fetched == 2

    third = source(radicale, book, sync_collection=sync_collection)
    assert len(list(third.read())) == 4
    assert third.cards_fetched == 0

    # A full resync trusts nothing kept from earlier reads.
    full = CarddavSource(config(radicale, book, sync_collection=sync_collection), full=True)
    assert len(list(full.read())) == 4
    assert full.cards_fetched == 4


def test_an_expired_sync_token_means_a_full_read(radicale: RunningRadicale, book: str) -> None:
    assert len(list(source(radicale, book).read())) == 4
    radicale.put(book, "new.vcf", simple_card("new-1", "Új Ügyfél", "+36 1 111 2222"))
    # Radicale forgets the tokens it handed out (as any server may): the kept
    # token is then refused with 403 valid-sync-token.
    name = book.rstrip("/").rsplit("/", 1)[1]
    tokens = radicale.folder / "storage" / "collection-root" / radicale.username / name
    shutil.rmtree(tokens / ".Radicale.cache" / "sync-token")

    reader = source(radicale, book)
    records = by_key(list(reader.read()))
    assert len(records) == 5
    assert reader.requests["sync-collection REPORT"] == 2  # refused, then from scratch
    assert reader.cards_fetched == 1  # the etags still matched for the others


def test_wrong_password_names_the_url_not_the_password(
    radicale: RunningRadicale, book: str
) -> None:
    wrong = "Rossz-jelszó-9911"
    with pytest.raises(SourceError) as caught:
        list(source(radicale, book, password=Secret(wrong)).read())
    message = str(caught.value)
    assert book in message
    assert "HTTP 401" in message
    assert "password_file" in message
    assert wrong not in message
    assert radicale.password not in message


def test_a_url_that_is_not_an_address_book(radicale: RunningRadicale, book: str) -> None:
    principal = book.rstrip("/").rsplit("/", 1)[0] + "/"
    with pytest.raises(SourceError, match="is not an address book"):
        list(source(radicale, principal).read())
    with pytest.raises(SourceError, match="HTTP 404"):
        list(source(radicale, f"{principal}no-such-book/").read())


def test_open_source_dispatches_carddav(radicale: RunningRadicale, book: str) -> None:
    reader = open_source(config(radicale, book))
    assert reader.description == f"carddav address book {book}"
    assert len(list(reader.read())) == 4


def test_a_card_deleted_mid_read_fails_the_read(radicale: RunningRadicale, book: str) -> None:
    # One card per multiget: the listing names adam.vcf, which is then deleted
    # before its multiget; Radicale answers 207 with 404 for that href.
    reader = source(radicale, book, batch_size=1, sync_collection=False)
    records = reader.read()
    first = next(records)
    assert "/adam.vcf card 1" in first.locator
    radicale.delete(book, "outlook.vcf")
    with pytest.raises(SourceError, match=r"HTTP 404 for .*outlook\.vcf"):
        list(records)
    # Nothing was kept from the failed read: the next one starts from scratch.
    again = source(radicale, book)
    assert len(list(again.read())) == 3
    assert again.cards_fetched == 3


def test_server_stopped_mid_read(tmp_path: Path) -> None:
    from radicale_server import RadicaleUnavailable, start_radicale

    try:
        context = start_radicale(tmp_path / "radicale", "bob", "bob-jelszó")
        server = context.__enter__()
    except RadicaleUnavailable as exc:
        pytest.skip(f"Radicale cannot start here: {exc}")
    try:
        url = server.make_book()
        for name, card in CARDS.items():
            server.put(url, name, card)
        records = source(server, url, batch_size=1).read()
        next(records)
        server.stop()
        with pytest.raises(SourceError) as caught:
            list(records)
        message = str(caught.value)
        assert "addressbook-multiget" in message
        assert "connection" in message
        assert "after 2 attempts" in message
        assert "bob-jelszó" not in message
    finally:
        context.__exit__(None, None, None)


# -- a proxy in front of Radicale that breaks its answers -----------------------------


def _drop_first_response(body: bytes) -> bytes:
    return re.sub(rb"<response>.*?</response>", b"", body, count=1, flags=re.S)


def _no_card_data(body: bytes) -> bytes:
    return re.sub(rb"<CR:address-data>.*?</CR:address-data>", b"", body, count=1, flags=re.S)


def _with_entity(body: bytes) -> bytes:
    return body.replace(b"<multistatus", b'<!DOCTYPE m [<!ENTITY x "y">]><multistatus', 1)


BROKEN_MULTIGET: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "truncated XML": (lambda body: body[: len(body) // 2], "malformed or cut short"),
    "no card data": (_no_card_data, "returned no card data for"),
    "an error status for one card": (
        lambda body: body.replace(b"HTTP/1.1 200 OK", b"HTTP/1.1 500 Internal Server Error", 1),
        r"returned no card data for .* \(HTTP 500\)",
    ),
    "a card left out": (_drop_first_response, "did not return"),
    "a DTD with an entity": (_with_entity, "document type declaration"),
    "an HTML page": (lambda body: b"<html><body>Maintenance</body></html>", "root element is html"),
}


def only(kind: bytes, change: Callable[[bytes], bytes]) -> Corruption:
    """Change the answers to requests whose body names ``kind``; pass the rest."""

    def corrupt(method: str, request: bytes, status: int, body: bytes) -> tuple[int, bytes]:
        return (status, change(body)) if kind in request else (status, body)

    return corrupt


@pytest.mark.parametrize("case", list(BROKEN_MULTIGET), ids=list(BROKEN_MULTIGET))
@pytest.mark.parametrize("sync_collection", [True, False], ids=["sync-collection", "propfind"])
def test_a_broken_multiget_answer_fails_the_read(
    radicale: RunningRadicale, book: str, case: str, sync_collection: bool
) -> None:
    change, expected = BROKEN_MULTIGET[case]
    with serve(forwarding_proxy(radicale.url, only(b"addressbook-multiget", change))) as proxy:
        url = proxy + book.removeprefix(radicale.url)
        with pytest.raises(SourceError, match=expected) as caught:
            list(source(radicale, url, sync_collection=sync_collection).read())
    assert radicale.password not in str(caught.value)


def test_a_sync_answer_without_its_token_fails_the_read(
    radicale: RunningRadicale, book: str
) -> None:
    drop_token = only(
        b"sync-collection", lambda b: re.sub(rb"<sync-token>.*?</sync-token>", b"", b)
    )
    with serve(forwarding_proxy(radicale.url, drop_token)) as proxy:
        url = proxy + book.removeprefix(radicale.url)
        with pytest.raises(SourceError, match="carries no sync-token"):
            list(source(radicale, url).read())


def test_server_errors_are_retried_then_fail_the_read(radicale: RunningRadicale, book: str) -> None:
    answers = iter([503, 200, 502, 502])

    def flaky(method: str, request: bytes, status: int, body: bytes) -> tuple[int, bytes]:
        if method == "PROPFIND":
            return status, body
        failed = next(answers, 200)
        return (status, body) if failed == 200 else (failed, b"")

    with serve(forwarding_proxy(radicale.url, flaky)) as proxy:
        url = proxy + book.removeprefix(radicale.url)
        # sync-collection: 503 then served; multiget: 502 twice (both attempts)
        with pytest.raises(SourceError, match=r"HTTP 502 \(after 2 attempts\)"):
            list(source(radicale, url).read())
        # the next read succeeds once the server is well again
        assert len(list(source(radicale, url).read())) == 4


def test_a_redirect_is_refused_and_named(radicale: RunningRadicale, book: str) -> None:
    def moved(method: str, request: bytes, status: int, body: bytes) -> tuple[int, bytes]:
        return 301, b""

    with serve(forwarding_proxy(radicale.url, moved)) as proxy:
        url = proxy + book.removeprefix(radicale.url)
        with pytest.raises(SourceError, match=r"redirected the PROPFIND .*\(HTTP 301\)"):
            list(source(radicale, url).read())


class PagingSync:
    """Makes Radicale's sync-collection answer look paged (RFC 6578 section 3.6).

    The first answer to an empty token holds the first ``first`` members, a
    507 for the collection and a token of the proxy's own. Asked again with
    that token, the proxy asks Radicale afresh (an empty token) and returns
    the remaining members with Radicale's real token. ``stuck`` answers with
    the proxy's token and a 507 for ever instead.
    """

    TOKEN = b"http://proxy.invalid/page-2"
    _TOKEN_ELEMENT = rb"<(\w+:)?sync-token>(.*?)</(\w+:)?sync-token>"

    def __init__(self, book: str, first: int, *, stuck: bool = False) -> None:
        self.collection = urllib.parse.urlsplit(book).path.encode()
        self.first = first
        self.stuck = stuck
        self.asked: list[bytes] = []

    def request(self, body: bytes) -> bytes:
        if b"sync-collection" not in body:
            return body
        token = re.search(self._TOKEN_ELEMENT, body)
        self.asked.append(token.group(2) if token else b"")
        return body.replace(self.TOKEN, b"")

    def __call__(self, method: str, request: bytes, status: int, body: bytes) -> tuple[int, bytes]:
        if b"sync-collection" not in request:
            return status, body
        members = re.findall(rb"<response>.*?</response>", body, flags=re.S)
        head = body.partition(b"<response>")[0].removesuffix(b"</multistatus>")
        if self.asked[-1] == b"" or self.stuck:
            truncated = b"<response><href>" + self.collection + b"</href>"
            truncated += b"<status>HTTP/1.1 507 Insufficient Storage</status></response>"
            own = b"<sync-token>" + self.TOKEN + b"</sync-token>"
            head = re.sub(rb"<sync-token>.*?</sync-token>", own, head)
            page = b"".join(members[: self.first]) + truncated
        else:
            page = b"".join(members[self.first :])
        return status, head + page + b"</multistatus>"


def test_a_paged_sync_answer_is_followed_to_its_end(radicale: RunningRadicale, book: str) -> None:
    paging = PagingSync(book, first=1)
    with serve(forwarding_proxy(radicale.url, paging, paging.request)) as proxy:
        url = proxy + book.removeprefix(radicale.url)
        reader = source(radicale, url)
        records = list(reader.read())
    assert len(records) == 4
    assert paging.asked == [b"", PagingSync.TOKEN]
    assert reader.requests["sync-collection REPORT"] == 2


def test_a_sync_that_never_ends_fails_the_read(radicale: RunningRadicale, book: str) -> None:
    paging = PagingSync(book, first=1, stuck=True)
    with serve(forwarding_proxy(radicale.url, paging, paging.request)) as proxy:
        url = proxy + book.removeprefix(radicale.url)
        with pytest.raises(SourceError, match="returned the same sync-token again"):
            list(source(radicale, url).read())


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_with_a_private_ca(tmp_path: Path) -> None:
    from radicale_server import RadicaleUnavailable, start_radicale

    cert, key = self_signed(tmp_path, "radicale")
    try:
        context = start_radicale(tmp_path / "radicale", "bob", "bob-jelszó", tls=(cert, key))
        server = context.__enter__()
    except RadicaleUnavailable as exc:
        pytest.skip(f"Radicale cannot start here: {exc}")
    try:
        url = server.make_book()
        assert url.startswith("https://")
        server.put(url, "company.vcf", CARD_COMPANY)
        trusted = source(server, url, allow_http=False, ca_bundle=cert)
        assert [r.key for r in trusted.read()] == ["company-0001"]
        with pytest.raises(SourceError, match="TLS handshake or certificate check failed"):
            list(source(server, url, allow_http=False).read())
        unverified = source(server, url, allow_http=False, verify_tls=False)
        assert [r.key for r in unverified.read()] == ["company-0001"]
    finally:
        context.__exit__(None, None, None)

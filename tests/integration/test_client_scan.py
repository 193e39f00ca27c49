"""scan_phonebook: the listing's pages and verdict, each row converted as it arrives."""

from __future__ import annotations

from typing import Any

import pytest

from vipexsync.vipex import RetryPolicy, VipexClient
from vipexsync.vipex.listing import assemble_listing, assemble_rows
from vipexsync.vipex.models import ListMetadata, PhonebookEntry, PhonebookPage

PHONEBOOK = "1643897"
QUICK = RetryPolicy(deadline_seconds=5.0, max_attempts=2, initial_backoff=0.01, max_backoff=0.02)


def _client(emulator: Any) -> VipexClient:
    return VipexClient(
        emulator.url, emulator.username, emulator.password, concurrency=4, retry=QUICK
    )


@pytest.mark.parametrize("concurrent", [True, False])
def test_a_scan_equals_the_listing_with_rows_converted(emulator: Any, concurrent: bool) -> None:
    for i in range(650):
        emulator.state.put_entry(PHONEBOOK, str(36300000000 + i), f"Ügyfél {i}", ["crm-sync"])
    seen: list[tuple[int, int]] = []
    with _client(emulator) as client:
        listing = client.get_phonebook_list(PHONEBOOK, concurrent=concurrent)
        calls = client.request_count
        scan = client.scan_phonebook(
            PHONEBOOK,
            lambda e: e.name,
            progress=lambda done, full: seen.append((done, full)),
            concurrent=concurrent,
        )
        assert client.request_count == 2 * calls  # the same pages, once each
    assert scan.stable, scan.problems
    assert (scan.full_count, scan.pages, scan.problems) == (
        listing.full_count,
        listing.pages,
        listing.problems,
    )
    assert list(scan.rows.items()) == [(e.phonenumber, e.name) for e in listing.entries]
    assert seen[-1] == (listing.full_count, listing.full_count)


def _page(offset: int, numbers: list[str], full_count: int) -> tuple[int, PhonebookPage]:
    entries = tuple(PhonebookEntry(n, f"name {n} @{offset}", (), "") for n in numbers)
    meta = ListMetadata(200, full_count, len(entries), offset, offset + len(entries) - 1)
    return offset, PhonebookPage(entries, meta)


def test_converted_rows_get_the_listing_verdict_on_shifted_pages() -> None:
    # A shift while paging: one number on two pages, one row lost, a count changed.
    first = [str(3610000000 + i) for i in range(200)]
    second = [first[-1]] + [str(3610000200 + i) for i in range(150)]
    pages = [_page(200, second, 352), _page(0, first, 351)]
    listing = assemble_listing(pages, 200)
    rows, full_count, problems = assemble_rows(
        [(o, p.metadata, p.entries, [e.name for e in p.entries]) for o, p in pages],
        200,
        number=lambda e: e.phonenumber,
    )
    assert not listing.stable
    assert problems == listing.problems
    assert full_count == listing.full_count
    assert list(rows.items()) == [(e.phonenumber, e.name) for e in listing.entries]
    assert rows[first[-1]].endswith("@0")  # the first page's row wins, as in the listing

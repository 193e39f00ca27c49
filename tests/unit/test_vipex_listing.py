"""The verdict on a paged phonebook listing (pure)."""

from __future__ import annotations

from vipexsync.vipex.listing import assemble_listing, effective_page_size, page_offsets
from vipexsync.vipex.models import ListMetadata, PhonebookEntry, PhonebookPage


def page(offset: int, numbers: list[str], full_count: int) -> tuple[int, PhonebookPage]:
    entries = tuple(PhonebookEntry(n, f"name {n}", (), "") for n in numbers)
    meta = ListMetadata(200, full_count, len(entries), offset, offset + len(entries) - 1)
    return offset, PhonebookPage(entries, meta)


def numbers(start: int, count: int) -> list[str]:
    return [str(3610000000 + i) for i in range(start, start + count)]


def test_offsets_cover_the_rest_after_the_first_page() -> None:
    assert list(page_offsets(450, 200)) == [200, 400]
    assert list(page_offsets(400, 200)) == [200]
    assert list(page_offsets(200, 200)) == []
    assert list(page_offsets(0, 200)) == []
    assert effective_page_size(200, 200) == 200
    assert effective_page_size(200, 50) == 50
    assert effective_page_size(200, 0) == 200


def test_a_consistent_listing_is_stable_and_ordered_by_offset() -> None:
    pages = [page(400, numbers(400, 50), 450), page(0, numbers(0, 200), 450)]
    pages.append(page(200, numbers(200, 200), 450))
    listing = assemble_listing(pages, 200)
    assert listing.stable
    assert listing.problems == ()
    assert listing.full_count == 450
    assert listing.pages == 3
    assert [e.phonenumber for e in listing.entries] == numbers(0, 450)


def test_a_changed_full_count_is_unstable() -> None:
    listing = assemble_listing(
        [page(0, numbers(0, 200), 300), page(200, numbers(200, 100), 301)], 200
    )
    assert not listing.stable
    assert any("full_count changed" in p for p in listing.problems)


def test_duplicates_are_reported_and_kept_once() -> None:
    listing = assemble_listing(
        [page(0, numbers(0, 200), 400), page(200, numbers(199, 200), 400)], 200
    )
    assert not listing.stable
    assert any("repeated a phone number" in p and "3610000199" in p for p in listing.problems)
    assert len(listing.entries) == 399
    assert len({e.phonenumber for e in listing.entries}) == 399


def test_short_and_oversized_pages_are_unstable() -> None:
    short = assemble_listing([page(0, numbers(0, 200), 300), page(200, numbers(200, 90), 300)], 200)
    assert not short.stable
    assert any("read 290 rows but full_count is 300" in p for p in short.problems)
    big = assemble_listing([page(0, numbers(0, 3), 3)], 2)
    assert not big.stable
    assert any("more than the 2 asked for" in p for p in big.problems)


def test_list_count_disagreeing_with_rows_is_unstable() -> None:
    offset, first = page(0, numbers(0, 2), 2)
    lying = PhonebookPage(first.entries, ListMetadata(200, 2, 3, 0, 2))
    listing = assemble_listing([(offset, lying)], 200)
    assert not listing.stable
    assert any("list_count 3" in p for p in listing.problems)


def test_no_pages_is_unstable() -> None:
    assert not assemble_listing([], 200).stable

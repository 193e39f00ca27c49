"""Judging a phonebook read page by page: is it a trustworthy picture?

VIPeX gives no snapshot: rows shift between pages when entries are added or
deleted while a client pages through. A listing is only called stable when
nothing betrays such a shift; the sync engine deletes nothing on an unstable
one. Pure: pages in, a verdict out.
"""

from __future__ import annotations

from collections.abc import Sequence

from vipexsync.vipex.models import PhonebookEntry, PhonebookListing, PhonebookPage
from vipexsync.wire import MAX_QUERYABLE_ROWS


def page_offsets(full_count: int, page_size: int) -> range:
    """The offsets of the pages after the first one."""
    return range(page_size, max(full_count, 0), max(page_size, 1))


def effective_page_size(requested: int, max_queryable_rows: int) -> int:
    """The page size the server will honour: never above its cap."""
    cap = max_queryable_rows if max_queryable_rows > 0 else MAX_QUERYABLE_ROWS
    return max(1, min(requested, cap))


def assemble_listing(
    pages: Sequence[tuple[int, PhonebookPage]], page_size: int
) -> PhonebookListing:
    """Join pages (each with the offset it was asked for) into one listing.

    Stable only if every page reports the first page's ``full_count``, no page
    is larger than asked, each page holds as many rows as its metadata says, no
    phone number appears twice, and the rows add up to ``full_count``.
    Duplicates are kept once (the first seen) so the caller still gets a map.
    """
    ordered = sorted(pages, key=lambda pair: pair[0])
    if not ordered:
        return PhonebookListing(
            entries=(), full_count=0, pages=0, stable=False, problems=("no page was read",)
        )
    full_count = ordered[0][1].metadata.full_count
    problems: list[str] = []
    entries: list[PhonebookEntry] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    rows = 0
    for offset, page in ordered:
        meta = page.metadata
        if meta.full_count != full_count:
            problems.append(
                f"full_count changed while paging: {full_count} on the first page, "
                f"{meta.full_count} at offset {offset}"
            )
        if len(page.entries) > page_size:
            problems.append(
                f"the page at offset {offset} held {len(page.entries)} rows, more than the "
                f"{page_size} asked for"
            )
        if meta.list_count != len(page.entries):
            problems.append(
                f"the page at offset {offset} said list_count {meta.list_count} "
                f"but held {len(page.entries)} rows"
            )
        for entry in page.entries:
            rows += 1
            if entry.phonenumber in seen:
                duplicates.append(entry.phonenumber)
                continue
            seen.add(entry.phonenumber)
            entries.append(entry)
    if duplicates:
        shown = ", ".join(sorted(set(duplicates))[:5])
        more = "" if len(set(duplicates)) <= 5 else f" and {len(set(duplicates)) - 5} more"
        problems.append(
            f"{len(duplicates)} rows repeated a phone number seen on another page "
            f"({shown}{more}): rows shifted while paging"
        )
    if rows != full_count:
        problems.append(f"read {rows} rows but full_count is {full_count}")
    return PhonebookListing(
        entries=tuple(entries),
        full_count=full_count,
        pages=len(ordered),
        stable=not problems,
        problems=tuple(problems),
    )

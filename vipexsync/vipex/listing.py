"""Judging a phonebook read page by page: is it a trustworthy picture?

VIPeX gives no snapshot: rows shift between pages when entries are added or
deleted while a client pages through. A listing is only called stable when
nothing betrays such a shift; the sync engine deletes nothing on an unstable
one. Pure: pages in, a verdict out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from vipexsync.vipex.models import ListMetadata, PhonebookEntry, PhonebookListing, PhonebookPage
from vipexsync.wire import MAX_QUERYABLE_ROWS

_K = TypeVar("_K")
_T = TypeVar("_T")


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
    rows, full_count, problems = assemble_rows(
        [(offset, page.metadata, page.entries, page.entries) for offset, page in pages],
        page_size,
        number=_number,
    )
    return PhonebookListing(
        entries=tuple(rows.values()),
        full_count=full_count,
        pages=len(pages),
        stable=not problems,
        problems=problems,
    )


def _number(entry: PhonebookEntry) -> str:
    return entry.phonenumber


def assemble_rows(
    pages: Sequence[tuple[int, ListMetadata, Sequence[_K], Sequence[_T]]],
    page_size: int,
    *,
    number: Callable[[_K], str],
) -> tuple[dict[str, _T], int, tuple[str, ...]]:
    """:func:`assemble_listing` over already converted rows.

    Each page is ``(offset, metadata, keys, values)``: ``number(key)`` is a
    row's phone number and ``values`` what the caller keeps of each row.
    Returns the values by number (the first seen, in offset order), the first
    page's ``full_count`` and the problems (none: the listing is stable).
    """
    ordered = sorted(pages, key=lambda page: page[0])
    if not ordered:
        return {}, 0, ("no page was read",)
    full_count = ordered[0][1].full_count
    problems: list[str] = []
    kept: dict[str, _T] = {}
    duplicates: list[str] = []
    rows = 0
    for offset, meta, keys, values in ordered:
        if meta.full_count != full_count:
            problems.append(
                f"full_count changed while paging: {full_count} on the first page, "
                f"{meta.full_count} at offset {offset}"
            )
        if len(keys) > page_size:
            problems.append(
                f"the page at offset {offset} held {len(keys)} rows, more than the "
                f"{page_size} asked for"
            )
        if meta.list_count != len(keys):
            problems.append(
                f"the page at offset {offset} said list_count {meta.list_count} "
                f"but held {len(keys)} rows"
            )
        for key, value in zip(keys, values, strict=True):
            rows += 1
            phonenumber = number(key)
            if phonenumber in kept:
                duplicates.append(phonenumber)
                continue
            kept[phonenumber] = value
    if duplicates:
        shown = ", ".join(sorted(set(duplicates))[:5])
        more = "" if len(set(duplicates)) <= 5 else f" and {len(set(duplicates)) - 5} more"
        problems.append(
            f"{len(duplicates)} rows repeated a phone number seen on another page "
            f"({shown}{more}): rows shifted while paging"
        )
    if rows != full_count:
        problems.append(f"read {rows} rows but full_count is {full_count}")
    return kept, full_count, tuple(problems)

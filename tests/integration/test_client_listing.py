"""Reading a large phonebook page by page, concurrently, and judging the result."""

from __future__ import annotations

from typing import Any

import pytest

from vipexsync.errors import ServerError
from vipexsync.vipex import RetryPolicy, VipexClient

PHONEBOOK = "1643897"
ADDED = 3000
EXAMPLE_ROWS = 18
QUICK = RetryPolicy(deadline_seconds=5.0, max_attempts=2, initial_backoff=0.01, max_backoff=0.02)


def no_sleep(_seconds: float) -> None:
    """No real backoff in tests."""


def fill(emulator: Any, count: int) -> None:
    for i in range(count):
        emulator.state.put_entry(PHONEBOOK, str(36300000000 + i), f"Ügyfél {i}", ["crm-sync"])


def client_for(emulator: Any, concurrency: int = 4) -> VipexClient:
    return VipexClient(
        emulator.url,
        emulator.username,
        emulator.password,
        concurrency=concurrency,
        retry=QUICK,
        sleep=no_sleep,
    )


@pytest.mark.parametrize("concurrent", [True, False])
def test_a_few_thousand_entries_are_listed_completely(emulator: Any, concurrent: bool) -> None:
    fill(emulator, ADDED)
    total = ADDED + EXAMPLE_ROWS
    seen: list[tuple[int, int]] = []
    with client_for(emulator) as client:
        listing = client.get_phonebook_list(
            PHONEBOOK, progress=lambda done, full: seen.append((done, full)), concurrent=concurrent
        )
        pages = -(-total // 200)
        assert client.request_count == pages
    assert listing.stable, listing.problems
    assert listing.full_count == total
    assert listing.pages == pages
    assert [e.phonenumber for e in listing.entries] == [
        str(e["phonenumber"]) for e in emulator.state.entries(PHONEBOOK)
    ]
    assert len({e.phonenumber for e in listing.entries}) == total
    assert seen[0] == (200, total)
    assert seen[-1] == (total, total)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert len(seen) == pages


def test_rows_shifting_under_the_pager_make_the_listing_unstable(emulator: Any) -> None:
    fill(emulator, 600)
    emulator.faults.page_shift = 2
    with client_for(emulator) as client:
        listing = client.get_phonebook_list(PHONEBOOK)
    assert not listing.stable
    assert any("full_count changed" in problem for problem in listing.problems)
    assert any("repeated a phone number" in problem for problem in listing.problems)


def test_a_page_that_keeps_failing_raises(emulator: Any) -> None:
    fill(emulator, 1000)

    def break_after_first_page(_done: int, _full: int) -> None:
        emulator.faults.error_rate = 1.0

    with client_for(emulator) as client, pytest.raises(ServerError):
        client.get_phonebook_list(PHONEBOOK, progress=break_after_first_page)


def test_an_empty_phonebook_is_one_stable_page(emulator: Any) -> None:
    emulator.state.add_subscription("5550000")
    with client_for(emulator) as client:
        listing = client.get_phonebook_list("5550000")
        assert client.request_count == 1
    assert listing.stable
    assert listing.entries == ()
    assert listing.full_count == 0


def test_one_client_is_safe_to_share_between_threads(emulator: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    numbers = [str(36400000000 + i) for i in range(120)]
    with client_for(emulator, concurrency=8) as client, ThreadPoolExecutor(8) as pool:

        def write(number: str) -> None:
            client.set_phonebook_entry(
                PHONEBOOK,
                number,
                name=f"Szál {number}",
                tags=[],
                comment="",
                custom_field_options=[],
            )

        list(pool.map(write, numbers))
        assert client.request_count == len(numbers)
    stored = {str(e["phonenumber"]) for e in emulator.state.entries(PHONEBOOK)}
    assert set(numbers) <= stored

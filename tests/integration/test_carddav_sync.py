"""A job whose source is a real Radicale address book, synced into the emulator.

The job reads Radicale through a forwarding proxy, so a test can break the
read half-way (a multiget answer cut short) or take the server away, and
then check that the run deleted nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from radicale_server import PASSWORD as RADICALE_PASSWORD
from radicale_server import RunningRadicale, forwarding_proxy, vcard, write_job_config
from support import serve, serve_empty_vipex
from vipexsync.config import load_config
from vipexsync.emulator.server import RunningEmulator
from vipexsync.runtime import Runtime
from vipexsync.sources.carddav_source import forget_state
from vipexsync.sync.model import Mode
from vipexsync.sync.report import Outcome, RunReport
from vipexsync.sync.runner import RunOptions

VIPEX_ID = "1643897"


class Breakage:
    """What the proxy does to multiget answers right now (nothing by default)."""

    cut_multiget = False

    def __call__(self, method: str, request: bytes, status: int, body: bytes) -> tuple[int, bytes]:
        if self.cut_multiget and b"addressbook-multiget" in request:
            return status, body[: len(body) // 2]
        return status, body


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    forget_state()
    yield
    forget_state()


def numbers(vipex: RunningEmulator) -> dict[str, str]:
    return {str(e["phonenumber"]): str(e["name"]) for e in vipex.state.entries(VIPEX_ID)}


def run(runtime: Runtime, mode: Mode) -> RunReport:
    config = runtime.config
    return runtime.run_job(config.jobs[0], RunOptions(mode=mode))


def test_radicale_address_book_synced_end_to_end(radicale: RunningRadicale, tmp_path: Path) -> None:
    book = radicale.make_book()
    radicale.put(book, "a.vcf", vcard("a", "Alfa Anna", "+36 30 111 1111", "+36 1 111 2222"))
    radicale.put(book, "b.vcf", vcard("b", "Béta Béla", "+36 30 222 2222"))
    radicale.put(book, "c.vcf", vcard("c", "Céh Kft.", "+36 1 333 3333"))
    breakage = Breakage()
    with ExitStack() as stack:
        vipex = stack.enter_context(serve_empty_vipex(VIPEX_ID))
        proxy = stack.enter_context(serve(forwarding_proxy(radicale.url, breakage)))
        dav = proxy + book.removeprefix(radicale.url)
        config = load_config(write_job_config(tmp_path, vipex, dav))
        runtime = stack.enter_context(Runtime(config))

        first = run(runtime, Mode.FULL)
        assert first.outcome is Outcome.SUCCESS, first.error
        assert first.source_records == 3
        assert sorted(numbers(vipex).values()) == [
            "Alfa Anna",
            "Alfa Anna",
            "Béta Béla",
            "Céh Kft.",
        ]
        before = numbers(vipex)

        # A card added, one changed, one deleted: an incremental run in the
        # same process reads only the changes and applies them.
        radicale.put(book, "d.vcf", vcard("d", "Delta Dóra", "+36 30 444 4444"))
        radicale.put(book, "b.vcf", vcard("b", "Béta Béla", "+36 30 222 9999"))
        radicale.delete(book, "c.vcf")
        second = run(runtime, Mode.INCREMENTAL)
        assert second.outcome is Outcome.SUCCESS, second.error
        assert second.source_records == 3
        after = numbers(vipex)
        assert sorted(after.values()) == ["Alfa Anna", "Alfa Anna", "Béta Béla", "Delta Dóra"]
        assert len(set(before) & set(after)) == 2  # Anna's two numbers stayed

        # The read is cut short half-way: the run fails and deletes nothing,
        # although a card is gone from the address book.
        radicale.delete(book, "a.vcf")
        radicale.put(book, "e.vcf", vcard("e", "Epszilon Emil", "+36 30 555 5555"))
        breakage.cut_multiget = True
        broken = run(runtime, Mode.INCREMENTAL)
        assert broken.outcome is Outcome.FAILURE
        assert broken.error is not None
        assert "malformed or cut short" in broken.error
        assert RADICALE_PASSWORD not in broken.error
        assert numbers(vipex) == after

        # Once the answers are whole again, the next run catches up.
        breakage.cut_multiget = False
        healed = run(runtime, Mode.INCREMENTAL)
        assert healed.outcome is Outcome.SUCCESS, healed.error
        assert sorted(numbers(vipex).values()) == ["Béta Béla", "Delta Dóra", "Epszilon Emil"]


def test_a_server_that_went_away_deletes_nothing(radicale: RunningRadicale, tmp_path: Path) -> None:
    book = radicale.make_book()
    radicale.put(book, "a.vcf", vcard("a", "Alfa Anna", "+36 30 111 1111"))
    radicale.put(book, "b.vcf", vcard("b", "Béta Béla", "+36 30 222 2222"))
    with serve_empty_vipex(VIPEX_ID) as vipex:
        with serve(forwarding_proxy(radicale.url, Breakage())) as proxy:
            dav = proxy + book.removeprefix(radicale.url)
            config = load_config(write_job_config(tmp_path, vipex, dav))
            with Runtime(config) as runtime:
                assert run(runtime, Mode.FULL).outcome is Outcome.SUCCESS
        synced = numbers(vipex)
        assert len(synced) == 2
        radicale.delete(book, "a.vcf")
        # The proxy is stopped: the CardDAV server refuses connections.
        with Runtime(config) as runtime:
            report = run(runtime, Mode.FULL)
        assert report.outcome is Outcome.FAILURE
        assert report.error is not None
        assert "connection lost or refused" in report.error
        assert dav in report.error
        assert numbers(vipex) == synced

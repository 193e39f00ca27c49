"""`[vipex] concurrency` caps the requests in flight for the whole process.

Several jobs (threads) share one client, as the daemon's jobs share one
Runtime. A middleware in front of the emulator counts the requests it is
serving at once; with latency added, every thread queues work, so without a
process-wide cap the peak would exceed ``concurrency``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

import support
from vipexsync.emulator.faults import Faults
from vipexsync.emulator.server import serve_in_thread
from vipexsync.emulator.state import EmulatorState
from vipexsync.vipex import RetryPolicy, VipexClient

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

VIPEX_ID = "1643897"


class InFlight:
    """WSGI middleware: the largest number of requests being served at once."""

    def __init__(self, app: WSGIApplication, latency: float) -> None:
        self.app = app
        self.latency = latency
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            time.sleep(self.latency)
            return list(self.app(environ, start_response))
        finally:
            with self.lock:
                self.now -= 1


@pytest.fixture
def counted() -> Iterator[tuple[str, InFlight]]:
    state = EmulatorState()
    state.add_subscription(VIPEX_ID)
    with serve_in_thread(state, faults=Faults()) as running:
        middleware = InFlight(running.app, latency=0.03)
        with support.serve(middleware) as url:
            yield url, middleware


@pytest.mark.parametrize("concurrency", [1, 3])
def test_jobs_in_parallel_share_one_cap(
    counted: tuple[str, InFlight], concurrency: int, caplog: pytest.LogCaptureFixture
) -> None:
    url, middleware = counted
    caplog.set_level(logging.WARNING, logger="urllib3")
    with VipexClient(
        url,
        "api_user",
        "api_password",
        concurrency=concurrency,
        retry=RetryPolicy(deadline_seconds=10.0),
    ) as client:

        def one_job(job: int) -> None:
            # Each "job" writes with its own pool of `concurrency` writers, as
            # sync/apply does, and lists the phonebook with its page workers.
            with ThreadPoolExecutor(max_workers=concurrency) as writers:
                for i in range(8):
                    number = f"3612{job:02d}{i:05d}"
                    writers.submit(
                        client.set_phonebook_entry,
                        VIPEX_ID,
                        number,
                        name=f"Job {job} entry {i}",
                        tags=[],
                        comment="",
                        custom_field_options=[],
                    )
            client.get_phonebook_list(VIPEX_ID)

        with ThreadPoolExecutor(max_workers=3) as jobs:
            for finished in [jobs.submit(one_job, n) for n in range(3)]:
                finished.result()

    assert middleware.now == 0
    assert middleware.peak == concurrency, (
        f"{middleware.peak} requests were in flight at once with concurrency = {concurrency}"
    )
    pool_warnings = [r for r in caplog.records if "pool is full" in r.getMessage()]
    assert pool_warnings == []

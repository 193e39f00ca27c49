"""The one retry layer against injected faults, over real HTTP.

Waits are observed through an injected ``sleep`` that records what it was
asked to wait (and may switch a fault off, like an outage ending) instead of
blocking, so these tests take no real backoff time.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from vipexsync.errors import (
    ApiResultError,
    AuthError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from vipexsync.vipex import RetryPolicy, VipexClient

PHONEBOOK = "1643897"
OPERATORS = "3212601"


@dataclass
class SleepRecorder:
    """A ``sleep`` that records its waits; ``after`` runs once the Nth wait is asked for."""

    waits: list[float] = field(default_factory=list)
    after: int = 0
    then: Callable[[], None] | None = None

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.then is not None and len(self.waits) == self.after:
            self.then()


@dataclass
class ObserverRecorder:
    finished: list[tuple[str, str]] = field(default_factory=list)
    retries: list[tuple[str, int]] = field(default_factory=list)

    def request_finished(self, action: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        self.finished.append((action, outcome))

    def retried(self, action: str, attempt: int) -> None:
        self.retries.append((action, attempt))


def client_for(
    emulator: Any,
    sleep: SleepRecorder,
    policy: RetryPolicy,
    *,
    timeout: float = 5.0,
    observer: ObserverRecorder | None = None,
) -> VipexClient:
    return VipexClient(
        emulator.url,
        emulator.username,
        emulator.password,
        timeout=timeout,
        retry=policy,
        sleep=sleep,
        observer=observer,
    )


POLICY = RetryPolicy(deadline_seconds=60.0, max_attempts=6, initial_backoff=0.5, max_backoff=4.0)


@pytest.mark.parametrize("fault", ["error_rate", "html_rate"])
@pytest.mark.parametrize(
    ("action", "call"),
    [
        ("get_phonebook_custom_field_list", lambda c: c.get_phonebook_custom_field_list(PHONEBOOK)),
        (
            "set_phonebook_entry",
            lambda c: c.set_phonebook_entry(
                PHONEBOOK,
                "3612340000",
                name="Retry Kft.",
                tags=["crm-sync"],
                comment="",
                custom_field_options=[],
            ),
        ),
    ],
)
def test_server_errors_and_html_pages_are_retried_until_they_pass(
    emulator: Any,
    caplog: pytest.LogCaptureFixture,
    fault: str,
    action: str,
    call: Callable[[VipexClient], object],
) -> None:
    setattr(emulator.faults, fault, 1.0)
    sleep = SleepRecorder(after=2, then=emulator.faults.reset)
    observer = ObserverRecorder()
    caplog.set_level(logging.WARNING, logger="vipexsync.vipex")
    with client_for(emulator, sleep, POLICY, observer=observer) as client:
        call(client)
        assert client.request_count == 3
    assert emulator.app.request_counts() == {action: 3}
    # equal jitter: attempt 1 waits 0.25-0.5 s, attempt 2 waits 0.5-1 s
    assert len(sleep.waits) == 2
    assert 0.25 <= sleep.waits[0] <= 0.5
    assert 0.5 <= sleep.waits[1] <= 1.0
    outcome = "http_error" if fault == "error_rate" else "transport_error"
    assert observer.finished == [(action, outcome), (action, outcome), (action, "ok")]
    assert observer.retries == [(action, 2), (action, 3)]
    warnings = [r.getMessage() for r in caplog.records if r.name == "vipexsync.vipex"]
    assert len(warnings) == 2
    assert all(action in w for w in warnings)
    assert "attempt 1 " in warnings[0]
    assert "attempt 2 " in warnings[1]
    if action == "set_phonebook_entry":
        assert emulator.state.entry(PHONEBOOK, "3612340000") is not None


def test_429_waits_exactly_the_retry_after(emulator: Any) -> None:
    emulator.faults.rate_limit_every = 1
    emulator.faults.retry_after_seconds = 3.0
    sleep = SleepRecorder(after=1, then=emulator.faults.reset)
    with client_for(emulator, sleep, POLICY) as client:
        assert len(client.get_operator_status_list(OPERATORS)) == 4
    assert sleep.waits == [3.0]
    assert emulator.app.request_counts() == {"get_operator_status_list": 2}


def test_a_long_retry_after_is_capped(emulator: Any) -> None:
    emulator.faults.rate_limit_every = 1
    emulator.faults.retry_after_seconds = 3600.0
    sleep = SleepRecorder(after=1, then=emulator.faults.reset)
    policy = RetryPolicy(deadline_seconds=600.0, max_retry_after=7.0)
    with client_for(emulator, sleep, policy) as client:
        client.get_operator_status_list(OPERATORS)
    assert sleep.waits == [7.0]


def test_the_deadline_stops_retrying_and_raises_the_last_error(emulator: Any) -> None:
    emulator.faults.rate_limit_every = 1
    emulator.faults.retry_after_seconds = 1.0
    sleep = SleepRecorder()
    policy = RetryPolicy(deadline_seconds=3.5, max_attempts=100)
    with client_for(emulator, sleep, policy) as client, pytest.raises(RateLimitedError) as caught:
        client.get_vipex_user_list(OPERATORS)
    # three 1 s waits fit in 3.5 s; a fourth would end past the deadline
    assert sleep.waits == [1.0, 1.0, 1.0]
    assert emulator.app.request_counts() == {"get_vipex_user_list": 4}
    assert caught.value.retry_after == 1.0


def test_max_attempts_bounds_the_tries(emulator: Any) -> None:
    emulator.faults.error_rate = 1.0
    sleep = SleepRecorder()
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.1)
    with client_for(emulator, sleep, policy) as client, pytest.raises(ServerError):
        client.get_phonebook_entry(PHONEBOOK, "3619996000")
    assert len(sleep.waits) == 2
    assert emulator.app.request_counts() == {"get_phonebook_entry": 3}


def test_refusals_and_auth_failures_are_sent_once(emulator: Any) -> None:
    sleep = SleepRecorder()
    with client_for(emulator, sleep, POLICY) as client, pytest.raises(ApiResultError):
        client.get_phonebook_entry(PHONEBOOK, "3600000001")
    with (
        VipexClient(emulator.url, emulator.username, "wrong", retry=POLICY, sleep=sleep) as client,
        pytest.raises(AuthError),
    ):
        client.get_phonebook_custom_field_list(PHONEBOOK)
    assert sleep.waits == []
    assert emulator.app.request_counts() == {
        "get_phonebook_entry": 1,
        "get_phonebook_custom_field_list": 1,
    }


def test_a_dial_that_timed_out_is_not_sent_again(emulator: Any) -> None:
    emulator.faults.hang_rate = 1.0
    emulator.faults.hang_seconds = 10.0
    emulator.faults.actions = frozenset({"dial_phonenumber"})
    sleep = SleepRecorder()
    with (
        client_for(emulator, sleep, POLICY, timeout=0.3) as client,
        pytest.raises(TransportError) as caught,
    ):
        client.dial_phonenumber(OPERATORS, "1600", "3619996000")
    assert caught.value.sent is True
    assert sleep.waits == []
    assert emulator.app.request_counts() == {"dial_phonenumber": 1}
    # The emulator carried the dial out before hanging; wait for it to show.
    give_up = time.monotonic() + 5.0
    while not emulator.state.calls_made() and time.monotonic() < give_up:
        time.sleep(0.01)
    assert len(emulator.state.calls_made()) == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.dial_phonenumber(OPERATORS, "1600", "3619996000"),
        lambda c: c.outbound_ivr(PHONEBOOK, "36201234567", "700"),
        lambda c: c.set_operator_status(OPERATORS, 82, 2),
    ],
)
def test_side_effect_actions_are_not_retried_after_a_5xx(
    emulator: Any, call: Callable[[VipexClient], object]
) -> None:
    emulator.faults.error_rate = 1.0
    sleep = SleepRecorder()
    with client_for(emulator, sleep, POLICY) as client, pytest.raises(ServerError):
        call(client)
    assert sleep.waits == []
    assert sum(emulator.app.request_counts().values()) == 1
    assert emulator.state.calls_made() == []


def test_a_dial_that_could_not_connect_is_retried() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleep = SleepRecorder()
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.1)
    with (
        VipexClient(f"http://127.0.0.1:{port}/", "u", "p", retry=policy, sleep=sleep) as client,
        pytest.raises(TransportError) as caught,
    ):
        client.dial_phonenumber(OPERATORS, "1600", "3619996000")
    assert caught.value.sent is False
    assert len(sleep.waits) == 2
    assert client.request_count == 3


def test_a_delete_whose_answer_was_lost_converges_to_already_gone(emulator: Any) -> None:
    # The first attempt deletes the entry but its answer never arrives (timeout);
    # the retry is refused (nothing to delete) and the check confirms it is gone.
    emulator.faults.hang_rate = 1.0
    emulator.faults.hang_seconds = 10.0
    emulator.faults.actions = frozenset({"del_phonebook_entry"})
    sleep = SleepRecorder(after=1, then=emulator.faults.reset)
    with client_for(emulator, sleep, POLICY, timeout=0.3) as client:
        assert client.del_phonebook_entry(PHONEBOOK, "3619996000") is False
    assert emulator.state.entry(PHONEBOOK, "3619996000") is None
    assert len(sleep.waits) == 1
    assert emulator.app.request_counts() == {"del_phonebook_entry": 2, "get_phonebook_entry": 1}

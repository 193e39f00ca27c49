"""The retry policy's decisions, as the pure functions they are."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vipexsync.errors import (
    ApiResultError,
    AuthError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from vipexsync.vipex.retry import (
    SIDE_EFFECT_ACTIONS,
    RetryPolicy,
    has_side_effects,
    parse_retry_after,
)

POLICY = RetryPolicy(
    deadline_seconds=60.0,
    max_attempts=5,
    initial_backoff=1.0,
    max_backoff=8.0,
    max_retry_after=20.0,
)
NOW = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "error",
    [
        ServerError("a", 503),
        RateLimitedError("a", 2.0),
        TransportError("a", "reset", sent=True),
        TransportError("a", "refused", sent=False),
    ],
)
def test_retryable_errors_are_retried_for_idempotent_actions(error: Exception) -> None:
    assert POLICY.is_retryable(error, side_effects=False)


@pytest.mark.parametrize(
    "error", [ApiResultError("a", "no such number"), AuthError("a", 401), ValueError("bug")]
)
def test_refusals_auth_and_bugs_are_never_retried(error: Exception) -> None:
    assert not POLICY.is_retryable(error, side_effects=False)
    assert not POLICY.is_retryable(error, side_effects=True)
    assert POLICY.next_wait(error, attempt=1, elapsed=0.0, jitter=0.5, side_effects=False) is None


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (TransportError("dial", "refused", sent=False), True),
        (TransportError("dial", "read timeout", sent=True), False),
        (ServerError("dial", 502), False),
        (RateLimitedError("dial", 1.0), False),
    ],
)
def test_side_effect_actions_retry_only_what_never_left(error: Exception, retried: bool) -> None:
    assert POLICY.is_retryable(error, side_effects=True) is retried


def test_side_effect_actions_are_the_three_that_act() -> None:
    assert {"dial_phonenumber", "outbound_ivr", "set_operator_status"} == SIDE_EFFECT_ACTIONS
    assert has_side_effects("outbound_ivr")
    assert not has_side_effects("set_phonebook_entry")
    assert not has_side_effects("del_phonebook_entry")


def test_backoff_doubles_up_to_the_cap_with_equal_jitter() -> None:
    assert [POLICY.backoff(n, 0.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [POLICY.backoff(n, 1.0) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert POLICY.backoff(2, 0.5) == 1.5


@given(attempt=st.integers(min_value=1, max_value=10_000), jitter=st.floats(0.0, 1.0))
def test_backoff_stays_within_half_and_whole_of_the_capped_base(
    attempt: int, jitter: float
) -> None:
    wait = POLICY.backoff(attempt, jitter)
    base = min(POLICY.max_backoff, POLICY.initial_backoff * 2 ** min(attempt - 1, 60))
    assert base / 2 <= wait <= base
    assert wait <= POLICY.max_backoff


def test_retry_after_is_honoured_and_capped() -> None:
    assert POLICY.wait_seconds(RateLimitedError("a", 3.0), 1, 0.9) == 3.0
    assert POLICY.wait_seconds(RateLimitedError("a", 300.0), 1, 0.9) == 20.0
    # without the header, ordinary backoff
    assert POLICY.wait_seconds(RateLimitedError("a", None), 1, 0.0) == 0.5
    assert POLICY.wait_seconds(ServerError("a", 500), 3, 0.0) == 2.0


def test_attempts_are_bounded() -> None:
    error = ServerError("a", 500)
    assert POLICY.next_wait(error, attempt=4, elapsed=0.0, jitter=0.0, side_effects=False) == 4.0
    assert POLICY.next_wait(error, attempt=5, elapsed=0.0, jitter=0.0, side_effects=False) is None


def test_a_retry_that_would_pass_the_deadline_is_not_made() -> None:
    error = RateLimitedError("a", 10.0)
    assert POLICY.next_wait(error, attempt=1, elapsed=50.0, jitter=0.0, side_effects=False) == 10.0
    assert POLICY.next_wait(error, attempt=1, elapsed=50.1, jitter=0.0, side_effects=False) is None
    assert POLICY.should_stop(1, 59.9, 0.2)
    assert not POLICY.should_stop(1, 59.0, 1.0)


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(initial_backoff=-1.0)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Sun, 01 Mar 2026 10:00:42 GMT", 42.0),
        ("Sun, 01 Mar 2026 09:59:00 GMT", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("nan", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds

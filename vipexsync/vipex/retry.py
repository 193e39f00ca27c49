"""When to try a VIPeX call again, and how long to wait first.

Modelled on urllib3's ``Retry``: the policy is an immutable value and every
decision is a pure function of its inputs (the error, the attempt number, the
time spent, a random number for the jitter). Sleeping and the loop itself are
kept apart, in the client, which drives these decisions through tenacity.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from vipexsync.errors import RateLimitedError, RetryableApiError, TransportError

SIDE_EFFECT_ACTIONS: Final = frozenset({"dial_phonenumber", "outbound_ivr", "set_operator_status"})
"""Actions that must not run twice: a second dial rings a second phone."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How persistently one call is retried.

    ``deadline_seconds`` bounds the whole call, waits included: a retry whose
    wait would end past it is not made and the last error is raised instead.
    """

    deadline_seconds: float = 120.0
    max_attempts: int = 8
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if min(self.deadline_seconds, self.initial_backoff, self.max_backoff) < 0:
            raise ValueError("RetryPolicy times must not be negative")
        if self.max_retry_after < 0:
            raise ValueError("RetryPolicy.max_retry_after must not be negative")

    def is_retryable(self, error: BaseException, *, side_effects: bool) -> bool:
        """Whether another attempt may cure ``error``.

        ``result: 0`` and auth failures never heal by themselves. For actions
        with side effects only a request that surely never reached the server
        (``TransportError`` with ``sent=False``) is sent again.
        """
        if not isinstance(error, RetryableApiError):
            return False
        if side_effects:
            return isinstance(error, TransportError) and not error.sent
        return True

    def backoff(self, attempt: int, jitter: float) -> float:
        """The wait after failed attempt number ``attempt`` (1-based).

        Exponential from ``initial_backoff``, capped at ``max_backoff``, with
        "equal jitter": ``jitter`` in [0, 1) picks a point in the upper half,
        so concurrent clients spread out yet never retry at once.
        """
        exponent = max(0, attempt - 1)
        # Cap the exponent so the float never overflows on silly attempt counts.
        base = min(self.max_backoff, self.initial_backoff * (2.0 ** min(exponent, 60)))
        return base / 2.0 + base / 2.0 * min(max(jitter, 0.0), 1.0)

    def wait_seconds(self, error: BaseException, attempt: int, jitter: float) -> float:
        """The wait before the next attempt: the server's Retry-After if it sent one."""
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_retry_after)
        return self.backoff(attempt, jitter)

    def should_stop(self, attempt: int, elapsed: float, upcoming_wait: float) -> bool:
        """True when no further attempt may be made.

        ``attempt`` attempts have been made, ``elapsed`` seconds spent; the next
        attempt would start after ``upcoming_wait`` more.
        """
        if attempt >= self.max_attempts:
            return True
        return elapsed + upcoming_wait > self.deadline_seconds

    def next_wait(
        self,
        error: BaseException,
        *,
        attempt: int,
        elapsed: float,
        jitter: float,
        side_effects: bool,
    ) -> float | None:
        """All three decisions at once: the wait before the next attempt, or None to give up."""
        if not self.is_retryable(error, side_effects=side_effects):
            return None
        wait = self.wait_seconds(error, attempt, jitter)
        if self.should_stop(attempt, elapsed, wait):
            return None
        return wait


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date).

    None when absent or unreadable; a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds != seconds or seconds in (float("inf"), float("-inf")):
            return None
        return max(seconds, 0.0)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def has_side_effects(action: str) -> bool:
    """Whether ``action`` changes the world in a way a repeat would duplicate."""
    return action in SIDE_EFFECT_ACTIONS


__all__ = [
    "SIDE_EFFECT_ACTIONS",
    "RetryPolicy",
    "has_side_effects",
    "parse_retry_after",
]

"""The retry policy: exponential backoff with jitter, Retry-After as a floor, giving up."""

from __future__ import annotations

import pytest

from monitor.core.retry import RetryPolicy, gives_up, retry_delay

POLICY = RetryPolicy(first_s=5, factor=2, max_delay_s=60, give_up_after_s=3600)


@pytest.mark.parametrize(
    ("attempt", "jitter", "retry_after", "expected"),
    [
        (1, 1.0, None, 5),
        (2, 1.0, None, 10),
        (3, 1.0, None, 20),
        (5, 1.0, None, 60),  # capped
        (9, 1.0, None, 60),
        (1, 0.0, None, 2.5),  # jitter spreads between half and all
        (3, 0.5, None, 15),
        (1, 1.0, 2, 5),  # Retry-After below the backoff: the backoff
        (1, 1.0, 30, 30),  # above: never sooner than the peer asked
        (4, 0.0, 120, 120),
    ],
)
def test_retry_delay(
    attempt: int, jitter: float, retry_after: float | None, expected: float
) -> None:
    assert retry_delay(POLICY, attempt, retry_after_s=retry_after, jitter=jitter) == expected


@pytest.mark.parametrize(
    ("first", "now", "delay", "expected"),
    [(0, 0, 60, False), (0, 3500, 60, False), (0, 3541, 60, True), (100, 3600, 60, False)],
)
def test_gives_up_after_the_window(first: float, now: float, delay: float, expected: bool) -> None:
    assert gives_up(POLICY, first, now, delay) is expected

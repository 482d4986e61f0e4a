"""When to try a failed delivery again, and when to give up: pure, ``now`` passed in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter (half to all of it), for up to ``give_up_after_s``."""

    first_s: float = 5.0
    factor: float = 2.0
    max_delay_s: float = 900.0
    give_up_after_s: float = 24 * 3600.0


def retry_delay(
    policy: RetryPolicy,
    attempt: int,
    *,
    retry_after_s: float | None = None,
    jitter: float = 1.0,
) -> float:
    """Seconds before attempt ``attempt + 1`` (``attempt`` counts from 1).

    The backoff ``first_s * factor**(attempt-1)`` is capped at ``max_delay_s``; ``jitter`` in
    [0, 1] (random, from the caller) spreads it between half and all of it, so senders that
    failed together do not retry together. A peer's Retry-After is a floor: never sooner.
    """
    backoff = min(policy.first_s * policy.factor ** max(attempt - 1, 0), policy.max_delay_s)
    delay = backoff * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0))
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay


def gives_up(policy: RetryPolicy, first_attempt: float, now: float, delay: float) -> bool:
    """Whether the next try would come later than the policy allows."""
    return now + delay - first_attempt > policy.give_up_after_s

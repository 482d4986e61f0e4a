"""When to poll a source next, and its health record: pure functions of its history and ``now``.

A poll's outcome updates the source's ``FeedHealth`` (``FeedHealth.update``); ``next_interval``
then turns the health into seconds until the next poll:

* the publishing rate (items per day, an exponentially decayed average over about a day) sets
  the pace: ``POLLS_PER_GAP`` polls per mean gap between new items, so a busy feed is polled
  often and a quiet one rarely, always within the source's ``min`` and ``max``. A prior worth
  ``PRIOR_S`` of observation at the rate the base interval implies starts a new source at
  ``every`` and fades as real history accumulates;
* consecutive failures back off exponentially, ``every * 2**n``, capped at ``max``, forever:
  a source is never given up on, and its first success brings its normal pace back (the time
  it spent failing is not counted as time observed without new items);
* when every entry of a poll was new, the feed's window may have overflowed: poll at ``min``;
* Cache-Control max-age raises the interval (up to ``max``); Retry-After is a floor even above
  ``max`` (up to ``RETRY_AFTER_CAP_S``, so a hostile header cannot silence a source for good).

Nothing here reads a clock: ``now`` and every time are arguments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from monitor.core.config import FeedSourceSpec, ReplaySourceSpec, WireSourceSpec, parse_duration

__all__ = [
    "HALF_LIFE_S",
    "POLLS_PER_GAP",
    "PRIOR_S",
    "RETRY_AFTER_CAP_S",
    "FeedHealth",
    "IntervalBounds",
    "PollOutcome",
    "PollSpec",
    "due_time",
    "next_interval",
    "poll_spec",
]

DAY_S = 86_400.0
HALF_LIFE_S = DAY_S / 2  # how fast the rate forgets: a sample 12 h old weighs half
PRIOR_S = 2 * 3600.0  # the weight of the base interval's implied rate, in observed seconds
POLLS_PER_GAP = 2.0  # polls per mean gap between new items
RETRY_AFTER_CAP_S = DAY_S
WINDOW_MAX_S = HALF_LIFE_S / math.log(2)  # the decayed window of an endless observation
MAX_BACKOFF_EXPONENT = 32


class IntervalBounds(Protocol):
    """A source's base interval and its bounds, in seconds (``FeedSourceSpec`` is one)."""

    @property
    def every(self) -> float: ...

    @property
    def min(self) -> float: ...

    @property
    def max(self) -> float: ...


@dataclass(frozen=True, slots=True)
class PollSpec:
    """``IntervalBounds`` as plain values: base ``every``, at least ``min``, at most ``max``."""

    every: float
    min: float
    max: float
    backlog_s: float | None = None
    """On a source's first poll, entries published longer ago than this are marked seen
    without alerting (None: every entry alerts; 0: none does)."""


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """What one poll found, as the policy needs it (the caller builds it from ``FetchResult``
    and the seen-check): ``entries`` in the document, ``new`` among them, or ``error``."""

    at: datetime
    error: str | None = None
    entries: int = 0
    new: int = 0
    not_modified: bool = False
    retry_after_s: float | None = None
    max_age_s: float | None = None
    bozo: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """A source's health and polling history, kept in Redis as a hash (``to_mapping``).

    ``items_per_day`` is the decayed average publishing rate over ``rate_window_s`` decayed
    seconds of observation; ``window_overflow`` says the last poll found only new entries;
    ``retry_not_before`` is when the server's Retry-After lets us come back; ``bozo`` is the
    last malformed-feed reason, so the caller can log it once per change.
    """

    last_poll: datetime | None = None
    last_success: datetime | None = None
    last_error: datetime | None = None
    error: str | None = None
    consecutive_failures: int = 0
    last_new_item: datetime | None = None
    items_per_day: float = 0.0
    rate_window_s: float = 0.0
    window_overflow: bool = False
    retry_not_before: datetime | None = None
    max_age_s: float | None = None
    bozo: str | None = None

    def update(self, outcome: PollOutcome) -> FeedHealth:
        """The health after ``outcome``; a success also feeds the publishing rate."""
        at = outcome.at
        retry = (
            at + timedelta(seconds=min(outcome.retry_after_s, RETRY_AFTER_CAP_S))
            if outcome.retry_after_s is not None and outcome.retry_after_s > 0
            else None
        )
        if not outcome.ok:
            return replace(
                self,
                last_poll=at,
                last_error=at,
                error=outcome.error,
                consecutive_failures=self.consecutive_failures + 1,
                window_overflow=False,
                retry_not_before=retry,
                max_age_s=None,
            )
        per_day, window = self.items_per_day, self.rate_window_s
        # After failures the time since the last success was not observed: no rate sample, so
        # the first success brings back the pace the source had before it failed.
        if self.last_success is not None and self.consecutive_failures == 0:
            elapsed = (at - self.last_success).total_seconds()
            if elapsed > 0:
                decay = 0.5 ** (elapsed / HALF_LIFE_S)
                events = per_day * window / DAY_S * decay + outcome.new
                window = window * decay + elapsed
                per_day = events / window * DAY_S
        overflow = self.last_success is not None and 0 < outcome.entries == outcome.new
        return replace(
            self,
            last_poll=at,
            last_success=at,
            consecutive_failures=0,
            last_new_item=at if outcome.new > 0 else self.last_new_item,
            items_per_day=per_day,
            rate_window_s=window,
            window_overflow=overflow,
            retry_not_before=retry,
            max_age_s=outcome.max_age_s,
            bozo=outcome.bozo if not outcome.not_modified else self.bozo,
        )

    def to_mapping(self) -> dict[str, str]:
        """Every field as a string, for ``HSET``; an empty string stands for None."""
        return {
            "last_poll": _time(self.last_poll),
            "last_success": _time(self.last_success),
            "last_error": _time(self.last_error),
            "error": self.error or "",
            "consecutive_failures": str(self.consecutive_failures),
            "last_new_item": _time(self.last_new_item),
            "items_per_day": repr(self.items_per_day),
            "rate_window_s": repr(self.rate_window_s),
            "window_overflow": "1" if self.window_overflow else "0",
            "retry_not_before": _time(self.retry_not_before),
            "max_age_s": "" if self.max_age_s is None else repr(self.max_age_s),
            "bozo": self.bozo or "",
        }

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str]) -> FeedHealth:
        """The health stored by ``to_mapping``; missing or unreadable fields take defaults."""
        failures = _number(mapping.get("consecutive_failures"))
        return cls(
            last_poll=_parse_time(mapping.get("last_poll")),
            last_success=_parse_time(mapping.get("last_success")),
            last_error=_parse_time(mapping.get("last_error")),
            error=mapping.get("error") or None,
            consecutive_failures=max(0, int(failures)) if failures is not None else 0,
            last_new_item=_parse_time(mapping.get("last_new_item")),
            items_per_day=max(0.0, _number(mapping.get("items_per_day")) or 0.0),
            rate_window_s=max(0.0, _number(mapping.get("rate_window_s")) or 0.0),
            window_overflow=mapping.get("window_overflow") == "1",
            retry_not_before=_parse_time(mapping.get("retry_not_before")),
            max_age_s=_number(mapping.get("max_age_s")),
            bozo=mapping.get("bozo") or None,
        )


def next_interval(health: FeedHealth, spec: IntervalBounds, now: datetime) -> float:
    """Seconds from ``now`` until the next poll of a source with this ``health`` and ``spec``."""
    low = max(0.0, float(min(spec.min, spec.max)))
    high = max(low, float(spec.max))
    base = min(max(float(spec.every), low), high)
    if health.consecutive_failures > 0:
        exponent = min(health.consecutive_failures, MAX_BACKOFF_EXPONENT)
        interval = min(base * 2.0**exponent, high)
    else:
        interval = min(max(_paced(health, base), low), high)
        if health.window_overflow:
            interval = low
        if health.max_age_s is not None:
            interval = max(interval, min(health.max_age_s, high))
    if health.retry_not_before is not None:
        interval = max(interval, (health.retry_not_before - now).total_seconds())
    return interval


def _paced(health: FeedHealth, base: float) -> float:
    """The interval the publishing rate asks for, with the base interval's rate as a prior.

    The prior counts as ``PRIOR_S`` of observation made when tracking began, so it decays like
    any other: with continuous observation the decayed window is ``WINDOW_MAX_S * (1 - d)``
    where ``d`` is the decay since then, which gives the prior's remaining weight.
    """
    if base <= 0:
        return 0.0
    remaining = max(0.0, 1.0 - health.rate_window_s / WINDOW_MAX_S)
    prior_weight = PRIOR_S * remaining
    prior_events = DAY_S / (base * POLLS_PER_GAP) * prior_weight / DAY_S
    events = health.items_per_day * health.rate_window_s / DAY_S + prior_events
    weight = health.rate_window_s + prior_weight
    if events <= 0 or weight <= 0:
        return math.inf
    per_day = events / weight * DAY_S
    return DAY_S / per_day / POLLS_PER_GAP


def _time(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _number(value: str | None) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def due_time(health: FeedHealth, spec: PollSpec) -> datetime | None:
    """When the source is next due, from its shared health (None: never polled)."""
    if health.last_poll is None:
        return None
    return health.last_poll + timedelta(seconds=next_interval(health, spec, health.last_poll))


def poll_spec(spec: ReplaySourceSpec | FeedSourceSpec | WireSourceSpec) -> PollSpec:
    """How often a source is polled: a replayed directory at a fixed pace, others adaptively."""
    backlog = None if spec.backlog == "all" else float(parse_duration(spec.backlog))
    if isinstance(spec, ReplaySourceSpec):
        return PollSpec(float(spec.every), float(spec.every), float(spec.every), backlog)
    return PollSpec(float(spec.every), float(spec.min), float(spec.max), backlog)

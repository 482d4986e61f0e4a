"""The polling policy: tables of health → next interval, health updates, and the Redis mapping."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitor.core.config import FeedSourceSpec
from monitor.core.polling import (
    RETRY_AFTER_CAP_S,
    WINDOW_MAX_S,
    FeedHealth,
    PollOutcome,
    PollSpec,
    next_interval,
)

NOW = datetime(2026, 1, 12, 12, 0, tzinfo=UTC)
SPEC = PollSpec(every=300, min=60, max=3600)
FRESH = FeedHealth()
SATURATED = WINDOW_MAX_S  # a window this long has forgotten the prior entirely


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        pytest.param(FRESH, 300, id="no history: the base interval"),
        pytest.param(replace(FRESH, consecutive_failures=1), 600, id="1 failure: base*2"),
        pytest.param(replace(FRESH, consecutive_failures=2), 1200, id="2 failures: base*4"),
        pytest.param(replace(FRESH, consecutive_failures=3), 2400, id="3 failures: base*8"),
        pytest.param(replace(FRESH, consecutive_failures=4), 3600, id="4 failures: capped"),
        pytest.param(replace(FRESH, consecutive_failures=5), 3600, id="5 failures: capped"),
        pytest.param(replace(FRESH, consecutive_failures=10_000), 3600, id="never gives up"),
        pytest.param(replace(FRESH, window_overflow=True), 60, id="all new: min"),
        pytest.param(replace(FRESH, max_age_s=600), 600, id="max-age raises"),
        pytest.param(replace(FRESH, max_age_s=30), 300, id="max-age never lowers"),
        pytest.param(replace(FRESH, max_age_s=99_999), 3600, id="max-age up to max"),
        pytest.param(
            replace(FRESH, window_overflow=True, max_age_s=600), 600, id="max-age beats overflow"
        ),
        pytest.param(replace(FRESH, retry_not_before=later(5000)), 5000, id="retry-after > max"),
        pytest.param(
            replace(FRESH, retry_not_before=later(100)), 300, id="retry-after passed soon"
        ),
        pytest.param(replace(FRESH, retry_not_before=later(-50)), 300, id="retry-after passed"),
        pytest.param(
            replace(FRESH, consecutive_failures=1, retry_not_before=later(1200)),
            1200,
            id="retry-after over backoff",
        ),
        pytest.param(
            replace(FRESH, consecutive_failures=1, retry_not_before=later(100)),
            600,
            id="backoff over retry-after",
        ),
        pytest.param(
            replace(FRESH, window_overflow=True, retry_not_before=later(900)),
            900,
            id="retry-after over overflow",
        ),
        pytest.param(
            replace(FRESH, items_per_day=2880, rate_window_s=SATURATED), 60, id="busy: min"
        ),
        pytest.param(
            replace(FRESH, items_per_day=96, rate_window_s=SATURATED), 450, id="96/day: gap/2"
        ),
        pytest.param(
            replace(FRESH, items_per_day=24, rate_window_s=SATURATED), 1800, id="24/day: gap/2"
        ),
        pytest.param(replace(FRESH, items_per_day=0, rate_window_s=SATURATED), 3600, id="quiet"),
        pytest.param(
            replace(FRESH, items_per_day=2880, rate_window_s=SATURATED, consecutive_failures=2),
            1200,
            id="backoff ignores the rate",
        ),
    ],
)
def test_next_interval(health: FeedHealth, expected: float) -> None:
    assert next_interval(health, SPEC, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (PollSpec(every=10, min=60, max=3600), 60),  # base below min
        (PollSpec(every=9000, min=60, max=3600), 3600),  # base above max
        (PollSpec(every=300, min=600, max=120), 120),  # min above max: max wins
        (PollSpec(every=300, min=300, max=300), 300),
    ],
)
def test_bounds_are_sanitised(spec: PollSpec, expected: float) -> None:
    assert next_interval(FRESH, spec, NOW) == expected


def test_source_specs_are_interval_bounds() -> None:
    spec = FeedSourceSpec(id="f", type="feed", url="https://x/", every=120, min=30, max=600)
    assert next_interval(FRESH, spec, NOW) == 120
    assert next_interval(replace(FRESH, consecutive_failures=9), spec, NOW) == 600


def test_five_failures_back_off_to_the_cap_and_one_success_restores_the_pace() -> None:
    health = FRESH.update(PollOutcome(NOW, entries=10, new=10))
    health = health.update(PollOutcome(later(300), entries=10, new=2))
    normal = next_interval(health, SPEC, later(300))
    rate = health.items_per_day
    at = later(300)
    intervals = []
    for _ in range(5):
        at += timedelta(seconds=next_interval(health, SPEC, at))
        health = health.update(PollOutcome(at, error="HTTP 500 Internal Server Error"))
        intervals.append(next_interval(health, SPEC, at))
    assert intervals == [600, 1200, 2400, 3600, 3600]
    assert health.consecutive_failures == 5
    assert health.error == "HTTP 500 Internal Server Error"
    at += timedelta(seconds=3600)
    health = health.update(PollOutcome(at, entries=10, new=0))
    assert health.consecutive_failures == 0
    assert health.last_error is not None and health.last_success == at
    assert health.items_per_day == rate  # the outage is not a quiet spell
    assert next_interval(health, SPEC, at) == normal


@pytest.mark.parametrize(
    ("per_day", "low", "high"),
    [
        (5000, 60, 60),  # a wire-like feed: as often as allowed
        (200, 180, 260),  # one item every 7 minutes: about twice per gap
        (30, 1200, 1700),  # about one an hour
        (0, 3600, 3600),  # silent: as rarely as allowed
    ],
)
def test_a_day_of_polling_finds_the_feed_pace(per_day: float, low: float, high: float) -> None:
    """Items published at a steady rate; after a day the interval matches it, within bounds."""
    health = FRESH.update(PollOutcome(NOW, entries=50, new=50))  # the first poll: all new
    at = NOW
    published = 0
    while at < NOW + timedelta(days=1):
        at += timedelta(seconds=next_interval(health, SPEC, at))
        total = math.floor((at - NOW).total_seconds() * per_day / 86_400)
        new, published = min(total - published, 49), total
        health = health.update(PollOutcome(at, entries=50, new=new))
    assert low <= next_interval(health, SPEC, at) <= high
    assert health.items_per_day == pytest.approx(per_day, rel=0.25, abs=0.5)


def test_first_poll_is_no_overflow_but_a_later_all_new_poll_is() -> None:
    first = FRESH.update(PollOutcome(NOW, entries=20, new=20))
    assert not first.window_overflow
    assert first.rate_window_s == 0  # no interval to measure a rate over yet
    overflowed = first.update(PollOutcome(later(300), entries=20, new=20))
    assert overflowed.window_overflow
    assert next_interval(overflowed, SPEC, later(300)) == 60
    calm = overflowed.update(PollOutcome(later(360), entries=20, new=3))
    assert not calm.window_overflow
    empty = overflowed.update(PollOutcome(later(360), not_modified=True))
    assert not empty.window_overflow


def test_success_updates() -> None:
    first = FRESH.update(PollOutcome(NOW, entries=5, new=5, bozo="not well-formed"))
    assert (first.last_poll, first.last_success, first.last_new_item) == (NOW, NOW, NOW)
    assert first.bozo == "not well-formed"
    second = first.update(PollOutcome(later(3600), entries=5, new=6, max_age_s=120))
    assert second.items_per_day == pytest.approx(6 / 3600 * 86_400)
    assert second.rate_window_s == pytest.approx(3600)
    assert second.last_new_item == later(3600)
    assert second.max_age_s == 120
    assert second.bozo is None  # the new document was well-formed
    unchanged = second.update(PollOutcome(later(7200), not_modified=True))
    assert unchanged.last_new_item == later(3600)
    assert unchanged.items_per_day < second.items_per_day
    assert unchanged.max_age_s is None
    kept = first.update(PollOutcome(later(60), not_modified=True))
    assert kept.bozo == "not well-formed"  # a 304 says nothing about the document


def test_failure_updates() -> None:
    ok = FRESH.update(PollOutcome(NOW, entries=3, new=3, max_age_s=60))
    failed = ok.update(PollOutcome(later(60), error="read timeout", retry_after_s=120))
    assert failed.consecutive_failures == 1
    assert (failed.last_error, failed.error) == (later(60), "read timeout")
    assert failed.last_success == NOW
    assert failed.retry_not_before == later(180)
    assert failed.max_age_s is None
    assert failed.items_per_day == ok.items_per_day
    again = failed.update(PollOutcome(later(600), error="HTTP 429", retry_after_s=10**9))
    assert again.consecutive_failures == 2
    assert again.retry_not_before == later(600 + RETRY_AFTER_CAP_S)
    assert next_interval(again, SPEC, later(600)) == RETRY_AFTER_CAP_S


def test_health_mapping_round_trip() -> None:
    health = FRESH.update(PollOutcome(NOW, entries=4, new=4, bozo="bad & odd"))
    health = health.update(PollOutcome(later(600), entries=4, new=1, max_age_s=90))
    health = health.update(PollOutcome(later(900), error="HTTP 503", retry_after_s=30))
    mapping = health.to_mapping()
    assert all(isinstance(value, str) for value in mapping.values())
    assert mapping["consecutive_failures"] == "1"
    assert mapping["error"] == "HTTP 503"
    assert mapping["last_success"] == later(600).isoformat()
    assert FeedHealth.from_mapping(mapping) == health
    assert FeedHealth.from_mapping(FRESH.to_mapping()) == FRESH


@pytest.mark.parametrize(
    "mapping",
    [
        {},
        {"consecutive_failures": "lots", "items_per_day": "nan", "last_poll": "yesterday"},
        {"items_per_day": "-5", "rate_window_s": "inf", "max_age_s": "x", "window_overflow": "yes"},
    ],
)
def test_unreadable_mappings_give_defaults(mapping: dict[str, str]) -> None:
    assert FeedHealth.from_mapping(mapping) == FRESH


def test_naive_stored_times_are_utc() -> None:
    health = FeedHealth.from_mapping({"last_success": "2026-01-12T12:00:00"})
    assert health.last_success == NOW

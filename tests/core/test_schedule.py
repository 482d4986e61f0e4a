"""Digest periods and quiet hours: parsing, and when held alerts go out."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.core.schedule import hold_until, parse_digest, parse_quiet_hours

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "now", "due"),
    [
        ("15m", utc(2026, 11, 22, 10, 7, 30), utc(2026, 11, 22, 10, 15)),
        ("15m", utc(2026, 11, 22, 10, 15), utc(2026, 11, 22, 10, 30)),  # strictly after
        ("1h", utc(2026, 11, 22, 23, 59, 59), utc(2026, 11, 23, 0, 0)),
        ("daily 08:00", utc(2026, 11, 22, 7, 59), utc(2026, 11, 22, 8, 0)),
        ("daily 08:00", utc(2026, 11, 22, 8, 0), utc(2026, 11, 23, 8, 0)),
        # Berlin is UTC+1 in winter and UTC+2 in summer: 08:00 local follows the clock change.
        ("daily 08:00 Europe/Berlin", utc(2026, 11, 22, 6, 0), utc(2026, 11, 22, 7, 0)),
        ("daily 08:00 Europe/Berlin", utc(2026, 7, 1, 6, 30), utc(2026, 7, 2, 6, 0)),
        ("daily 08:00 Europe/Berlin", utc(2026, 3, 28, 8, 0), utc(2026, 3, 29, 6, 0)),
        # 02:30 does not exist in Berlin on 2026-03-29: the first instant after the gap.
        ("daily 02:30 Europe/Berlin", utc(2026, 3, 28, 12, 0), utc(2026, 3, 29, 1, 0)),
        ("weekly mon 08:00 Europe/Berlin", utc(2026, 11, 22, 12, 0), utc(2026, 11, 23, 7, 0)),
        ("weekly monday 08:00 Europe/Berlin", utc(2026, 11, 23, 7, 0), utc(2026, 11, 30, 7, 0)),
    ],
)
def test_digest_is_due_at_the_next_period_end(text: str, now: datetime, due: datetime) -> None:
    assert parse_digest(text).next_due(now) == due


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "needs a period"),
        ("fortnightly", "not a digest period"),
        ("0m", "at least 1 s"),
        ("daily", "is 'daily HH:MM"),
        ("daily 8am", "not a time of day"),
        ("daily 08:00 Mars/Olympus", "unknown time zone"),
        ("weekly 08:00", "names its day"),
    ],
)
def test_a_bad_digest_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_digest(text)


def test_quiet_hours_across_midnight_end_the_next_morning() -> None:
    quiet = parse_quiet_hours("22:00-07:00 Europe/Berlin")
    assert quiet.end_if_quiet(berlin(2026, 11, 22, 23, 30)) == berlin(2026, 11, 23, 7, 0)
    assert quiet.end_if_quiet(berlin(2026, 11, 23, 6, 59)) == berlin(2026, 11, 23, 7, 0)
    assert quiet.end_if_quiet(berlin(2026, 11, 22, 22, 0)) == berlin(2026, 11, 23, 7, 0)
    assert quiet.end_if_quiet(berlin(2026, 11, 23, 7, 0)) is None
    assert quiet.end_if_quiet(berlin(2026, 11, 22, 12, 0)) is None


def test_quiet_hours_within_a_day() -> None:
    quiet = parse_quiet_hours("12:00-13:30")
    assert quiet.end_if_quiet(utc(2026, 11, 22, 12, 45)) == utc(2026, 11, 22, 13, 30)
    assert quiet.end_if_quiet(utc(2026, 11, 22, 11, 59)) is None


@pytest.mark.parametrize("text", ["22:00", "22:00-07:00 Nowhere/Else", "07:00-07:00", "7-8"])
def test_bad_quiet_hours_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quiet_hours(text)


def test_critical_alerts_are_never_held() -> None:
    quiet = parse_quiet_hours("00:00-23:59")
    now = utc(2026, 11, 22, 12, 0)
    assert hold_until(now, "critical", parse_digest("1h"), quiet) is None
    assert hold_until(now, "high", None, quiet) == utc(2026, 11, 22, 23, 59)


def test_a_digest_due_in_quiet_hours_waits_for_their_end() -> None:
    quiet = parse_quiet_hours("22:00-07:00 Europe/Berlin")
    digest = parse_digest("1h")
    assert hold_until(berlin(2026, 11, 22, 20, 10), "normal", digest, quiet) == berlin(
        2026, 11, 22, 21, 0
    )
    assert hold_until(berlin(2026, 11, 22, 21, 10), "normal", digest, quiet) == berlin(
        2026, 11, 23, 7, 0
    )


def test_without_digest_or_quiet_hours_nothing_is_held() -> None:
    assert hold_until(utc(2026, 11, 22), "low", None, None) is None
    quiet = parse_quiet_hours("22:00-07:00")
    assert hold_until(utc(2026, 11, 22, 12), "low", None, quiet) is None

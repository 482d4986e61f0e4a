"""When an alert goes out: digest periods and quiet hours, as pure functions of the time.

A **digest** collects a channel's (or a rule's) alerts and sends one message per period:

* ``15m``, ``1h``, ``90s``, …: every period of that length, aligned to the clock in UTC (a
  ``15m`` digest goes out at :00, :15, :30 and :45);
* ``daily 08:00 Europe/Berlin``: once a day at that wall-clock time in that zone (UTC when the
  zone is left out), following daylight saving time;
* ``weekly mon 08:00 Europe/Berlin``: once a week.

**Quiet hours** (``22:00-07:00 Europe/Berlin``, a window that may cross midnight) hold every
alert below ``critical`` until the window ends. ``hold_until`` combines both: a critical alert
is never held; a digest due inside quiet hours waits for their end.

A wall-clock time that does not exist on a given day (skipped by a daylight-saving change) is
read as the first instant after the gap; one that occurs twice is taken the first time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DigestSchedule",
    "QuietHours",
    "hold_until",
    "parse_digest",
    "parse_quiet_hours",
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_INTERVAL = re.compile(r"(?P<n>\d+)\s*(?P<unit>[smhd])")
_CLOCK = re.compile(r"(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MIN_INTERVAL_S = 1
OFF = ("off", "none", "immediate")
"""Values of a rule's ``digest`` that send its alerts at once even on a digest channel."""


def _zone(name: str | None) -> ZoneInfo:
    if name is None:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        message = f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        raise ValueError(message) from None


def _clock(text: str) -> time:
    match = _CLOCK.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time of day like 08:00")
    return time(int(match["h"]), int(match["m"]))


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    """``at`` on ``day`` in ``zone`` as an aware UTC instant; a time inside a daylight-saving
    gap becomes the end of the gap (02:30 on a spring-forward night → 03:00)."""
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)  # before the gap ends
    high = first  # after it
    while (high - low).total_seconds() > 1:  # the first instant whose wall time is >= naive
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class DigestSchedule:
    """One of ``every`` seconds (UTC-aligned), or a daily or weekly wall-clock time."""

    text: str
    every_s: int | None = None
    at: time | None = None
    weekday: int | None = None  # 0 = Monday; None with ``at``: daily
    zone: str | None = None

    def next_due(self, now: datetime) -> datetime:
        """The first period end strictly after ``now`` (an aware datetime), in UTC."""
        now = now.astimezone(UTC)
        if self.every_s is not None:
            stamp = now.timestamp()
            return datetime.fromtimestamp((stamp // self.every_s + 1) * self.every_s, UTC)
        assert self.at is not None
        zone = _zone(self.zone)
        day = now.astimezone(zone).date() - timedelta(days=1)
        for _ in range(9):
            if self.weekday is None or day.weekday() == self.weekday:
                due = _local(day, self.at, zone)
                if due > now:
                    return due
            day += timedelta(days=1)
        raise AssertionError("a daily or weekly time always recurs within 8 days")

    def __str__(self) -> str:
        return self.text


def parse_digest(text: str) -> DigestSchedule:
    """``15m`` | ``1h`` | ``daily 08:00 [Zone]`` | ``weekly mon 08:00 [Zone]``;
    ``ValueError`` with what is wrong."""
    words = text.strip().split()
    if not words:
        raise ValueError("a digest needs a period: 15m, 1h, 'daily 08:00 Europe/Berlin'")
    kind = words[0].lower()
    if kind in ("daily", "weekly"):
        rest = words[1:]
        weekday = None
        if kind == "weekly":
            if not rest or rest[0].lower()[:3] not in _DAYS:
                raise ValueError("a weekly digest names its day: 'weekly mon 08:00 Europe/Berlin'")
            weekday = _DAYS.index(rest[0].lower()[:3])
            rest = rest[1:]
        if not rest or len(rest) > 2:
            raise ValueError(f"a {kind} digest is '{kind} HH:MM [Zone]', not {text!r}")
        zone = rest[1] if len(rest) == 2 else None
        _zone(zone)
        return DigestSchedule(text.strip(), at=_clock(rest[0]), weekday=weekday, zone=zone)
    match = _INTERVAL.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(
            f"{text!r} is not a digest period: use 15m, 1h, 'daily 08:00 Europe/Berlin' "
            "or 'weekly mon 08:00 Europe/Berlin'"
        )
    seconds = int(match["n"]) * _UNITS[match["unit"]]
    if seconds < MIN_INTERVAL_S:
        raise ValueError("a digest period must be at least 1 s")
    return DigestSchedule(text.strip(), every_s=seconds)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window, ``start`` to ``end`` wall-clock in ``zone``; it may cross midnight."""

    text: str
    start: time
    end: time
    zone: str | None = None

    def end_if_quiet(self, now: datetime) -> datetime | None:
        """When the window that contains ``now`` ends (UTC), or None outside the window."""
        zone = _zone(self.zone)
        today = now.astimezone(zone).date()
        for day in (today - timedelta(days=1), today):
            begin = _local(day, self.start, zone)
            end_day = day if self.end > self.start else day + timedelta(days=1)
            end = _local(end_day, self.end, zone)
            if begin <= now < end:
                return end
        return None

    def __str__(self) -> str:
        return self.text


def parse_quiet_hours(text: str) -> QuietHours:
    """``22:00-07:00 [Zone]``; ``ValueError`` with what is wrong."""
    words = text.strip().split()
    if not words or len(words) > 2 or words[0].count("-") != 1:
        raise ValueError("quiet hours are 'HH:MM-HH:MM [Zone]', like '22:00-07:00 Europe/Berlin'")
    first, last = words[0].split("-")
    start, end = _clock(first), _clock(last)
    if start == end:
        raise ValueError("quiet hours must not start and end at the same time")
    zone = words[1] if len(words) == 2 else None
    _zone(zone)
    return QuietHours(text.strip(), start, end, zone)


def hold_until(
    now: datetime,
    severity: str,
    digest: DigestSchedule | None,
    quiet: QuietHours | None,
) -> datetime | None:
    """When an alert raised at ``now`` should go out, or None for at once."""
    if severity == "critical":
        return None
    due = digest.next_due(now) if digest is not None else None
    if quiet is None:
        return due
    if due is None:
        return quiet.end_if_quiet(now)
    return quiet.end_if_quiet(due) or due

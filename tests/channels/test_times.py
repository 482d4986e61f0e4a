"""MONITOR_TIMEZONE: the zone people read times in, in console lines, emails and Slack."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.app.settings import Settings
from monitor.channels.console import alert_line
from monitor.channels.email import text_body
from monitor.channels.slack_blocks import build_message
from monitor.channels.times import shown, use_zone
from tests.factories import make_alert, make_item

PUBLISHED = datetime(2026, 1, 4, 0, 30, tzinfo=UTC)


@pytest.fixture
def berlin() -> Iterator[None]:
    use_zone(ZoneInfo("Europe/Berlin"))
    yield
    use_zone(UTC)


def test_times_are_shown_in_utc_by_default() -> None:
    assert shown(PUBLISHED) == "2026-01-04 00:30 UTC"
    assert shown(PUBLISHED.replace(tzinfo=None)) == "2026-01-04 00:30 UTC"  # naive: UTC


def test_every_human_view_shows_the_configured_zone(berlin: None) -> None:
    alert = make_alert(item=make_item("x:1", title="Dam bursts", published=PUBLISHED))
    assert shown(PUBLISHED) == "2026-01-04 01:30 CET"
    assert "2026-01-04 01:30 CET" in alert_line(alert)
    assert "2026-01-04 01:30 CET" in text_body(alert)
    assert "|2026-01-04 01:30 CET>" in str(build_message(alert))
    assert alert.to_dict()["item"]["published"] == PUBLISHED.isoformat()  # JSON keeps ISO


def test_an_unknown_zone_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
        Settings(timezone="Mars/Base")
    assert Settings(timezone="America/New_York").zone() == ZoneInfo("America/New_York")

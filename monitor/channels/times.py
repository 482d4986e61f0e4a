"""The time zone people read times in (``MONITOR_TIMEZONE``), for console lines, emails and
Slack's fallback text. Machine outputs (JSON, webhooks, logs) keep ISO 8601 with offsets.

The zone is set once, when the settings are read (``use_zone``); UTC until then.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

_zone: tzinfo = UTC


def use_zone(zone: tzinfo) -> None:
    """Show times in ``zone`` from now on."""
    global _zone
    _zone = zone


def shown(moment: datetime) -> str:
    """``2026-01-04 01:00 CET``: the moment in the display zone, with its abbreviation (a
    time without a zone is taken as UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    local = aware.astimezone(_zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or local.strftime('%z')}"

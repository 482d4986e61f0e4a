"""``monitor mute``, ``snooze`` and ``feedback``: what a desk tells the daemon about its alerts.

``mute story ID`` silences a story (its follow-ups, and matches loosely tied to it) for a while;
``snooze rule ID`` silences a rule (its matches are not claimed meanwhile, so a story it would
have opened alerts once the snooze is over); ``feedback ALERT not-relevant`` records what a
reader thought of an alert, counted per rule in ``monitor status``. A story may be named by one
of its alerts' ids too. Everything is kept in Redis (``store.quiet``), shared by every daemon.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import click

from monitor.app.settings import Settings
from monitor.app.wiring import configured_settings, open_store, redis_server
from monitor.core.config import parse_duration

__all__ = ["feedback", "mute", "quiet_until", "snooze"]

FEEDBACK = ("not-relevant", "relevant", "late", "duplicate")


def quiet_until(duration: str | None, until: str | None, now: float) -> float:
    """The end of a mute or snooze from ``--for`` or ``--until`` (ISO 8601; a time without a
    zone is UTC). ValueError for a value that is neither, or an end in the past."""
    if until is not None:
        moment = datetime.fromisoformat(until)
        end = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    else:
        end = now + parse_duration(duration or "24h")
    if end <= now:
        raise ValueError("the end is in the past")
    return end


def _settings() -> Settings:
    try:
        return configured_settings()
    except ValueError as exc:
        raise click.ClickException(f"invalid MONITOR_* setting: {exc}") from None


async def _set(kind: str, target: str, end: float | None) -> str:
    settings = _settings()
    async with redis_server(settings) as client:
        store = open_store(client, settings)
        if kind == "story":
            record = await store.alert_record(target)  # an alert id names its story
            target = str(record["story"]) if record else target
        if end is None:
            return target if await store.clear_quiet(kind, target) else ""
        await store.set_quiet(kind, target, end, time.time())
    return target


def _shown(end: float) -> str:
    return datetime.fromtimestamp(end, UTC).isoformat(timespec="seconds")


@click.group()
def mute() -> None:
    """Silence a story for a while."""


def _for_until_off(command: Callable[..., None]) -> Callable[..., None]:
    """The options that say how long: ``--for``, ``--until``, or ``--off`` to lift it."""
    for option in (
        click.option("--off", is_flag=True, help="Lift it now."),
        click.option("--until", help="Until when (ISO 8601)."),
        click.option("--for", "duration", help="How long (default 24h)."),
    ):
        command = option(command)
    return command


@mute.command(name="story")
@click.argument("story_id", metavar="ID")
@_for_until_off
def mute_story(story_id: str, duration: str | None, until: str | None, off: bool) -> None:
    """Mute story ID (or the story of alert ID): no follow-ups, no alerts tied to it."""
    _quiet("story", story_id, duration, until, off)


@click.group()
def snooze() -> None:
    """Silence a rule for a while."""


@snooze.command(name="rule")
@click.argument("rule_id", metavar="ID")
@_for_until_off
def snooze_rule(rule_id: str, duration: str | None, until: str | None, off: bool) -> None:
    """Snooze rule ID: its matches neither alert nor claim their story until it ends."""
    _quiet("rule", rule_id, duration, until, off)


def _quiet(kind: str, target: str, duration: str | None, until: str | None, off: bool) -> None:
    verb = "muted" if kind == "story" else "snoozed"
    try:
        end = None if off else quiet_until(duration, until, time.time())
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    done = asyncio.run(_set(kind, target, end))
    if end is None:
        click.echo(f"{kind} {target}: " + (f"no longer {verb}" if done else f"was not {verb}"))
    else:
        click.echo(f"{kind} {done} {verb} until {_shown(end)}")


@click.command()
@click.argument("alert_id", metavar="ALERT")
@click.argument("kind", type=click.Choice(FEEDBACK))
@click.option("--note", default="", help="A word on why.")
def feedback(alert_id: str, kind: str, note: str) -> None:
    """Tell the daemon what an alert was worth (counted per rule in `monitor status`)."""

    async def record() -> dict[str, object]:
        settings = _settings()
        async with redis_server(settings) as client:
            return await open_store(client, settings).add_feedback(
                alert_id, kind, note, time.time()
            )

    try:
        found = asyncio.run(record())
    except LookupError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None
    click.echo(f"feedback on {alert_id} ({found['rule']}: {found['title']}): {kind}")

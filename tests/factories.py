"""Items, alerts, outbox entries and small RSS feeds for tests: one builder instead of a copy
per test file.

Every field has a plain default; a test names only what it is about.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from monitor.models import Alert, Item, Match, Severity
from monitor.store.streams import outbox_entry


def make_item(
    item_id: str = "src:1",
    *,
    source: str = "src",
    title: str = "Story 1",
    text: str = "Report.",
    **fields: Any,
) -> Item:
    """An item; ``fields`` are any other ``Item`` fields (url, published, language…)."""
    return Item(id=item_id, source=source, title=title, text=text, **fields)


def make_alert(
    alert_id: str = "a1",
    *,
    item: Item | None = None,
    rule: str = "r",
    rule_name: str = "Rule",
    severity: Severity = "high",
    story: str = "s1",
    matches: Sequence[Match] = (),
    channels: Iterable[str] = ("desk",),
    followup: bool = False,
    **fields: Any,
) -> Alert:
    """An alert of ``item`` (default: ``make_item()``); ``fields`` are any other ``Alert``
    fields (sources, created…)."""
    return Alert(
        id=alert_id,
        rule=rule,
        rule_name=rule_name,
        severity=severity,
        item=item if item is not None else make_item(),
        story=story,
        matches=tuple(matches),
        channels=tuple(channels),
        followup=followup,
        **fields,
    )


def outbox_entries(channel: str, alerts: Iterable[Alert]) -> list[dict[str, Any]]:
    """The outbox entries that send ``alerts`` on ``channel``."""
    return [outbox_entry(channel, alert) for alert in alerts]


def rss(entries: list[tuple[str, str]]) -> bytes:
    """An RSS 2.0 feed whose entries have no <guid>: the link identifies them."""
    body = "".join(
        f"<item><title>{title}</title><link>{link}</link>"
        f"<description>{title}: the council met and voted on the plan.</description></item>"
        for title, link in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Example</title><link>https://news.example/</link>{body}</channel></rss>"
    ).encode()


def entries(numbers: range) -> list[tuple[str, str]]:
    """Titles and links of numbered stories, for ``rss``."""
    return [
        (f"Story number {n} about topic {n * 7}", f"https://news.example/s/{n}") for n in numbers
    ]

"""From a rule match to an alert: ids and routing, decided without I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from monitor.core.rules import Rule
from monitor.models import Alert, Item, Match, RuleMatch

TEXT_AFTER_MATCH = 600
"""Characters of an item's text an alert keeps after its last match in the text (or from the
start, when no match is in it): a channel's snippet reaches at most half its width (120 of
240) past a match, so every channel shows what it showed with the whole text."""


def alert_id(rule: str, story: str) -> str:
    """Derived from (rule, story) alone, so a redelivered alert is recognizable downstream."""
    return hashlib.sha256(f"{rule}\0{story}".encode()).hexdigest()[:20]


def build_alert(
    rule: Rule,
    item: Item,
    found: RuleMatch,
    *,
    story: str,
    now: datetime,
    followup: bool = False,
    sources: int = 1,
    related: str | None = None,
    related_title: str = "",
) -> Alert:
    return Alert(
        id=alert_id(rule.id, story),
        rule=rule.id,
        rule_name=rule.name,
        severity=rule.severity,
        item=shown(item, found.matches),
        story=story,
        matches=found.matches,
        channels=rule.channels,
        followup=followup,
        sources=sources,
        created=now,
        related=related,
        related_title=related_title,
    )


def shown(item: Item, matches: Iterable[Match]) -> Item:
    """``item`` as an alert carries it to the outbox: its text cut ``TEXT_AFTER_MATCH``
    characters after the last match in it. The offsets of the matches stay valid (the text
    keeps its start); an outbox entry of a long article carries a part of it, not all of it."""
    cut = max((m.end for m in matches if m.field == "text"), default=0) + TEXT_AFTER_MATCH
    kept = item.text[:cut]
    if len(kept) == len(item.text) or not kept.strip():
        return item
    return replace(item, text=kept)

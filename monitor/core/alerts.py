"""From a rule match to an alert: ids and routing, decided without I/O."""

from __future__ import annotations

import hashlib
from datetime import datetime

from monitor.core.rules import Rule
from monitor.models import Alert, Item, RuleMatch


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
        item=item,
        story=story,
        matches=found.matches,
        channels=rule.channels,
        followup=followup,
        sources=sources,
        created=now,
        related=related,
        related_title=related_title,
    )

"""``monitor rules backfill``: a rule switched on late alerts on what it missed, once per story.

The items come from the history (``store.history``), as the process role placed them. Each
match is claimed exactly as the process role claims it (``claim:{rule}:{story}``, the story
chosen by ``claim_story``): a story the rule already alerted on, live or in an earlier
backfill, is left alone, and so is every later item of a story the backfill alerts on; no
follow-ups are sent for the past. The alerts go to the outbox like any other, to the rule's
channels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.core.alerts import build_alert
from monitor.core.matcher import Matcher
from monitor.core.rules import Rule
from monitor.models import Alert
from monitor.roles.process import claim_story
from monitor.store import Store
from monitor.store.history import Recent
from monitor.store.keys import alert_count_field
from monitor.store.stories import Placement
from monitor.store.streams import outbox_entry


@dataclass(frozen=True, slots=True)
class Backfilled:
    """What a backfill did: the alerts it sent, and the matches it left alone."""

    alerts: list[Alert]
    matched: int  # items that matched
    stories: int  # the stories they belong to
    already_alerted: int  # of those stories, the ones the rule had alerted on
    duplicates: int  # items left out as duplicates


async def backfill(store: Store, rule: Rule, items: Sequence[Recent], now: datetime) -> Backfilled:
    """Alert on ``rule``'s matches among ``items`` whose story has not alerted for it."""
    matcher = Matcher([rule])
    found = []
    duplicates = 0
    for recent in items:
        if recent.duplicate_of is not None:
            duplicates += 1
            continue
        for result in matcher.match(recent.item):
            placed = Placement(recent.item.id, recent.story, confident=recent.confident)
            found.append((recent, result, claim_story(recent.item, placed)))
    # One claim per story: the first match of each, as the live run would have claimed it.
    first: dict[str, int] = {}
    for index, (_, _, story) in enumerate(found):
        first.setdefault(story, index)
    chosen = [found[index] for index in first.values()]
    won = await store.set_once(
        [
            (store.keys.claim(rule.id, story), f"backfill:{recent.item.id}", rule.cooldown)
            for recent, _, story in chosen
        ]
    )
    alerts = [
        build_alert(
            rule,
            recent.item,
            result,
            story=story,
            now=now,
            related=recent.story if story != recent.story else None,
        )
        for (recent, result, story), new in zip(chosen, won, strict=True)
        if new
    ]
    counts = Counter(alert_count_field(a.rule, a.followup) for a in alerts)
    await store.add_alerts(
        [outbox_entry(channel, alert) for alert in alerts for channel in alert.channels],
        counts,
        now.timestamp(),
    )
    return Backfilled(alerts, len(found), len(chosen), len(chosen) - len(alerts), duplicates)

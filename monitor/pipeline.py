"""The process role: items stream → seen check → match → claim (rule, story) → outbox.

Each batch costs a constant number of Redis round trips: one pipeline for the seen checks, one
for the claims, one for the outbox, one acknowledgement. An item is acknowledged only after its
alerts are in the outbox. Seen and claim keys hold the id of the stream entry that set them, so
an entry redelivered after a crash (XAUTOCLAIM) finishes its own work instead of being taken
for a duplicate of itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.core.alerts import build_alert
from monitor.core.matcher import Matcher
from monitor.core.rules import Rule, WatchConfig
from monitor.models import Alert, Item, RuleMatch
from monitor.store import Store

logger = logging.getLogger(__name__)

GROUP = "process"


@dataclass(frozen=True)
class Runtime:
    """The configuration in force and what is compiled from it; swapped whole on reload."""

    config: WatchConfig
    matcher: Matcher
    rules: Mapping[str, Rule] = field(default_factory=dict)

    @classmethod
    def build(cls, config: WatchConfig) -> Runtime:
        return cls(config, Matcher(config.rules), {rule.id: rule for rule in config.rules})


def item_payload(item: Item) -> dict[str, Any]:
    return {"item": item.to_dict()}


def seen_key(store: Store, item: Item) -> str:
    return store.keys.seen(item.source, item.guid or item.id)


class Processor:
    """Reads the items stream in a consumer group and turns new items into outbox entries."""

    def __init__(
        self,
        store: Store,
        runtime: Callable[[], Runtime],
        *,
        channels: Sequence[str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        reclaim_idle_ms: int = 60_000,
    ) -> None:
        """``channels`` overrides every rule's routing (``monitor replay`` prints everything)."""
        self.store = store
        self.runtime = runtime
        self.channels = tuple(channels) if channels is not None else None
        self.clock = clock
        self.reclaim_idle_ms = reclaim_idle_ms

    async def start(self) -> None:
        await self.store.items.ensure_group(GROUP)

    async def step(self, consumer: str, *, count: int = 100, block_ms: int | None = None) -> int:
        """Process one batch: entries a dead consumer left pending first, then new ones."""
        entries = await self.store.items.autoclaim(GROUP, consumer, self.reclaim_idle_ms, count)
        if not entries:
            entries = await self.store.items.read(GROUP, consumer, count, block_ms)
        if entries:
            await self.handle(entries)
        return len(entries)

    async def handle(self, entries: Sequence[tuple[str, dict[str, Any]]]) -> list[Alert]:
        """Process one batch of stream entries and acknowledge them; returns the alerts."""
        runtime = self.runtime()
        items: list[tuple[str, Item]] = []
        for entry_id, payload in entries:
            try:
                items.append((entry_id, Item.from_dict(payload["item"])))
            except (KeyError, TypeError, ValueError) as exc:
                logger.error("dropping malformed item entry %s: %r", entry_id, exc)
        fresh = await self.store.set_once(
            [
                (seen_key(self.store, item), entry_id, self.store.seen_ttl)
                for entry_id, item in items
            ],
            reentrant=True,
        )
        found: list[tuple[str, Item, Rule, RuleMatch, str]] = []
        for (entry_id, item), new in zip(items, fresh, strict=True):
            if not new:
                logger.debug("seen before: %s (%s)", item.id, item.source)
                continue
            story = item.id  # each item is its own story until stories are assigned
            for result in runtime.matcher.match(item):
                found.append((entry_id, item, runtime.rules[result.rule], result, story))
        won = await self.store.set_once(
            [
                (self.store.keys.claim(rule.id, story), entry_id, rule.cooldown)
                for entry_id, _, rule, _, story in found
            ],
            reentrant=True,
        )
        now = self.clock()
        alerts = [
            build_alert(rule, item, result, story=story, now=now)
            for (_, item, rule, result, story), first in zip(found, won, strict=True)
            if first
        ]
        await self.store.outbox.add_many(
            [
                {"channel": channel, "alert": alert.to_dict()}
                for alert in alerts
                for channel in (self.channels or alert.channels)
            ]
        )
        await self.store.items.ack(GROUP, [entry_id for entry_id, _ in entries])
        for alert in alerts:
            logger.info("alert %s rule=%s item=%s", alert.id, alert.rule, alert.item.id)
        return alerts

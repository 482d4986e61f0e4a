"""The process role: items → seen? → duplicate? story? → match → claim (rule, story) → outbox.

A batch costs the read and three Redis round trips, whatever its size, alerts included: the
seen checks, in the round trip where placement reads the items' lines; placement's candidates;
and placement's write, with the batch's end in the same round trip (``store.finishing``: the
claims, the outbox and the counts per rule for ``monitor status``, the acknowledgement and the
history, in one script that runs only if the write went through; when another worker's write
refused it, the batch is decided again and both go again). With nothing to place (every item
seen before), the end goes alone. Entries a dead consumer left are looked for every quarter of
``reclaim_idle_ms``, not every batch. An item is acknowledged only with its alerts in the
outbox. Seen and claim keys hold the id of the stream entry that set them, so an entry
redelivered after a crash (XAUTOCLAIM) finishes its own work instead of being taken for a
duplicate of itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from monitor.clock import Clock, system_clock, utc_now
from monitor.core.alerts import build_alert
from monitor.core.analysis import Analysis
from monitor.core.matcher import Matcher
from monitor.core.rules import Rule, WatchConfig
from monitor.models import Alert, Item, RuleMatch
from monitor.ops.logs import context
from monitor.ops.metrics import Metrics
from monitor.store import Store, finishing
from monitor.store.delivery import alert_record
from monitor.store.finishing import SOURCES_MARK, Claimed, Ending, Guard, Variant, halves
from monitor.store.history import pack
from monitor.store.keys import alert_count_field
from monitor.store.quiet import Claim
from monitor.store.seen import seen_keys
from monitor.store.stories import Once, Placement, StoryKeeper, analyse_item, story_id
from monitor.store.streams import PROCESS_GROUP, TakeOver, entry_item, outbox_entry

logger = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.001
"""How long a thread may hold the interpreter while another waits for it (Python's default:
5 ms). The process role's CPU work runs in threads beside the event loop, and each time the
loop wakes (a Redis reply, an alert to send) it waits up to this long: the daemon sets 1 ms
when it runs the process role. Measured (``monitor bench dispatch --process``, 10 alerts a
second while the process role is saturated in the same process): dispatch latency p50 halves;
the process role's CPU per item does not change (``monitor bench process``)."""


@dataclass(frozen=True)
class Processed:
    """What one batch produced: the alerts (first ones and follow-ups) and where items went."""

    alerts: list[Alert]
    placements: list[tuple[Item, Placement]]


@dataclass(frozen=True)
class Runtime:
    """The configuration in force and what is compiled from it; swapped whole on reload."""

    config: WatchConfig
    rules: Mapping[str, Rule] = field(default_factory=dict)

    @classmethod
    def build(cls, config: WatchConfig) -> Runtime:
        return cls(config, {rule.id: rule for rule in config.rules})

    @cached_property
    def matcher(self) -> Matcher:
        """The rules compiled for matching, when first needed: whoever matches compiles them
        before swapping a reloaded runtime in (``compiled``, off the event loop); a daemon
        whose process role runs in workers never does (they compile their own)."""
        return Matcher(self.config.rules)


def claim_story(item: Item, placed: Placement) -> str:
    """The story a rule's match is claimed under: the item's story when the tie to it is
    confident, else a story of the item's own (so a loose tie alerts instead of hiding as a
    follow-up of a story that may be another event)."""
    if placed.confident or placed.duplicate_of is not None:
        return placed.story
    return story_id(item.id)


def _alert(
    rule: Rule,
    item: Item,
    result: RuleMatch,
    placed: Placement,
    story: str,
    first: bool,
    now: datetime,
) -> Alert | None:
    """The alert for one match: a first alert (naming the story it may belong to when the tie
    was loose), or a later report as the rule's ``followups`` says: in the thread, as an alert
    of its own, or none."""
    related = placed.story if story != placed.story else None
    if not first and rule.followups == "off":
        return None
    if not first and rule.followups == "alert":
        related, first = story, True
    return build_alert(
        rule,
        item,
        result,
        story=story,
        now=now,
        followup=not first,
        sources=placed.sources,
        related=related,
        related_title=placed.matched_title if related else "",
    )


class Processor:
    """Reads the items stream in a consumer group and turns new items into outbox entries."""

    def __init__(
        self,
        store: Store,
        runtime: Callable[[], Runtime],
        stories: StoryKeeper,
        *,
        channels: Sequence[str] | None = None,
        clock: Clock = system_clock,
        reclaim_idle_ms: int = 60_000,
        metrics: Metrics | None = None,
        count_alerts: bool = True,
        take_over_dead: bool = False,
    ) -> None:
        """``channels`` overrides every rule's routing (``monitor replay`` prints everything).
        ``count_alerts``: add each alert to the per-rule counts ``monitor status`` shows.
        ``take_over_dead``: every consumer of the group keeps a heartbeat (the daemon's), so
        the pending entries of one whose heartbeat stopped are taken over at once."""
        self.store = store
        self.metrics = metrics or Metrics()
        self.runtime = runtime
        self.stories = stories
        self.channels = tuple(channels) if channels is not None else None
        self.clock = clock
        self.reclaim_idle_ms = reclaim_idle_ms
        self._reclaimed_at = float("-inf")
        self.count_alerts = count_alerts
        self._take_over = (
            TakeOver(store.items, PROCESS_GROUP, store.alive_many) if take_over_dead else None
        )

    async def start(self) -> None:
        await self.store.items.ensure_group(PROCESS_GROUP)
        await self.stories.load(finishing.scripts(self.store.client))

    def _reclaim_due(self) -> bool:
        """Whether to look for entries idle ``reclaim_idle_ms`` (their consumer died): every
        quarter of that time, not every batch (an entry is reclaimed at most a quarter late, and
        a batch saves a round trip)."""
        return time.monotonic() - self._reclaimed_at >= self.reclaim_idle_ms / 4000

    async def step(self, consumer: str, *, count: int = 100, block_ms: int | None = None) -> int:
        """Process one batch: entries a dead consumer left pending first, then new ones."""
        entries = await self._take_over(consumer, count) if self._take_over else []
        if not entries and self._reclaim_due():
            entries = await self.store.items.autoclaim(
                PROCESS_GROUP, consumer, self.reclaim_idle_ms, count
            )
            if len(entries) < count:  # a full batch may leave more: look again next time
                self._reclaimed_at = time.monotonic()
        if not entries:
            entries = await self.store.items.read(PROCESS_GROUP, consumer, count, block_ms)
        if entries:
            await self.handle(entries)
        return len(entries)

    def _items_of(
        self, entries: Sequence[tuple[str, dict[str, Any]]]
    ) -> tuple[list[tuple[str, Item]], list[Analysis], list[Once]]:
        """The items of stream entries (a malformed one is logged and left out), their words,
        and their level-1 keys (seen before, by source + GUID or by canonical URL), checked in
        the round trip that reads the items' lines for placement: a seen item is not placed."""
        items: list[tuple[str, Item]] = []
        for entry_id, payload in entries:
            try:
                items.append((entry_id, entry_item(payload)))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                logger.error(
                    "dropping malformed item entry: %r", exc, extra=context(entry=entry_id)
                )
        keys, ttl = self.store.keys, self.store.seen_ttl
        analysed = [analyse_item(item) for _, item in items]
        once = [Once(seen_keys(keys, item), entry_id, ttl) for entry_id, item in items]
        return items, analysed, once

    def _match(
        self, runtime: Runtime, items: Sequence[tuple[str, Item]], analysed: Sequence[Analysis]
    ) -> list[list[RuleMatch]]:
        """Every item through the rules (in a thread), each timed for the metrics."""
        found = []
        for (_, item), analysis in zip(items, analysed, strict=True):
            started = time.perf_counter()
            found.append(runtime.matcher.match(item, analysis))
            self.metrics.match_seconds.observe(time.perf_counter() - started)
        return found

    async def handle(self, entries: Sequence[tuple[str, dict[str, Any]]]) -> Processed:
        """Process one batch of stream entries and acknowledge them."""
        runtime = self.runtime()
        now = utc_now(self.clock)
        # Each item is read from its entry and its words are found once, for placement and
        # matching alike; the CPU work runs off the event loop, so the process's other roles
        # go on meanwhile.
        items, analysed, once = await asyncio.to_thread(self._items_of, entries)
        # Matching needs no placement: done before placement reads its candidates, it does not
        # stretch the time between that read and the write (when another worker may write
        # what the batch read). Items found seen or duplicates were matched for nothing.
        matches = await asyncio.to_thread(self._match, runtime, items, analysed)
        ends = _Ends(self, runtime, [e for e, _ in entries], items, matches, now)
        outcome = await self.stories.place_unseen(
            [item for _, item in items], now.timestamp(), analysed, once, ends.build
        )
        ending = ends.last
        if ending is None or not ending.ran:
            # No story write to go with (every item seen or placed before), or the write went
            # through and a correction changed the story since: the end goes alone.
            ending = await ends.build(outcome, None)
            await ending.write()
        alerts = ends.alerts(ending)
        new = [(entry, placed) for entry, placed in zip(items, outcome, strict=True) if placed]
        for (_, item), placed in new:
            if placed.duplicate_of is not None:
                logger.info(
                    "duplicate of %s",
                    placed.duplicate_of,
                    extra=context(source=item.source, item=item.id, story=placed.story),
                )
        placements = [placed for _, placed in new]
        self.metrics.processed(
            malformed=len(entries) - len(items),
            seen=len(items) - len(new),
            placements=placements,
            alerts=alerts,
        )
        for alert in alerts:
            logger.info(
                "%s: %s",
                "follow-up" if alert.followup else "alert",
                alert.item.title,
                extra=context(
                    source=alert.item.source,
                    rule=alert.rule,
                    story=alert.story,
                    alert=alert.id,
                    item=alert.item.id,
                ),
            )
        return Processed(alerts, [(item, placed) for (_, item), placed in new])


@dataclass
class _Ends:
    """Builds a batch's end (``finishing.Ending``) for the placements decided, again each time
    they are decided again."""

    processor: Processor
    runtime: Runtime
    entries: Sequence[str]
    items: Sequence[tuple[str, Item]]
    matches: Sequence[list[RuleMatch]]  # each item's, by index
    now: datetime
    last: Ending | None = None
    sent: list[tuple[Alert, Alert | None]] = field(default_factory=list)  # first, follow-up

    async def build(self, placements: Sequence[Placement | None], guard: Guard | None) -> Ending:
        """The end for ``placements``: its claims and alerts built, its items compressed for
        the history, in a thread (CPU work, off the event loop)."""
        claims, self.sent, recent = await asyncio.to_thread(self._built, placements)
        self.last = Ending(
            self.processor.store,
            PROCESS_GROUP,
            self.entries,
            recent,
            claims,
            self.now.timestamp(),
            guard,
        )
        return self.last

    def _built(
        self, placements: Sequence[Placement | None]
    ) -> tuple[list[Claimed], list[tuple[Alert, Alert | None]], list[str]]:
        """The claims, the alerts each may send (first, follow-up), the items for the history."""
        runtime, now = self.runtime, self.now
        new = [
            (entry_id, item, found, placed)
            for (entry_id, item), found, placed in zip(
                self.items, self.matches, placements, strict=True
            )
            if placed is not None
        ]
        claims: list[Claimed] = []
        sent: list[tuple[Alert, Alert | None]] = []
        for entry_id, item, found, placed in new:
            if placed.duplicate_of is not None:
                continue
            for result in found:
                rule = runtime.rules[result.rule]
                story = claim_story(item, placed)
                first = _alert(rule, item, result, placed, story, True, now)
                later = _alert(rule, item, result, placed, story, False, now)
                assert first is not None  # a first alert is always made
                sent.append((first, later))
                claims.append(
                    Claimed.of(
                        Claim(rule.id, placed.story, story, entry_id, rule.cooldown),
                        alert_record(rule.id, story, item.title),
                        first.id,
                        self._variant(first),
                        self._variant(later),
                    )
                )
        recent = [pack(item, p.story, p.duplicate_of, p.confident) for _, item, _, p in new]
        return claims, sent, recent

    def _variant(self, alert: Alert | None) -> Variant:
        if alert is None:
            return Variant()
        marked = replace(alert, sources=SOURCES_MARK)
        channels = self.processor.channels or alert.channels
        return Variant(
            True,
            alert_count_field(alert.rule, alert.followup) if self.processor.count_alerts else "",
            [halves(outbox_entry(channel, marked)) for channel in channels],
        )

    def alerts(self, ending: Ending) -> list[Alert]:
        """The alerts the end sent (first alerts and follow-ups), with their sources counts."""
        sent = []
        for (first, later), (won, sources) in zip(self.sent, ending.outcomes, strict=True):
            alert = first if won == 1 else later if won == 0 else None
            if alert is not None:
                sent.append(replace(alert, sources=sources))
        return sent

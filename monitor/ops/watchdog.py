"""Operator alerts: a source that keeps failing, a channel whose deliveries keep failing.

Feeds that stop silently are how users of other monitors lose items. Here a source that fails
``source_failing_after`` polls in a row, or a channel that fails ``channel_failing_after``
deliveries in a row, raises one alert on every channel marked ``operator: true``; when it works
again, one recovery message follows, as a follow-up of the same story (so Slack threads it under
the alert and mail clients file it with it). Several daemons may observe the same trouble: a
Redis key per problem (``SET NX`` to raise, ``DEL`` to clear) lets exactly one of them speak.

Operator alerts go through the outbox like any alert, so they are retried and never sent twice;
a channel never reports its own failure through itself. With no operator channel configured,
the trouble is logged (and listed by ``/healthz`` and ``monitor status``) but not sent.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from monitor.clock import Clock, system_clock
from monitor.core.polling import FeedHealth
from monitor.core.rules import WatchConfig
from monitor.errors import StoreError
from monitor.models import Alert, Item
from monitor.ops.logs import context
from monitor.store import Store
from monitor.store.streams import outbox_entry

__all__ = ["RULE", "Operator", "operator_alert"]

logger = logging.getLogger(__name__)

RULE = "newsmonitor.operator"
SOURCE = "newsmonitor"
CLEAR_CHECK_S = 30.0
"""How often a daemon that saw a channel succeed checks whether another daemon had raised a
failure for it (one round trip per channel per period, not per delivery)."""


def operator_alert(
    kind: str, target: str, raised_at: float, *, title: str, text: str, recovered: bool
) -> Alert:
    """The alert (or, ``recovered``, its follow-up) for trouble with a source or channel."""
    tag = hashlib.sha256(f"{kind}\0{target}\0{raised_at:.3f}".encode()).hexdigest()[:20]
    when = datetime.fromtimestamp(time.time(), UTC)
    item = Item(
        id=f"operator:{tag}:{'up' if recovered else 'down'}",
        source=SOURCE,
        title=title,
        text=text,
        published=when,
    )
    return Alert(
        id=f"operator-{tag}",
        rule=RULE,
        rule_name=f"newsmonitor: {kind} {target}",
        severity="normal" if recovered else "critical",
        item=item,
        story=f"operator-{tag}",
        matches=(),
        channels=(),
        followup=recovered,
        created=when,
    )


class Operator:
    """Watches poll and delivery outcomes and raises or clears operator alerts."""

    def __init__(
        self,
        store: Store,
        config: Callable[[], WatchConfig],
        *,
        source_failing_after: int = 3,
        channel_failing_after: int = 5,
        clock: Clock = system_clock,
    ) -> None:
        self.store = store
        self.config = config
        self.source_failing_after = source_failing_after
        self.channel_failing_after = channel_failing_after
        self.clock = clock
        self._suspect: set[str] = set()  # channels this daemon saw fail
        self._checked: dict[str, float] = {}

    def channels(self, excluding: str | None = None) -> list[str]:
        return [c.id for c in self.config().channels if c.operator and c.id != excluding]

    async def source_polled(self, source: str, before: FeedHealth, after: FeedHealth) -> None:
        """After each poll of ``source``: raise at the threshold, clear on the first success."""
        if after.consecutive_failures >= self.source_failing_after:
            since = before.last_success or after.last_error
            seen = f"last worked {since.isoformat(timespec='seconds')}" if since else "never worked"
            await self._raise(
                "source",
                source,
                title=f"Source {source} is failing: {after.error or 'unknown error'}",
                text=(
                    f"{after.consecutive_failures} polls in a row failed ({seen}); "
                    f"last error: {after.error or 'unknown'}. Its items are not being read."
                ),
            )
        elif after.consecutive_failures == 0 and before.consecutive_failures > 0:
            await self._clear(
                "source",
                source,
                title=f"Source {source} works again",
                text=f"It failed {before.consecutive_failures} polls in a row, then recovered.",
            )

    async def reloaded(self, rules_dir: str, problems: Sequence[str]) -> None:
        """After a reload of ``rules_dir``: raise when it failed (``problems``), clear when a
        reload works again."""
        if problems:
            shown = "; ".join(problems[:3]) + (
                f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            )
            await self._raise(
                "config",
                rules_dir,
                title=f"Rules reload failed: {problems[0]}",
                text=f"The last good configuration stays in force. Problems: {shown}",
            )
        else:
            await self._clear(
                "config",
                rules_dir,
                title="Rules reload works again",
                text="The rules directory loaded without problems and is in force.",
            )

    async def delivery(self, channel: str, ok: bool, error: str | None = None) -> None:
        """After each delivery attempt on ``channel``."""
        if ok:
            now = self.clock()
            if channel in self._suspect or now - self._checked.get(channel, 0.0) > CLEAR_CHECK_S:
                self._checked[channel] = now
                self._suspect.discard(channel)
                await self.store.reset_failures(channel)
                await self._clear(
                    "channel",
                    channel,
                    title=f"Channel {channel} delivers again",
                    text="Deliveries on it succeed again; alerts held for retry follow.",
                )
            return
        self._suspect.add(channel)
        failures = await self.store.count_failure(channel)
        if failures >= self.channel_failing_after:
            await self._raise(
                "channel",
                channel,
                title=f"Channel {channel} is failing: {error or 'unknown error'}",
                text=(
                    f"{failures} deliveries in a row failed; last error: {error or 'unknown'}. "
                    "Its alerts wait for retry (see `monitor alerts dead`)."
                ),
            )

    async def _raise(self, kind: str, target: str, *, title: str, text: str) -> None:
        raised_at = self.clock()
        if not await self.store.raise_problem(kind, target, raised_at):
            return  # raised already, by this daemon or another
        logger.error("operator alert: %s", title, extra=context(**{kind: target}))
        alert = operator_alert(kind, target, raised_at, title=title, text=text, recovered=False)
        try:
            await self._send(alert, excluding=target if kind == "channel" else None)
        except StoreError:
            await self.store.forget_problem(kind, target)  # raised again on the next failure
            raise

    async def _clear(self, kind: str, target: str, *, title: str, text: str) -> None:
        raised_at = await self.store.clear_problem(kind, target)
        if raised_at is None:
            return  # nothing was raised, or another daemon cleared it
        logger.info("operator recovery: %s", title, extra=context(**{kind: target}))
        alert = operator_alert(kind, target, raised_at, title=title, text=text, recovered=True)
        await self._send(alert, excluding=target if kind == "channel" else None)

    async def _send(self, alert: Alert, *, excluding: str | None) -> None:
        channels = self.channels(excluding)
        if not channels:
            logger.warning("no channel has `operator: true`: the operator alert is only logged")
            return
        await self.store.outbox.add_many([outbox_entry(channel, alert) for channel in channels])

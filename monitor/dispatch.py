"""The dispatch role: outbox stream → channels; acknowledged only once a channel accepted.

One outbox entry is one alert for one channel, so a channel that fails holds up nothing else.
A retryable failure leaves the entry pending; it is handed out again (XAUTOCLAIM) after
``retry_idle_ms``. A permanent failure, or a channel that no longer exists, moves the entry to
the dead-letter stream with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from monitor.channels.base import Channel
from monitor.errors import DeliveryError
from monitor.models import Alert
from monitor.store import Store

logger = logging.getLogger(__name__)

GROUP = "dispatch"


class Dispatcher:
    """Delivers outbox entries through the channels it was given, by channel id."""

    def __init__(
        self, store: Store, channels: Mapping[str, Channel], *, retry_idle_ms: int = 30_000
    ) -> None:
        self.store = store
        self.channels = channels
        self.retry_idle_ms = retry_idle_ms

    async def start(self) -> None:
        await self.store.outbox.ensure_group(GROUP)

    async def step(self, consumer: str, *, count: int = 100, block_ms: int | None = None) -> int:
        entries = await self.store.outbox.autoclaim(GROUP, consumer, self.retry_idle_ms, count)
        if not entries:
            entries = await self.store.outbox.read(GROUP, consumer, count, block_ms)
        await self.deliver(entries)
        return len(entries)

    async def deliver(self, entries: Sequence[tuple[str, dict[str, Any]]]) -> None:
        done: list[str] = []
        dead: list[dict[str, Any]] = []
        for entry_id, payload in entries:
            reason = await self._send(entry_id, payload)
            if reason is None:
                done.append(entry_id)
            elif reason:
                dead.append({**payload, "reason": reason, "entry": entry_id})
                done.append(entry_id)
        if dead:
            await self.store.dead.add_many(dead)
        await self.store.outbox.ack(GROUP, done)

    async def _send(self, entry_id: str, payload: dict[str, Any]) -> str | None:
        """None when delivered; a reason when dead; "" when it should be tried again later."""
        channel_id = str(payload.get("channel"))
        channel = self.channels.get(channel_id)
        if channel is None:
            logger.error("outbox %s: no channel %r is configured", entry_id, channel_id)
            return f"no channel {channel_id!r} is configured"
        try:
            alert = Alert.from_dict(payload["alert"])
        except (KeyError, TypeError, ValueError) as exc:
            logger.error("outbox %s: malformed alert: %r", entry_id, exc)
            return f"malformed alert: {exc!r}"
        try:
            await channel.send(alert)
        except DeliveryError as exc:
            logger.warning(
                "channel %s failed alert %s (%s): %s",
                channel_id,
                alert.id,
                "will retry" if exc.retryable else "dead letter",
                exc,
            )
            return "" if exc.retryable else str(exc)
        return None

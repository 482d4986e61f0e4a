"""The dispatch role: outbox stream → channels; acknowledged only once a channel accepted.

One outbox entry is one alert for one channel, so a channel that fails holds up nothing else,
and the channels of a batch are served concurrently. For each entry:

* already sent (its delivery id is marked in Redis: a dispatcher died between the send and the
  acknowledgement) → acknowledged without sending again;
* the channel accepts → marked sent, then acknowledged;
* a retryable failure → a copy goes to the delayed queue, due after an exponential backoff with
  jitter (never sooner than the peer's Retry-After), then the entry is acknowledged; when due, the
  copy returns to the outbox. After ``give_up_after_s`` (default 24 h) of failures it is dead;
* a permanent failure, an unknown channel, a malformed entry → the dead-letter stream with the
  reason, then acknowledged. ``monitor alerts retry`` puts dead letters back in the outbox.

Entries left pending by a dispatcher that died are handed to another (XAUTOCLAIM) after
``reclaim_idle_ms``, longer than any send may take, and the sent marks make them go out once.
Each channel has a rate limit (its class attributes ``rate_per_s`` and ``burst``), and a 429
pauses that channel, not the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.channels.base import Channel
from monitor.core.retry import RetryPolicy, gives_up, retry_delay
from monitor.errors import DeliveryError
from monitor.models import Alert
from monitor.store import Store

logger = logging.getLogger(__name__)

GROUP = "dispatch"
ORPHANED = (
    "its dispatcher died while sending it: it may have arrived; "
    "`monitor alerts retry` sends it again"
)


def delivery_id(channel: str, alert: Mapping[str, Any]) -> str:
    """Stable for one alert of one item on one channel: a follow-up is a delivery of its own."""
    item = (alert.get("item") or {}).get("id", "")
    return hashlib.sha256(f"{channel}\0{alert.get('id')}\0{item}".encode()).hexdigest()[:24]


class RateLimit:
    """A token bucket: ``rate`` sends per second on average, ``burst`` at once; a peer's
    Retry-After pauses it."""

    def __init__(self, rate: float | None, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self.clock = rate, max(burst, 1), clock
        self.tokens = float(self.burst)
        self.updated = clock()
        self.paused_until = 0.0

    def wait_s(self) -> float:
        """Seconds until a send may go out; takes the token when it is 0."""
        now = self.clock()
        if now < self.paused_until:
            return self.paused_until - now
        if self.rate is None:
            return 0.0
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    async def acquire(self) -> None:
        """Wait until a send may go out."""
        while True:
            wait = self.wait_s()
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock() + seconds)


@dataclass(frozen=True, slots=True)
class _Queued:
    """A readable outbox entry, waiting for its channel."""

    entry: str
    payload: dict[str, Any]
    delivery: str
    alert: Alert


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one entry."""

    entry: str
    delivery: str
    state: str  # sent | duplicate | busy (another dispatcher has it) | retry | dead
    reason: str | None = None


class Dispatcher:
    """Delivers outbox entries through the channels it was given, by channel id."""

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        *,
        policy: RetryPolicy | None = None,
        reclaim_idle_ms: int = 120_000,
        sent_ttl_s: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.channels = channels
        self.policy = policy or RetryPolicy()
        self.reclaim_idle_ms = reclaim_idle_ms
        self.sent_ttl_s = sent_ttl_s or store.seen_ttl
        self.clock = clock
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._limits: dict[str, RateLimit] = {}

    async def start(self) -> None:
        await self.store.outbox.ensure_group(GROUP)

    async def step(self, consumer: str, *, count: int = 100, block_ms: int | None = None) -> int:
        """Move due retries back to the outbox, then deliver one batch; how many entries."""
        await self.store.release_delayed(self.clock())
        entries = await self.store.outbox.autoclaim(GROUP, consumer, self.reclaim_idle_ms, count)
        if not entries:
            entries = await self.store.outbox.read(GROUP, consumer, count, block_ms)
        await self.deliver(entries)
        return len(entries)

    async def deliver(self, entries: Sequence[tuple[str, dict[str, Any]]]) -> list[Outcome]:
        """Deliver a batch: each channel's entries in order, the channels concurrently."""
        if not entries:
            return []
        outcomes: list[Outcome] = []
        readable: list[_Queued] = []
        for entry_id, payload in entries:
            try:
                alert = Alert.from_dict(payload["alert"])
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                outcomes.append(await self._dead(entry_id, payload, "", f"malformed entry: {exc}"))
            else:
                delivery = delivery_id(str(payload.get("channel")), payload["alert"])
                readable.append(_Queued(entry_id, payload, delivery, alert))
        sent = await self.store.exists_many([self.store.keys.sent(q.delivery) for q in readable])
        by_channel: dict[str, list[_Queued]] = defaultdict(list)
        duplicates: list[Outcome] = []
        for queued, done in zip(readable, sent, strict=True):
            if done:
                duplicates.append(Outcome(queued.entry, queued.delivery, "duplicate"))
            else:
                by_channel[str(queued.payload.get("channel"))].append(queued)
        if duplicates:
            await self.store.outbox.ack(GROUP, [o.entry for o in duplicates])
        outcomes.extend(duplicates)
        results = await asyncio.gather(
            *(self._serve(channel, queued) for channel, queued in by_channel.items())
        )
        return outcomes + [o for served in results for o in served]

    async def _serve(self, channel_id: str, queued: Sequence[_Queued]) -> list[Outcome]:
        channel = self.channels.get(channel_id)
        outcomes = []
        for q in queued:
            if channel is None:
                reason = f"no channel {channel_id!r} is configured"
                outcome = await self._dead(q.entry, q.payload, q.delivery, reason)
            else:
                outcome = await self._send(channel, q.entry, q.payload, q.delivery, q.alert)
            outcomes.append(outcome)
        return outcomes

    async def _send(
        self, channel: Channel, entry_id: str, payload: dict[str, Any], delivery: str, alert: Alert
    ) -> Outcome:
        limit = self._limit(channel)
        await limit.acquire()
        # Another dispatcher may have taken the entry over while it waited for the rate limit.
        state = await self.store.begin_send(delivery, self.owner, self.reclaim_idle_ms / 1000)
        if state == "sent":
            await self.store.outbox.ack(GROUP, [entry_id])
            return Outcome(entry_id, delivery, "duplicate")
        if state == "busy":
            return Outcome(entry_id, delivery, "busy")  # its holder acknowledges it
        if state == "orphaned":
            # Sending again could repeat it, dropping it could lose it: an operator decides.
            outcome = await self._dead(entry_id, payload, delivery, ORPHANED)
            await self.store.end_send(delivery)
            return outcome
        outcome = await self._attempt(channel, alert, entry_id, payload, delivery, limit)
        if outcome.state != "sent":
            await self.store.end_send(delivery)
        return outcome

    async def _attempt(
        self,
        channel: Channel,
        alert: Alert,
        entry_id: str,
        payload: dict[str, Any],
        delivery: str,
        limit: RateLimit,
    ) -> Outcome:
        try:
            await channel.send(alert)
        except Exception as raised:
            exc = raised if isinstance(raised, DeliveryError) else None
            if exc is None:  # a bug in a channel must not jam the outbox: retry it
                logger.exception("channel %s raised unexpectedly on %s", channel.id, delivery)
                exc = DeliveryError(f"unexpected {type(raised).__name__}", retryable=True)
            if exc.retry_after_s:
                limit.pause(exc.retry_after_s)
            if not exc.retryable:
                return await self._dead(entry_id, payload, delivery, str(exc))
            return await self._retry(entry_id, payload, delivery, exc)
        await self.store.finish_send(delivery, self.sent_ttl_s, GROUP, entry_id)
        logger.info(
            "sent %s on %s (alert %s, item %s)", delivery, channel.id, alert.id, alert.item.id
        )
        return Outcome(entry_id, delivery, "sent")

    async def _retry(
        self, entry_id: str, payload: dict[str, Any], delivery: str, exc: DeliveryError
    ) -> Outcome:
        now = self.clock()
        attempt = int(payload.get("attempt", 1))
        first = float(payload.get("first_attempt", now))
        delay = retry_delay(
            self.policy,
            attempt,
            retry_after_s=exc.retry_after_s,
            jitter=random.random(),
        )
        if gives_up(self.policy, first, now, delay):
            reason = f"gave up after {attempt} attempts over {now - first:.0f} s: {exc}"
            return await self._dead(entry_id, payload, delivery, reason)
        again = {**payload, "attempt": attempt + 1, "first_attempt": first, "last_error": str(exc)}
        await self.store.delay(json.dumps(again, sort_keys=True), now + delay)
        await self.store.outbox.ack(GROUP, [entry_id])
        logger.warning(
            "channel %s failed %s (attempt %d), retrying in %.1f s: %s",
            payload.get("channel"),
            delivery,
            attempt,
            delay,
            exc,
        )
        return Outcome(entry_id, delivery, "retry", str(exc))

    async def _dead(
        self, entry_id: str, payload: dict[str, Any], delivery: str, reason: str
    ) -> Outcome:
        record = {**payload, "reason": reason, "delivery": delivery, "failed_at": self.clock()}
        await self.store.dead.add_many([record])
        await self.store.outbox.ack(GROUP, [entry_id])
        logger.error("dead letter %s on %s: %s", delivery, payload.get("channel"), reason)
        return Outcome(entry_id, delivery, "dead", reason)

    def _limit(self, channel: Channel) -> RateLimit:
        limit = self._limits.get(channel.id)
        if limit is None:
            rate = getattr(channel, "rate_per_s", None)
            burst = int(getattr(channel, "burst", 1))
            limit = self._limits[channel.id] = RateLimit(rate, burst, self.clock)
        return limit


async def retry_dead(store: Store, ids: Sequence[str] | None) -> int:
    """Put dead letters (all, or those with these stream ids) back in the outbox, fresh."""
    letters = await store.dead_letters()
    chosen = [(i, p) for i, p in letters if ids is None or i in ids]
    fresh = [
        {
            k: v
            for k, v in p.items()
            if k
            not in ("reason", "delivery", "failed_at", "attempt", "first_attempt", "last_error")
        }
        for _, p in chosen
    ]
    await store.outbox.add_many(fresh)
    await store.remove_dead([i for i, _ in chosen])
    return len(chosen)

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

Entries left pending by a dispatcher that died are taken over as soon as its heartbeat lapses
(in the daemon; ``reclaim_idle_ms`` of idleness otherwise), and the sent marks and in-flight
locks make them go out once.
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
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from monitor.channels.base import Channel
from monitor.clock import Clock, system_clock
from monitor.core.retry import RetryPolicy, gives_up, retry_delay
from monitor.core.rules import Rule, WatchConfig
from monitor.core.schedule import DigestSchedule, QuietHours, hold_until
from monitor.errors import DeliveryError
from monitor.models import Alert, Digest, Outcome
from monitor.ops.logs import context
from monitor.ops.metrics import Metrics
from monitor.ops.watchdog import Operator
from monitor.store import Store
from monitor.store.streams import (
    DISPATCH_GROUP,
    TakeOver,
    alert_ref,
    dead_entry,
    decode,
    digest_entry,
    encode,
    entry_alert,
    outbox_entry,
    retried_entry,
)

logger = logging.getLogger(__name__)

ORPHANED = (
    "its dispatcher died while sending it and the channel cannot say whether it arrived; "
    "`monitor alerts retry` sends it again"
)


QUIET = "quiet hours"
_EPOCH = datetime.fromtimestamp(0, UTC)


def _fields(payload: Mapping[str, Any], delivery: str = "") -> dict[str, object]:
    """The log fields of an outbox entry: channel, delivery, and its alert's ids."""
    ref = alert_ref(payload)
    return context(
        channel=ref.channel,
        delivery=delivery or None,
        alert=ref.alert,
        rule=ref.rule,
        story=ref.story,
        item=ref.item,
    )


def _outcome(q: _Queued, state: str, reason: str | None = None) -> Outcome:
    rule = q.alert.rule if q.alert is not None else ""
    return Outcome(q.entry, q.delivery, state, reason, str(q.payload.get("channel")), rule)


def delivery_id(channel: str, alert: Mapping[str, Any]) -> str:
    """Stable for one alert of one item on one channel: a follow-up is a delivery of its own."""
    item = (alert.get("item") or {}).get("id", "")
    return hashlib.sha256(f"{channel}\0{alert.get('id')}\0{item}".encode()).hexdigest()[:24]


class RateLimit:
    """A token bucket: ``rate`` sends per second on average, ``burst`` at once; a peer's
    Retry-After pauses it."""

    def __init__(self, rate: float | None, burst: int, *, clock: Clock = system_clock) -> None:
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
    """A readable outbox entry, waiting for its channel: an alert, or a digest of held ones."""

    entry: str
    payload: dict[str, Any]
    delivery: str
    alert: Alert | None = None
    digest: dict[str, Any] | None = None  # {"bucket", "due", "schedule"[, "sealed"]}


@dataclass(frozen=True, slots=True)
class _Route:
    """How alerts reach one channel: at once, or held for a digest or quiet hours."""

    digest: DigestSchedule | None = None
    quiet: QuietHours | None = None
    uncertain: str = "resend"


class Dispatcher:
    """Delivers outbox entries through the channels it was given, by channel id.

    ``config`` (the current watch configuration) says which channels and rules collect
    digests or keep quiet hours; without it every alert goes out at once.
    """

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        *,
        policy: RetryPolicy | None = None,
        reclaim_idle_ms: int = 120_000,
        sent_ttl_s: int | None = None,
        clock: Clock = system_clock,
        config: Callable[[], WatchConfig] | None = None,
        metrics: Metrics | None = None,
        operator: Operator | None = None,
        alive_s: float | None = None,
    ) -> None:
        """``alive_s``: how long this dispatcher's liveness lasts without renewal; the daemon
        renews it with a heartbeat (``HEARTBEAT_S``), and then also takes over at once the
        pending entries of consumers whose heartbeat stopped. Without it, liveness lasts
        ``reclaim_idle_ms`` from the last send, and only idle entries are reclaimed."""
        self.store = store
        self.operator = operator
        self.metrics = metrics or Metrics()
        self.channels = channels
        self.policy = policy or RetryPolicy()
        self.reclaim_idle_ms = reclaim_idle_ms
        self.alive_s = alive_s if alive_s is not None else reclaim_idle_ms / 1000
        # A send another dispatcher held ("busy") stays pending on this name until settled.
        self._take_over = (
            TakeOver(store.outbox, DISPATCH_GROUP, store.alive_many)
            if alive_s is not None
            else None
        )
        self.sent_ttl_s = sent_ttl_s or store.seen_ttl
        self.clock = clock
        self.config = config
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._limits: dict[str, RateLimit] = {}
        self._routes: tuple[WatchConfig | None, dict[str, _Route], dict[str, Rule]] = (None, {}, {})

    async def start(self) -> None:
        await self.store.outbox.ensure_group(DISPATCH_GROUP)

    async def step(self, consumer: str, *, count: int = 100, block_ms: int | None = None) -> int:
        """Move due retries and digests to the outbox, then deliver one batch; how many
        entries."""
        now = self.clock()
        await self.store.release_delayed(now)
        await self.release_digests(now)
        entries = await self._take_over(consumer, count) if self._take_over else []
        if not entries:
            entries = await self.store.outbox.autoclaim(
                DISPATCH_GROUP, consumer, self.reclaim_idle_ms, count
            )
        if not entries:
            entries = await self.store.outbox.read(DISPATCH_GROUP, consumer, count, block_ms)
        await self.deliver(entries)
        return len(entries)

    async def release_digests(self, now: float) -> int:
        """One outbox entry per bucket of held alerts that is due; how many."""

        def entry(bucket: str, due: float, sealed: str) -> dict[str, Any]:
            meta = json.loads(bucket)
            digest = {
                "bucket": bucket,
                "due": due,
                "schedule": meta.get("schedule", ""),
                "sealed": sealed,
            }
            return digest_entry(meta["channel"], digest)

        # Sealed alerts outlive the retry window and the sent marks of what they carry.
        ttl = self.sent_ttl_s + int(self.policy.give_up_after_s) + 86400
        return await self.store.release_holds(now, entry, ttl)

    async def deliver(self, entries: Sequence[tuple[str, dict[str, Any]]]) -> list[Outcome]:
        """Deliver a batch: each channel's entries in order, the channels concurrently."""
        if not entries:
            return []
        outcomes: list[Outcome] = []
        readable: list[_Queued] = []
        for entry_id, payload in entries:
            channel = str(payload.get("channel"))
            try:
                if "digest" in payload:
                    readable.append(self._digest_entry(entry_id, payload, channel))
                    continue
                alert = entry_alert(payload)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                outcomes.append(await self._dead(entry_id, payload, "", f"malformed entry: {exc}"))
            else:
                delivery = delivery_id(channel, payload["alert"])
                readable.append(_Queued(entry_id, payload, delivery, alert=alert))
        keys = self.store.keys
        found = await self.store.exists_many(
            [key for q in readable for key in (keys.sent(q.delivery), keys.inflight(q.delivery))]
        )
        by_channel: dict[str, list[_Queued]] = defaultdict(list)
        duplicates: list[Outcome] = []
        now = self.clock()
        for n, queued in enumerate(readable):
            channel = str(queued.payload.get("channel"))
            done, begun = found[2 * n], found[2 * n + 1]
            if done:
                duplicates.append(_outcome(queued, "duplicate"))
            elif (  # a send cut short is settled first (`_recover`), never held again
                queued.alert is not None
                and not begun
                and (due := self._held_until(channel, queued.alert, now))
            ):
                outcomes.append(await self._hold(queued, channel, *due, now))
            else:
                by_channel[channel].append(queued)
        if duplicates:
            await self.store.outbox.ack(DISPATCH_GROUP, [o.entry for o in duplicates])
        outcomes.extend(duplicates)
        results = await asyncio.gather(
            *(self._serve(channel, queued) for channel, queued in by_channel.items())
        )
        outcomes += [o for served in results for o in served]
        self.metrics.delivered(entries, outcomes)
        return outcomes

    def _digest_entry(self, entry_id: str, payload: dict[str, Any], channel: str) -> _Queued:
        ref = payload["digest"]
        if not isinstance(ref, dict) or not isinstance(ref.get("sealed"), str):
            raise ValueError("a digest entry needs its sealed alerts")
        delivery = hashlib.sha256(f"{channel}\0digest\0{ref['sealed']}".encode()).hexdigest()[:24]
        return _Queued(entry_id, payload, delivery, digest=ref)

    # --- holding for digests and quiet hours --------------------------------------------------

    def _route(self, channel: str, rule: str) -> tuple[_Route, Rule | None]:
        config = self.config() if self.config is not None else None
        cached, routes, rules = self._routes
        if config is not cached:
            routes, rules = {}, {}
            if config is not None:
                for spec in config.channels:
                    routes[spec.id] = _Route(spec.digest_schedule, spec.quiet, spec.uncertain)
                rules = {r.id: r for r in config.rules}
            self._routes = (config, routes, rules)
        return routes.get(channel, _Route()), rules.get(rule)

    def _held_until(self, channel: str, alert: Alert, now: float) -> tuple[float, str, str] | None:
        """``(due, scope, what holds it)`` when ``alert`` waits on ``channel``, else None."""
        route, rule = self._route(channel, alert.rule)
        digest, scope = route.digest, "channel"
        if rule is not None and rule.digest is not None:
            digest = None if rule.digest == "off" else rule.digest
            scope = f"rule:{rule.id}"
        if digest is None and route.quiet is None:
            return None
        due = hold_until(datetime.fromtimestamp(now, UTC), alert.severity, digest, route.quiet)
        if due is None:
            return None
        return due.timestamp(), scope, str(digest) if digest is not None else QUIET

    async def _hold(
        self, queued: _Queued, channel: str, due: float, scope: str, schedule: str, now: float
    ) -> Outcome:
        bucket = json.dumps(
            {"channel": channel, "scope": scope, "due": int(due), "schedule": schedule},
            sort_keys=True,
        )
        payload = encode(outbox_entry(channel, queued.payload["alert"]))
        ttl = int(due - now) + self.sent_ttl_s
        await self.store.hold(
            bucket, due, queued.delivery, payload, ttl, DISPATCH_GROUP, queued.entry
        )
        logger.info(
            "held %s on %s until %s (%s)",
            queued.delivery,
            channel,
            datetime.fromtimestamp(due, UTC).isoformat(timespec="seconds"),
            schedule,
            extra=_fields(queued.payload, queued.delivery),
        )
        return _outcome(queued, "held")

    async def _open_digest(self, channel: str, queued: _Queued) -> tuple[Digest, list[str]] | None:
        """The alerts of a released digest, without those a channel already took; None when
        its alerts are gone from Redis."""
        assert queued.digest is not None
        ref = queued.digest
        held = await self.store.sealed_alerts(ref["sealed"])
        if held is None:
            return None
        alerts: dict[str, Alert] = {}
        for delivery, raw in held.items():
            try:
                alerts[delivery] = entry_alert(decode(raw))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                logger.error(
                    "digest %s on %s: dropped a malformed alert: %s",
                    queued.delivery,
                    channel,
                    exc,
                    extra=_fields(queued.payload, queued.delivery),
                )
        done = await self.store.exists_many([self.store.keys.sent(d) for d in alerts])
        fresh = {d: a for (d, a), sent in zip(alerts.items(), done, strict=True) if not sent}
        ordered = sorted(fresh.items(), key=lambda da: (da[1].created or _EPOCH, da[1].id))
        digest = Digest(
            id=queued.delivery,
            channel=channel,
            alerts=tuple(a for _, a in ordered),
            due=datetime.fromtimestamp(float(ref.get("due") or 0), UTC),
            schedule=str(ref.get("schedule") or ""),
        )
        return digest, [d for d, _ in ordered]

    # --- sending ------------------------------------------------------------------------------

    async def _serve(self, channel_id: str, queued: Sequence[_Queued]) -> list[Outcome]:
        channel = self.channels.get(channel_id)
        outcomes = []
        for q in queued:
            if channel is None:
                reason = f"no channel {channel_id!r} is configured"
                outcome = await self._dead(q.entry, q.payload, q.delivery, reason)
            else:
                outcome = await self._send(channel, q)
            outcomes.append(outcome)
        return outcomes

    async def _send(self, channel: Channel, q: _Queued) -> Outcome:
        limit = self._limit(channel)
        await limit.acquire()
        # Another dispatcher may have taken the entry over while it waited for the rate limit.
        begun = await self.store.begin_send(q.delivery, self.owner, self.alive_s)
        if begun.state == "sent":
            await self.store.outbox.ack(DISPATCH_GROUP, [q.entry])
            return _outcome(q, "duplicate")
        if begun.state == "busy":
            return _outcome(q, "busy")  # its holder acknowledges it
        subject: Alert | Digest | None = q.alert
        carried: list[str] = []
        if q.digest is not None:
            opened = await self._open_digest(channel.id, q)
            if opened is None:
                reason = "its held alerts are gone from Redis (expired before it could be sent)"
                outcome = await self._dead(q.entry, q.payload, q.delivery, reason)
                await self.store.end_send(q.delivery)
                return outcome
            digest, carried = opened
            if not digest.alerts:
                await self.store.finish_send(
                    q.delivery, self.sent_ttl_s, DISPATCH_GROUP, q.entry, drop=q.digest["sealed"]
                )
                return _outcome(q, "duplicate", "every alert it held went out already")
            # One alert held by quiet hours goes out as itself, and is looked up as itself.
            single = digest.schedule == QUIET and len(digest.alerts) == 1
            subject = digest.alerts[0] if single else digest
        assert subject is not None
        if begun.state == "orphaned":
            recovered = await self._recover(channel, q, subject, carried, begun.since)
            if recovered is not None:
                return recovered
        started = begun.since or self.clock()
        outcome = await self._attempt(channel, subject, q, limit, carried)
        if outcome.unsure:  # it may have arrived: the retry asks the channel first
            await self.store.unsure_send(q.delivery, started)
        elif outcome.state != "sent":
            await self.store.end_send(q.delivery)
        return outcome

    async def _recover(
        self,
        channel: Channel,
        q: _Queued,
        subject: Alert | Digest,
        carried: list[str],
        since: float | None,
    ) -> Outcome | None:
        """A dispatcher died while sending ``q``: ask the channel whether it arrived. An
        outcome when that settles it; None when it should be sent (again)."""
        if not await self.store.recovering(q.delivery, self.owner, self.alive_s):
            return _outcome(q, "busy")
        confirm = getattr(channel, "confirm", None)
        arrived: bool | None = None
        if confirm is not None:
            try:
                arrived = await confirm(subject, since if since is not None else 0.0)
            except DeliveryError as exc:
                await self.store.give_up_recovery(q.delivery)
                return await self._retry(q.entry, q.payload, q.delivery, exc)
        if arrived:
            await self._finish(q, carried)
            logger.info(
                "%s on %s arrived before its dispatcher died: not sent again",
                q.delivery,
                channel.id,
                extra=_fields(q.payload, q.delivery),
            )
            return _outcome(q, "sent", "confirmed by the channel")
        if arrived is None and not getattr(channel, "idempotent", False):
            route, _ = self._route(channel.id, q.alert.rule if q.alert else "")
            if route.uncertain == "dead_letter":
                outcome = await self._dead(q.entry, q.payload, q.delivery, ORPHANED)
                await self.store.end_send(q.delivery)
                return outcome
            logger.warning(
                "%s on %s: its dispatcher died while sending it and the channel cannot say "
                "whether it arrived; sending it again (it may arrive twice)",
                q.delivery,
                channel.id,
                extra=_fields(q.payload, q.delivery),
            )
        await self.store.take_over(q.delivery, self.owner)
        return None

    async def _attempt(
        self,
        channel: Channel,
        subject: Alert | Digest,
        q: _Queued,
        limit: RateLimit,
        carried: list[str],
    ) -> Outcome:
        try:
            if isinstance(subject, Alert):
                await channel.send(subject)
            else:
                await channel.send_digest(subject)
        except Exception as raised:
            exc = raised if isinstance(raised, DeliveryError) else None
            if exc is None:  # a bug in a channel must not jam the outbox: retry it
                logger.exception(
                    "channel %s raised unexpectedly on %s",
                    channel.id,
                    q.delivery,
                    extra=_fields(q.payload, q.delivery),
                )
                exc = DeliveryError(f"unexpected {type(raised).__name__}", retryable=True)
            if exc.retry_after_s:
                limit.pause(exc.retry_after_s)
            if self.operator is not None:
                await self.operator.delivery(channel.id, False, str(exc))
            if not exc.retryable:
                return await self._dead(q.entry, q.payload, q.delivery, str(exc))
            outcome = await self._retry(q.entry, q.payload, q.delivery, exc)
            return replace(outcome, unsure=exc.uncertain)
        await self._finish(q, carried)
        if self.operator is not None:
            await self.operator.delivery(channel.id, True)
        if isinstance(subject, Alert):
            logger.info(
                "sent %s on %s (alert %s, item %s)",
                q.delivery,
                channel.id,
                subject.id,
                subject.item.id,
                extra=_fields(q.payload, q.delivery),
            )
        else:
            logger.info(
                "sent digest %s on %s: %d alerts in %d stories",
                q.delivery,
                channel.id,
                len(subject.alerts),
                len(subject.stories()),
                extra=_fields(q.payload, q.delivery),
            )
        return _outcome(q, "sent")

    async def _finish(self, q: _Queued, carried: list[str]) -> None:
        sealed = q.digest["sealed"] if q.digest is not None else None
        await self.store.finish_send(
            q.delivery, self.sent_ttl_s, DISPATCH_GROUP, q.entry, also_sent=carried, drop=sealed
        )

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
        again = retried_entry(payload, attempt + 1, first, str(exc))
        await self.store.delay(encode(again, sort_keys=True), now + delay)
        await self.store.outbox.ack(DISPATCH_GROUP, [entry_id])
        logger.warning(
            "channel %s failed %s (attempt %d), retrying in %.1f s: %s",
            payload.get("channel"),
            delivery,
            attempt,
            delay,
            exc,
            extra=_fields(payload, delivery),
        )
        return Outcome(entry_id, delivery, "retry", str(exc))

    async def _dead(
        self, entry_id: str, payload: dict[str, Any], delivery: str, reason: str
    ) -> Outcome:
        await self.store.dead.add_many([dead_entry(payload, reason, delivery, self.clock())])
        await self.store.outbox.ack(DISPATCH_GROUP, [entry_id])
        logger.error(
            "dead letter %s on %s: %s",
            delivery,
            payload.get("channel"),
            reason,
            extra=_fields(payload, delivery),
        )
        return Outcome(entry_id, delivery, "dead", reason)

    def _limit(self, channel: Channel) -> RateLimit:
        limit = self._limits.get(channel.id)
        if limit is None:
            rate = getattr(channel, "rate_per_s", None)
            burst = int(getattr(channel, "burst", 1))
            limit = self._limits[channel.id] = RateLimit(rate, burst, clock=self.clock)
        return limit

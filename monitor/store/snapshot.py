"""What the operator views ask Redis: a PING, and one snapshot of queues, health and counts.

``/metrics`` and ``monitor status`` read the same snapshot in one round trip (the metrics
without alert-count buckets). A probe is bounded in time when asked (a scrape or a health check
must answer even when Redis does not) and never raises for a Redis failure: the failure is the
answer.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.errors import StoreError
from monitor.store import Store
from monitor.store.commands import as_int, strings
from monitor.store.keys import ALERT_BUCKET_S, alert_bucket
from monitor.store.streams import DISPATCH_GROUP, PROCESS_GROUP

__all__ = [
    "PROBE_TIMEOUT_S",
    "Queue",
    "RedisGauges",
    "Snapshot",
    "ping",
    "read_gauges",
    "read_health",
    "read_snapshot",
]

PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Queue:
    """A stream and its consumer group as Redis reports them."""

    length: int = 0
    pending: int = 0
    lag: int | None = None  # entries no consumer has read yet; Redis 7 says, 6.2 does not
    consumers: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "pending": self.pending,
            "lag": self.lag,
            "consumers": self.consumers,
        }


@dataclass(frozen=True)
class Snapshot:
    """What ``read_snapshot`` found in Redis at ``now`` (epoch seconds)."""

    now: float
    health: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    buckets: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    items: Queue = Queue()
    outbox: Queue = Queue()
    delayed: int = 0
    dead: int = 0
    held: int = 0  # buckets of alerts held for a digest or quiet hours
    stories: int = 0
    problems: tuple[str, ...] = ()  # operator alerts that are out: "source:wire-x"


@dataclass(frozen=True, slots=True)
class RedisGauges:
    """What Redis holds now, read at scrape time (``read_gauges``)."""

    items_length: int = 0
    items_pending: int = 0
    outbox_length: int = 0
    outbox_pending: int = 0
    outbox_delayed: int = 0
    dead_letters: int = 0
    stories: int = 0
    failures: Mapping[str, int] = field(default_factory=dict)  # source → failed polls in a row


async def ping(store: Store | None, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Why Redis does not answer a PING within ``timeout_s``; None when it does."""
    if store is None:
        return "not connected yet"
    try:
        async with asyncio.timeout(timeout_s):
            answered = await store.ping()
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    return None if answered else "PING failed"


def day_buckets(now: float) -> list[int]:
    """The alert-count buckets of the day that ends at ``now``, newest first."""
    newest = alert_bucket(now)
    return [newest - n for n in range(math.ceil(86400 / ALERT_BUCKET_S))]


async def read_snapshot(
    store: Store, sources: Sequence[str], now: float, buckets: Sequence[int] | None = None
) -> Snapshot:
    """Queues, each source's health and the alert counts of ``buckets`` (default: the day that
    ends at ``now``), in one round trip."""
    keys = store.keys
    buckets = day_buckets(now) if buckets is None else buckets
    async with store.pipeline() as pipe:
        for stream in (keys.items_stream, keys.outbox_stream):
            pipe.xlen(stream)
            pipe.xinfo_groups(stream)
        pipe.zcard(keys.delayed)
        pipe.xlen(keys.dead_stream)
        pipe.zcard(keys.holds)
        pipe.zcard(keys.stories)
        pipe.smembers(keys.problems)
        for source in sources:
            pipe.hgetall(keys.health(source))
        for bucket in buckets:
            pipe.hgetall(keys.alert_counts(bucket))
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    (
        items_length,
        items_groups,
        outbox_length,
        outbox_groups,
        delayed,
        dead,
        held,
        stories,
        problems,
    ) = replies[:9]
    health = replies[9 : 9 + len(sources)]
    counts = replies[9 + len(sources) :]
    return Snapshot(
        now=now,
        health={s: strings(h) for s, h in zip(sources, health, strict=True)},
        buckets={b: strings(c) for b, c in zip(buckets, counts, strict=True) if c},
        items=_queue(items_length, items_groups, PROCESS_GROUP),
        outbox=_queue(outbox_length, outbox_groups, DISPATCH_GROUP),
        delayed=as_int(delayed),
        dead=as_int(dead),
        held=as_int(held),
        stories=as_int(stories),
        problems=tuple(sorted(str(p) for p in problems)) if isinstance(problems, set) else (),
    )


async def read_gauges(
    store: Store, sources: Sequence[str], timeout_s: float = PROBE_TIMEOUT_S
) -> RedisGauges | None:
    """What ``/metrics`` shows of the snapshot (no alert counts, and no use for ``now``); None
    when Redis does not answer within ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            snapshot = await read_snapshot(store, sources, 0.0, buckets=())
    except (TimeoutError, StoreError):
        return None
    return RedisGauges(
        items_length=snapshot.items.length,
        items_pending=snapshot.items.pending,
        outbox_length=snapshot.outbox.length,
        outbox_pending=snapshot.outbox.pending,
        outbox_delayed=snapshot.delayed,
        dead_letters=snapshot.dead,
        stories=snapshot.stories,
        failures={
            source: as_int(health.get("consecutive_failures", 0))
            for source, health in snapshot.health.items()
        },
    )


async def read_health(store: Store, sources: Sequence[str]) -> dict[str, dict[str, str]]:
    """The health record the poll role keeps of each source, in one round trip."""
    async with store.pipeline() as pipe:
        for source in sources:
            pipe.hgetall(store.keys.health(source))
        stored = await pipe.execute()
    return {source: strings(health) for source, health in zip(sources, stored, strict=True)}


def _queue(length: Any, groups: Any, group: str) -> Queue:
    """The stream's length and its ``group`` from ``XINFO GROUPS`` (an error when no stream)."""
    info = (
        next(
            (g for g in groups if isinstance(g, dict) and g.get("name") == group),
            None,
        )
        if isinstance(groups, list)
        else None
    )
    if info is None:  # no consumer started yet: everything in the stream waits
        return Queue(length=as_int(length), lag=as_int(length))
    lag = info.get("lag")
    return Queue(
        length=as_int(length),
        pending=as_int(info.get("pending")),
        lag=None if lag is None else as_int(lag),
        consumers=as_int(info.get("consumers")),
    )

"""What ``/healthz`` and ``/metrics`` ask Redis: a PING, and the gauges that live there.

Both are bounded in time (a scrape or a health check must answer even when Redis does not) and
never raise for a Redis failure: the failure is the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from monitor.errors import StoreError
from monitor.ops.metrics import RedisGauges
from monitor.roles.dispatch import GROUP as DISPATCH_GROUP
from monitor.roles.process import GROUP as PROCESS_GROUP
from monitor.store import Store

__all__ = ["PROBE_TIMEOUT_S", "ping", "read_gauges"]

PROBE_TIMEOUT_S = 2.0


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


async def read_gauges(
    store: Store, sources: Sequence[str], timeout_s: float = PROBE_TIMEOUT_S
) -> RedisGauges | None:
    """Queue lengths, dead letters, stories and each source's failures, in one round trip;
    None when Redis does not answer within ``timeout_s``."""
    keys = store.keys
    try:
        async with asyncio.timeout(timeout_s), store.pipeline() as pipe:
            pipe.xlen(keys.items_stream)
            pipe.xpending(keys.items_stream, PROCESS_GROUP)
            pipe.xlen(keys.outbox_stream)
            pipe.xpending(keys.outbox_stream, DISPATCH_GROUP)
            pipe.zcard(keys.delayed)
            pipe.xlen(keys.dead_stream)
            pipe.zcard(keys.stories)
            for source in sources:
                pipe.hget(keys.health(source), "consecutive_failures")
            replies: list[Any] = await pipe.execute(raise_on_error=False)
    except (TimeoutError, StoreError):
        return None
    counts = [_count(reply) for reply in replies[:7]]
    return RedisGauges(
        items_length=counts[0],
        items_pending=counts[1],
        outbox_length=counts[2],
        outbox_pending=counts[3],
        outbox_delayed=counts[4],
        dead_letters=counts[5],
        stories=counts[6],
        failures={
            source: _count(reply) for source, reply in zip(sources, replies[7:], strict=True)
        },
    )


def _count(reply: Any) -> int:
    """A number from a reply: XPENDING's summary, an integer, a string; 0 for an error reply
    (a group or key that does not exist yet) or nothing."""
    if isinstance(reply, dict):
        reply = reply.get("pending")
    if isinstance(reply, list | tuple):  # XPENDING's raw summary: [count, first, last, …]
        reply = reply[0] if reply else 0
    try:
        return int(reply)
    except (TypeError, ValueError):
        return 0

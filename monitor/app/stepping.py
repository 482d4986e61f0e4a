"""A role's loop: one step after another until stopped, and the drain after it; the same in the
daemon and in its process workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from monitor.errors import StoreError
from monitor.ops.logs import context

__all__ = ["Step", "drain", "keep_stepping"]

logger = logging.getLogger(__name__)

Step = Callable[..., Awaitable[int]]
"""A role's ``step(consumer, *, count, block_ms=None)``: how many entries it took."""

BACKOFF_S = (1.0, 30.0)  # after a failed step: 1 s, doubling up to 30 s


async def keep_stepping(
    step: Step,
    role: str,
    consumer: str,
    count: int,
    stopping: asyncio.Event,
    stepped: Callable[[], None],
    failed: Callable[[str], None],
) -> None:
    """Run ``step`` until ``stopping``; a Redis outage is waited out with backoff. Each step
    that works is told to ``stepped`` (a heartbeat), each failure to ``failed`` with its reason
    (a reason not to be healthy)."""
    delay = BACKOFF_S[0]
    while not stopping.is_set():
        try:
            await step(consumer, count=count, block_ms=1000)
            stepped()
            delay = BACKOFF_S[0]
        except Exception as exc:  # a role never dies quietly: log, wait, go on
            failed(str(exc) or type(exc).__name__)
            if isinstance(exc, StoreError):
                logger.error(
                    "%s: %s; retrying in %.0f s", role, exc, delay, extra=context(role=role)
                )
            else:
                logger.exception(
                    "%s: unexpected error; retrying in %.0f s",
                    role,
                    delay,
                    extra=context(role=role),
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=delay)
            delay = min(delay * 2, BACKOFF_S[1])


async def drain(step: Step, consumer: str, count: int, deadline: float) -> None:
    """Step until nothing is left or the loop's clock reaches ``deadline`` (other processes
    may keep adding). What is left stays in Redis."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        if await step(consumer, count=count) == 0:
            return

"""The poll role: one APScheduler job per source, new items appended to the items stream.

This is the only module that imports APScheduler. A source never runs twice at once
(``max_instances=1``), missed runs are coalesced, and first runs are spread with jitter. A source
that fails is logged with its id and tried again at its next run; the others go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.errors import MonitorError
from monitor.pipeline import item_payload
from monitor.sources.base import FetchResult, Source
from monitor.store import Store

logger = logging.getLogger(__name__)

JITTER_S = 5


class Poller:
    """Fetches sources and appends what they have not handed in before to the items stream."""

    def __init__(self, store: Store, sources: Sequence[tuple[Source, int]]) -> None:
        """``sources``: each source with its base interval in seconds."""
        self.store = store
        self.sources = tuple(sources)
        # Ids already appended by this process: a replayed directory is re-read whole each time.
        self._appended: dict[str, set[str]] = defaultdict(set)
        self._scheduler: AsyncIOScheduler | None = None
        self._inflight: set[asyncio.Task[object]] = set()

    async def poll(self, source: Source) -> FetchResult | None:
        """Fetch one source once; never raises for a source's own failure."""
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            return await self._poll(source)
        except MonitorError as exc:
            logger.error("source %s: poll failed: %s", source.id, exc)
            return None
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _poll(self, source: Source) -> FetchResult:
        state = await self.store.get_state(source.id)
        result = await source.fetch(state)
        for problem in result.problems:
            logger.warning("source %s: skipped %s", source.id, problem)
        if result.error is not None:
            logger.error("source %s: %s", source.id, result.error)
            return result
        seen = self._appended[source.id]
        new = [item for item in result.items if item.id not in seen]
        await self.store.items.add_many([item_payload(item) for item in new])
        seen.update(item.id for item in new)
        if result.state:
            await self.store.set_state(source.id, dict(result.state))
        logger.info("source %s: %d entries, %d handed in", source.id, len(result.items), len(new))
        return result

    async def poll_all(self) -> None:
        """Every source once, concurrently (``monitor run --once``)."""
        await asyncio.gather(*(self.poll(source) for source, _ in self.sources))

    def start(self) -> None:
        """Schedule every source: a first poll now (spread a little), then every interval."""
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        for index, (source, every) in enumerate(self.sources):
            self._schedule(source, every, delay_ms=50 * index)
        self._scheduler.start()

    def _schedule(self, source: Source, every: int, *, delay_ms: int = 0) -> None:
        assert self._scheduler is not None
        self._scheduler.add_job(
            self.poll,
            "interval",
            args=[source],
            id=source.id,
            seconds=every,
            jitter=min(JITTER_S, every // 10) or None,
            next_run_time=datetime.now(UTC) + timedelta(milliseconds=delay_ms),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(every, 1),
            replace_existing=True,
        )

    @property
    def scheduled(self) -> list[str]:
        """Ids of the sources with a job (for tests and status)."""
        return sorted(job.id for job in self._scheduler.get_jobs()) if self._scheduler else []

    def update(self, sources: Sequence[tuple[Source, int]], changed: Collection[str]) -> None:
        """Apply a reloaded configuration: removed sources stop, new and ``changed`` ones are
        (re)scheduled with a first poll now, the others keep their schedule."""
        before = {source.id for source, _ in self.sources}
        self.sources = tuple(sources)
        if self._scheduler is None:
            return
        after = {source.id for source, _ in self.sources}
        for gone in before - after:
            self._scheduler.remove_job(gone)
            self._appended.pop(gone, None)
        for source, every in self.sources:
            if source.id not in before or source.id in changed:
                self._schedule(source, every)

    async def stop(self, timeout_s: float = 30.0) -> None:
        """No new polls; polls in flight get ``timeout_s`` to finish."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=timeout_s)

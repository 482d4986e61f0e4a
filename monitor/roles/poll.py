"""The poll role: one APScheduler job per source, new items appended to the items stream.

This is the only module that imports APScheduler. A source never runs twice at once: within a
process ``max_instances=1``; across processes a lease in Redis (``SET NX PX``, renewed while
the poll runs, released after). The time a source is next due is shared in Redis too (its
health record), so several daemons against one Redis poll each source once per interval between
them: a daemon whose job fires early only moves its job to the due time. The interval itself
comes from the pure policy in ``core.polling`` (publishing rate, backoff, Retry-After, max-age).
A source that fails is logged with its id and tried again later; the others go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.clock import Clock, system_clock, utc_now
from monitor.core.polling import FeedHealth, PollOutcome, PollSpec, due_time, next_interval
from monitor.errors import MonitorError, StoreError
from monitor.ops.logs import context
from monitor.ops.metrics import Metrics
from monitor.ops.watchdog import Operator
from monitor.sources.base import FetchResult, Source
from monitor.store import Store
from monitor.store.seen import seen_keys
from monitor.store.streams import item_entry

logger = logging.getLogger(__name__)

JITTER = 0.1  # next runs are spread by up to this share of the interval (at most MAX_JITTER_S)
MAX_JITTER_S = 30.0
EARLY = 0.05  # a job firing this share of the interval (at most EARLY_MAX_S) early still polls
EARLY_MAX_S = 1.0
LEASE_MS = 15_000  # renewed every 5 s while the poll runs: a dead poller frees its source fast
MAX_CONCURRENT_POLLS = 100  # more wait their turn: memory and connections stay bounded


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A source and how often to poll it."""

    source: Source
    spec: PollSpec

    @property
    def id(self) -> str:
        return self.source.id


PAUSE_S = 86400  # a source not polled for this long (and 3 of its longest intervals) was paused


def _backlog_from(health: FeedHealth, spec: PollSpec, now: datetime) -> datetime | None:
    """For a source never polled before, or polled again after a pause (disabled, or the
    daemon stopped, for over a day), how far back its entries may alert (``backlog``); None
    when everything new alerts (a source polled lately, or ``backlog: all``)."""
    if spec.backlog_s is None:
        return None
    if health.last_poll is not None:
        paused = max(PAUSE_S, 3 * spec.max)
        if (now - health.last_poll).total_seconds() < paused:
            return None
    return now - timedelta(seconds=spec.backlog_s)


class Poller:
    """Fetches sources and appends what has not been seen to the items stream."""

    def __init__(
        self,
        store: Store,
        sources: Sequence[Scheduled],
        *,
        owner: str,
        metrics: Metrics | None = None,
        operator: Operator | None = None,
        clock: Clock = system_clock,
    ) -> None:
        """``owner`` names this process in leases (unique per process); ``operator`` hears of
        every poll's outcome (operator alerts for sources that keep failing)."""
        self.store = store
        self.clock = clock
        self.operator = operator
        self.metrics = metrics or Metrics()
        self.sources = tuple(sources)
        self.owner = owner
        self._scheduler: AsyncIOScheduler | None = None
        self._inflight: set[asyncio.Task[object]] = set()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_POLLS)

    async def poll(self, scheduled: Scheduled, *, force: bool = False) -> FetchResult | None:
        """Poll one source if it is due (always with ``force``), unless another process holds
        it; never raises for a source's own failure. None when it did not poll."""
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            async with self._slots:
                return await self._poll(scheduled, force=force)
        except MonitorError as exc:
            logger.error("poll failed: %s", exc, extra=context(source=scheduled.id))
            self.metrics.poll_failed(scheduled.id)
            return None
        except Exception as exc:  # a bug on hostile input: this source fails, the job lives on
            logger.exception(
                "poll failed unexpectedly: %s: %s",
                type(exc).__name__,
                exc,
                extra=context(source=scheduled.id),
            )
            self.metrics.poll_failed(scheduled.id)
            await self._record_failure(scheduled, f"internal error: {type(exc).__name__}: {exc}")
            return None
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _record_failure(self, scheduled: Scheduled, error: str) -> None:
        """Count a poll that died as a failed poll in the source's health (so /healthz,
        ``sources list`` and operator alerts see it); never raises."""
        try:
            health = FeedHealth.from_mapping(await self.store.get_health(scheduled.id))
            updated = health.update(PollOutcome(at=utc_now(self.clock), error=error))
            await self._save_health(scheduled.id, health, updated)
        except Exception as exc:
            logger.error(
                "could not record the failed poll: %s", exc, extra=context(source=scheduled.id)
            )

    async def _save_health(self, source: str, before: FeedHealth, after: FeedHealth) -> None:
        """Keep the source's health after a poll and tell the operator watchdog; a failure to
        queue an operator alert is logged, the poll itself stands."""
        await self.store.set_health(source, after.to_mapping())
        if self.operator is not None:
            try:
                await self.operator.source_polled(source, before, after)
            except StoreError as exc:
                logger.error("operator alert not queued: %s", exc, extra=context(source=source))

    async def _poll(self, scheduled: Scheduled, *, force: bool) -> FetchResult | None:
        source, spec = scheduled.source, scheduled.spec
        now = utc_now(self.clock)
        health = FeedHealth.from_mapping(await self.store.get_health(source.id))
        due = None if force else due_time(health, spec)
        if due is not None and (due - now).total_seconds() > min(spec.every * EARLY, EARLY_MAX_S):
            self._reschedule(source.id, due)  # another daemon polled it: come back when due
            return None
        if not await self.store.acquire_lease(source.id, self.owner, LEASE_MS):
            logger.debug("another process is polling it", extra=context(source=source.id))
            return None
        renew = asyncio.create_task(self._keep_lease(source.id))
        try:
            state = await self.store.get_state(source.id)
            started = time.perf_counter()
            result = await source.fetch(state)
            fetch_s = time.perf_counter() - started
            new = await self._append_new(
                result, backlog_from=_backlog_from(health, spec, now), source=source.id
            )
            self.metrics.polled(source.id, result, new, fetch_s)
            outcome = PollOutcome(
                at=now,
                error=result.error,
                entries=len(result.items),
                new=new,
                not_modified=result.not_modified,
                retry_after_s=result.retry_after_s,
                max_age_s=result.max_age_s,
                bozo=result.bozo,
            )
            updated = health.update(outcome)
            self._report(source.id, result, health, updated, state, new)
            await self._save_health(source.id, health, updated)
            if result.state:
                await self.store.set_state(
                    source.id, {k: (v or None) for k, v in result.state.items()}
                )
        finally:
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew
            await self.store.release_lease(source.id, self.owner)
        interval = next_interval(updated, spec, now)
        self._reschedule(source.id, now + timedelta(seconds=_jittered(interval)))
        return result

    async def _keep_lease(self, source: str) -> None:
        while True:
            await asyncio.sleep(LEASE_MS / 3000)
            await self.store.acquire_lease(source, self.owner, LEASE_MS)

    async def _append_new(
        self, result: FetchResult, *, backlog_from: datetime | None = None, source: str = ""
    ) -> int:
        """Append the entries not seen before (by source + GUID, or by canonical URL: a link
        that only gained a tracking parameter is not new); how many there were.

        ``backlog_from`` (a new source's first poll): entries published before it are marked
        seen without being appended, so subscribing to a feed does not flood the desk with its
        archive."""
        if not result.items:
            return 0
        keys = [seen_keys(self.store.keys, item) for item in result.items]
        found = iter(await self.store.exists_many([key for mine in keys for key in mine]))
        seen = [any([next(found) for _ in mine]) for mine in keys]
        new = [item for item, known in zip(result.items, seen, strict=True) if not known]
        if backlog_from is not None:
            old = [i for i in new if i.published is not None and i.published < backlog_from]
            if old:
                old_ids = {item.id for item in old}
                await self.store.seen_batch(
                    [key for item in old for key in seen_keys(self.store.keys, item)]
                )
                new = [item for item in new if item.id not in old_ids]
                logger.info(
                    "first poll: %d entries published before %s marked seen without alerting",
                    len(old),
                    backlog_from.isoformat(timespec="seconds"),
                    extra=context(source=source),
                )
        await self.store.items.add_many([item_entry(item) for item in new])
        return len(new)

    def _report(
        self,
        source: str,
        result: FetchResult,
        before: FeedHealth,
        after: FeedHealth,
        state: dict[str, str],
        new: int,
    ) -> None:
        fields = context(source=source)
        for problem in result.problems:
            logger.warning("skipped %s", problem, extra=fields)
        if result.error is not None:
            logger.error(
                "poll failed: %s (%d in a row)",
                result.error,
                after.consecutive_failures,
                extra=fields,
            )
            return
        if result.bozo and result.bozo != before.bozo:
            logger.warning("malformed but readable: %s", result.bozo, extra=fields)
        moved = result.state.get("url")
        if moved and moved != state.get("url"):
            logger.warning("permanently moved to %s", moved, extra=fields)
        if before.consecutive_failures:
            logger.info("works again after %d failures", before.consecutive_failures, extra=fields)
        logger.info(
            "polled: %s, %d entries, %d new",
            "not modified" if result.not_modified else f"status {result.status or 'ok'}",
            len(result.items),
            new,
            extra=fields,
        )

    async def poll_all(self) -> None:
        """Every source once, now, concurrently (``monitor run --once``)."""
        await asyncio.gather(*(self.poll(s, force=True) for s in self.sources))

    def start(self) -> None:
        """Schedule every source: a first poll soon (spread a little), then as the policy says."""
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        for index, scheduled in enumerate(self.sources):
            self._schedule(scheduled, delay_ms=50 * index)
        self._scheduler.start()

    def _schedule(self, scheduled: Scheduled, *, delay_ms: int = 0) -> None:
        assert self._scheduler is not None
        self._scheduler.add_job(
            self.poll,
            "interval",
            args=[scheduled],
            id=scheduled.id,
            seconds=max(scheduled.spec.every, 1),
            next_run_time=datetime.now(UTC) + timedelta(milliseconds=delay_ms),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
        )

    def _reschedule(self, source: str, when: datetime) -> None:
        if self._scheduler is not None and self._scheduler.get_job(source) is not None:
            self._scheduler.modify_job(source, next_run_time=when)

    @property
    def running(self) -> bool:
        """Whether the scheduler runs (between ``start`` and ``stop``)."""
        return self._scheduler is not None and bool(self._scheduler.running)

    @property
    def scheduled(self) -> list[str]:
        """Ids of the sources with a job (for tests and status)."""
        return sorted(job.id for job in self._scheduler.get_jobs()) if self._scheduler else []

    def update(self, sources: Sequence[Scheduled], changed: Collection[str]) -> None:
        """Apply a reloaded configuration: removed sources stop, new and ``changed`` ones are
        (re)scheduled with a first poll now, the others keep their schedule."""
        before = {s.id for s in self.sources}
        self.sources = tuple(sources)
        if self._scheduler is None:
            return
        after = {s.id for s in self.sources}
        for gone in before - after:
            self._scheduler.remove_job(gone)
        for scheduled in self.sources:
            if scheduled.id not in before or scheduled.id in changed:
                self._schedule(scheduled)

    async def stop(self, timeout_s: float = 30.0) -> None:
        """No new polls; polls in flight get ``timeout_s`` to finish. The scheduler is shut
        down only then: its shutdown cancels the jobs still running (a poll cut off in the
        middle, and an error logged for it)."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.pause()
            await asyncio.sleep(0)  # a job handed to the loop just before says it is in flight
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=timeout_s)
        if scheduler is not None:
            scheduler.shutdown(wait=False)


def _jittered(interval: float) -> float:
    return interval + random.uniform(0, min(interval * JITTER, MAX_JITTER_S))

"""``monitor replay``: files pushed through the whole pipeline, alerts to a sink."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monitor.app.settings import Settings
from monitor.app.wiring import consumer_name, open_store, redis_server, story_keeper
from monitor.channels.base import Channel
from monitor.clock import Clock, system_clock
from monitor.core.config import ReplaySourceSpec
from monitor.core.rules import WatchConfig
from monitor.models import Alert, Item
from monitor.ops.progress import SILENT, Progress
from monitor.roles.dispatch import Dispatcher
from monitor.roles.process import Processor, Runtime
from monitor.sources.replay import read_items
from monitor.store import Store
from monitor.store.server import RedisServer
from monitor.store.streams import PROCESS_GROUP, entry_item, item_entry

__all__ = ["REPLAY_SOURCE", "PublishedClock", "replay", "source_for"]

logger = logging.getLogger(__name__)

REPLAY_SOURCE = "replay"


class PublishedClock:
    """A clock that reads the publication time of the batch being replayed: the latest one
    stated so far (an item without one is taken as published when the item before it was)."""

    def __init__(self, start: Clock = system_clock) -> None:
        self.now: float | None = None
        self.start = start

    def __call__(self) -> float:
        return self.now if self.now is not None else self.start()

    def time_of(self, item: Item) -> float:
        """Sort key: publication time, items without one last."""
        return item.published.timestamp() if item.published else float("inf")

    def follow(self, entries: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Move the clock to the latest publication time in this batch (never backwards)."""
        for _, payload in entries:
            try:
                published = entry_item(payload).published
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            if published is not None:
                stamp = published.timestamp()
                self.now = stamp if self.now is None else max(self.now, stamp)


def source_for(path: Path, config: WatchConfig) -> str:
    """The id of the configured replay source reading ``path``, else ``replay``."""
    target = path.resolve()
    for spec in config.sources:
        if isinstance(spec, ReplaySourceSpec) and Path(spec.path).resolve() == target:
            return spec.id
    return REPLAY_SOURCE


async def replay(
    settings: Settings,
    config: WatchConfig,
    paths: Sequence[Path],
    sink: Channel,
    *,
    state: bool = False,
    clock: str = "arrival",
    progress: Progress = SILENT,
) -> list[Alert]:
    """Push files through the whole pipeline and hand every alert to ``sink``.

    Without ``state`` a throwaway embedded Redis is used, so the same files give the same alerts
    every time; with it, the configured store (items already seen there stay seen), through
    private streams: a daemon running against the same store keeps its own work.

    ``clock``: "arrival" processes everything now; "published" replays the items in order of
    publication with the clock following it, so a backfill groups stories as the live run
    would have (the story window, cooldowns and alert times all read that clock).
    """
    server = redis_server(settings) if state else RedisServer.embedded()
    async with server as client:
        private = f"replay-{os.getpid()}-{uuid.uuid4().hex[:8]}:" if state else ""
        store = open_store(client, settings, streams=private)
        try:
            return await _replay(store, settings, config, paths, sink, progress, clock)
        finally:
            if private:
                await store.drop_streams()


async def _replay(
    store: Store,
    settings: Settings,
    config: WatchConfig,
    paths: Sequence[Path],
    sink: Channel,
    progress: Progress,
    clock: str,
) -> list[Alert]:
    problems: list[str] = []
    read: list[Item] = []
    with progress.task("reading", total=len(paths)) as advance:
        for path in paths:
            items, skipped = await asyncio.to_thread(read_items, path, source_for(path, config))
            problems.extend(skipped)
            read.extend(items)
            advance(1)
    published = PublishedClock() if clock == "published" else None
    if published is not None:
        read.sort(key=published.time_of)
    total = len(await store.items.add_many([item_entry(item) for item in read]))
    for problem in problems:
        logger.warning("skipped %s", problem)
    runtime = Runtime.build(config)
    keeper = story_keeper(store, settings)
    processor = Processor(
        store,
        lambda: runtime,
        keeper,
        channels=[sink.id],
        count_alerts=False,
        clock=published or system_clock,
    )
    dispatcher = Dispatcher(store, {sink.id: sink})
    await processor.start()
    await dispatcher.start()
    consumer = consumer_name()
    alerts: list[Alert] = []
    with progress.task("processing", total=total) as advance:
        while entries := await store.items.read(PROCESS_GROUP, consumer, settings.batch_size, None):
            if published is not None:
                published.follow(entries)
            alerts.extend((await processor.handle(entries)).alerts)
            advance(len(entries))
    while await dispatcher.step(consumer, count=settings.batch_size) > 0:
        pass
    return alerts

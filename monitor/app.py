"""The one place that builds everything from Settings and the watch configuration.

Adapters get their clients here; the roles (poll, process, dispatch) run here; SIGINT and SIGTERM
stop new polls, let the queues drain, and return cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from monitor.channels.base import Channel
from monitor.channels.console import ConsoleChannel
from monitor.core.rules import ConsoleChannelSpec, ReplaySourceSpec, WatchConfig
from monitor.dispatch import Dispatcher
from monitor.errors import ConfigError, Problem, StoreError
from monitor.frequencies import background_for
from monitor.models import Alert
from monitor.pipeline import Processor, Runtime, item_payload
from monitor.scheduler import Poller
from monitor.settings import Settings
from monitor.sources.base import Source
from monitor.sources.replay import ReplaySource, read_items
from monitor.store import RedisServer, Store
from monitor.stories import StoryKeeper

logger = logging.getLogger(__name__)

ROLES = ("poll", "process", "dispatch")
REPLAY_SOURCE = "replay"


def consumer_name() -> str:
    """Unique per process, readable in ``XINFO CONSUMERS``."""
    return f"{socket.gethostname()}-{os.getpid()}"


def build_sources(config: WatchConfig) -> list[tuple[Source, int]]:
    """The enabled sources this version can poll, each with its interval in seconds."""
    sources: list[tuple[Source, int]] = []
    for spec in config.sources:
        if not spec.enabled:
            continue
        if isinstance(spec, ReplaySourceSpec):
            sources.append((ReplaySource(spec.id, Path(spec.path)), spec.every))
        else:
            raise ConfigError(
                Problem(spec.id, 0, 0, f"source type '{spec.type}' cannot be polled yet")
            )
    return sources


def build_channels(config: WatchConfig) -> dict[str, Channel]:
    channels: dict[str, Channel] = {}
    for spec in config.channels:
        if isinstance(spec, ConsoleChannelSpec):
            channels[spec.id] = ConsoleChannel(spec.id, json_lines=spec.json_lines)
        else:
            raise ConfigError(
                Problem(spec.id, 0, 0, f"channel type '{spec.type}' cannot deliver yet")
            )
    return channels


def story_keeper(store: Store, settings: Settings) -> StoryKeeper:
    return StoryKeeper(
        store, background_for, window_s=settings.story_window, ttl_s=settings.dedup_ttl
    )


async def recent_stories(settings: Settings, limit: int) -> list[dict[str, Any]]:
    """The stories in the configured store that grew most recently."""
    async with RedisServer.from_settings(settings) as client:
        return await story_keeper(Store(client, settings), settings).recent(limit)


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
) -> list[Alert]:
    """Push files through the whole pipeline and hand every alert to ``sink``.

    Without ``state`` a throwaway embedded Redis is used, so the same files give the same alerts
    every time; with it, the configured store (items already seen there stay seen).
    """
    server = RedisServer.from_settings(settings) if state else RedisServer.embedded()
    async with server as client:
        store = Store(client, settings)
        problems: list[str] = []
        for path in paths:
            items, skipped = await asyncio.to_thread(read_items, path, source_for(path, config))
            problems.extend(skipped)
            await store.items.add_many([item_payload(item) for item in items])
        for problem in problems:
            logger.warning("skipped %s", problem)
        runtime = Runtime.build(config)
        keeper = story_keeper(store, settings)
        processor = Processor(store, lambda: runtime, keeper, channels=[sink.id])
        dispatcher = Dispatcher(store, {sink.id: sink})
        await processor.start()
        await dispatcher.start()
        consumer = consumer_name()
        alerts: list[Alert] = []
        while entries := await store.items.read("process", consumer, settings.batch_size, None):
            alerts.extend((await processor.handle(entries)).alerts)
        while await dispatcher.step(consumer, count=settings.batch_size) > 0:
            pass
        return alerts


class App:
    """The daemon: the chosen roles against one Redis, until asked to stop."""

    def __init__(
        self, settings: Settings, config: WatchConfig, roles: Collection[str] = ROLES
    ) -> None:
        self.settings = settings
        self.runtime = Runtime.build(config)
        self.roles = frozenset(roles)
        self.sources = build_sources(config) if "poll" in self.roles else []
        self.channels = build_channels(config) if "dispatch" in self.roles else {}
        self.consumer = consumer_name()
        self.stopping = asyncio.Event()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop, sig)

    def stop(self, sig: int | None = None) -> None:
        if not self.stopping.is_set():
            logger.info(
                "stopping%s: draining queues", f" on {signal.Signals(sig).name}" if sig else ""
            )
        self.stopping.set()

    async def run(self, *, once: bool = False) -> None:
        async with RedisServer.from_settings(self.settings) as client:
            store = Store(client, self.settings)
            poller = Poller(store, self.sources)
            processor = Processor(store, lambda: self.runtime, story_keeper(store, self.settings))
            dispatcher = Dispatcher(store, self.channels)
            if "process" in self.roles:
                await processor.start()
            if "dispatch" in self.roles:
                await dispatcher.start()
            logger.info(
                "running roles=%s sources=%d rules=%d channels=%d",
                ",".join(sorted(self.roles)),
                len(self.sources),
                len(self.runtime.config.rules),
                len(self.channels),
            )
            if once:
                await poller.poll_all()
            else:
                if self.sources:
                    poller.start()
                loops = [
                    asyncio.create_task(self._loop(role.step, role_name))
                    for role, role_name in ((processor, "process"), (dispatcher, "dispatch"))
                    if role_name in self.roles
                ]
                await self.stopping.wait()
                await poller.stop()
                await asyncio.gather(*loops)
            await self._drain(processor, dispatcher)
            for channel in self.channels.values():
                await channel.close()

    async def _loop(self, step: Callable[..., Awaitable[int]], role: str) -> None:
        """Run one role until stopped; a Redis outage is waited out with backoff."""
        delay = 1.0
        while not self.stopping.is_set():
            try:
                await step(self.consumer, count=self.settings.batch_size, block_ms=1000)
                delay = 1.0
            except StoreError as exc:
                logger.error("%s: %s; retrying in %.0f s", role, exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), timeout=delay)
                delay = min(delay * 2, 30.0)

    async def _drain(self, processor: Processor, dispatcher: Dispatcher) -> None:
        """Finish what is queued: items into alerts, alerts to their channels."""
        count = self.settings.batch_size
        if "process" in self.roles:
            while await processor.step(self.consumer, count=count) > 0:
                pass
        if "dispatch" in self.roles:
            while await dispatcher.step(self.consumer, count=count) > 0:
                pass

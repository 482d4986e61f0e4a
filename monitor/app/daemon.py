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
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import watchfiles

from monitor.app.config_files import SUFFIXES, load_config, rule_files
from monitor.app.settings import Settings
from monitor.channels.base import Channel, Threads
from monitor.channels.console import ConsoleChannel
from monitor.channels.email import EmailChannel
from monitor.channels.slack import SlackChannel
from monitor.channels.webhook import WebhookChannel
from monitor.core.frequencies import background_for
from monitor.core.health import Health, assess
from monitor.core.polling import PollSpec
from monitor.core.rules import (
    ConsoleChannelSpec,
    EmailChannelSpec,
    FeedSourceSpec,
    ReplaySourceSpec,
    SlackChannelSpec,
    WatchConfig,
    WebhookChannelSpec,
    WireSourceSpec,
)
from monitor.errors import ConfigError, Problem, StoreError
from monitor.http import FetchLimits, make_client
from monitor.models import Alert
from monitor.ops.endpoints import Server
from monitor.ops.logs import context
from monitor.ops.metrics import Metrics
from monitor.ops.progress import SILENT, Progress
from monitor.ops.redaction import register
from monitor.ops.watchdog import Operator
from monitor.roles.dispatch import Dispatcher, retry_dead
from monitor.roles.poll import Poller, Scheduled
from monitor.roles.process import Processor, Runtime, item_payload
from monitor.sources.base import Source
from monitor.sources.feed import FeedSource
from monitor.sources.replay import ReplaySource, read_items
from monitor.sources.wire import WireMapping, WireSource
from monitor.store import RedisServer, Store
from monitor.store.snapshot import ping, read_gauges
from monitor.store.stories import StoryKeeper

logger = logging.getLogger(__name__)

ROLES = ("poll", "process", "dispatch")
DRAIN_S = 30.0  # at shutdown, queued work is finished for at most this long
RELOAD_DEBOUNCE_MS = 300  # a save is applied well within 2 s
REPLAY_SOURCE = "replay"


def consumer_name() -> str:
    """Unique per process, readable in ``XINFO CONSUMERS``."""
    return f"{socket.gethostname()}-{os.getpid()}"


def fetch_limits(settings: Settings) -> FetchLimits:
    return FetchLimits(
        connect_s=settings.fetch_connect_s,
        read_s=settings.fetch_read_s,
        total_s=settings.fetch_total_s,
        max_bytes=settings.fetch_max_bytes,
        per_host=settings.fetch_per_host,
    )


def build_sources(
    config: WatchConfig, client: httpx.AsyncClient, limits: FetchLimits
) -> list[Scheduled]:
    """The enabled sources, each with its polling bounds; HTTP sources share ``client``."""
    sources: list[Scheduled] = []
    for spec in config.sources:
        if not spec.enabled:
            continue
        source: Source
        if isinstance(spec, ReplaySourceSpec):
            sources.append(Scheduled(ReplaySource(spec.id, Path(spec.path)), poll_spec(spec)))
            continue
        headers = {name: value.get_secret_value() for name, value in spec.headers.items()}
        if isinstance(spec, FeedSourceSpec):
            source = FeedSource(spec.id, spec.url, client, limits, headers)
        else:
            try:
                WireMapping.compile(spec.mapping, require_title=spec.format == "mapping")
            except ConfigError as exc:
                raise ConfigError(
                    [Problem(spec.id, 0, 0, f"source {spec.id}: {p}") for p in exc.problems]
                ) from None
            source = WireSource(
                spec.id,
                spec.url,
                client,
                limits,
                format=spec.format,
                mapping=spec.mapping or None,
                headers=headers,
            )
        sources.append(Scheduled(source, poll_spec(spec)))
    return sources


def poll_spec(spec: ReplaySourceSpec | FeedSourceSpec | WireSourceSpec) -> PollSpec:
    """How often a source is polled: a replayed directory at a fixed pace, others adaptively."""
    if isinstance(spec, ReplaySourceSpec):
        return PollSpec(float(spec.every), float(spec.every), float(spec.every))
    return PollSpec(float(spec.every), float(spec.min), float(spec.max))


def build_channels(
    config: WatchConfig, *, client: httpx.AsyncClient, threads: Threads
) -> dict[str, Channel]:
    """Every configured channel; HTTP channels share ``client``, threaded ones ``threads``."""
    channels: dict[str, Channel] = {}
    for spec in config.channels:
        if isinstance(spec, ConsoleChannelSpec):
            channels[spec.id] = ConsoleChannel(spec.id, json_lines=spec.json_lines)
        elif isinstance(spec, SlackChannelSpec):
            channels[spec.id] = SlackChannel(
                spec.id,
                webhook_url=spec.webhook_url.get_secret_value() if spec.webhook_url else None,
                token=spec.token.get_secret_value() if spec.token else None,
                channel=spec.channel,
                api_url=spec.api_url,
                threads=threads,
            )
        elif isinstance(spec, EmailChannelSpec):
            channels[spec.id] = EmailChannel(
                spec.id,
                host=spec.host,
                port=spec.port,
                tls=spec.tls,
                username=spec.username.get_secret_value() if spec.username else None,
                password=spec.password.get_secret_value() if spec.password else None,
                sender=spec.sender,
                to=list(spec.to),
            )
        elif isinstance(spec, WebhookChannelSpec):
            channels[spec.id] = WebhookChannel(
                spec.id,
                url=spec.url.get_secret_value(),
                secret=spec.secret.get_secret_value() if spec.secret else None,
                client=client,
            )
    return channels


def rules_snapshot(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """What the rules directory holds now, cheaply: enough to tell that something changed."""
    found = []
    for path in rule_files(directory) if directory.exists() else []:
        with contextlib.suppress(OSError):
            stat = path.stat()
            found.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


def story_keeper(store: Store, settings: Settings) -> StoryKeeper:
    return StoryKeeper(
        store, background_for, window_s=settings.story_window, ttl_s=settings.dedup_ttl
    )


async def recent_stories(settings: Settings, limit: int) -> list[dict[str, Any]]:
    """The stories in the configured store that grew most recently."""
    async with RedisServer.from_settings(settings) as client:
        return await story_keeper(Store(client, settings), settings).recent(limit)


async def dead_letters(settings: Settings) -> list[dict[str, Any]]:
    """The dead-letter stream, oldest first: what was not delivered, where, and why."""
    async with RedisServer.from_settings(settings) as client:
        letters = await Store(client, settings).dead_letters()
    return [
        {
            "id": entry_id,
            "channel": payload.get("channel"),
            "rule": (payload.get("alert") or {}).get("rule"),
            "title": ((payload.get("alert") or {}).get("item") or {}).get("title"),
            "reason": payload.get("reason"),
            "failed_at": payload.get("failed_at"),
        }
        for entry_id, payload in letters
    ]


async def retry_dead_letters(settings: Settings, ids: Sequence[str] | None) -> int:
    """Send dead letters again (all when ``ids`` is None): back into the outbox, fresh."""
    async with RedisServer.from_settings(settings) as client:
        return await retry_dead(Store(client, settings), ids)


async def check_sources(settings: Settings, config: WatchConfig) -> list[dict[str, Any]]:
    """Fetch every enabled source once, concurrently, without state: what each one gives now."""
    limits = fetch_limits(settings)
    async with make_client(limits) as client:
        sources = build_sources(config, client, limits)
        results = await asyncio.gather(*(s.source.fetch({}) for s in sources))
    return [
        {
            "id": scheduled.id,
            "url": getattr(scheduled.source, "url", None)
            or str(getattr(scheduled.source, "path", "")),
            "status": result.status,
            "entries": len(result.items),
            "bytes": result.bytes_read,
            "seconds": round(result.elapsed_s, 3),
            "error": result.error,
            "bozo": result.bozo,
            "skipped": list(result.problems),
        }
        for scheduled, result in zip(sources, results, strict=True)
    ]


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
    progress: Progress = SILENT,
) -> list[Alert]:
    """Push files through the whole pipeline and hand every alert to ``sink``.

    Without ``state`` a throwaway embedded Redis is used, so the same files give the same alerts
    every time; with it, the configured store (items already seen there stay seen), through
    private streams: a daemon running against the same store keeps its own work.
    """
    server = RedisServer.from_settings(settings) if state else RedisServer.embedded()
    async with server as client:
        private = f"replay-{os.getpid()}-{uuid.uuid4().hex[:8]}:" if state else ""
        store = Store(client, settings, streams=private)
        try:
            return await _replay(store, settings, config, paths, sink, progress)
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
) -> list[Alert]:
    problems: list[str] = []
    total = 0
    with progress.task("reading", total=len(paths)) as advance:
        for path in paths:
            items, skipped = await asyncio.to_thread(read_items, path, source_for(path, config))
            problems.extend(skipped)
            total += len(await store.items.add_many([item_payload(item) for item in items]))
            advance(1)
    for problem in problems:
        logger.warning("skipped %s", problem)
    runtime = Runtime.build(config)
    keeper = story_keeper(store, settings)
    processor = Processor(store, lambda: runtime, keeper, channels=[sink.id], count_alerts=False)
    dispatcher = Dispatcher(store, {sink.id: sink})
    await processor.start()
    await dispatcher.start()
    consumer = consumer_name()
    alerts: list[Alert] = []
    with progress.task("processing", total=total) as advance:
        while entries := await store.items.read("process", consumer, settings.batch_size, None):
            alerts.extend((await processor.handle(entries)).alerts)
            advance(len(entries))
    while await dispatcher.step(consumer, count=settings.batch_size) > 0:
        pass
    return alerts


class App:
    """The daemon: the chosen roles against one Redis, until asked to stop."""

    def __init__(
        self,
        settings: Settings,
        config: WatchConfig,
        roles: Collection[str] = ROLES,
        *,
        rules_dir: Path | None = None,
        http_port: int | None = None,
    ) -> None:
        """``rules_dir``: watched for changes, which apply without a restart (None: not watched).
        ``http_port``: of /healthz and /metrics, 0 for any free one (``server.port`` tells which);
        None takes ``settings.http_port``, where 0 turns the endpoint off."""
        self.settings = settings
        self.http_port = (settings.http_port or None) if http_port is None else http_port
        self.server: Server | None = None
        self.metrics = Metrics()
        self.metrics.configured(ok=True, rules=len(config.rules), at=time.time())
        self.beats: dict[str, float] = {}  # role → when its loop last stepped (the loop's clock)
        self.failing: dict[str, str] = {}  # role → why its last step failed
        self.rules_dir = rules_dir
        self.runtime = Runtime.build(config)
        self.roles = frozenset(roles)
        self.limits = fetch_limits(settings)
        self.http = make_client(self.limits)  # one client, shared by every HTTP source
        self.sources = build_sources(config, self.http, self.limits) if "poll" in self.roles else []
        self.store: Store | None = None
        self.channels = self._channels(config)
        self.runtime_channels = list(config.channels)
        self._closing: set[asyncio.Future[None]] = set()
        self.consumer = consumer_name()
        self.stopping = asyncio.Event()
        self.poller: Poller | None = None

    def _channels(self, config: WatchConfig) -> dict[str, Channel]:
        if "dispatch" not in self.roles:
            return {}
        return build_channels(config, client=self.http, threads=self)

    async def get_thread(self, channel: str, story: str) -> str | None:
        """Channels' thread references live in the store (``Threads``)."""
        if self.store is None:
            return None
        return await self.store.get_thread(channel, story)

    async def set_thread(self, channel: str, story: str, ref: str) -> None:
        if self.store is not None:
            await self.store.set_thread(channel, story, ref)

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
            store = self.store = Store(client, self.settings)
            operator = Operator(
                store,
                lambda: self.runtime.config,
                source_failing_after=self.settings.source_failing_after,
                channel_failing_after=self.settings.channel_failing_after,
            )
            poller = self.poller = Poller(
                store, self.sources, owner=self.consumer, metrics=self.metrics, operator=operator
            )
            idle_ms = int(self.settings.reclaim_idle_s * 1000)
            processor = Processor(
                store,
                lambda: self.runtime,
                story_keeper(store, self.settings),
                reclaim_idle_ms=idle_ms,
                metrics=self.metrics,
            )
            dispatcher = Dispatcher(
                store,
                self.channels,
                reclaim_idle_ms=idle_ms,
                metrics=self.metrics,
                config=lambda: self.runtime.config,
                operator=operator,
            )
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
                if "poll" in self.roles:
                    poller.start()
                loops = [
                    asyncio.create_task(self._loop(role.step, role_name))
                    for role, role_name in ((processor, "process"), (dispatcher, "dispatch"))
                    if role_name in self.roles
                ]
                if self.rules_dir is not None:
                    loops.append(asyncio.create_task(self._watch(poller)))
                async with self._endpoint():
                    await self.stopping.wait()
                await poller.stop()
                await asyncio.gather(*loops)
            await self._drain(processor, dispatcher)
            for channel in self.channels.values():
                await channel.close()
            if self._closing:
                await asyncio.gather(*self._closing)
            await self.http.aclose()

    async def _watch(self, poller: Poller) -> None:
        """Reload the configuration whenever a YAML file under the rules directory changes.

        File events wake the loop at once; it also wakes every second and compares a snapshot
        of the files (path, mtime, size) with the one last loaded, so a change made while a
        reload was running is never lost.
        """
        assert self.rules_dir is not None
        loaded = rules_snapshot(self.rules_dir)
        async for _ in watchfiles.awatch(
            self.rules_dir,
            watch_filter=lambda _, path: path.endswith(SUFFIXES),
            debounce=RELOAD_DEBOUNCE_MS,
            step=50,
            stop_event=self.stopping,
            rust_timeout=1000,
            yield_on_timeout=True,
        ):
            current = rules_snapshot(self.rules_dir)
            if current != loaded:
                loaded = current
                self.reload(poller)

    def reload(self, poller: Poller) -> bool:
        """Apply the rules directory as it is now; on any problem keep the last good config."""
        assert self.rules_dir is not None
        try:
            config = load_config(self.rules_dir)
            register(config.secrets)
            sources = build_sources(config, self.http, self.limits) if "poll" in self.roles else []
            channels = self._channels(config)
        except ConfigError as exc:
            for problem in exc.problems:
                logger.error("reload: %s", problem)
            logger.error("reload failed: the last good configuration stays in force")
            self.metrics.reloaded(ok=False, rules=None, at=time.time())
            return False
        before = {spec.id: spec for spec in self.runtime.config.sources}
        changed = {spec.id for spec in config.sources if before.get(spec.id) not in (None, spec)}
        self.runtime = Runtime.build(config)
        self.sources = sources
        poller.update(sources, changed)
        before_specs = {spec.id: spec for spec in self.runtime_channels}
        self.runtime_channels = list(config.channels)
        old = dict(self.channels)
        for spec in config.channels:  # an unchanged channel keeps its client and its state
            if before_specs.get(spec.id) == spec and spec.id in old:
                channels[spec.id] = old[spec.id]
        self.channels.clear()
        self.channels.update(channels)
        for channel_id, channel in old.items():
            if channels.get(channel_id) is not channel:
                self._closing.add(asyncio.ensure_future(channel.close()))
        logger.info(
            "reloaded %s: %d sources, %d rules, %d channels",
            self.rules_dir,
            len(sources),
            len(config.rules),
            len(channels),
        )
        self.metrics.reloaded(ok=True, rules=len(config.rules), at=time.time())
        return True

    @contextlib.asynccontextmanager
    async def _endpoint(self) -> AsyncIterator[Server | None]:
        """/healthz and /metrics while the daemon runs; a port that cannot be bound is logged
        and the daemon runs on without them."""
        if self.http_port is None:
            yield None
            return
        server = Server(
            self.metrics,
            self.health,
            self.refresh_metrics,
            host=self.settings.http_host,
            port=self.http_port,
        )
        try:
            await server.start()
        except OSError as exc:
            logger.error(
                "cannot serve /healthz and /metrics on %s: %s; running without them",
                server.url,
                exc,
            )
            yield None
            return
        self.server = server
        try:
            yield server
        finally:
            await server.stop()

    async def health(self) -> Health:
        """Redis answers a PING, every role loop woke recently, the poll scheduler runs."""
        loops = [role for role in ("process", "dispatch") if role in self.roles]
        health = assess(
            now=asyncio.get_running_loop().time(),
            redis_error=await ping(self.store),
            beats={role: self.beats.get(role) for role in loops},
            failing=self.failing,
            scheduler_running=(
                self.poller is not None and self.poller.running if "poll" in self.roles else None
            ),
        )
        return replace(health, warnings=await self._problems())

    async def _problems(self) -> tuple[str, ...]:
        """The operator alerts that are out, as ``source wire-x failing since …``."""
        if self.store is None:
            return ()
        try:
            problems = await asyncio.wait_for(self.store.problems(), timeout=1.0)
        except (StoreError, TimeoutError):
            return ()  # Redis trouble is a reason of its own already
        return tuple(
            f"{name.replace(':', ' ', 1)} failing since "
            f"{datetime.fromtimestamp(at, UTC).isoformat(timespec='seconds')}"
            for name, at in problems.items()
        )

    async def refresh_metrics(self) -> None:
        """Read what the metrics take from Redis (queues, dead letters, failing sources)."""
        sources = [spec.id for spec in self.runtime.config.sources if spec.enabled]
        snapshot = await read_gauges(self.store, sources) if self.store is not None else None
        self.metrics.redis.update(snapshot)

    async def _loop(self, step: Callable[..., Awaitable[int]], role: str) -> None:
        """Run one role until stopped; a Redis outage is waited out with backoff. Each step
        that works is a heartbeat, each failure a reason not to be healthy (``health``)."""
        delay = 1.0
        while not self.stopping.is_set():
            try:
                await step(self.consumer, count=self.settings.batch_size, block_ms=1000)
                self.beats[role] = asyncio.get_running_loop().time()
                self.failing.pop(role, None)
                delay = 1.0
            except Exception as exc:  # a role never dies quietly: log, wait, go on
                self.failing[role] = str(exc) or type(exc).__name__
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
                    await asyncio.wait_for(self.stopping.wait(), timeout=delay)
                delay = min(delay * 2, 30.0)

    async def _drain(self, processor: Processor, dispatcher: Dispatcher) -> None:
        """Finish what is queued: items into alerts, alerts to their channels; within
        ``DRAIN_S``, since other processes may keep adding. What is left stays in Redis."""
        count = self.settings.batch_size
        deadline = asyncio.get_running_loop().time() + DRAIN_S
        for role, step in (("process", processor.step), ("dispatch", dispatcher.step)):
            while role in self.roles and asyncio.get_running_loop().time() < deadline:
                if await step(self.consumer, count=count) == 0:
                    break

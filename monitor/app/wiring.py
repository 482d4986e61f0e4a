"""The one place that knows the concrete classes: sources, channels, the store and the story
keeper are built here from ``Settings`` and the watch configuration.

Everything else receives what it needs through its constructor (``docs/layout.md``).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
from redis.asyncio import Redis

from monitor.app.settings import Settings
from monitor.channels.base import Channel, Threads
from monitor.channels.console import ConsoleChannel
from monitor.channels.email import EmailChannel
from monitor.channels.slack import SlackChannel
from monitor.channels.webhook import WebhookChannel
from monitor.core.config import (
    ConsoleChannelSpec,
    EmailChannelSpec,
    FeedSourceSpec,
    ReplaySourceSpec,
    SlackChannelSpec,
    WebhookChannelSpec,
)
from monitor.core.frequencies import background_for
from monitor.core.polling import poll_spec
from monitor.core.rules import WatchConfig
from monitor.errors import ConfigError, Problem
from monitor.http import FetchLimits
from monitor.roles.poll import Scheduled
from monitor.sources.base import Source
from monitor.sources.feed import FeedSource
from monitor.sources.replay import ReplaySource
from monitor.sources.wire import WireMapping, WireSource
from monitor.store import Store
from monitor.store.server import RedisServer
from monitor.store.stories import StoryKeeper

__all__ = [
    "ThreadStore",
    "build_channels",
    "build_sources",
    "consumer_name",
    "fetch_limits",
    "open_store",
    "redis_server",
    "story_keeper",
]


def redis_server(settings: Settings) -> RedisServer:
    """The server at ``settings.redis_url``, else the embedded one in ``settings.data_dir``."""
    if settings.redis_url is not None:
        return RedisServer.from_url(settings.redis_url)
    return RedisServer.embedded(settings.data_dir)


def open_store(client: Redis, settings: Settings, *, streams: str = "") -> Store:
    """The store on ``client`` with the configured key prefix, TTLs and stream caps."""
    return Store(
        client,
        prefix=settings.key_prefix,
        seen_ttl=settings.seen_ttl,
        stream_maxlen=settings.stream_maxlen,
        streams=streams,
    )


class ThreadStore:
    """The channels' thread references (``Threads``), kept in the store once it is open.

    Channels are built before the daemon connects to Redis; until then there is no thread to
    find and none is remembered.
    """

    def __init__(self) -> None:
        self.store: Store | None = None

    async def get_thread(self, channel: str, story: str) -> str | None:
        if self.store is None:
            return None
        return await self.store.get_thread(channel, story)

    async def set_thread(self, channel: str, story: str, ref: str) -> None:
        if self.store is not None:
            await self.store.set_thread(channel, story, ref)


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


def story_keeper(store: Store, settings: Settings) -> StoryKeeper:
    return StoryKeeper(
        store, background_for, window_s=settings.story_window, ttl_s=settings.dedup_ttl
    )

"""The one place that knows the concrete classes: sources, channels, the store and the story
keeper are built here from ``Settings`` and the watch configuration.

Everything else receives what it needs through its constructor (``docs/layout.md``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr
from redis.asyncio import Redis

from monitor.app.semantic import embedder
from monitor.app.settings import Settings
from monitor.channels.base import Channel, Threads
from monitor.channels.console import ConsoleChannel
from monitor.channels.email import EmailChannel
from monitor.channels.slack import SlackChannel
from monitor.channels.times import use_zone
from monitor.channels.webhook import WebhookChannel
from monitor.core.config import (
    ConsoleChannelSpec,
    EmailChannelSpec,
    FeedSourceSpec,
    ReplaySourceSpec,
    SlackChannelSpec,
    WebhookChannelSpec,
    WireSourceSpec,
)
from monitor.core.polling import poll_spec
from monitor.core.rules import WatchConfig
from monitor.errors import ConfigError, Problem
from monitor.http import FetchLimits
from monitor.ops.redaction import register
from monitor.roles.poll import Scheduled
from monitor.sources.base import Source
from monitor.sources.feed import FeedSource
from monitor.sources.replay import ReplaySource
from monitor.sources.wire import WireMapping, WireSource
from monitor.store import Store
from monitor.store.server import RedisServer
from monitor.store.stories import StoryKeeper
from monitor.store.story_book import StoryBook

__all__ = [
    "ThreadStore",
    "build_channels",
    "build_sources",
    "consumer_name",
    "fetch_limits",
    "open_store",
    "redis_server",
    "story_book",
    "story_keeper",
]


def configured_settings() -> Settings:
    """The settings from the environment, with the Redis password masked in any output and
    the display zone in use; ``ValueError`` (pydantic's) when one is invalid."""
    settings = Settings()
    if settings.redis_url and (password := urlsplit(settings.redis_url).password):
        register([password])
    use_zone(settings.zone())
    return settings


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
        history_s=settings.history,
        history_max=settings.history_max,
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


def consumer_name(settings: Settings | None = None) -> str:
    """``MONITOR_CONSUMER`` when set (one name per process slot), else unique per process;
    readable in ``XINFO CONSUMERS``."""
    if settings is not None and settings.consumer:
        return settings.consumer
    return f"{socket.gethostname()}-{os.getpid()}"


def fetch_limits(settings: Settings) -> FetchLimits:
    return FetchLimits(
        connect_s=settings.fetch_connect_s,
        read_s=settings.fetch_read_s,
        total_s=settings.fetch_total_s,
        max_bytes=settings.fetch_max_bytes,
        per_host=settings.fetch_per_host,
        private_redirects=settings.fetch_private_redirects,
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _headers(spec: FeedSourceSpec | WireSourceSpec) -> dict[str, str]:
    return {name: value.get_secret_value() for name, value in spec.headers.items()}


def _replay_source(
    spec: ReplaySourceSpec, client: httpx.AsyncClient, limits: FetchLimits
) -> Source:
    return ReplaySource(spec.id, Path(spec.path))


def _feed_source(spec: FeedSourceSpec, client: httpx.AsyncClient, limits: FetchLimits) -> Source:
    return FeedSource(spec.id, spec.url, client, limits, _headers(spec))


def _wire_source(spec: WireSourceSpec, client: httpx.AsyncClient, limits: FetchLimits) -> Source:
    try:
        WireMapping.compile(spec.mapping, require_title=spec.format == "mapping")
    except ConfigError as exc:
        raise ConfigError(
            [Problem(spec.id, 0, 0, f"source {spec.id}: {p}") for p in exc.problems]
        ) from None
    return WireSource(
        spec.id,
        spec.url,
        client,
        limits,
        format=spec.format,
        mapping=spec.mapping or None,
        headers=_headers(spec),
    )


def _console_channel(
    spec: ConsoleChannelSpec, client: httpx.AsyncClient, threads: Threads
) -> Channel:
    return ConsoleChannel(spec.id, json_lines=spec.json_lines)


def _slack_channel(spec: SlackChannelSpec, client: httpx.AsyncClient, threads: Threads) -> Channel:
    return SlackChannel(
        spec.id,
        webhook_url=_secret(spec.webhook_url),
        token=_secret(spec.token),
        channel=spec.channel,
        api_url=spec.api_url,
        threads=threads,
        buttons=spec.signing_secret is not None,
    )


def _email_channel(spec: EmailChannelSpec, client: httpx.AsyncClient, threads: Threads) -> Channel:
    return EmailChannel(
        spec.id,
        host=spec.host,
        port=spec.port,
        tls=spec.tls,
        username=_secret(spec.username),
        password=_secret(spec.password),
        sender=spec.sender,
        to=list(spec.to),
        threads=threads,
    )


def _webhook_channel(
    spec: WebhookChannelSpec, client: httpx.AsyncClient, threads: Threads
) -> Channel:
    return WebhookChannel(
        spec.id, url=spec.url.get_secret_value(), secret=_secret(spec.secret), client=client
    )


SOURCE_BUILDERS: Mapping[type[Any], Callable[[Any, httpx.AsyncClient, FetchLimits], Source]] = {
    ReplaySourceSpec: _replay_source,
    FeedSourceSpec: _feed_source,
    WireSourceSpec: _wire_source,
}
"""One builder per source type of ``monitor/core/config.py``."""

CHANNEL_BUILDERS: Mapping[type[Any], Callable[[Any, httpx.AsyncClient, Threads], Channel]] = {
    ConsoleChannelSpec: _console_channel,
    SlackChannelSpec: _slack_channel,
    EmailChannelSpec: _email_channel,
    WebhookChannelSpec: _webhook_channel,
}
"""One builder per channel type of ``monitor/core/config.py``."""


def build_sources(
    config: WatchConfig, client: httpx.AsyncClient, limits: FetchLimits
) -> list[Scheduled]:
    """The enabled sources, each with its polling bounds; HTTP sources share ``client``."""
    return [
        Scheduled(SOURCE_BUILDERS[type(spec)](spec, client, limits), poll_spec(spec))
        for spec in config.sources
        if spec.enabled
    ]


def build_channels(
    config: WatchConfig, *, client: httpx.AsyncClient, threads: Threads
) -> dict[str, Channel]:
    """Every configured channel; HTTP channels share ``client``, threaded ones ``threads``."""
    return {
        spec.id: CHANNEL_BUILDERS[type(spec)](spec, client, threads) for spec in config.channels
    }


def story_book(store: Store, settings: Settings) -> StoryBook:
    return StoryBook(store, ttl_s=settings.dedup_ttl)


def story_keeper(store: Store, settings: Settings) -> StoryKeeper:
    """Placement as configured: lexical, or with sentence embeddings (``story_semantic``)."""
    return StoryKeeper(
        store,
        window_s=settings.story_window,
        ttl_s=settings.dedup_ttl,
        embed=embedder() if settings.story_semantic else None,
    )

"""The poll role against a real local HTTP server and real Redis: what is new, and who polls."""

from __future__ import annotations

import asyncio

import httpx

from monitor.core.polling import PollSpec
from monitor.core.rules import build_config
from monitor.http import FetchLimits
from monitor.roles.poll import Poller, Scheduled
from monitor.roles.process import Processor, Runtime
from monitor.sources.feed import FeedSource
from monitor.store import Store
from monitor.store.stories import StoryKeeper
from tests.factories import entries, rss
from tests.sources import http_server as hs


async def test_three_new_entries_among_fifty_known_and_a_tracking_parameter(
    server: hs.Server, client: httpx.AsyncClient, limits: FetchLimits, store: Store
) -> None:
    feed = entries(range(50))
    server.static("/feed", rss(feed), ("Content-Type", "application/rss+xml"))
    source = FeedSource("example", server.url("/feed"), client, limits)
    poller = Poller(store, [Scheduled(source, PollSpec(60, 60, 60))], owner="a")
    runtime = Runtime.build(build_config([], {}))
    processor = Processor(store, lambda: runtime, StoryKeeper(store))
    await processor.start()

    await poller.poll(poller.sources[0], force=True)
    assert await store.items.length() == 50
    while await processor.step("worker", count=100):
        pass  # the process role takes them in: they are seen now

    title, link = feed[7]
    feed[7] = (title, f"{link}?utm_source=rss&utm_medium=feed")  # same entry, tracked link
    server.static("/feed", rss(entries(range(50, 53)) + feed), ("Content-Type", "text/xml"))
    result = await poller.poll(poller.sources[0], force=True)
    assert result is not None and len(result.items) == 53
    assert await store.items.length() == 53  # exactly the 3 new ones were appended


async def test_two_daemons_poll_a_feed_once_per_interval_between_them(
    server: hs.Server, client: httpx.AsyncClient, limits: FetchLimits, store: Store
) -> None:
    server.static("/feed", rss(entries(range(3))), ("Content-Type", "application/rss+xml"))
    scheduled = [
        Scheduled(FeedSource("example", server.url("/feed"), client, limits), PollSpec(1, 1, 1))
    ]
    a = Poller(store, scheduled, owner="daemon-a")
    b = Poller(store, scheduled, owner="daemon-b")
    await asyncio.gather(a.poll(scheduled[0]), b.poll(scheduled[0]))
    assert len(server.hits("/feed")) == 1  # at the same moment: one of them
    await b.poll(scheduled[0])
    assert len(server.hits("/feed")) == 1  # right after: not due yet
    await asyncio.sleep(1.1)
    await asyncio.gather(a.poll(scheduled[0]), b.poll(scheduled[0]))
    assert len(server.hits("/feed")) == 2  # due again: once between them

"""The poll role against a real local HTTP server and real Redis: what is new, and who polls."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

import httpx
import pytest

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
    assert await store.items.length() == 0  # what every group is done with is trimmed

    title, link = feed[7]
    feed[7] = (title, f"{link}?utm_source=rss&utm_medium=feed")  # same entry, tracked link
    server.static("/feed", rss(entries(range(50, 53)) + feed), ("Content-Type", "text/xml"))
    result = await poller.poll(poller.sources[0], force=True)
    assert result is not None and len(result.items) == 53
    assert await store.items.length() == 3  # exactly the 3 new ones were appended


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


def rss_with_guids(count: int, link: str) -> bytes:
    body = "".join(
        f"<item><title>Episode {n}: guest {n * 3}</title><link>{link}</link><guid>ep-{n}</guid>"
        f"<description>Episode {n} of the show, about topic {n * 11}.</description></item>"
        for n in range(count)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Show</title><link>https://show.example/</link>{body}</channel></rss>"
    ).encode()


async def test_entries_that_share_one_link_are_all_taken_in(
    server: hs.Server, client: httpx.AsyncClient, limits: FetchLimits, store: Store
) -> None:
    """A podcast's 130 episodes all link to its home page (and a live page's updates to one
    page): the GUIDs tell them apart, the shared link identifies none of them."""
    poller_and_processor = []
    for source_id, link in (
        ("show", "https://show.example/"),
        ("live", "https://live.example/blog"),
    ):
        server.static(f"/{source_id}", rss_with_guids(130, link), ("Content-Type", "text/xml"))
        source = FeedSource(source_id, server.url(f"/{source_id}"), client, limits)
        poller = Poller(store, [Scheduled(source, PollSpec(60, 60, 60))], owner="a")
        poller_and_processor.append(poller)
    runtime = Runtime.build(build_config([], {}))
    processor = Processor(store, lambda: runtime, StoryKeeper(store))
    await processor.start()
    for poller in poller_and_processor:
        await poller.poll(poller.sources[0], force=True)
    assert await store.items.length() == 260
    taken = []
    while entries := await store.items.read("process", "worker", 100, None):
        taken.extend((await processor.handle(entries)).placements)
    assert len(taken) == 260  # none dropped as already seen
    # A later poll with one new episode takes exactly that one in.
    server.static(
        "/show", rss_with_guids(131, "https://show.example/"), ("Content-Type", "text/xml")
    )
    await poller_and_processor[0].poll(poller_and_processor[0].sources[0], force=True)
    assert await store.items.length() == 1  # the 260 taken in were trimmed


def dated_rss(entries: list[tuple[int, datetime]]) -> bytes:
    body = "".join(
        f"<item><title>Story {n}</title><link>https://news.example/d/{n}</link>"
        f"<guid>d{n}</guid><pubDate>{format_datetime(when)}</pubDate>"
        f"<description>Story {n}: the council met.</description></item>"
        for n, when in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Example</title><link>https://news.example/</link>{body}</channel></rss>"
    ).encode()


@pytest.mark.parametrize(("backlog", "appended"), [(3600.0, 2), (None, 7), (0.0, 0)])
async def test_a_new_sources_archive_is_marked_seen_without_alerting(
    server: hs.Server,
    client: httpx.AsyncClient,
    limits: FetchLimits,
    store: Store,
    backlog: float | None,
    appended: int,
) -> None:
    """Subscribing to a feed with years of entries: only those published within the source's
    backlog window go on to alert; the rest are seen, and stay seen on the next poll."""
    now = datetime.now(UTC)
    old = [(n, datetime(2016, 5, n + 1, tzinfo=UTC)) for n in range(5)]
    recent = [(n, now - timedelta(minutes=5 * n)) for n in (5, 6)]
    server.static("/feed", dated_rss(old + recent), ("Content-Type", "text/xml"))
    source = FeedSource("archive", server.url("/feed"), client, limits)
    poller = Poller(store, [Scheduled(source, PollSpec(60, 60, 60, backlog_s=backlog))], owner="a")
    runtime = Runtime.build(build_config([], {}))
    processor = Processor(store, lambda: runtime, StoryKeeper(store))
    await processor.start()
    await poller.poll(poller.sources[0], force=True)
    assert await store.items.length() == appended
    while await processor.step("worker", count=100):
        pass  # what went on is taken in: seen now, and trimmed from the stream
    await poller.poll(poller.sources[0], force=True)  # the same feed again: nothing new
    assert await store.items.length() == 0
    later = (7, now)
    server.static("/feed", dated_rss([*old, *recent, later]), ("Content-Type", "text/xml"))
    await poller.poll(poller.sources[0], force=True)  # not the first poll: a new entry alerts
    assert await store.items.length() == 1


@pytest.mark.parametrize(("away_h", "appended"), [(6, 2), (50, 1)])
async def test_a_source_back_after_a_pause_does_not_flood(
    server: hs.Server,
    client: httpx.AsyncClient,
    limits: FetchLimits,
    store: Store,
    away_h: float,
    appended: int,
) -> None:
    """Polled again after more than a day (disabled, or the daemon stopped): what came out
    meanwhile alerts only within the backlog window; after a few hours, all of it alerts."""
    start = datetime.now(UTC) - timedelta(hours=away_h)
    clock = [start.timestamp()]
    server.static("/feed", dated_rss([(0, start)]), ("Content-Type", "text/xml"))
    source = FeedSource("paused", server.url("/feed"), client, limits)
    spec = PollSpec(60, 60, 600, backlog_s=3600)
    poller = Poller(store, [Scheduled(source, spec)], owner="a", clock=lambda: clock[0])
    await poller.poll(poller.sources[0], force=True)
    runtime = Runtime.build(build_config([], {}))
    processor = Processor(store, lambda: runtime, StoryKeeper(store))
    await processor.start()
    while await processor.step("worker", count=100):
        pass
    now = datetime.now(UTC)
    clock[0] = now.timestamp()
    meanwhile = [(1, now - timedelta(hours=3)), (2, now - timedelta(minutes=10))]
    server.static("/feed", dated_rss([(0, start), *meanwhile]), ("Content-Type", "text/xml"))
    await poller.poll(poller.sources[0], force=True)
    assert await store.items.length() == appended


def google_news(entries: list[tuple[str, str, str]]) -> bytes:
    """A Google News search feed: each entry's title ends in " - Publisher", its description
    links the headline and names the publisher, its ``<source>`` names it too."""
    items = "".join(
        f"<item><title>{title} - {escape(publisher)}</title>"
        f"<link>https://news.google.com/rss/articles/{key}?oc=5</link>"
        f'<guid isPermaLink="false">{key}</guid>'
        "<pubDate>Mon, 15 May 2023 10:00:00 GMT</pubDate>"
        f'<description>&lt;a href="https://news.google.com/rss/articles/{key}"&gt;{title}'
        f'&lt;/a&gt;&amp;nbsp;&amp;nbsp;&lt;font color="#6f6f6f"&gt;{escape(escape(publisher))}'
        f'&lt;/font&gt;</description><source url="https://{key}.example">{escape(publisher)}'
        "</source></item>"
        for key, title, publisher in entries
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>flood - Google News</title>'
        f"<link>https://news.google.com</link>{items}</channel></rss>"
    ).encode()


async def test_google_news_copies_of_one_wire_story_are_duplicates(
    server: hs.Server, client: httpx.AsyncClient, limits: FetchLimits, store: Store
) -> None:
    headline = "Floods cut off villages in northern Italy as rivers burst their banks"
    feed = google_news(
        [
            ("a1", headline, "Reuters"),
            ("b2", headline, "U.S. News & World Report"),
            ("c3", "Drought forces water rationing across Catalonia", "Reuters"),
        ]
    )
    server.static("/gnews", feed, ("Content-Type", "application/rss+xml"))
    source = FeedSource("gnews", server.url("/gnews"), client, limits)
    result = await source.fetch({})
    titles = [(item.title, item.authors) for item in result.items]
    assert titles == [
        (headline, ("Reuters",)),  # the publisher is the item's author, not part of its title
        (headline, ("U.S. News & World Report",)),
        ("Drought forces water rationing across Catalonia", ("Reuters",)),
    ]
    assert all("Reuters" not in item.text for item in result.items)
    placements = await StoryKeeper(store).place(list(result.items), datetime.now(UTC).timestamp())
    first, copy, other = placements
    assert copy.duplicate_of == first.item  # two outlets, one wire story: a copy
    assert other.duplicate_of is None and other.story != first.story

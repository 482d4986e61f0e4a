"""Duplicates and stories on real Redis (issue acceptance): one alert per story."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from monitor.core.rules import build_config
from monitor.models import Item
from monitor.roles.process import Processed, Processor, Runtime
from monitor.sources.replay import read_items
from monitor.store import Store
from monitor.store.placement_inputs import DOCUMENTS
from monitor.store.stories import Once, StoryKeeper, analyse_item
from monitor.store.story_book import StoryBook
from monitor.store.streams import decode, item_entry
from tests.factories import make_item

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
RULES = """
entities:
  maduro: {aliases: ["Nicolás Maduro", "Maduro"]}
rules:
  - {id: maduro-release, query: '@maduro AND release*'}
"""


@pytest.fixture
def seeds() -> list[Item]:
    items, _ = read_items(SEEDS, "seeds")
    return items


@pytest.fixture
async def processor(store: Store) -> Processor:
    runtime = Runtime.build(build_config([("rules.yaml", RULES)], {}))
    processor = Processor(store, lambda: runtime, StoryKeeper(store))
    await processor.start()
    return processor


async def process(store: Store, processor: Processor, items: list[Item]) -> Processed:
    await store.items.add_many([item_entry(item) for item in items])
    return await processor.handle(await store.items.read("process", "worker", 1000))


def seed(item: Item) -> str:
    return (item.path or "")[:3]


async def test_seeds_two_duplicates_one_story_one_alert_two_follow_ups(
    store: Store, processor: Processor, seeds: list[Item]
) -> None:
    result = await process(store, processor, seeds)
    placed = {seed(item): p for item, p in result.placements}
    by_id = {item.id: seed(item) for item in seeds}
    assert placed["000"].duplicate_of is None
    assert by_id[placed["001"].duplicate_of] == "000"
    assert [placed[s].duplicate_of for s in ("002", "003", "004")] == [None, None, None]
    assert len({p.story for p in placed.values()}) == 1
    release = [(seed(a.item), a.followup) for a in result.alerts if a.rule == "maduro-release"]
    assert release == [("000", False), ("002", True), ("004", True)]
    assert len({a.id for a in result.alerts}) == 1  # follow-ups share the alert id (threading)


async def test_seeds_one_at_a_time_give_the_same_story(
    store: Store, processor: Processor, seeds: list[Item]
) -> None:
    """Across batches the story is found in Redis, not only within one batch."""
    stories, alerts = set(), []
    for item in seeds:
        result = await process(store, processor, [item])
        stories.update(p.story for _, p in result.placements)
        alerts.extend((seed(a.item), a.followup) for a in result.alerts)
    assert len(stories) == 1
    assert alerts == [("000", False), ("002", True), ("004", True)]


async def test_the_same_item_twice_gives_no_second_alert_or_follow_up(
    store: Store, processor: Processor, seeds: list[Item]
) -> None:
    first = await process(store, processor, seeds)
    again = await process(store, processor, seeds)
    assert len(first.alerts) == 3
    assert again.alerts == [] and again.placements == []


async def test_two_feeds_with_different_tracking_parameters_give_one_alert(
    store: Store, processor: Processor, seeds: list[Item]
) -> None:
    original = seeds[0]
    url = "https://news.example/2026/01/03/russia-maduro"
    one = replace(original, id="feed-a:1", source="feed-a", guid="a-1", url=f"{url}?utm_source=rss")
    two = replace(
        original, id="feed-b:9", source="feed-b", guid="b-9", url=f"{url}?fbclid=x&utm_medium=s#c"
    )
    result = await process(store, processor, [one])
    assert [a.followup for a in result.alerts] == [False]
    result = await process(store, processor, [two])
    assert result.alerts == [] and result.placements == []


async def test_a_syndicated_copy_from_another_source_counts_as_a_source(
    store: Store, processor: Processor, seeds: list[Item]
) -> None:
    copy = replace(seeds[1], id="wire:1", source="wire", guid="w-1", url=None)
    result = await process(store, processor, [seeds[0], copy, seeds[2]])
    placed = [p for _, p in result.placements]
    assert placed[1].duplicate_of == seeds[0].id
    assert placed[2].sources == 2  # seeds and wire carry the story
    # Alerts say how many sources carried the story once their batch was written: the copy
    # came in the first alert's batch.
    assert [(a.followup, a.sources) for a in result.alerts] == [(False, 2), (True, 2)]
    entries = await store.client.xrange(store.keys.outbox_stream)
    assert [decode(fields["data"])["alert"]["sources"] for _, fields in entries] == [2, 2]


async def test_a_teaser_joins_its_full_text_as_a_duplicate(
    store: Store, processor: Processor, seeds: list[Item]
) -> None:
    full = seeds[0]
    teaser_text = "\n".join(full.text.splitlines()[:3]) + " … Read more"
    teaser = replace(full, id="teasers:1", source="teasers", guid="t-1", text=teaser_text)
    await process(store, processor, [full])
    result = await process(store, processor, [teaser])
    [(_, placed)] = result.placements
    assert placed.duplicate_of == full.id
    assert result.alerts == []


async def test_lines_repeated_across_a_source_are_boilerplate(store: Store) -> None:
    """Three unrelated articles sharing a long footer are not duplicates of one another."""
    keeper = StoryKeeper(store)
    footer = "\n".join(
        f"The Springfield Ledger is published daily by Ledger Media Group, line {n} of the"
        " masthead that every article on the site carries at its end."
        for n in range(12)
    )
    topics = [
        "The city council approved a new budget for road repairs after a long debate.",
        "A local bakery won a national award for its sourdough bread this weekend.",
        "Firefighters rescued a cat from a tree near the central library on Friday.",
        "The high school robotics team qualified for the state finals in March.",
    ]
    items = [
        Item(id=f"ledger:{n}", source="ledger", title=t[:40], text=f"{t}\n{footer}")
        for n, t in enumerate(topics)
    ]
    placed = []
    for item in items:
        placed.extend(await keeper.place([item], time.time()))
    assert [p.duplicate_of for p in placed[2:]] == [None, None]


async def test_keys_expire(store: Store, processor: Processor, seeds: list[Item]) -> None:
    await process(store, processor, seeds)
    keys = [k async for k in store.client.scan_iter(match=f"{store.keys.prefix}*")]
    without_ttl = [
        k for k in keys if await store.client.ttl(k) < 0 and await store.client.type(k) != "stream"
    ]
    assert without_ttl == [store.keys.stories]  # trimmed by score on every write instead


async def test_an_entry_redelivered_after_its_stories_were_written_alerts_the_same(
    store: Store, processor: Processor, seeds: list[Item]
) -> None:
    """The worker placed the items, then died before writing the alerts: the redelivered entry
    must not find each item a duplicate of itself."""
    keeper = StoryKeeper(store)
    await keeper.place(seeds, time.time())  # the work done before the crash
    result = await process(store, processor, seeds)
    release = [(seed(a.item), a.followup) for a in result.alerts if a.rule == "maduro-release"]
    assert release == [("000", False), ("002", True), ("004", True)]
    placed = {seed(item): p.duplicate_of for item, p in result.placements}
    assert placed["001"] == seeds[0].id and placed["002"] is None


async def test_items_without_a_real_body_are_not_duplicates_of_each_other(store: Store) -> None:
    keeper = StoryKeeper(store)
    titles = ["Maduro released from custody", "New Rust compiler ships", "Storm hits Manila"]
    items = [
        Item(id=f"hn:{n}", source="hn", title=title, text=body)
        for n, title in enumerate(titles)
        for body in ("", "Comments")
    ]
    placed = await keeper.place(items, time.time())
    duplicates = [(p.item, p.duplicate_of) for p in placed if p.duplicate_of]
    assert (
        duplicates == [] or all(a.split(":")[1] != b.split(":")[1] for a, b in duplicates) is False
    )
    assert [p.duplicate_of for p in placed] == [None] * len(items)
    assert [k async for k in store.client.scan_iter(match=f"{store.keys.prefix}band:*")] == []


class Paused(StoryKeeper):
    """A worker that stops right after its first reading of candidates, until told to go on:
    the moment another worker's batch slips in between reading and writing."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.reading_done = asyncio.Event()
        self.go_on = asyncio.Event()

    async def _read(self, *args: Any, **kwargs: Any) -> Any:
        found = await super()._read(*args, **kwargs)
        if not self.reading_done.is_set():
            self.reading_done.set()
            await self.go_on.wait()
        return found


async def test_two_workers_placing_one_new_event_at_once_make_one_story(
    store: Store, seeds: list[Item]
) -> None:
    """Seeds 000 and 002 are two outlets' reports of one event, taken by two workers (each its
    own StoryKeeper, one Redis) at the same moment. Neither waits for the other: the one that
    writes second finds that the first wrote what it read, reads again and joins its story."""
    first, other = (next(i for i in seeds if seed(i) == n) for n in ("000", "002"))
    slow, fast = Paused(store), StoryKeeper(store)
    now = time.time()
    placing = asyncio.create_task(slow.place([first], now))
    await slow.reading_done.wait()
    [b] = await asyncio.wait_for(fast.place([other], now), 10)  # not kept out by the slow one
    slow.go_on.set()
    [a] = await placing
    assert a.story == b.story
    assert (a.new_story, b.new_story) == (False, True)
    assert a.matched == other.id
    # Having seen no other worker, the slow one first wrote without what its items read; told
    # that another worker wrote meanwhile, it sent them, and was told which item to read again.
    assert slow.retries == {"unchecked": 1, "conflict": 1} and not fast.retries
    assert slow.read_again == 1


async def test_workers_placing_unrelated_items_at_once_write_without_reading_again(
    store: Store, seeds: list[Item]
) -> None:
    """Two workers' batches that share no key (no band, no term one looks up that the other
    writes) are both written at once: neither reads again."""
    quake = make_item(
        "quake:1",
        source="wire",
        title="Magnitude 6.4 earthquake strikes near Lima, Peru",
        text="A magnitude 6.4 earthquake struck near Lima, Peru, on Monday, officials said. "
        "Buildings swayed in Lima and Callao; no deaths were reported.",
    )
    slow, fast = Paused(store), StoryKeeper(store)
    now = time.time()
    placing = asyncio.create_task(slow.place([quake], now))
    await slow.reading_done.wait()
    reports = await asyncio.wait_for(fast.place(seeds[:2], now), 10)
    slow.go_on.set()
    [a] = await placing
    assert a.new_story and a.story not in {p.story for p in reports}
    # The slow one wrote again only to send what its items read (it had seen no other worker).
    assert slow.retries == {"unchecked": 1} and not fast.retries
    assert slow.read_again == 0


async def test_a_batch_read_before_a_correction_is_read_again(
    store: Store, seeds: list[Item]
) -> None:
    """A split made while a batch is being decided moves an item that batch read: the batch's
    write is refused, it reads everything again, and the new item follows the correction."""
    first, other, third = (next(i for i in seeds if seed(i) == n) for n in ("000", "002", "003"))
    now = time.time()
    placed = await StoryKeeper(store).place([first, other], now)
    assert placed[1].story == placed[0].story
    slow = Paused(store)
    placing = asyncio.create_task(slow.place([third], now + 60))
    await slow.reading_done.wait()
    _, new = await StoryBook(store).split(first.id)
    slow.go_on.set()
    [late] = await placing
    assert slow.retries == {"stale": 1}
    assert late.story == (new if late.matched == first.id else placed[1].story)
    assert late.matched in (first.id, other.id)


async def test_band_buckets_find_a_copy_and_forget_it_after_the_dedup_ttl(
    store: Store, seeds: list[Item]
) -> None:
    """LSH bands live in sorted-set buckets scored by placement time: a copy placed within the
    TTL is found through them, one placed after it is not (the bucket was trimmed)."""
    original = seeds[0]
    keeper = StoryKeeper(store, ttl_s=3600, window_s=600)
    [first] = await keeper.place([original], 1_000_000.0)
    copy = replace(original, id="copy:1", guid="copy:1", source="copy")
    [soon] = await StoryKeeper(store, ttl_s=3600, window_s=600).place([copy], 1_000_060.0)
    assert soon.duplicate_of == original.id
    late = replace(original, id="copy:2", guid="copy:2", source="late")
    [after] = await StoryKeeper(store, ttl_s=3600, window_s=600).place([late], 1_010_000.0)
    assert after.duplicate_of is None and after.story != first.story
    buckets = [key async for key in store.client.scan_iter(f"{store.keys.prefix}band:*")]
    assert buckets and all([await store.client.type(k) == "zset" for k in buckets])
    members = [m for k in buckets for m in await store.client.zrange(k, 0, -1)]
    assert not [m for m in members if m.endswith("|" + original.id)]  # trimmed by time


BAKERY = make_item(
    "other:1",
    source="other",
    title="Maduro's former minister opens a bakery in Madrid",
    text="A former minister of Nicolás Maduro opened a bakery in Madrid on Tuesday, "
    "selling arepas and pastries to a long queue of exiles. " * 3,
)
"""Another event that names the seeds' Maduro."""


async def test_the_stream_counts_stories_not_reports(store: Store, seeds: list[Item]) -> None:
    """Five reports of one event placed in one batch count as one story in the stream's
    frequencies; a report of another event naming the same man makes his name twice as
    common, and the first event's own words no commoner."""
    now = 1_700_000_000.0
    keeper = StoryKeeper(store)
    placed = await keeper.place(seeds, now)
    assert len({p.story for p in placed}) == 1
    key = store.keys.frequencies("en", int(now // 86400))
    assert await store.client.hget(key, DOCUMENTS) == "1"
    assert await store.client.hmget(key, ["maduro", "caracas"]) == ["1", "1"]
    [apart] = await keeper.place([BAKERY], now + 60)
    assert apart.new_story
    assert await store.client.hget(key, DOCUMENTS) == "2"
    assert await store.client.hmget(key, ["maduro", "caracas"]) == ["2", "1"]


async def test_a_batch_counts_the_stream_as_its_items_one_at_a_time_would(
    store: Store, seeds: list[Item]
) -> None:
    """Within a batch each item is weighed and counted after the ones before it, so a batch
    leaves the stream's frequencies as the same items placed one batch each would."""
    now = 1_700_000_000.0
    items = [*seeds[:3], BAKERY, *seeds[3:]]
    together = Store(store.client, prefix=store.keys.prefix + "together:")
    apart = Store(store.client, prefix=store.keys.prefix + "apart:")
    placed = await StoryKeeper(together).place(items, now)
    keeper = StoryKeeper(apart)
    one_by_one = [(await keeper.place([item], now))[0] for item in items]
    assert [p.new_story for p in placed] == [p.new_story for p in one_by_one]
    day = int(now // 86400)
    counts = [await s.client.hgetall(s.keys.frequencies("en", day)) for s in (together, apart)]
    assert counts[0] == counts[1] != {}


async def test_an_item_another_entry_brought_is_seen_and_neither_placed_nor_counted(
    store: Store, seeds: list[Item]
) -> None:
    """Level 1 is taken in by the script that counts an item's lines: an item whose key another
    stream entry holds is not placed and counts nothing; this entry's own key (a redelivery)
    is no obstacle."""
    keeper = StoryKeeper(store)
    now = time.time()
    first, copy = seeds[0], replace(seeds[0], id="copy")  # the same GUID: the same seen key
    key = store.keys.seen(first.source, first.guid or first.id)
    once = [Once([key], "1-0", 60)]
    [placed] = await keeper.place_unseen([first], now, [analyse_item(first)], once)
    assert placed is not None and await store.client.get(key) in ("1-0", b"1-0")
    lines = {k async for k in store.client.scan_iter(match=f"{store.keys.prefix}lines:*")}
    counted = {k: await store.client.hgetall(k) for k in lines}

    again = [Once([key], "2-0", 60)]
    assert await keeper.place_unseen([copy], now, [analyse_item(copy)], again) == [None]
    assert {k: await store.client.hgetall(k) for k in lines} == counted
    assert await store.client.exists(store.keys.doc(copy.id)) == 0
    assert await store.client.ttl(key) > 0

    [redelivered] = await keeper.place_unseen([first], now, [analyse_item(first)], once)
    assert redelivered is not None and redelivered.story == placed.story


async def test_a_batch_whose_story_write_is_refused_ends_once_with_the_write_that_goes_through(
    store: Store, seeds: list[Item]
) -> None:
    """A batch's end (claims, alerts, acknowledgement, history) rides with its story write and
    is refused with it: the worker whose write another worker's slipped in before decides
    again, and its end goes out once, with the placement that was written."""
    runtime = Runtime.build(build_config([("rules.yaml", RULES)], {}))
    paused = Paused(store)
    slow = Processor(store, lambda: runtime, paused)
    fast = Processor(store, lambda: runtime, StoryKeeper(store))
    await slow.start()
    first, other = (next(i for i in seeds if seed(i) == n) for n in ("000", "002"))
    await store.items.add_many([item_entry(first)])
    handling = asyncio.create_task(slow.handle(await store.items.read("process", "slow", 10)))
    await paused.reading_done.wait()
    quick = await asyncio.wait_for(process(store, fast, [other]), 10)
    paused.go_on.set()
    late = await handling
    assert paused.retries == {"unchecked": 1, "conflict": 1}  # two writes refused, two ends
    assert [(a.item.id, a.followup) for a in quick.alerts + late.alerts] == [
        (other.id, False),
        (first.id, True),
    ]
    entries = await store.client.xrange(store.keys.outbox_stream)
    sent = [decode(fields["data"])["alert"] for _, fields in entries]
    assert [(a["item"]["id"], a["followup"]) for a in sent] == [(other.id, False), (first.id, True)]
    assert len({a["story"] for a in sent}) == 1
    assert await store.items.pending_count("process") == 0
    assert await store.items.length() == 0
    assert [r.item.id for r in await store.history.since(0)] == [other.id, first.id]


async def test_an_entry_taken_over_while_its_worker_still_places_it_ends_once_per_worker(
    store: Store, seeds: list[Item]
) -> None:
    """A consumer idle past the reclaim time loses its entry to another, then wakes up: the two
    place the same item, leaving the same story in its document. Only the write whose token
    the document holds lets its end through, so each worker ends the entry once, not once per
    attempt."""
    runtime = Runtime.build(build_config([("rules.yaml", RULES)], {}))
    paused = Paused(store)
    slow = Processor(store, lambda: runtime, paused)
    fast = Processor(store, lambda: runtime, StoryKeeper(store))
    await slow.start()
    first = next(i for i in seeds if seed(i) == "000")
    await store.items.add_many([item_entry(first)])
    entries = await store.items.read("process", "slow", 10)
    handling = asyncio.create_task(slow.handle(entries))
    await paused.reading_done.wait()
    await asyncio.wait_for(fast.handle(entries), 10)  # the same entry, taken over
    paused.go_on.set()
    late = await handling
    assert paused.retries["unchecked"] + paused.retries["conflict"] >= 1  # refused writes
    outbox = await store.client.xrange(store.keys.outbox_stream)
    # One alert per worker (both claimed with the same entry id), not one per write attempt.
    assert len(outbox) == 2 * len(late.alerts) == 2
    assert await store.client.xlen(store.keys.history) == 2

"""The process and dispatch roles against real Redis: once per (rule, story), nothing lost."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.core.rules import build_config
from monitor.models import Item
from monitor.roles.process import Processor, Runtime
from monitor.sources.replay import read_items
from monitor.store import Store
from monitor.store.seen import seen_key
from monitor.store.stories import StoryKeeper
from monitor.store.streams import PROCESS_GROUP as PROCESS
from monitor.store.streams import item_entry
from tests.conftest import RoundTrips

SEEDS = Path(__file__).resolve().parents[2] / "seeds"
RULES = """
entities:
  maduro: {aliases: ["Nicolás Maduro", "Maduro"]}
rules:
  - {id: maduro-release, query: '@maduro AND release*', channels: [desk, wall]}
channels:
  - {id: desk, type: console}
  - {id: wall, type: console}
"""


@pytest.fixture
def runtime() -> Runtime:
    return Runtime.build(build_config([("rules.yaml", RULES)], {}))


@pytest.fixture
def seeds() -> list[Item]:
    items, problems = read_items(SEEDS, "seeds")
    assert not problems
    return items


async def outbox(store: Store) -> list[tuple[str, str]]:
    """(channel, seed file) of every entry in the outbox stream."""
    entries = await store.client.xrange(store.keys.outbox_stream)
    payloads = [json.loads(fields["data"]) for _, fields in entries]
    return sorted((e["channel"], e["alert"]["item"]["path"][:3]) for e in payloads)


async def queued(store: Store, runtime: Runtime, seeds: list[Item], **options: int) -> Processor:
    """A started processor with the seeds waiting in the items stream."""
    processor = Processor(store, lambda: runtime, StoryKeeper(store), **options)
    await processor.start()
    await store.items.add_many([item_entry(item) for item in seeds])
    return processor


async def test_matching_items_alert_once_per_channel(
    store: Store, runtime: Runtime, seeds: list[Item]
) -> None:
    processor = await queued(store, runtime, seeds)
    assert await processor.step("worker") == 5
    # 001 duplicates 000; 003 does not match; all five are one story: 000 alerts, 002 and 004
    # follow up.
    expected = [(c, s) for c in ("desk", "wall") for s in ("000", "002", "004")]
    assert await outbox(store) == expected
    assert await store.items.pending_count(PROCESS) == 0


async def test_items_seen_before_do_not_alert_again(
    store: Store, runtime: Runtime, seeds: list[Item]
) -> None:
    processor = await queued(store, runtime, seeds)
    await processor.step("worker")
    await store.items.add_many([item_entry(item) for item in seeds])
    assert await processor.step("worker") == 5
    assert len(await outbox(store)) == 6


async def test_a_batch_costs_the_same_round_trips_whatever_its_size(
    store: Store, runtime: Runtime, seeds: list[Item], round_trips: RoundTrips
) -> None:
    processor = await queued(store, runtime, seeds)
    await processor.step("worker")
    costs, alerted = [], []
    for copies in (1, 20):
        batch = [
            replace(
                item,
                id=f"{item.id}-{copies}-{n}",
                guid=f"{item.guid}-{copies}-{n}",
                url=f"https://copies.example/{copies}/{n}/{number}",
            )
            for n in range(copies)
            for number, item in enumerate(seeds)
        ]
        await store.items.add_many([item_entry(item) for item in batch])
        before = len(await outbox(store))
        round_trips.count = 0
        assert await processor.step("worker", count=1000) == len(batch)
        costs.append(round_trips.count)
        alerted.append(len(await outbox(store)) - before)
    # The read; the seen checks with the lines and frequencies; the candidates; the story
    # write with the batch's end (claims, alerts, acknowledgement, history) in the same round
    # trip. A constant, not one per item; entries of dead consumers were looked for at the
    # first step.
    assert costs == [4, 4]
    assert all(alerted)  # follow-ups went out: the claims and the outbox were in those four


async def test_a_batch_of_items_seen_before_ends_in_a_round_trip_of_its_own(
    store: Store, runtime: Runtime, seeds: list[Item], round_trips: RoundTrips
) -> None:
    processor = await queued(store, runtime, seeds)
    await processor.step("worker")
    await store.items.add_many([item_entry(item) for item in seeds])  # the same GUIDs
    round_trips.count = 0
    assert await processor.step("worker") == len(seeds)
    assert round_trips.count == 3  # the read, the seen checks, the end: nothing to place
    assert await store.items.pending_count(PROCESS) == 0


async def test_entries_of_a_dead_consumer_are_reclaimed_and_alert_once(
    store: Store, runtime: Runtime, seeds: list[Item]
) -> None:
    processor = await queued(store, runtime, seeds, reclaim_idle_ms=500)
    taken = await store.items.read(PROCESS, "dies", 100)  # read, never acknowledged
    assert len(taken) == 5
    assert await processor.step("survivor") == 0  # not idle long enough to be taken over
    await asyncio.sleep(0.6)
    assert await processor.step("survivor") == 5
    assert len(await outbox(store)) == 6
    assert await store.items.pending_count(PROCESS) == 0
    assert await processor.step("survivor") == 0
    assert len(await outbox(store)) == 6


async def test_a_crash_between_seen_check_and_outbox_loses_no_alert(
    store: Store, runtime: Runtime, seeds: list[Item]
) -> None:
    """The dead consumer marked the items seen, then died before writing their alerts."""
    processor = await queued(store, runtime, seeds, reclaim_idle_ms=50)
    taken = await store.items.read(PROCESS, "dies", 100)
    by_entry = {entry_id: Item.from_dict(payload["item"]) for entry_id, payload in taken}
    marked = await store.set_once(
        [(seen_key(store.keys, item), entry_id, 60) for entry_id, item in by_entry.items()],
        reentrant=True,
    )
    assert all(marked)
    await asyncio.sleep(0.1)
    assert await processor.step("survivor") == 5
    assert len(await outbox(store)) == 6
    # A copy of an item under a new stream entry is still a duplicate.
    await store.items.add_many([item_entry(seeds[0])])
    assert await processor.step("survivor") == 1
    assert len(await outbox(store)) == 6


@pytest.mark.parametrize(
    "payload",
    [
        {"item": {"id": 7, "source": "x"}},
        {"item": "oops"},
        {"item": {"id": "a", "source": "x", "guid": 5}},
        {},
    ],
)
async def test_malformed_items_are_dropped_and_acknowledged(
    store: Store, runtime: Runtime, seeds: list[Item], payload: dict[str, object]
) -> None:
    processor = await queued(store, runtime, seeds[:1])
    await store.items.add_many([payload])
    assert await processor.step("worker") == 2
    assert await store.items.pending_count(PROCESS) == 0
    assert len(await outbox(store)) == 2  # the good item went through


async def test_a_snoozed_rule_neither_alerts_nor_claims(
    store: Store, runtime: Runtime, seeds: list[Item]
) -> None:
    [rule] = runtime.config.rules
    await store.set_quiet("rule", rule.id, time.time() + 3600, time.time())
    processor = await queued(store, runtime, seeds)
    assert await processor.step("worker") == 5
    assert await outbox(store) == []
    assert not [key async for key in store.client.scan_iter(f"{store.keys.prefix}claim:*")]
    await store.clear_quiet("rule", rule.id)  # over: the story alerts on its next report
    later = replace(
        seeds[2],
        id="seeds:later",
        guid="later",
        title="Talks on the release of Maduro resume",
        text="Negotiators met again on Monday to discuss the release of Nicolás Maduro.",
        path="later.txt",
    )
    await store.items.add_many([item_entry(later)])
    assert await processor.step("worker") == 1
    assert await outbox(store) == [("desk", "lat"), ("wall", "lat")]


async def test_a_muted_story_sends_no_follow_ups(
    store: Store, runtime: Runtime, seeds: list[Item]
) -> None:
    processor = await queued(store, runtime, seeds[:1])
    assert await processor.step("worker") == 1
    assert await outbox(store) == [("desk", "000"), ("wall", "000")]
    [(_, fields)] = (await store.client.xrange(store.keys.outbox_stream))[:1]
    alert = json.loads(fields["data"])["alert"]
    record = await store.alert_record(alert["id"])
    assert record is not None and record["story"] == alert["story"]
    await store.set_quiet("story", alert["story"], time.time() + 3600, time.time())
    await store.items.add_many([item_entry(item) for item in seeds[1:]])
    assert await processor.step("worker") == 4
    assert await outbox(store) == [("desk", "000"), ("wall", "000")]  # no follow-ups
    assert [(k, t) for k, t, _ in await store.quiet_list(time.time())] == [
        ("story", alert["story"])
    ]


async def test_mutes_and_snoozes_end_and_their_hash_expires(store: Store) -> None:
    now = time.time()
    await store.set_quiet("rule", "r1", now + 60, now)
    await store.set_quiet("story", "s1", now + 600, now)
    assert 590 <= await store.client.ttl(store.keys.quiet) <= 601  # with the last one
    await store.set_quiet("rule", "r2", now + 300, now + 100)  # r1 ended by then: pruned
    assert [t for _, t, _ in await store.quiet_list(now + 100)] == ["r2", "s1"]
    assert await store.client.hget(store.keys.quiet, "rule:r1") is None

"""Streams drop what every group is done with; the history keeps the recent items, compact."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from monitor.models import Item
from monitor.store import Store
from monitor.store.finishing import Ending
from monitor.store.history import TEXT_CHARS, pack
from monitor.store.streams import PROCESS_GROUP


async def append(store: Store, packed: list[str], now: float) -> None:
    """Items added to the history as the process role adds them: in a batch's end."""
    ending = Ending(store, PROCESS_GROUP, [], packed, [], now)
    await ending.write()
    assert ending.ran


async def test_acknowledged_entries_leave_the_stream_once_every_group_has_them(
    store: Store,
) -> None:
    stream = store.outbox
    await stream.ensure_group("fast")
    await stream.ensure_group("slow")
    ids = await stream.add_many([{"n": n} for n in range(6)])
    fast = await stream.read("fast", "f", 6)
    slow = await stream.read("slow", "s", 2)  # reads two, acknowledges one
    await stream.ack("slow", [slow[0][0]])
    await stream.ack("fast", [entry for entry, _ in fast])
    # The slow group still holds ids[1] pending and never read ids[2:]: they all stay.
    assert await stream.length() == 5
    await stream.ack("slow", [slow[1][0]])
    assert await stream.length() == 4  # ids[2:]: delivered to one group, not to the other
    rest = await stream.read("slow", "s", 10)
    assert [entry for entry, _ in rest] == ids[2:]
    await stream.ack("slow", ids[2:4])
    assert await stream.length() == 2
    await stream.ack("slow", ids[4:])
    assert await stream.length() == 0
    later = await stream.add_many([{"n": 6}])
    assert await stream.length() == 1  # a new entry no group has read yet stays
    assert await stream.read("fast", "f", 10) == [(later[0], {"n": 6})]


async def test_the_history_keeps_recent_items_compressed_and_reads_them_back(
    store: Store,
) -> None:
    item = Item(id="a", source="wire", title="Dam bursts", text="Water " * 10_000, url=None)
    other = Item(id="b", source="wire", title="Dam bursts again", text="Water rising")
    now = time.time()
    await append(store, [pack(item, "s1", None, True), pack(other, "s1", "a", False)], now)
    problems: list[str] = []
    found = await store.history.since(now - 60, problems)
    assert problems == []
    assert [(r.item.id, r.story, r.duplicate_of, r.confident) for r in found] == [
        ("a", "s1", None, True),
        ("b", "s1", "a", False),
    ]
    assert found[0].item.text == item.text[:TEXT_CHARS] and found[1].item.text == other.text
    assert len(pack(item, "s1", None)) < len(item.text[:TEXT_CHARS]) / 20  # compressed
    count, oldest = await store.history.reach()
    assert count == 2 and oldest is not None and abs(oldest - now) < 60


async def test_the_history_forgets_by_age_and_by_count(
    redis_client: Redis, key_prefix: str
) -> None:
    store = Store(redis_client, prefix=key_prefix, history_s=3600, history_max=1000)
    key, history = store.keys.history, store.history
    items = [Item(id=str(n), source="s", title=f"t{n}", text="x") for n in range(3)]
    now = time.time()
    await redis_client.xadd(
        key, {"d": pack(items[0], "s", None)}, id=f"{int((now - 7200) * 1000)}-0"
    )
    await append(store, [pack(items[1], "s", None, True)], now)
    # The two-hour-old entry went when the new one came.
    assert [r.item.id for r in await history.since(0)] == ["1"]
    small = Store(redis_client, prefix=f"{key_prefix}small:", history_s=3600, history_max=1)
    for n in range(300):
        await append(small, [pack(items[n % 3], "s", None, True)], now)
    count, _ = await small.history.reach()
    assert count < 300  # the cap trims (approximately: whole nodes of the stream at a time)


async def test_an_unreadable_history_entry_is_named_and_skipped(store: Store) -> None:
    await store.client.xadd(store.keys.history, {"d": "not compressed"})
    problems: list[str] = []
    assert await store.history.since(0, problems) == []
    assert len(problems) == 1 and problems[0].startswith("history entry ")

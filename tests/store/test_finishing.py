"""A batch's end in one script call (``store.finishing``): the claim decides which alert goes out,
the alert is written exactly as the channel would have read it, nothing happens unless the
guard holds."""

from __future__ import annotations

import json
import time
from dataclasses import replace

from monitor.models import Alert
from monitor.store import Store
from monitor.store.finishing import SOURCES_MARK, Claimed, Ending, Guard, Variant, halves
from monitor.store.keys import alert_bucket
from monitor.store.quiet import Claim
from monitor.store.streams import PROCESS_GROUP, decode, encode, outbox_entry
from tests.factories import make_alert, make_item

NOW = time.time()  # the history trims by the server clock


def variant(alert: Alert | None, channels: tuple[str, ...] = ("desk", "mail")) -> Variant:
    if alert is None:
        return Variant()
    marked = replace(alert, sources=SOURCES_MARK)
    counted = f"{'followup' if alert.followup else 'alert'}:{alert.rule}"
    return Variant(True, counted, [halves(outbox_entry(c, marked)) for c in channels])


def claimed(value: str, *, followups: bool = True) -> tuple[Claimed, Alert, Alert]:
    item = make_item("wire:1", title="Storm floods the valley", text="Rain. " * 30)
    first = make_alert("r:s1", item=item, story="s1", related="s0", related_title="Earlier")
    later = replace(first, followup=True, related=None, related_title="")
    claim = Claim("r", "s1", "s1", value, 600)
    record = json.dumps({"rule": "r", "story": "s1", "title": item.title})
    built = Claimed.of(
        claim, record, first.id, variant(first), variant(later if followups else None)
    )
    return built, first, later


async def end(store: Store, claims: list[Claimed], guard: Guard | None = None) -> Ending:
    ending = Ending(store, PROCESS_GROUP, [], [], claims, NOW, guard)
    await ending.write()
    return ending


async def sent(store: Store) -> list[str]:
    return [fields["data"] for _, fields in await store.client.xrange(store.keys.outbox_stream)]


async def test_the_winner_sends_its_first_alert_as_the_channel_reads_it(store: Store) -> None:
    await store.client.sadd(store.keys.story_sources("s1"), "wire", "agency")
    first_claim, first, _ = claimed("1-0")
    # Most of both alerts (the item) is sent once.
    assert first_claim.shared and len(first_claim.shared[0]) > len(encode(first.item.to_dict()))
    ending = await end(store, [first_claim])
    assert ending.ran and ending.outcomes == [(1, 2)]
    expected = [encode(outbox_entry(c, replace(first, sources=2))) for c in ("desk", "mail")]
    assert await sent(store) == expected
    record = await store.client.get(store.keys.alert_record(first.id))
    assert json.loads(record) == {"rule": "r", "story": "s1", "title": first.item.title}
    counts = await store.client.hgetall(store.keys.alert_counts(alert_bucket(NOW)))
    assert counts == {"alert:r": "1"}


async def test_a_later_item_sends_the_follow_up_or_nothing(store: Store) -> None:
    winner, _, _ = claimed("1-0")
    await end(store, [winner])
    loser, _, later = claimed("2-0")
    ending = await end(store, [loser])
    assert ending.outcomes == [(0, 1)]
    outbox = await sent(store)
    assert outbox[2:] == [encode(outbox_entry(c, later)) for c in ("desk", "mail")]
    assert [decode(data)["alert"]["followup"] for data in outbox] == [False, False, True, True]

    silent, _, _ = claimed("3-0", followups=False)  # the rule sends no follow-ups
    assert not silent.shared
    assert (await end(store, [silent])).outcomes == [(0, 1)]
    assert len(await sent(store)) == 4
    counts = await store.client.hgetall(store.keys.alert_counts(alert_bucket(NOW)))
    assert counts == {"alert:r": "1", "followup:r": "1"}


async def test_a_redelivered_entry_sends_its_own_first_alert_again(store: Store) -> None:
    """The claim already holds this entry's id: it won before and died before acknowledging."""
    won, _, _ = claimed("1-0")
    await end(store, [won])
    again, _, _ = claimed("1-0")
    assert (await end(store, [again])).outcomes == [(1, 1)]


async def test_a_muted_story_claims_nothing_and_sends_nothing(store: Store) -> None:
    await store.client.hset(store.keys.quiet, "story:s1", NOW + 3600)
    muted, first, _ = claimed("1-0")
    assert (await end(store, [muted])).outcomes == [(-1, 1)]
    assert await sent(store) == []
    assert await store.client.exists(store.keys.claim("r", "s1")) == 0
    assert await store.client.exists(store.keys.alert_record(first.id)) == 0


async def test_nothing_happens_unless_the_guard_holds(store: Store) -> None:
    """The guard is the document of the batch's first item holding the token of the story write
    in the same round trip: until that write put it there, the end does nothing at all; a
    document another write left (the same item placed by another consumer) does not do."""
    doc = store.keys.doc("wire:1")
    await store.items.ensure_group(PROCESS_GROUP)
    [entry] = await store.items.add_many([{"item": make_item("wire:1").to_dict()}])
    await store.items.read(PROCESS_GROUP, "worker", 10)
    await store.client.hset(doc, mapping={"story": "s1", "batch": "another-write"})

    def ending() -> Ending:
        return Ending(
            store, PROCESS_GROUP, [entry], ["x"], [claimed(entry)[0]], NOW, Guard(doc, "mine")
        )

    refused = ending()
    await refused.write()
    assert not refused.ran
    assert await sent(store) == [] and await store.items.pending_count(PROCESS_GROUP) == 1
    assert await store.client.exists(store.keys.claim("r", "s1"), store.keys.history) == 0

    await store.client.hset(doc, "batch", "mine")  # the write went through
    done = ending()
    await done.write()
    assert done.ran and done.acknowledged == 1 and done.outcomes == [(1, 1)]
    assert len(await sent(store)) == 2 and await store.items.pending_count(PROCESS_GROUP) == 0
    assert await store.items.length() == 0  # what every group is done with is trimmed
    assert await store.client.xlen(store.keys.history) == 1


async def test_a_batch_of_thousands_of_entries_is_acknowledged_whole(store: Store) -> None:
    """Lua unpacks a few thousand values at most: the entries are acknowledged in chunks, after
    the alerts, so a big batch (``monitor replay --batch-size``) neither fails nor repeats."""
    await store.items.ensure_group(PROCESS_GROUP)
    entries: list[str] = []
    for start in range(0, 9000, 1000):
        entries += await store.items.add_many([{"n": n} for n in range(start, start + 1000)])
    await store.items.read(PROCESS_GROUP, "worker", 9000)
    ending = Ending(store, PROCESS_GROUP, entries, [], [claimed(entries[0])[0]], NOW)
    await ending.write()
    assert ending.ran and ending.acknowledged == 9000 and ending.outcomes == [(1, 1)]
    assert await store.items.pending_count(PROCESS_GROUP) == 0
    assert len(await sent(store)) == 2

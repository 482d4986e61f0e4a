"""The store against real Redis: embedded always, and MONITOR_TEST_REDIS_URL when set."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from monitor.app.settings import Settings
from monitor.app.wiring import open_store, redis_server
from monitor.errors import ConfigError, StoreError
from monitor.store import Store, hash_tagged
from monitor.store.commands import is_cluster
from monitor.store.keys import Keys, digest
from monitor.store.scripts import Scripts
from monitor.store.server import DB_FILE, RedisServer
from tests.conftest import RoundTrips

GROUP = "workers"


# --------------------------------------------------------------------------- keys


def test_keys_are_prefixed_short_and_safe() -> None:
    keys = Keys("p:")
    long_guid = "https://example.org/" + "x" * 500 + "?utm_source=feed"
    names = [
        keys.seen("moscowtimes", long_guid),
        keys.seen_url(long_guid),
        keys.claim("maduro-release", "story-1"),
        keys.items_stream,
        keys.outbox_stream,
        keys.dead_stream,
        keys.source_state("moscowtimes"),
        keys.lease("moscowtimes"),
    ]
    assert all(name.startswith("p:") for name in names)
    assert all(len(name) < 80 for name in names)
    assert keys.seen("moscowtimes", long_guid) == f"p:seen:moscowtimes:{digest(long_guid)}"
    assert keys.claim("maduro-release", "story-1") == "p:claim:maduro-release:story-1"
    assert len(digest(long_guid)) == 20


def test_ids_that_are_not_plain_are_digested() -> None:
    keys = Keys()
    odd = keys.claim("a:b c", "{story}")
    assert odd == f"monitor:claim:~{digest('a:b c')}:~{digest('{story}')}"
    assert keys.source_state("x" * 65) == f"monitor:source:~{digest('x' * 65)}"
    assert keys.seen("a", "g") != keys.seen("b", "g")


# --------------------------------------------------------------------------- seen and claims


async def test_seen_is_new_once_and_has_a_ttl(store: Store) -> None:
    key = store.keys.seen("src", "guid-1")
    assert await store.seen_batch([key], ttl_s=600) == [True]
    assert await store.seen_batch([key], ttl_s=600) == [False]
    assert 0 < await store.client.ttl(key) <= 600


async def test_seen_batch_mixes_new_and_known(store: Store) -> None:
    a, b, c = (store.keys.seen_url(f"https://example.org/{n}") for n in "abc")
    assert await store.seen_batch([a]) == [True]
    assert await store.seen_batch([a, b, c, b]) == [False, True, True, False]
    assert 0 < await store.client.ttl(b) <= store.seen_ttl
    assert await store.seen_batch([]) == []


async def test_seen_expires_after_its_ttl(store: Store) -> None:
    key = store.keys.seen("src", "short-lived")
    assert await store.seen_batch([key], ttl_s=1) == [True]
    await asyncio.sleep(await store.client.pttl(key) / 1000 + 0.05)
    assert await store.seen_batch([key], ttl_s=1) == [True]


async def test_claims_go_to_the_first_and_expire(store: Store) -> None:
    first = store.keys.claim("rule-a", "story-1")
    second = store.keys.claim("rule-b", "story-1")
    assert await store.claim_batch([first, second], 3600, "alert-1") == [True, True]
    assert await store.claim_batch([first], 3600, "alert-2") == [False]
    assert await store.client.get(first) == "alert-1"
    assert 0 < await store.client.ttl(first) <= 3600


async def test_set_once_takes_a_value_and_ttl_per_key(store: Store) -> None:
    a, b = store.keys.claim("r", "s1"), store.keys.claim("r", "s2")
    assert await store.set_once([(a, "x", 60), (b, "y", 600)]) == [True, True]
    assert await store.set_once([(a, "z", 60)]) == [False]
    assert (await store.client.get(a), await store.client.get(b)) == ("x", "y")
    assert 0 < await store.client.ttl(a) <= 60 < await store.client.ttl(b) <= 600
    assert await store.set_once([]) == []
    with pytest.raises(ValueError):
        await store.set_once([(a, "x", 0)])


async def test_a_batch_is_one_round_trip(store: Store, round_trips: RoundTrips) -> None:
    await store.client.ping()  # the connection is open: only batches are counted below
    await store.items.ensure_group(GROUP)

    round_trips.count = 0
    seen = await store.seen_batch([store.keys.seen("src", str(n)) for n in range(250)])
    assert (round_trips.count, sum(seen)) == (1, 250)

    round_trips.count = 0
    claimed = await store.claim_batch(
        [store.keys.claim("rule", f"story-{n}") for n in range(250)], 60, "x"
    )
    assert (round_trips.count, sum(claimed)) == (1, 250)

    round_trips.count = 0
    ids = await store.items.add_many([{"n": n} for n in range(250)])
    assert (round_trips.count, len(set(ids))) == (1, 250)

    round_trips.count = 0
    read = await store.items.read(GROUP, "c", count=250)
    acked = await store.items.ack(GROUP, [entry_id for entry_id, _ in read])
    assert (round_trips.count, acked) == (2, 250)


# --------------------------------------------------------------------------- streams


async def test_payloads_round_trip(store: Store) -> None:
    payload: dict[str, Any] = {"title": "Лавров — «Совбез»", "n": [1, 2.5, None], "ok": True}
    await store.outbox.ensure_group(GROUP)
    [entry_id] = await store.outbox.add_many([payload])
    assert await store.outbox.read(GROUP, "c", count=10) == [(entry_id, payload)]


async def test_ensure_group_is_idempotent(store: Store) -> None:
    await store.items.ensure_group(GROUP)
    await store.items.ensure_group(GROUP)
    assert await store.items.length() == 0
    assert await store.items.pending_count(GROUP) == 0


async def test_a_group_sees_entries_added_before_it_existed(store: Store) -> None:
    ids = await store.items.add_many([{"n": 1}, {"n": 2}])
    await store.items.ensure_group(GROUP)
    assert [entry_id for entry_id, _ in await store.items.read(GROUP, "c", 10)] == ids


async def test_read_waits_at_most_block_ms(store: Store) -> None:
    await store.items.ensure_group(GROUP)
    started = time.monotonic()
    assert await store.items.read(GROUP, "c", count=10, block_ms=100) == []
    assert time.monotonic() - started < 5


async def test_ack_removes_from_pending(store: Store) -> None:
    stream = store.items
    await stream.ensure_group(GROUP)
    ids = await stream.add_many([{"n": n} for n in range(3)])
    assert len(await stream.read(GROUP, "c", count=10)) == 3
    assert await stream.pending_count(GROUP) == 3
    assert await stream.ack(GROUP, ids[:2]) == 2
    assert await stream.pending_count(GROUP) == 1
    assert await stream.ack(GROUP, ids[:2]) == 0
    assert await stream.ack(GROUP, []) == 0


async def test_entries_of_a_dead_consumer_are_redelivered(store: Store) -> None:
    stream = store.items
    await stream.ensure_group(GROUP)
    ids = await stream.add_many([{"n": n} for n in range(3)])
    taken_by_a = await stream.read(GROUP, "a", count=10)
    assert [entry_id for entry_id, _ in taken_by_a] == ids
    # "a" dies here without acknowledging anything.

    [later] = await stream.add_many([{"n": 3}])
    assert await stream.read(GROUP, "b", count=10) == [(later, {"n": 3})]
    await stream.ack(GROUP, [later])
    assert await stream.autoclaim(GROUP, "b", min_idle_ms=60_000, count=10) == []

    await asyncio.sleep(0.05)
    claimed = await stream.autoclaim(GROUP, "b", min_idle_ms=20, count=10)
    assert claimed == taken_by_a
    assert await stream.pending_count(GROUP) == 3
    assert await stream.ack(GROUP, [entry_id for entry_id, _ in claimed]) == 3
    assert await stream.pending_count(GROUP) == 0
    assert await stream.read(GROUP, "b", count=10) == []


async def test_foreign_entries_are_dropped_not_redelivered(store: Store) -> None:
    stream = store.items
    await stream.ensure_group(GROUP)
    await store.client.xadd(stream.key, {"data": "not json"})
    await store.client.xadd(stream.key, {"other": "{}"})
    [ours] = await stream.add_many([{"n": 1}])
    assert await stream.read(GROUP, "c", count=10) == [(ours, {"n": 1})]
    assert await stream.pending_count(GROUP) == 1


async def test_trimming_keeps_a_stream_bounded(redis_client: Redis, key_prefix: str) -> None:
    store = Store(redis_client, prefix=key_prefix, stream_maxlen=50)
    for start in range(0, 2000, 200):
        await store.items.add_many([{"n": n} for n in range(start, start + 200)])
    # MAXLEN ~ trims whole stream nodes (100 entries by default), so "about 50".
    assert 50 <= await store.items.length() <= 50 + 100


# --------------------------------------------------------------------------- state, leases


async def test_source_state(store: Store) -> None:
    assert await store.get_state("feed") == {}
    await store.set_state("feed", {"etag": '"abc"', "modified": "Tue, 01 Jul 2025", "n": 3})
    assert await store.get_state("feed") == {
        "etag": '"abc"',
        "modified": "Tue, 01 Jul 2025",
        "n": "3",
    }
    await store.set_state("feed", {"etag": None, "n": 4})
    assert await store.get_state("feed") == {"modified": "Tue, 01 Jul 2025", "n": "4"}
    assert 0 < await store.client.ttl(store.keys.source_state("feed")) <= store.seen_ttl
    await store.set_state("feed", {})


async def test_leases(store: Store) -> None:
    assert await store.acquire_lease("feed", "a", 10_000)
    assert not await store.acquire_lease("feed", "b", 10_000)
    assert await store.acquire_lease("feed", "a", 10_000)  # renewal
    assert 0 < await store.client.pttl(store.keys.lease("feed")) <= 10_000
    assert not await store.release_lease("feed", "b")
    assert await store.release_lease("feed", "a")
    assert await store.acquire_lease("feed", "b", 10_000)


async def test_every_key_starts_with_the_prefix(store: Store, key_prefix: str) -> None:
    await store.seen_batch([store.keys.seen("s", "g"), store.keys.seen_url("u")])
    await store.claim_batch([store.keys.claim("r", "s")], 60, "x")
    for stream in (store.items, store.outbox, store.dead):
        await stream.ensure_group(GROUP)
        await stream.add_many([{"n": 1}])
    await store.set_state("s", {"etag": "e"})
    await store.acquire_lease("s", "me", 10_000)
    keys = [key async for key in store.client.scan_iter(match="*")]
    assert len(keys) == 8
    assert all(key.startswith(store.keys.prefix) for key in keys)
    assert store.keys.prefix == (
        hash_tagged(key_prefix) if is_cluster(store.client) else key_prefix
    )
    if is_cluster(store.client):  # one slot: every script and pipeline goes to one node
        assert len({await store.client.cluster_keyslot(key) for key in keys}) == 1  # type: ignore[attr-defined]


async def test_settings_give_the_defaults(redis_client: Redis) -> None:
    tagged = is_cluster(redis_client)
    store = open_store(redis_client, Settings(key_prefix="x:", seen_ttl=5, stream_maxlen=7))
    prefix = "{x}:" if tagged else "x:"
    assert (store.keys.prefix, store.seen_ttl, store.items.maxlen) == (prefix, 5, 7)
    store = Store(redis_client)
    prefix = "{monitor}:" if tagged else "monitor:"
    assert (store.keys.prefix, store.seen_ttl) == (prefix, 30 * 86400)
    assert await store.ping()


# --------------------------------------------------------------------------- servers, errors


@pytest.mark.parametrize(
    "url", ["redis://:hunter2@127.0.0.1:1/0", "redis+cluster://:hunter2@127.0.0.1:1"]
)
async def test_unreachable_url_is_a_store_error(url: str) -> None:
    server = RedisServer.from_url(url)
    with pytest.raises(StoreError) as caught:
        await server.start()
    assert "hunter2" not in str(caught.value)
    await server.close()


async def test_a_malformed_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        await RedisServer.from_url("http://127.0.0.1:6379/0").start()


async def test_a_lost_server_is_a_store_error(tmp_path: Path) -> None:
    server = RedisServer.embedded(tmp_path)
    store = Store(await server.start())
    assert await store.ping()
    await server.close()
    assert not await store.ping()
    with pytest.raises(StoreError):
        await store.seen_batch([store.keys.seen("s", "g")])
    with pytest.raises(StoreError):
        await store.items.length()


async def test_embedded_server_keeps_its_data(tmp_path: Path) -> None:
    async with RedisServer.embedded(tmp_path / "data") as client:
        await client.set("monitor:k", "v")
    assert (tmp_path / "data" / DB_FILE).is_file()
    async with RedisServer.embedded(tmp_path / "data") as client:
        assert await client.get("monitor:k") == "v"


async def test_settings_without_url_run_embedded_in_data_dir(tmp_path: Path) -> None:
    server = redis_server(Settings(redis_url=None, data_dir=tmp_path / "d"))
    async with server as client:
        assert await client.ping()
    assert (tmp_path / "d" / DB_FILE).is_file()


async def test_throwaway_server_starts_empty_and_leaves_nothing() -> None:
    server = RedisServer.embedded()
    client = await server.start()
    assert server.db_file is not None
    directory = server.db_file.parent
    await client.set("monitor:k", "v")
    await server.close()
    assert not await asyncio.to_thread(directory.exists)
    async with RedisServer.embedded() as client:
        assert await client.dbsize() == 0


async def test_a_shared_embedded_server_outlives_its_first_user(tmp_path: Path) -> None:
    first, second = RedisServer.embedded(tmp_path), RedisServer.embedded(tmp_path)
    await (await first.start()).set("monitor:k", "v")
    client = await second.start()
    await first.close()
    assert await client.get("monitor:k") == "v"
    await second.close()
    await first.close()


async def test_a_lost_consumer_group_is_created_again(store: Store) -> None:
    """Redis restarted without persistence: the group is gone, and reading recreates it."""
    await store.items.ensure_group("process")
    await store.items.add_many([{"n": 1}])
    await store.client.delete(store.items.key)
    await store.items.add_many([{"n": 2}])
    entries = await store.items.read("process", "c", 10)
    assert [payload for _, payload in entries] == [{"n": 2}]
    await store.client.delete(store.items.key)
    await store.items.add_many([{"n": 3}])
    claimed = await store.items.autoclaim("process", "c", 0, 10)
    assert claimed == []  # a fresh group has nothing pending
    assert [p for _, p in await store.items.read("process", "c", 10)] == [{"n": 3}]


async def test_pending_entries_of_a_consumer_whose_heartbeat_stopped_are_taken_over(
    store: Store,
) -> None:
    await store.items.ensure_group("g")
    await store.items.add_many([{"n": n} for n in range(6)])
    await store.beat(["alive-one"], 30)
    assert len(await store.items.read("g", "alive-one", 3)) == 3
    assert len(await store.items.read("g", "dead-one", 3)) == 3  # it never beat, or stopped
    await asyncio.sleep(0.01)
    taken = await store.items.claim_from_dead("g", "me", store.alive_many, 10, min_idle_ms=1)
    assert sorted(payload["n"] for _, payload in taken) == [3, 4, 5]
    # Nothing left on the dead consumer: the next look removes it from the group.
    assert await store.items.claim_from_dead("g", "me", store.alive_many, 10, min_idle_ms=1) == []
    consumers = {
        c["name"] for c in await store.client.xinfo_consumers(store.keys.items_stream, "g")
    }
    assert consumers == {"alive-one", "me"}
    # What is pending on "me" comes back to "me" when it starts again under the same name.
    assert len(await store.items.own_pending("g", "me", 10)) == 3


async def test_a_pipeline_of_two_script_sets_reruns_both_after_redis_forgot_them(
    store: Store,
) -> None:
    """A pipeline may call scripts of another set (placement's write counts the stream with
    the inputs' script): after a restart emptied the script cache, both run again, once."""
    mine = Scripts(store.client, add=ADD_ONE)
    theirs = Scripts(store.client, double=DOUBLE)
    key = store.keys.prefix + "scripted"
    async with store.pipeline() as pipe:
        mine.call(pipe, "add", [key], [])
        theirs.call(pipe, "double", [key], [])
        assert await mine.execute(pipe) == [1, 2]
    await store.client.script_flush()
    async with store.pipeline() as pipe:
        mine.call(pipe, "add", [key], [])
        theirs.call(pipe, "double", [key], [])
        assert await mine.execute(pipe) == [3, 6]


ADD_ONE = "return redis.call('INCRBY', KEYS[1], 1)"
DOUBLE = "return redis.call('INCRBY', KEYS[1], redis.call('GET', KEYS[1]))"


@pytest.mark.parametrize(
    ("prefix", "tagged"),
    [
        ("monitor:", "{monitor}:"),
        ("test-1a2b:", "{test-1a2b}:"),
        ("desk", "{desk}"),
        ("{desk}:", "{desk}:"),  # a tag already there is kept
        ("a{b}c:", "a{b}c:"),
    ],
)
def test_a_cluster_prefix_hashes_every_key_to_one_slot(prefix: str, tagged: str) -> None:
    assert hash_tagged(prefix) == tagged


async def test_the_embedded_server_keeps_an_items_document_compact() -> None:
    """A placed item's document (its vector and fingerprint are about 700 bytes each) stays in
    Redis's compact hash encoding on the embedded server, not a hash table."""
    from monitor.store.stories import StoryKeeper
    from tests.factories import make_item

    item = make_item(
        "compact:1",
        title="Magnitude 6.4 earthquake strikes near Lima, Peru",
        text="A magnitude 6.4 earthquake struck near Lima, Peru, on Monday, officials said. " * 9,
    )
    async with RedisServer.embedded() as client:
        store = Store(client, prefix="compact:")
        await StoryKeeper(store).place([item], time.time())
        doc = store.keys.doc(item.id)
        assert len(await client.hget(doc, "vector") or "") > 64  # past Redis's default
        assert await client.object("encoding", doc) in ("ziplist", "listpack")

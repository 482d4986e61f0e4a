"""The poll role on real Redis: leases and shared due times between daemons, health, backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from monitor.core.polling import FeedHealth, PollSpec, next_interval
from monitor.models import Item
from monitor.roles.poll import Poller, Scheduled
from monitor.sources.base import FetchResult
from monitor.store import Store
from monitor.store.seen import seen_key


class Counting:
    """A source that counts its fetches; it can be slow, and it can fail."""

    def __init__(self, id: str = "wire", *, delay_s: float = 0.0) -> None:
        self._id = id
        self.delay_s = delay_s
        self.fetches = 0
        self.failing = False

    @property
    def id(self) -> str:
        return self._id

    async def fetch(self, state: Mapping[str, str]) -> FetchResult:
        self.fetches += 1
        await asyncio.sleep(self.delay_s)
        if self.failing:
            return FetchResult(self._id, error="HTTP 503", status=503)
        item = Item(id=f"{self._id}:{self.fetches}", source=self._id, title="t", text="x")
        return FetchResult(self._id, items=(item,), status=200, state={"etag": '"v1"'})


def two_pollers(store: Store, source: Counting, spec: PollSpec) -> tuple[Poller, Poller]:
    scheduled = [Scheduled(source, spec)]
    return Poller(store, scheduled, owner="a"), Poller(store, scheduled, owner="b")


async def test_a_second_daemon_does_not_poll_a_source_before_it_is_due(store: Store) -> None:
    source = Counting()
    a, b = two_pollers(store, source, PollSpec(60, 60, 60))
    assert await a.poll(a.sources[0]) is not None
    assert await b.poll(b.sources[0]) is None  # polled a moment ago by the other daemon
    assert source.fetches == 1
    assert await store.get_state("wire") == {"etag": '"v1"'}
    assert await store.items.length() == 1


async def test_two_daemons_never_poll_one_source_at_the_same_time(store: Store) -> None:
    source = Counting(delay_s=0.3)
    a, b = two_pollers(store, source, PollSpec(60, 60, 60))
    results = await asyncio.gather(
        a.poll(a.sources[0], force=True), b.poll(b.sources[0], force=True)
    )
    assert source.fetches == 1
    assert sum(r is not None for r in results) == 1
    assert await store.acquire_lease("wire", "c", 1000)  # released after the poll


async def test_the_source_is_polled_again_once_due(store: Store) -> None:
    source = Counting()
    a, b = two_pollers(store, source, PollSpec(1, 1, 1))
    await a.poll(a.sources[0])
    await asyncio.sleep(1.2)
    assert await b.poll(b.sources[0]) is not None
    assert source.fetches == 2


async def test_failures_back_off_to_the_cap_and_recover_on_success(store: Store) -> None:
    source = Counting()
    spec = PollSpec(every=60, min=30, max=3600)
    poller = Poller(store, [Scheduled(source, spec)], owner="a")
    source.failing = True
    intervals = []
    for _ in range(5):
        await poller.poll(poller.sources[0], force=True)
        health = FeedHealth.from_mapping(await store.get_health("wire"))
        intervals.append(next_interval(health, spec, datetime.now(UTC)))
    assert health.consecutive_failures == 5
    assert health.error == "HTTP 503"
    assert intervals == [120, 240, 480, 960, 1920]  # then capped
    await poller.poll(poller.sources[0], force=True)
    health = FeedHealth.from_mapping(await store.get_health("wire"))
    assert next_interval(health, spec, datetime.now(UTC)) == 3600
    source.failing = False
    await poller.poll(poller.sources[0], force=True)
    health = FeedHealth.from_mapping(await store.get_health("wire"))
    assert health.consecutive_failures == 0 and health.last_success is not None
    assert 30 <= next_interval(health, spec, datetime.now(UTC)) <= 3600
    assert next_interval(health, spec, datetime.now(UTC)) < 1920


async def test_entries_already_seen_are_not_appended_again(store: Store) -> None:
    source = Counting()
    poller = Poller(store, [Scheduled(source, PollSpec(60, 60, 60))], owner="a")
    result = await poller.poll(poller.sources[0], force=True)
    assert result is not None
    [item] = result.items
    assert await store.items.length() == 1
    await store.set_once([(seen_key(store.keys, item), "1", 60)])  # the process role took it in
    source.fetches = 0  # the next fetch returns an item with the same id
    await poller.poll(poller.sources[0], force=True)
    assert await store.items.length() == 1


class Exploding(Counting):
    """A source with a bug: its fetch raises something that is not one of ours."""

    async def fetch(self, state: Mapping[str, str]) -> FetchResult:
        self.fetches += 1
        raise KeyError("tags")


async def test_a_source_that_raises_fails_alone_and_its_health_says_so(store: Store) -> None:
    broken, fine = Exploding("broken"), Counting("fine")
    spec = PollSpec(60, 60, 60)
    poller = Poller(store, [Scheduled(broken, spec), Scheduled(fine, spec)], owner="a")
    await poller.poll_all()  # one source's exception cancels nothing
    assert (broken.fetches, fine.fetches) == (1, 1)
    assert await store.items.length() == 1
    health = FeedHealth.from_mapping(await store.get_health("broken"))
    assert health.consecutive_failures == 1 and "KeyError" in (health.error or "")
    # The poll can run again: nothing died.
    assert await poller.poll(poller.sources[0], force=True) is None
    assert broken.fetches == 2


class Started(Counting):
    """A slow source that says when a fetch has begun."""

    def __init__(self, *, delay_s: float) -> None:
        super().__init__(delay_s=delay_s)
        self.started = asyncio.Event()

    async def fetch(self, state: Mapping[str, str]) -> FetchResult:
        self.started.set()
        return await super().fetch(state)


async def test_a_poll_in_flight_at_stop_finishes_instead_of_being_cancelled(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopping lets the scheduled poll that is running finish (the scheduler's own shutdown
    would cancel it, and log the cancellation as a job's error)."""
    source = Started(delay_s=0.5)
    poller = Poller(store, [Scheduled(source, PollSpec(60, 60, 60))], owner="a")
    poller.start()
    await asyncio.wait_for(source.started.wait(), 10)  # the first poll is under way
    await poller.stop(timeout_s=10)
    assert not poller.running
    assert await store.items.length() == 1  # its item went in
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []

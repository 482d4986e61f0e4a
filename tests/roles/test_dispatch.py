"""The dispatch role on real Redis: once per delivery, retries with backoff, dead letters."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from monitor.channels.console import ConsoleChannel
from monitor.commands.alerts import retry_dead
from monitor.core.retry import RetryPolicy
from monitor.errors import DeliveryError
from monitor.models import Alert
from monitor.roles.dispatch import Dispatcher, RateLimit, delivery_id
from monitor.store import Store
from monitor.store.streams import DISPATCH_GROUP as GROUP
from tests.factories import make_alert, make_item, outbox_entries

FAST = RetryPolicy(first_s=0.05, factor=2.0, max_delay_s=0.2, give_up_after_s=60)


def alert(n: int, *, followup: bool = False) -> Alert:
    item = make_item(f"src:{n}", title=f"Story {n}", text="Maduro was released.")
    return make_alert(f"alert-{n}", item=item, story=f"s{n}", followup=followup)


async def queue(store: Store, channel: str, alerts: list[Alert]) -> None:
    await store.outbox.add_many(outbox_entries(channel, alerts))


class Flaky:
    """A channel that refuses until told otherwise, the way a broken endpoint would."""

    rate_per_s = None
    burst = 1

    def __init__(self, id: str, *, retryable: bool = True, retry_after_s: float | None = None):
        self._id = id
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.down = True
        self.received: list[Alert] = []
        self.attempts = 0

    @property
    def id(self) -> str:
        return self._id

    async def send(self, alert: Alert) -> None:
        self.attempts += 1
        if self.down:
            raise DeliveryError(
                f"{self._id} is down", retryable=self.retryable, retry_after_s=self.retry_after_s
            )
        self.received.append(alert)

    async def close(self) -> None:
        return None


async def test_each_channel_gets_its_entries_and_one_failing_holds_up_nothing(
    store: Store,
) -> None:
    printed = io.StringIO()
    wall = Flaky("wall")
    dispatcher = Dispatcher(
        store, {"desk": ConsoleChannel("desk", stream=printed), "wall": wall}, policy=FAST
    )
    await dispatcher.start()
    await queue(store, "desk", [alert(1), alert(2)])
    await queue(store, "wall", [alert(1), alert(2)])
    outcomes = await dispatcher.deliver(await store.outbox.read(GROUP, "d", 100))
    assert sorted(o.state for o in outcomes) == ["retry", "retry", "sent", "sent"]
    assert len(printed.getvalue().splitlines()) == 2
    assert await store.outbox.pending_count(GROUP) == 0  # the wall's wait in the delayed queue
    assert await store.delayed_count() == 2
    wall.down = False
    await asyncio.sleep(0.3)
    assert await dispatcher.step("d") == 2  # due again: back in the outbox, and sent
    assert sorted(a.id for a in wall.received) == ["alert-1", "alert-2"]  # jitter may reorder
    assert await store.delayed_count() == 0


async def test_retry_after_is_a_floor(store: Store) -> None:
    wall = Flaky("wall", retry_after_s=2)
    dispatcher = Dispatcher(store, {"wall": wall}, policy=FAST, clock=lambda: 1000.0)
    await dispatcher.start()
    await queue(store, "wall", [alert(1)])
    await dispatcher.step("d")
    [(member, due)] = await store.client.zrange(store.keys.delayed, 0, -1, withscores=True)
    assert due >= 1002.0
    assert json.loads(member)["attempt"] == 2
    assert await store.release_delayed(1001.9) == 0
    assert await store.release_delayed(1002.0) == 1


async def test_permanent_failures_become_dead_letters_and_can_be_retried(store: Store) -> None:
    wall = Flaky("wall", retryable=False)
    dispatcher = Dispatcher(store, {"wall": wall}, policy=FAST)
    await dispatcher.start()
    await queue(store, "wall", [alert(1), alert(2)])
    await queue(store, "gone", [alert(3)])
    await dispatcher.step("d")
    dead = await store.dead_letters()
    reasons = sorted(payload["reason"] for _, payload in dead)
    assert reasons == ["no channel 'gone' is configured", "wall is down", "wall is down"]
    assert await store.outbox.pending_count(GROUP) == 0
    wall.down = False
    assert await retry_dead(store, [dead[0][0]]) == 1
    await dispatcher.step("d")
    assert [a.id for a in wall.received] == ["alert-1"]
    assert len(await store.dead_letters()) == 2


async def test_giving_up_after_the_retry_window(store: Store) -> None:
    wall = Flaky("wall")
    now = [0.0]
    policy = RetryPolicy(first_s=10, factor=2, max_delay_s=100, give_up_after_s=30)
    dispatcher = Dispatcher(store, {"wall": wall}, policy=policy, clock=lambda: now[0])
    await dispatcher.start()
    await queue(store, "wall", [alert(1)])
    for _ in range(6):
        await dispatcher.step("d")
        now[0] += 100
    [(_, letter)] = await store.dead_letters()
    assert letter["reason"].startswith("gave up after")
    assert wall.attempts < 6


async def test_an_entry_sent_before_a_crash_is_not_sent_again(store: Store) -> None:
    """A dispatcher sent and marked an alert, then died before acknowledging it."""
    desk = Flaky("desk")
    desk.down = False
    await queue(store, "desk", [alert(1), alert(2)])
    survivor = Dispatcher(store, {"desk": desk}, policy=FAST, reclaim_idle_ms=50)
    await survivor.start()
    taken = await store.outbox.read(GROUP, "dies", 100)
    first = taken[0][1]
    sent = store.keys.sent(delivery_id("desk", first["alert"]))
    await store.client.set(sent, "1", ex=60)  # the channel took it; never acknowledged
    await asyncio.sleep(0.1)
    assert await survivor.step("survivor") == 2
    assert [a.id for a in desk.received] == ["alert-2"]
    assert await store.outbox.pending_count(GROUP) == 0


def test_a_follow_up_is_a_delivery_of_its_own() -> None:
    first = alert(1).to_dict()
    follow = {**first, "item": {**first["item"], "id": "src:99"}}
    assert delivery_id("desk", first) != delivery_id("desk", follow)
    assert delivery_id("desk", first) != delivery_id("wall", first)
    assert delivery_id("desk", first) == delivery_id("desk", alert(1).to_dict())


@pytest.mark.parametrize(
    ("rate", "burst", "sends", "waits"), [(1.0, 3, 4, [0, 0, 0, 1.0]), (None, 1, 3, [0, 0, 0])]
)
def test_rate_limit_allows_a_burst_then_the_rate(
    rate: float | None, burst: int, sends: int, waits: list[float]
) -> None:
    limit = RateLimit(rate, burst, clock=lambda: 0.0)
    assert [round(limit.wait_s(), 3) for _ in range(sends)] == waits


def test_a_pause_holds_the_channel() -> None:
    now = [0.0]
    limit = RateLimit(None, 1, clock=lambda: now[0])
    limit.pause(2)
    assert limit.wait_s() == 2
    now[0] = 2.0
    assert limit.wait_s() == 0


async def test_malformed_entries_become_dead_letters_and_jam_nothing(store: Store) -> None:
    desk = Flaky("desk")
    desk.down = False
    dispatcher = Dispatcher(store, {"desk": desk}, policy=FAST)
    await dispatcher.start()
    await store.outbox.add_many([{"channel": "desk", "alert": "oops"}, {"channel": "desk"}])
    await queue(store, "desk", [alert(1)])
    await dispatcher.step("d")
    assert [a.id for a in desk.received] == ["alert-1"]
    reasons = [p["reason"] for _, p in await store.dead_letters()]
    assert len(reasons) == 2 and all(r.startswith("malformed entry") for r in reasons)
    assert await store.outbox.pending_count(GROUP) == 0


class Buggy(Flaky):
    async def send(self, alert: Alert) -> None:
        raise KeyError("a bug in the channel")


async def test_a_channel_bug_is_retried_not_fatal(store: Store) -> None:
    dispatcher = Dispatcher(store, {"desk": Buggy("desk")}, policy=FAST)
    await dispatcher.start()
    await queue(store, "desk", [alert(1)])
    [outcome] = await dispatcher.deliver(await store.outbox.read(GROUP, "d", 10))
    assert outcome.state == "retry" and "KeyError" in (outcome.reason or "")


class Slow(Flaky):
    """Up: 10 sends a second, one at a time."""

    rate_per_s = 10.0
    burst = 1


async def test_two_dispatchers_never_send_one_delivery_twice(store: Store) -> None:
    """Entries waiting behind a rate limit longer than the takeover time are taken over by a
    second dispatcher; each alert still goes out once."""
    channel = Slow("slack")
    channel.down = False
    a = Dispatcher(store, {"slack": channel}, policy=FAST, reclaim_idle_ms=200)
    b = Dispatcher(store, {"slack": channel}, policy=FAST, reclaim_idle_ms=200)
    await a.start()
    await queue(store, "slack", [alert(n) for n in range(10)])
    taken = await store.outbox.read(GROUP, "a", 100)

    async def second() -> None:
        for _ in range(40):
            await asyncio.sleep(0.05)
            await b.step("b", count=100)

    await asyncio.gather(a.deliver(taken), second())
    ids = [x.id for x in channel.received]
    assert sorted(ids) == sorted(set(ids)) == [f"alert-{n}" for n in range(10)]
    assert await store.outbox.pending_count(GROUP) == 0


async def test_delivery_log_lines_carry_the_alert_s_ids(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    out = io.StringIO()
    dispatcher = Dispatcher(store, {"desk": ConsoleChannel("desk", stream=out)})
    await dispatcher.start()
    await queue(store, "desk", [alert(7)])
    with caplog.at_level("INFO", logger="monitor.roles.dispatch"):
        await dispatcher.step("c")
    [record] = [r for r in caplog.records if r.getMessage().startswith("sent ")]
    fields = {k: getattr(record, k, None) for k in ("alert", "rule", "story", "item", "channel")}
    assert fields == {
        "alert": "alert-7",
        "rule": "r",
        "story": "s7",
        "item": "src:7",
        "channel": "desk",
    }

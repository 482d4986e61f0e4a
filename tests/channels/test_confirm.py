"""A send that may have arrived is looked up in Slack before it is sent again: after a timeout,
after its dispatcher died, or after this dispatcher lost track of it. Local Slack, real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from monitor.channels.slack import SlackChannel
from monitor.core.retry import RetryPolicy
from monitor.core.rules import WatchConfig, build_config
from monitor.models import Alert
from monitor.roles.dispatch import Dispatcher, delivery_id
from monitor.store import Store
from monitor.store.streams import DISPATCH_GROUP as GROUP
from tests.channels.slack_server import FakeSlack, Reply
from tests.factories import make_alert, make_item

FAST = RetryPolicy(first_s=0.05, factor=2.0, max_delay_s=0.2, give_up_after_s=60)


@pytest.fixture
async def bot(fake: FakeSlack, store: Store) -> AsyncIterator[SlackChannel]:
    channel = SlackChannel(
        "bot",
        webhook_url=None,
        token=fake.token,
        channel="C1",
        api_url=fake.api_url,
        threads=store,
        timeout_s=0.5,
    )
    yield channel
    await channel.close()


def alert(n: int) -> Alert:
    item = make_item(f"i{n}", source="wire", title=f"Story {n}")
    return make_alert(
        f"a{n}",
        item=item,
        rule_name="R",
        story=f"s{n}",
        channels=("bot",),
        created=datetime.now(UTC),
    )


def watch(extra: str = "") -> WatchConfig:
    text = f"channels:\n  - {{id: bot, type: slack, token: t, channel: C1{extra}}}\n"
    return build_config([("w.yaml", text)], {})


async def drain(dispatcher: Dispatcher, rounds: int = 40) -> None:
    for _ in range(rounds):
        await dispatcher.step("d", count=100)
        if (
            not await dispatcher.store.delayed_count()
            and not await dispatcher.store.outbox.pending_count(GROUP)
        ):
            return
        await asyncio.sleep(0.1)


async def test_a_timed_out_post_that_arrived_is_not_posted_again(
    store: Store, fake: FakeSlack, bot: SlackChannel
) -> None:
    dispatcher = Dispatcher(store, {"bot": bot}, policy=FAST)
    await dispatcher.start()
    fake.plan(Reply(accept_then_wait_s=2))  # Slack takes it, the answer comes too late
    await store.outbox.add_many([{"channel": "bot", "alert": alert(1).to_dict()}])
    await drain(dispatcher)
    assert dict(fake.delivered) == {"a1": 1}
    assert fake.history_reads >= 1


async def test_a_timed_out_post_that_never_arrived_is_posted_again(
    store: Store, fake: FakeSlack, bot: SlackChannel
) -> None:
    dispatcher = Dispatcher(store, {"bot": bot}, policy=FAST)
    await dispatcher.start()
    fake.plan(Reply(delay_s=2))  # no answer, and never taken
    await store.outbox.add_many([{"channel": "bot", "alert": alert(1).to_dict()}])
    await drain(dispatcher)
    assert dict(fake.delivered) == {"a1": 1}
    assert fake.history_reads >= 1


async def test_a_send_this_dispatcher_lost_track_of_is_looked_up(
    store: Store, fake: FakeSlack, bot: SlackChannel
) -> None:
    dispatcher = Dispatcher(store, {"bot": bot}, policy=FAST, reclaim_idle_ms=0)
    await dispatcher.start()
    sent = alert(1)
    await store.outbox.add_many([{"channel": "bot", "alert": sent.to_dict()}])
    delivery = delivery_id("bot", sent.to_dict())
    # It went out, but Redis never heard the end of it: the lock is this dispatcher's own.
    assert (await store.begin_send(delivery, dispatcher.owner)).state == "go"
    await bot.send(sent)
    assert (await store.begin_send(delivery, dispatcher.owner)).state == "orphaned"
    await drain(dispatcher)
    assert dict(fake.delivered) == {"a1": 1}


async def test_one_alert_held_by_quiet_hours_is_looked_up_as_itself(
    store: Store, fake: FakeSlack, bot: SlackChannel
) -> None:
    config = watch(', quiet_hours: "00:00-23:59"')
    clock_now = [datetime(2026, 11, 22, 12, 0, tzinfo=UTC).timestamp()]
    dispatcher = Dispatcher(
        store,
        {"bot": bot},
        policy=FAST,
        config=lambda: config,
        clock=lambda: clock_now[0],
        reclaim_idle_ms=0,
    )
    await dispatcher.start()
    held = alert(1)
    await store.outbox.add_many([{"channel": "bot", "alert": held.to_dict()}])
    await dispatcher.step("d")
    assert fake.received == []
    clock_now[0] = datetime(2026, 11, 22, 23, 59, tzinfo=UTC).timestamp()
    await dispatcher.release_digests(clock_now[0])
    [(entry, payload)] = await store.outbox.read(GROUP, "dead-one", 10)
    # A dispatcher took the released entry, posted the alert and died before recording it.
    queued = dispatcher._digest_entry(entry, payload, "bot")
    assert (await store.begin_send(queued.delivery, "dead-one", 0.001)).state == "go"
    await bot.send(held)
    await asyncio.sleep(0.01)
    await drain(dispatcher)
    assert dict(fake.delivered) == {"a1": 1}
    assert fake.digests == []

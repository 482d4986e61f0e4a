"""Operator alerts: a feed whose server keeps failing raises one alert on the operator's
channel, and one recovery message when it works again; the same for a failing channel.
Real local HTTP feed server, real Redis, a local Slack as the operator channel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from monitor.channels.slack import SlackChannel
from monitor.core.polling import PollSpec
from monitor.core.rules import WatchConfig, build_config
from monitor.errors import DeliveryError
from monitor.http import FetchLimits
from monitor.models import Alert
from monitor.ops.watchdog import Operator
from monitor.roles.dispatch import Dispatcher
from monitor.roles.poll import Poller, Scheduled
from monitor.sources.feed import FeedSource
from monitor.store import Store
from tests.channels.slack_server import FakeSlack
from tests.factories import entries, make_alert, make_item, rss
from tests.sources import http_server as hs


def watch(fake: FakeSlack) -> WatchConfig:
    text = f"""
channels:
  - {{id: ops, type: slack, token: {fake.token}, channel: C0, api_url: "{fake.api_url}",
      operator: true}}
  - {{id: desk, type: console}}
"""
    return build_config([("watch.yaml", text)], {})


@pytest.fixture
async def ops(fake: FakeSlack, store: Store) -> AsyncIterator[SlackChannel]:
    channel = SlackChannel(
        "ops", webhook_url=None, token=fake.token, channel="C0", api_url=fake.api_url, threads=store
    )
    yield channel
    await channel.close()


async def drain(dispatcher: Dispatcher) -> None:
    while await dispatcher.step("d", count=100):
        pass


def operator_messages(fake: FakeSlack) -> list[dict[str, object]]:
    return [m for m in fake.messages if "newsmonitor" in str(m.get("blocks"))]


async def test_a_failing_feed_raises_one_operator_alert_and_one_recovery(
    server: hs.Server,
    client: httpx.AsyncClient,
    limits: FetchLimits,
    store: Store,
    fake: FakeSlack,
    ops: SlackChannel,
) -> None:
    config = watch(fake)
    operator = Operator(store, lambda: config, source_failing_after=3)
    source = FeedSource("wire-x", server.url("/feed"), client, limits)
    poller = Poller(store, [Scheduled(source, PollSpec(60, 60, 60))], owner="a", operator=operator)
    dispatcher = Dispatcher(store, {"ops": ops}, config=lambda: config)
    await dispatcher.start()

    server.static("/feed", b"down for maintenance", status=503)
    for attempt in range(1, 7):
        await poller.poll(poller.sources[0], force=True)
        await drain(dispatcher)
        assert len(fake.messages) == (0 if attempt < 3 else 1), attempt

    alert = fake.messages[0]
    assert "Source wire-x is failing" in str(alert["blocks"])
    assert "HTTP 503" in str(alert["blocks"])

    server.static("/feed", rss(entries(range(2))), ("Content-Type", "application/rss+xml"))
    for _ in range(3):
        await poller.poll(poller.sources[0], force=True)
        await drain(dispatcher)
    assert len(fake.messages) == 2
    recovery = fake.messages[1]
    assert "works again" in str(recovery["blocks"])
    assert recovery.get("thread_ts") == alert["ts"]  # threaded under the alert

    server.static("/feed", b"", status=500)  # failing again later is a new problem
    for _ in range(3):
        await poller.poll(poller.sources[0], force=True)
        await drain(dispatcher)
    assert len(fake.messages) == 3


class Broken:
    """A channel that refuses everything until repaired."""

    rate_per_s = None
    burst = 1

    def __init__(self) -> None:
        self.up = False
        self.received: list[Alert] = []

    @property
    def id(self) -> str:
        return "desk"

    async def send(self, alert: Alert) -> None:
        if not self.up:
            raise DeliveryError("desk: HTTP 502 Bad Gateway", retryable=True)
        self.received.append(alert)

    async def close(self) -> None:
        return None


def desk_alert(n: int) -> Alert:
    item = make_item(f"i{n}", source="s", title=f"Story {n}", text="text")
    return make_alert(f"a{n}", item=item, rule_name="R", story=f"s{n}")


async def test_a_channel_that_keeps_failing_is_reported_on_another_channel(
    store: Store, fake: FakeSlack, ops: SlackChannel
) -> None:
    config = watch(fake)
    operator = Operator(store, lambda: config, channel_failing_after=5)
    desk = Broken()
    dispatcher = Dispatcher(
        store, {"ops": ops, "desk": desk}, config=lambda: config, operator=operator
    )
    await dispatcher.start()
    await store.outbox.add_many(
        [{"channel": "desk", "alert": desk_alert(n).to_dict()} for n in range(8)]
    )
    await drain(dispatcher)
    assert len(fake.messages) == 1
    assert "Channel desk is failing" in str(fake.messages[0]["blocks"])
    assert fake.messages[0]["metadata"]["event_payload"]["alert_id"].startswith("operator-")

    desk.up = True
    await store.outbox.add_many([{"channel": "desk", "alert": desk_alert(9).to_dict()}])
    await drain(dispatcher)
    assert [a.id for a in desk.received] == ["a9"]
    assert len(fake.messages) == 2
    assert "Channel desk delivers again" in str(fake.messages[1]["blocks"])


async def test_problems_that_are_out_are_listed_until_cleared(store: Store) -> None:
    assert await store.raise_problem("source", "wire-x", 1_800_000_000.0)
    assert not await store.raise_problem("source", "wire-x", 1_800_000_100.0)  # once
    assert await store.problems() == {"source:wire-x": 1_800_000_000.0}
    assert await store.clear_problem("source", "wire-x") == 1_800_000_000.0
    assert await store.clear_problem("source", "wire-x") is None  # one recovery
    assert await store.problems() == {}
